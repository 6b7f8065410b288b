#!/bin/sh
# scripts/demo.sh runs on an instance of its own: it leaves another user's "demo" segment
# alone (the fixed instance name collided with it, and --fresh would have discarded it),
# two demos run at once, and each removes its own segment at the end.
#   test_demo.sh BUILD_DIR SRCDIR        exit 0 pass, 1 fail
set -eu
build=$1 src=$2
tmp=$(mktemp -d /tmp/rldtest.demo.XXXXXX)
made=
cleanup() {
  [ -n "$made" ] && rm -f /dev/shm/rld.demo
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_demo: $*" >&2; exit 1; }

# Another user's instance "demo" (as root: a file owned by nobody; otherwise our own file,
# which the old script would have discarded with --fresh all the same).
if [ ! -e /dev/shm/rld.demo ]; then
  echo "someone else's segment" >/dev/shm/rld.demo
  made=1
  [ "$(id -u)" = 0 ] && chown nobody /dev/shm/rld.demo
fi
before=$(stat -c '%i %s %Y %U' /dev/shm/rld.demo)
sum=$(md5sum </dev/shm/rld.demo)

RLD_DEMO_BUILD=$build "$src/scripts/demo.sh" demo 2 1 >"$tmp/a" 2>&1 &
a=$!
RLD_DEMO_BUILD=$build "$src/scripts/demo.sh" demo 2 1 >"$tmp/b" 2>&1 || fail "the second demo failed: $(cat "$tmp/b")"
wait $a || fail "the first demo failed: $(cat "$tmp/a")"
for f in "$tmp/a" "$tmp/b"; do
  grep -q "^total [0-9]* tokens in" "$f" || fail "no total in: $(cat "$f")"
  grep -q "instance demo-$(id -u)-[0-9]*" "$f" || fail "not a private instance: $(cat "$f")"
done
[ "$(stat -c '%i %s %Y %U' /dev/shm/rld.demo)" = "$before" ] &&
  [ "$(md5sum </dev/shm/rld.demo)" = "$sum" ] || fail "the demo touched /dev/shm/rld.demo"
for i in $(sed -n 's/.*(instance \(demo-[0-9-]*\):.*/\1/p' "$tmp/a" "$tmp/b"); do
  [ ! -e "/dev/shm/rld.$i" ] || fail "the demo left /dev/shm/rld.$i behind"
done
echo "test_demo: ok"
