#!/bin/sh
# test_rlctl_upstream.sh - rlctl's commands of issue 15 against a real rld: breaker (list,
# --json, trip, reset, a non-admin refused), penalize and sync, status with the mode, the
# would-be denials and the lease holders by pid, metrics through promcheck.awk.
#
#   test_rlctl_upstream.sh RLCTL RLD SRCDIR HOLDER    exit 0 pass, 1 fail, 77 skip (no jq)
#
# HOLDER: a program that holds N leases of a limit until killed (tests/rlctl/lease_holder.c).
set -eu
rlctl=$1 rld=$2 src=$3 holder=$4
if ! command -v jq >/dev/null; then
  echo "test_rlctl_upstream: skipped: jq is not installed"; exit 77
fi
dir=$(mktemp -d /tmp/rldtest.rlctlup.XXXXXX)
inst="t-rlctlup-$$"
rld_pid= hold_pid=
cleanup() {
  set +e
  [ -n "$hold_pid" ] && kill "$hold_pid" 2>/dev/null
  if [ -n "$rld_pid" ]; then kill "$rld_pid" 2>/dev/null; wait "$rld_pid" 2>/dev/null; fi
  rm -rf "$dir"
}
trap cleanup EXIT
chmod 0700 "$dir"
export RLD_RUNTIME_DIR="$dir" RLD_INSTANCE="$inst"
conf=$dir/rld.conf log=$dir/rld.log out=$dir/out err=$dir/err
fail() {
  echo "test_rlctl_upstream: FAIL: $*" >&2
  echo "---- stdout ----" >&2; cat "$out" >&2 2>/dev/null
  echo "---- stderr ----" >&2; cat "$err" >&2 2>/dev/null
  echo "---- rld log ----" >&2; cat "$log" >&2 2>/dev/null
  exit 1
}
rc() {
  want=$1; shift
  set +e; "$rlctl" "$@" >"$out" 2>"$err"; got=$?; set -e
  [ "$got" = "$want" ] || fail "rlctl $* exited $got, expected $want"
}
has() { grep -q -- "$2" "$1" || fail "$1 lacks '$2'"; }
jq_is() {
  v=$(jq -r "$1" "$out") || fail "jq '$1' failed"
  [ "$v" = "$2" ] || fail "jq '$1' gave '$v', expected '$2'"
}
cat >"$conf" <<'EOF'
[limit api]
rate = 10/s

[limit pool]
concurrency = 4

[limit sh]
rate = 1/s
mode = shadow

[breaker shop.api]
failures = 2
open_for = 30s
probes = 1
EOF
"$rld" --foreground --config "$conf" --instance "$inst" 2>>"$log" &
rld_pid=$!
for _ in $(seq 200); do grep -q " ready: " "$log" 2>/dev/null && break; sleep 0.05; done

# breakers
rc 0 breaker
has "$out" "^shop.api  *closed"
rc 0 -j breaker
jq_is '.breakers[0].name + " " + .breakers[0].state + " " + (.breakers[0].config.failures|tostring)' \
      "shop.api closed 2"
rc 0 breaker trip shop.api
rc 0 -j breaker 'shop.*'
jq_is '.breakers[0].state + " " + (.breakers[0].opens|tostring)' "open 1"
rc 0 breaker reset shop.api
rc 5 status shop.api;            has "$err" "'shop.api' is a circuit breaker, not a limit: rlctl breaker shop.api"
rc 5 try shop.api;               has "$err" "is a circuit breaker"
rc 0 breaker 'zz*';             has "$err" "no breaker of instance '$inst' matches 'zz\\*' (\`rlctl breaker\`"
rc 0 -j breaker
jq_is '.breakers[0].state + " " + (.breakers[0].closes|tostring)' "closed 1"
rc 2 breaker trip
rc 2 breaker trip 'bad name!'
rc 5 breaker trip api          # not a breaker: the daemon says there is none
rc 5 breaker trip nosuch
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  chmod 0755 "$dir"; chmod 0666 "$dir/$inst.sock" "$dir/$inst.seg" 2>/dev/null || true
  set +e; setpriv --reuid=65534 --regid=65534 --clear-groups "$rlctl" breaker trip shop.api \
    >"$out" 2>"$err"; got=$?; set -e
  [ "$got" = 4 ] || fail "a non-admin's trip exited $got, expected 4"
  chmod 0700 "$dir"
fi

# penalize, sync
rc 0 penalize api 5s
has "$out" "penalized; 0 remaining"
rc 1 try api
rc 0 sync pool 3 1s             # unlimited: nothing to hold, fine
rc 0 try pool;                   has "$err" "^note: 'pool' has no rate, only concurrency = 4: rlctl try takes no lease"
rc 2 penalize api soon
rc 2 sync api x 1s
rc 5 penalize nosuch 1s
rc 2 penalize api 60d;          has "$err" "penalize api: 60d is beyond 52 days"
rc 2 sync api 1 60d;            has "$err" "sync api: 60d is beyond 52 days"

# shadow, leases by pid
rc 0 try sh
rc 0 try sh
rc 0 status sh
has "$out" "^mode  *shadow: admits all, would have denied 1 calls"
"$holder" pool 3 > "$dir/holder.out" 2>&1 &
hold_pid=$!
for _ in $(seq 200); do grep -q held "$dir/holder.out" 2>/dev/null && break; sleep 0.02; done
rc 0 status pool
has "$out" "^leases  *3 held of 4"
has "$out" "pid $hold_pid: 3 leases"
rc 0 -j status pool
jq_is '.upstream.leases.held' 3
jq_is '.upstream.leases.holders[0].pid' "$hold_pid"
kill -9 "$hold_pid"; wait "$hold_pid" 2>/dev/null || true; hold_pid=
sleep 0.4
rc 0 -j status pool
jq_is '.upstream.leases.held' 0
jq_is '.upstream.leases.reclaimed' 3

# metrics
rc 0 metrics
awk -f "$src/tests/rlctl/promcheck.awk" "$out" >"$err" 2>&1 || fail "promcheck rejects: $(cat "$err")"
has "$out" '^rld_breaker_state{rld_instance="'"$inst"'",breaker="shop.api"} 0$'
has "$out" '^rld_breaker_opens_total{rld_instance="'"$inst"'",breaker="shop.api"} 1$'
has "$out" '^rld_limit_shadow_denied_total{rld_instance="'"$inst"'",limit="sh"} 1$'
has "$out" '^rld_limit_leases_reclaimed_total{rld_instance="'"$inst"'",limit="pool"} 3$'
echo "test_rlctl_upstream: ok"
