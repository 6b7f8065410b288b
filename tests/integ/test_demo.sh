#!/bin/sh
# scripts/demo.sh runs on an instance of its own: two demos run at once beside another
# user's instance named "demo" (the fixed name collided with it, and --fresh would have
# discarded it), and each leaves nothing behind (its runtime directory and segment keeper).
#   test_demo.sh BUILD_DIR SRCDIR        exit 0 pass, 1 fail
set -eu
build=$1 src=$2
tmp=$(mktemp -d /tmp/rldtest.demo.XXXXXX)
chmod 700 "$tmp"
other=
cleanup() {
  [ -n "$other" ] && kill "$other" 2>/dev/null
  rm -rf "$tmp"                  # the other instance's keeper goes with its directory
}
trap cleanup EXIT
fail() { echo "test_demo: $*" >&2; exit 1; }
# keepers serving instance $1 (they inherit the environment of the rld that started them)
keepers_of() {
  for p in $(pgrep -x rld-keeper); do
    tr '\0' '\n' </proc/"$p"/environ 2>/dev/null | grep -qx "RLD_INSTANCE=$1" && echo "$p"
  done
}

# Another instance named "demo", running: the demos must not touch it.
printf '[limit demo]\nrate = 5/s\n' > "$tmp/other.conf"
RLD_RUNTIME_DIR=$tmp "$build/daemon/rld" --foreground --config "$tmp/other.conf" \
  --instance demo 2>"$tmp/other.log" &
other=$!
for _ in $(seq 100); do grep -q " ready: " "$tmp/other.log" && break; sleep 0.05; done
before=$(RLD_RUNTIME_DIR=$tmp "$build/tools/rlctl/rlctl" -i demo status demo --json)

RLD_DEMO_BUILD=$build "$src/scripts/demo.sh" demo 2 1 >"$tmp/a" 2>&1 &
a=$!
RLD_DEMO_BUILD=$build "$src/scripts/demo.sh" demo 2 1 >"$tmp/b" 2>&1 || fail "the second demo failed: $(cat "$tmp/b")"
wait $a || fail "the first demo failed: $(cat "$tmp/a")"
for f in "$tmp/a" "$tmp/b"; do
  grep -q "^total [0-9]* tokens in" "$f" || fail "no total in: $(cat "$f")"
  grep -q "instance demo-$(id -u)-[0-9]*" "$f" || fail "not a private instance: $(cat "$f")"
done
after=$(RLD_RUNTIME_DIR=$tmp "$build/tools/rlctl/rlctl" -i demo status demo --json)
[ "$(echo "$before" | jq .admitted)" = "$(echo "$after" | jq .admitted)" ] ||
  fail "the demo took from the other instance 'demo': $before -> $after"
kill "$other"; wait "$other" 2>/dev/null || true; other=
sleep 1.5                        # keepers check their socket once a second
for i in $(sed -n 's/.*(instance \(demo-[0-9-]*\):.*/\1/p' "$tmp/a" "$tmp/b"); do
  [ -z "$(keepers_of "$i")" ] || fail "the demo left the segment keeper of $i running"
done
echo "test_demo: ok"
