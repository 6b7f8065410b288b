#!/bin/sh
# test_override.sh - a run-time setting of a limit declared in rld.conf (issue 16, item 3),
# with rlctl against a real rld on a private instance: `rlctl set` on a limit of the file
# overrides the file's line across reloads (rlctl reload, SIGHUP) and daemon restarts
# until that line changes; `rlctl status` says so and what the file says; `rlctl revert`
# and setting the file's own values end it; an override of a limit the file drops goes
# with it. The 2000/h an operator set went back to the file's 1000/h at the next reload.
#
#   test_override.sh RLCTL RLD        exit 0 pass, 1 fail, 77 skip (no jq)
set -eu
rlctl=$1 rld=$2

if ! command -v jq >/dev/null; then
  echo "test_override: skipped: jq is not installed (scripts/deps.sh installs it)"
  exit 77
fi

dir=$(mktemp -d /tmp/rldtest.override.XXXXXX)
inst="t-override-$$"
rld_pid=
cleanup() {
  set +e
  if [ -n "$rld_pid" ]; then kill "$rld_pid" 2>/dev/null; wait "$rld_pid" 2>/dev/null; fi
  if [ -n "${RLD_TEST_KEEP:-}" ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export RLD_RUNTIME_DIR="$dir" RLD_INSTANCE="$inst"
conf=$dir/rld.conf log=$dir/rld.log out=$dir/out err=$dir/err
checks=0

fail() {
  echo "test_override: FAIL: $*" >&2
  echo "---- stdout of the last rlctl ----" >&2; cat "$out" >&2 2>/dev/null
  echo "---- stderr of the last rlctl ----" >&2; cat "$err" >&2 2>/dev/null
  echo "---- rld log ----" >&2; cat "$log" >&2 2>/dev/null
  exit 1
}
ok() { checks=$((checks + 1)); }
rc() {
  want=$1; shift
  set +e; "$rlctl" "$@" >"$out" 2>"$err"; got=$?; set -e
  [ "$got" = "$want" ] || fail "rlctl $* exited $got, expected $want"
  ok
}
jq_is() {
  v=$(jq -r "$1" "$out") || fail "jq '$1' failed on: $(cat "$out")"
  [ "$v" = "$2" ] || fail "jq '$1' gave '$v', expected '$2'"
  ok
}
has() { grep -q -- "$2" "$1" || fail "$1 lacks '$2'"; ok; }
# setting NAME "RATE BURST ORIGIN": what the segment says (works with the daemon down too)
setting() {
  rc 0 -j list "$1"
  jq_is '.limits[0] | "\(.rate) \(.burst) \(.origin)"' "$2"
}

write_conf() {   # write_conf RATE_OF_A [more text]
  cat >"$conf" <<EOF
[limit a]
rate = $1

[limit b]
rate = 10/s
${2:-}
EOF
}
start_rld() {
  : >"$log"
  "$rld" --foreground --config "$conf" --instance "$inst" 2>>"$log" &
  rld_pid=$!
  for _ in $(seq 200); do grep -q " ready: " "$log" && return 0; sleep 0.05; done
  fail "rld did not start"
}
stop_rld() {
  kill "$rld_pid"; wait "$rld_pid" || fail "rld exited $? on SIGTERM"
  rld_pid=
}

write_conf 1000/h "
[limit gone]
rate = 5/s"
start_rld
setting a "1000/h 1000 file"

# ---- set on a limit of the file: an override, said so ------------------------------------
rc 0 set a rate=2000/h
has "$out" "^changed a: rate 2000/h, burst 1000$"
has "$out" "^note: set at run time; the file says 1000/h, burst 1000: this setting stays"
setting a "2000/h 1000 override"
rc 0 status a
has "$out" "^declared  *in the configuration file, set at run time (file says 1000/h, burst 1000)$"
has "$out" "rlctl revert a returns to the file's$"
rc 0 -j status a
jq_is '.daemon | "\(.from_file) \(.overridden) \(.file_rate) \(.file_burst)"' "true true 1000/h 1000"
rc 0 -j status b
jq_is '.daemon | "\(.overridden) \(.file_rate) \(.file_burst)"' "false null null"

# ---- kept across reloads, by rlctl and by SIGHUP -------------------------------------------
rc 0 -j reload
jq_is '"\(.kept) \(.changed) \(.overridden) \(.dropped)"' "3 0 1 0"
setting a "2000/h 1000 override"
rc 0 reload
has "$out" "^note: 1 limit keeps a setting made at run time"
kill -HUP "$rld_pid"
for _ in $(seq 100); do [ "$(grep -c '^rld: info: reloaded' "$log")" -ge 3 ] && break; sleep 0.05; done
grep -q "limit a: keeps its run-time setting 2000/h, burst 1000 (the file says 1000/h, burst 1000" \
  "$log" || fail "the log does not say that a keeps its run-time setting"
ok
setting a "2000/h 1000 override"

# ---- and across a restart of the daemon (the segment's meta records it) --------------------
stop_rld
setting a "2000/h 1000 override"     # the segment, with no daemon
start_rld
grep -q "ready: .*1 keep a run-time setting" "$log" || fail "restart: no override counted"
ok
setting a "2000/h 1000 override"
rc 0 -j status a
jq_is '.daemon.overridden' true

# ---- the file's line for it changes: the file wins ----------------------------------------
write_conf 1500/h "
[limit gone]
rate = 5/s"
rc 0 -j reload
jq_is '"\(.changed) \(.overridden) \(.dropped)"' "1 0 1"
setting a "1500/h 1500 file"
# ... and a restart after a change of the line, too
rc 0 set a rate=3000/h
setting a "3000/h 1500 override"
stop_rld
write_conf 1200/h "
[limit gone]
rate = 5/s"
start_rld
setting a "1200/h 1200 file"

# ---- revert, and the file's own values, end an override -----------------------------------
rc 0 set a rate=3000/h burst=10
setting a "3000/h 10 override"
rc 0 revert a
has "$out" "^reverted a$"; has "$out" "^note: back to the file's setting$"
setting a "1200/h 1200 file"
rc 0 revert a;             has "$out" "has the file's setting already"
rc 0 set a rate=3000/h
rc 0 -j set a rate=1200/h
jq_is '.note' "the file's own setting"
setting a "1200/h 1200 file"
rc 0 create c rate=1/s
rc 2 revert c;             has "$err" "created at run time"
rc 5 revert nope
rc 0 -j revert b
jq_is '"\(.ok) \(.name)"' "true b"

# ---- an override of a limit the file drops goes with it; run-time limits stay -------------
rc 0 set gone rate=7/s
setting gone "7/s 5 override"
write_conf 1200/h
rc 0 -j reload
jq_is '"\(.deleted)"' 1
rc 5 status gone
setting c "1/s 1 runtime"

stop_rld
echo "test_override: ok ($checks checks)"
