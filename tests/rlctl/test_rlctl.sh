#!/bin/sh
# test_rlctl.sh - rlctl end to end against a real rld on a private instance: every command,
# its --json output parsed field by field (jq), each exit code class, the permission
# refusal (as nobody), metrics through a strict exposition-format checker (and promtool
# when installed), and watch in a real terminal (tmux: send-keys, capture-pane) including a
# clean exit on q, Ctrl-C and SIGTERM, and around Ctrl-Z.
#
#   test_rlctl.sh RLCTL RLD SRCDIR        exit 0 pass, 1 fail, 77 skip (no jq)
#
# RLCTL_TEST_NO_DAEMON_PROTOCOL=1 runs only what reads the segment (no socket requests).
# RLD_TEST_KEEP=1 keeps the runtime directory (config, daemon log) for a post-mortem.
set -eu
rlctl_src=$1 rld=$2 src=$3
here=$src/tests/rlctl
proto=${RLCTL_TEST_NO_DAEMON_PROTOCOL:-0}
[ "$proto" = 1 ] && proto=0 || proto=1

if ! command -v jq >/dev/null; then
  echo "test_rlctl: skipped: jq is not installed (scripts/deps.sh installs it)"
  exit 77
fi

dir=$(mktemp -d /tmp/rldtest.rlctl.XXXXXX)
inst="t-rlctl-$$"
tsock="rlctl-test-$$"
rld_pid=
cleanup() {
  set +e
  tmux -L "$tsock" kill-server 2>/dev/null
  if [ -n "$rld_pid" ]; then kill "$rld_pid" 2>/dev/null; wait "$rld_pid" 2>/dev/null; fi
  if [ -n "${RLD_TEST_KEEP:-}" ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Readable by nobody (the permission test): the directory may be traversed, not listed.
chmod 0711 "$dir"
cp "$rlctl_src" "$dir/rlctl"
chmod 0755 "$dir/rlctl"
rlctl=$dir/rlctl
export RLD_RUNTIME_DIR="$dir" RLD_INSTANCE="$inst"
conf=$dir/rld.conf log=$dir/rld.log out=$dir/out err=$dir/err

fail() {
  echo "test_rlctl: FAIL: $*" >&2
  echo "---- stdout of the last rlctl ----" >&2; cat "$out" >&2 2>/dev/null
  echo "---- stderr of the last rlctl ----" >&2; cat "$err" >&2 2>/dev/null
  echo "---- rld log ----" >&2; cat "$log" >&2 2>/dev/null
  exit 1
}
ok() { checks=$((checks + 1)); }
checks=0

# rc EXPECTED ARGS...: run rlctl, stdout in $out, stderr in $err, check the exit code.
rc() {
  want=$1; shift
  set +e; "$rlctl" "$@" >"$out" 2>"$err"; got=$?; set -e
  [ "$got" = "$want" ] || fail "rlctl $* exited $got, expected $want"
  ok
}
# jq_is FILTER EXPECTED: the filter's raw output on $out equals EXPECTED.
jq_is() {
  v=$(jq -r "$1" "$out") || fail "jq '$1' failed on: $(cat "$out")"
  [ "$v" = "$2" ] || fail "jq '$1' gave '$v', expected '$2'"
  ok
}
# jq_fields SELECT "F1 F2..." EXPECTED: fields F1, F2... of what SELECT picks, space-joined.
jq_fields() {
  # shellcheck disable=SC2086
  f=$(printf '.%s,' $2)
  jq_is "$1 | [${f%,}] | map(tostring) | join(\" \")" "$3"
}
lim() { echo ".limits[] | select(.name == \"$1\")"; }
# jq_true FILTER: the filter holds on $out.
jq_true() { jq -e "$1" "$out" >/dev/null || fail "jq -e '$1' is false on: $(cat "$out")"; ok; }
has() { grep -q -- "$2" "$1" || fail "$1 lacks '$2'"; ok; }
lacks() { ! grep -q -- "$2" "$1" || fail "$1 has '$2'"; ok; }
# The table row of limit $1 in $out, blanks squeezed.
row() { awk -v n="$1" '$1 == n' "$out" | tr -s ' '; }

# As root, the instance gets a group (segment and socket 0660) so that nobody, in it, can
# read but not change: the permission test. Not root: no group, no permission test.
root=0; [ "$(id -u)" = 0 ] && root=1
{ echo "[rld]"; echo "max_limits = 64"; [ $root = 1 ] && echo "group = nogroup"; } >"$conf"
cat >>"$conf" <<'EOF'

[limit a]
rate  = 10/s
burst = 10

[limit b.x]
rate = 3500/min

[limit slow]
rate  = 1/day
burst = 2

[limit free]
rate = unlimited

[limit gone]
rate = 1/s
EOF

start_rld() {
  : >"$log"
  "$rld" --foreground --config "$conf" --instance "$inst" 2>>"$log" &
  rld_pid=$!
  for _ in $(seq 200); do grep -q " ready: " "$log" && return 0; sleep 0.05; done
  fail "rld did not start"
}
start_rld

LIMIT_KEYS='["admitted","algorithm","align_ns","burst","denied","name","rate","rate_count","rate_period_ns",
  "remaining","reset_after_ns","retry_after_ns","unlimited","waiters"]'

# ---- usage errors (2): nothing is opened, so they hold with no instance at all ---------
rc 0 help
for c in list status try wait create set delete reset reload stats watch metrics help; do
  has "$out" "^  $c"
done
has "$out" "Exit codes"
rc 0 help wait
has "$out" "usage: rlctl .*wait NAME \[COST\] \[--timeout DUR\] \[--priority P\]"
rc 0 try --help;           has "$out" "usage: rlctl .*try NAME \[COST\]"
rc 0 --version;            has "$out" "^rlctl [0-9]"
rc 2;                      has "$err" "usage: rlctl"
rc 2 frobnicate;           has "$err" "unknown command 'frobnicate'"
rc 2 help frobnicate
rc 2 --bogus list
rc 2 try;                  has "$err" "missing argument"; has "$err" "usage: rlctl .*try NAME"
rc 2 try a 1 2;            has "$err" "too many arguments"
rc 2 try a lots;           has "$err" "bad cost 'lots'"
rc 2 try 'bad name';       has "$err" "bad limit name"
rc 2 -i nosuch-$$ try 'bad name'
rc 2 wait a --priority 9;  has "$err" "bad priority"
rc 2 wait a --timeout 5q;  has "$err" "bad timeout"
rc 2 wait a --timeout;     has "$err" "needs a value"
rc 2 try a --frob 1;       has "$err" "unknown option"
rc 2 create c;             has "$err" "rate=R is required"
rc 2 create c rate=5/q;    has "$err" "bad rate '5/q'"
rc 2 create c rate=5/s burst=0
rc 2 create c rate=5/s rate=6/s
rc 2 create c rate=5/s color=red
rc 2 set a;                has "$err" "nothing to change"
rc 2 create c rate=5/s algorithm=leaky;       has "$err" "bad algorithm 'leaky'"
rc 2 create c rate=5/s algorithm=sliding burst=3; has "$err" "burst= is for algorithm=gcra"
rc 2 create c rate=5/s algorithm=sliding align=+1s; has "$err" "align= is for algorithm=fixed"
rc 2 create c rate=5/h algorithm=fixed align=+15q; has "$err" "bad align '+15q'"
rc 2 create c rate=5/s algorithm=fixed algorithm=fixed; has "$err" "algorithm= given twice"
rc 2 -i .hidden list;      has "$err" "bad instance name"
rc 2 watch --interval 1ms
rc 2 watch --count 0

# ---- no such instance (3) ----------------------------------------------------------------
for c in list "status a" "try a" "wait a" watch metrics; do
  # shellcheck disable=SC2086
  rc 3 -i "nosuch-$$" $c
  has "$err" "instance 'nosuch-$$' not found"
  has "$err" "is rld running? start it with: rld --instance nosuch-$$ --config"
done
grep -qxF "rld_up{rld_instance=\"nosuch-$$\"} 0" "$out" || fail "no instance: no rld_up 0"
if [ "$proto" = 1 ]; then
  rc 3 -i "nosuch-$$" stats;   has "$err" "rld is not running for instance 'nosuch-$$'"
  rc 3 -i "nosuch-$$" reload
  rc 3 -i "nosuch-$$" create c rate=1/s
fi

# ---- list ------------------------------------------------------------------------------
rc 0 list
has "$out" "^NAME  *RATE  *BURST  *REMAINING  *WAITERS  *ADMITTED  *DENIED$"
[ "$(awk 'NR > 1 {print $1}' "$out" | tr '\n' ' ')" = "a b.x free gone slow " ] || fail "list order"
[ "$(row slow)" = "slow 1/day 2 2 0 0 0" ] || fail "list row slow: $(row slow)"
[ "$(row b.x)" = "b.x 3500/min 3500 3500 0 0 0" ] || fail "list row b.x: $(row b.x)"
[ "$(row free)" = "free unlimited - - 0 0 0" ] || fail "list row free: $(row free)"
rc 0 --json list
jq_is '.instance' "$inst"
jq_is '.limits | length' 5
jq_is '[.limits[].name] | join(",")' "a,b.x,free,gone,slow"
jq_true "all(.limits[]; keys == $LIMIT_KEYS)"
jq_fields "$(lim a)" "rate rate_count rate_period_ns unlimited burst remaining" \
          "10/s 10 1000000000 false 10 10"
jq_fields "$(lim a)" "waiters admitted denied retry_after_ns reset_after_ns" "0 0 0 0 0"
jq_fields "$(lim b.x)" "rate rate_count rate_period_ns burst" "3500/min 3500 60000000000 3500"
jq_fields "$(lim slow)" "rate rate_period_ns burst remaining" "1/day 86400000000000 2 2"
jq_fields "$(lim free)" "rate unlimited remaining rate_count" "unlimited true null 0"

# ---- list GLOB...: a selection (fnmatch: '*' also matches '.') ----------------------------
names() { awk 'NR > 1 {print $1}' "$out" | tr '\n' ' '; }
rc 0 list 'b*';            [ "$(names)" = "b.x " ] || fail "list 'b*': $(names)"
rc 0 list '[fg]*';         [ "$(names)" = "free gone " ] || fail "list '[fg]*': $(names)"
rc 0 list -j a 's?o*';     jq_is '[.limits[].name] | join(",")' "a,slow"
jq_is '.instance' "$inst"
rc 0 list 'zz*';           has "$err" "no limit of instance '$inst' matches 'zz\*' (of 5"
[ "$(wc -l <"$out")" = 1 ] || fail "list 'zz*': more than the header"
rc 0 list -j 'zz*';        jq_is '.limits | length' 0
rc 2 list '';              has "$err" "bad pattern"

# ---- try: 0 granted, 1 denied, 2 beyond the burst, 5 no such limit ---------------------
rc 0 try slow;             has "$out" "^granted: 1 token from slow, 1 of 2 remaining$"
rc 0 --json try slow
TRY_KEYS='["cost","granted","limit","name","queue_position","remaining","reset_after_ns",
  "retry_after_ns","unlimited"]'
jq_true "keys == $TRY_KEYS"
jq_fields . "name cost granted limit remaining retry_after_ns unlimited" "slow 1 true 2 0 0 false"
jq_true '.reset_after_ns > 172000000000000 and .reset_after_ns <= 172800000000000'
rc 1 try slow;             has "$out" "^denied: slow has 0 of 2 tokens; retry after [0-9.]*[a-z]*$"
rc 1 try slow 2 -j
jq_fields . "granted cost remaining" "false 2 0"
jq_true '.retry_after_ns > 86000000000000 and .retry_after_ns <= 172800000000000'
rc 2 try slow 3;           has "$err" "cost 3 exceeds the burst of slow (2)"
rc 5 try nope;             has "$err" "no limit 'nope' in instance '$inst'"
rc 0 try free 1000 --json
jq_fields . "granted unlimited limit remaining" "true true null null"
rc 0 try b.x 100;          has "$out" "^granted: 100 tokens from b.x, 3400 of 3500 remaining$"
rc 0 try a 0
# counters are published when each rlctl exits
rc 0 list -j
jq_fields "$(lim slow)" "admitted denied remaining" "2 2 0"
jq_fields "$(lim free)" admitted 1000
jq_fields "$(lim b.x)" admitted 100

# ---- status ----------------------------------------------------------------------------
rc 0 status slow
has "$out" "^limit  *slow$"; has "$out" "^rate  *1/day (1.15741e-05/s)$"; has "$out" "^burst  *2$"
has "$out" "^remaining  *0$"; has "$out" "^admitted  *2 tokens$"; has "$out" "^denied  *2 calls$"
rc 0 status -j slow
jq_true "del(.daemon, .upstream) | keys == $LIMIT_KEYS"
jq_fields . "name burst remaining admitted denied retry_after_ns" "slow 2 0 2 2 0"
if [ "$proto" = 1 ]; then
  jq_true '.daemon | keys == ["from_file","global","granted_waits","queued_tokens","scope","timed_out_waits"]'
  jq_is '.daemon.from_file' true
  jq_is '.daemon.scope' host
  jq_is '.daemon.global' null
fi
rc 5 status nope
rc 0 status free;          has "$out" "^rate  *unlimited"

# ---- metrics -----------------------------------------------------------------------------
check_metrics() {
  awk -f "$here/promcheck.awk" "$out" >"$err" 2>&1 || fail "promcheck rejects: $(cat "$err")"
  ok
  if command -v promtool >/dev/null; then
    promtool check metrics <"$out" >"$err" 2>&1 || fail "promtool check metrics: $(cat "$err")"
    ok
  fi
}
rc 0 metrics
check_metrics
I="rld_instance=\"$inst\""
[ "$proto" = 0 ] || grep -qxF "rld_up{$I} 1" "$out" || fail "metrics: rld_up is not 1"
for l in \
  "rld_daemon_attached{$I} 1" \
  "rld_limits{$I} 5" \
  "rld_limits_max{$I} 64" \
  "rld_limit_admitted_tokens_total{$I,limit=\"slow\"} 2" \
  "rld_limit_denied_total{$I,limit=\"slow\"} 2" \
  "rld_limit_remaining_tokens{$I,limit=\"slow\"} 0" \
  "rld_limit_burst_tokens{$I,limit=\"b.x\"} 3500" \
  "rld_limit_rate_tokens_per_second{$I,limit=\"a\"} 10" \
  "rld_limit_rate_tokens_per_second{$I,limit=\"b.x\"} 58.333333333333336" \
  "rld_limit_remaining_tokens{$I,limit=\"free\"} +Inf" \
  "rld_limit_waiters{$I,limit=\"a\"} 0" \
  "rld_limit_info{$I,limit=\"a\",algorithm=\"gcra\"} 1" \
  "# TYPE rld_limit_admitted_tokens_total counter" \
  "# TYPE rld_limit_remaining_tokens gauge"; do
  grep -qxF "$l" "$out" || fail "metrics lack: $l"; ok
done
# --match GLOB: the per-limit samples of the matching limits only; instance gauges whole
rc 0 metrics --match 'b.*'
check_metrics
[ "$(grep -c 'limit="' "$out")" = 8 ] || fail "metrics --match 'b.*': not 8 per-limit samples"
grep -q 'limit="b.x"' "$out" || fail "metrics --match 'b.*' lacks b.x"
grep -qxF "rld_limits{$I} 5" "$out" || fail "metrics --match: rld_limits is not the instance's 5"
rc 0 metrics --match=nothing.here
check_metrics
lacks "$out" 'limit="'
has "$out" "^rld_limits_max{$I} 64$"
rc 2 metrics --match;      has "$err" "needs a value"
rc 2 metrics extra
# The checker itself rejects what it must (so a pass above means something).
printf '# HELP x_total h\n# TYPE x_total counter\nx_total{a="b\\q"} 1\n' >"$dir/bad.prom"
! awk -f "$here/promcheck.awk" "$dir/bad.prom" >/dev/null || fail "promcheck accepted a bad escape"
printf '# HELP x h\n# TYPE x gauge\nx 1\n# HELP y h\n# TYPE y gauge\ny 1\nx{a="1"} 2\n' \
  >"$dir/bad.prom"
! awk -f "$here/promcheck.awk" "$dir/bad.prom" >/dev/null || fail "promcheck accepted a split group"
ok

# ---- wait (through the daemon's queue) ---------------------------------------------------
if [ "$proto" = 1 ]; then
  rc 1 wait slow --timeout 1s;   has "$out" "^timed out: 1 token from slow would need"
  rc 1 wait -j slow --timeout 200ms
  jq_fields . "granted degraded" "false false"
  jq_true '.retry_after_ns > 80000000000000'
  rc 0 try a 10                  # a is full: empty it, so the next wait queues
  rc 0 wait -j a 10 --timeout 5s --priority 7
  jq_fields . "granted degraded cost limit remaining" "true false 10 10 0"
  jq_true "keys == ($TRY_KEYS + [\"degraded\",\"waited_ns\"] | sort)"
  jq_true '.waited_ns > 200000000 and .waited_ns < 2000000000'
  rc 2 wait a 11;                has "$err" "exceeds the burst"
  rc 5 wait nope
  rc 0 status -j slow
  jq_true '.daemon.timed_out_waits >= 0 and .daemon.granted_waits >= 0'
fi

# ---- watch, not on a terminal: plain tables, JSON per refresh, rates from deltas -----------
rc 0 watch --count 2 --interval 100ms
[ "$(grep -c '^NAME  *RATE  *REMAINING  *WAITERS  *ADMITS/S  *DENIES/S' "$out")" = 2 ] ||
  fail "watch: not 2 tables"
lacks "$out" "$(printf '\033')"
rc 0 watch --count 1 'b*' s\*
[ "$(awk '$1 ~ /^[a-z]/ && $1 != "rld" {print $1}' "$out" | tr '\n' ' ')" = "b.x slow " ] ||
  fail "watch 'b*' 's*': $(cat "$out")"
"$rlctl" watch --json --interval 300ms --count 8 >"$dir/watch.json" 2>"$err" &
wpid=$!
for _ in $(seq 100); do [ -s "$dir/watch.json" ] && break; sleep 0.05; done
for _ in 1 2 3; do "$rlctl" try b.x 50 >/dev/null; sleep 0.1; done
wait "$wpid" || fail "watch --json exited $?"
cp "$dir/watch.json" "$out"
[ "$(wc -l <"$out")" = 8 ] || fail "watch --json: not 8 lines"
[ "$(jq -s -r 'map(.refresh | tostring) | join(",")' "$out")" = "1,2,3,4,5,6,7,8" ] ||
  fail "watch: refresh numbers"
[ "$(jq -r "select(.refresh == 1) | $(lim b.x) | .admits_per_s" "$out")" = null ] ||
  fail "watch: the first refresh has a rate"
first=$(jq -r "select(.refresh == 1) | $(lim b.x) | .admitted" "$out")
last=$(jq -r "select(.refresh == 8) | $(lim b.x) | .admitted" "$out")
[ $((last - first)) = 150 ] || fail "watch: b.x admitted went $first -> $last, expected +150"
jq -s -e "[.[] | $(lim b.x) | .admits_per_s // 0] | max > 50" "$out" >/dev/null ||
  fail "watch: no admits/s seen for b.x"
ok

# ---- watch in a real terminal (tmux) ---------------------------------------------------------
T="tmux -L $tsock -f /dev/null"
pane_is() { $T display -p -t w "$1"; }
# wait_pane TEXT: until the screen shows TEXT (5 s)
wait_pane() {
  for _ in $(seq 100); do $T capture-pane -p -t w | grep -q -- "$1" && return 0; sleep 0.05; done
  $T capture-pane -p -t w >"$out"; fail "the terminal never showed '$1'"
}
# One session per way out: start watch from a shell that reports the exit status and the
# terminal modes once it is back; then check the screen and the modes.
watch_session() {   # $1: how to stop it (q, C-c, TERM); $2: expected exit status
  $T kill-server 2>/dev/null || true
  cat >"$dir/watch.sh" <<EOF
export RLD_RUNTIME_DIR='$dir' RLD_INSTANCE='$inst'
trap : INT      # this shell survives Ctrl-C (rlctl gets the default disposition)
echo BEFORE
sh -c 'echo \$\$ >"\$1"; exec "\$2" watch --interval 200ms' sh '$dir/watch.pid' '$rlctl'
echo "EXIT=\$?"
stty -a | tr ' ;' '\n\n' | grep -x -e -icanon -e icanon -e -echo -e echo | tr '\n' ' '; echo
echo DONE
exec sleep 60
EOF
  $T new-session -d -x 110 -y 30 -s w "exec sh $dir/watch.sh"
  wait_pane "ADMITS/S"
  wait_pane "(q: quit)"
  [ "$(pane_is '#{alternate_on} #{cursor_flag}')" = "1 0" ] ||
    fail "watch: not on the alternate screen with the cursor hidden"
  $T capture-pane -p -t w >"$out"
  [ "$(row slow | cut -d' ' -f1-4)" = "slow 1/day 0 0" ] || fail "watch table row slow: $(row slow)"
  lacks "$out" "BEFORE"
  case $1 in
    TERM) kill -TERM "$(cat "$dir/watch.pid")" ;;
    *) $T send-keys -t w "$1" ;;
  esac
  wait_pane "^DONE"
  $T capture-pane -p -t w >"$out"
  has "$out" "^EXIT=$2$"
  has "$out" "^icanon echo"            # the modes as they were: canonical, echoing
  has "$out" "^BEFORE$"                # the main screen is back, as it was
  lacks "$out" "ADMITS/S"
  [ "$(pane_is '#{alternate_on} #{cursor_flag}')" = "0 1" ] ||
    fail "watch ($1): the terminal is left on the alternate screen or without a cursor"
  $T kill-server 2>/dev/null || true
}
# wait_alt 0|1: until the pane is off / on the alternate screen (5 s)
wait_alt() {
  for _ in $(seq 100); do [ "$(pane_is '#{alternate_on}')" = "$1" ] && return 0; sleep 0.05; done
  fail "watch: alternate screen never became $1"
}
# Ctrl-Z from an interactive shell: the terminal is given back while stopped, taken on fg.
watch_suspend() {
  $T kill-server 2>/dev/null || true
  $T new-session -d -x 110 -y 30 -s w \
    "env RLD_RUNTIME_DIR='$dir' RLD_INSTANCE='$inst' PS1='$ ' bash --norc --noprofile -i"
  $T send-keys -t w "$rlctl watch --interval 200ms" Enter
  wait_alt 1
  wait_pane "ADMITS/S"
  $T send-keys -t w C-z
  wait_alt 0
  [ "$(pane_is '#{cursor_flag}')" = 1 ] || fail "watch stopped by Ctrl-Z: cursor hidden"
  $T send-keys -t w fg Enter
  wait_alt 1
  wait_pane "ADMITS/S"
  [ "$(pane_is '#{cursor_flag}')" = 0 ] || fail "watch after fg: cursor shown"
  $T send-keys -t w q
  wait_alt 0
  [ "$(pane_is '#{cursor_flag}')" = 1 ] || fail "watch after q: cursor hidden"
  ok
  $T kill-server 2>/dev/null || true
}
if command -v tmux >/dev/null; then
  watch_session q 0
  watch_session C-c 130
  watch_session TERM 143
  if command -v bash >/dev/null; then watch_suspend; fi
else
  echo "test_rlctl: tmux not installed: watch not tested in a terminal" >&2
fi

# ---- changes through the daemon: create, set, delete, reset, reload, stats ---------------
if [ "$proto" = 1 ]; then
  rc 0 create c rate=5/s burst=3;  has "$out" "^created c: rate 5/s, burst 3$"
  rc 1 create c rate=5/s;          has "$err" "exists"
  rc 0 status -j c
  jq_fields . "rate burst remaining daemon.from_file" "5/s 3 3 false"
  rc 0 set c burst=7 -j
  jq_fields . "ok name rate burst" "true c 5/s 7"
  rc 0 set c rate=20/min;          has "$out" "^changed c: rate 20/min, burst 7$"
  rc 0 status -j c
  jq_fields . "rate rate_count rate_period_ns burst" "20/min 20 60000000000 7"
  rc 5 set zz rate=1/s
  # window limits: create, show, set (the algorithm kept, or changed), the errors
  rc 0 create w rate=120/60s algorithm=sliding;  has "$out" "^created w: rate 120/min, sliding window$"
  rc 0 create h rate=1000/h algorithm=fixed align=+15min -j
  jq_fields . "ok name rate algorithm burst align_ns" "true h 1000/h fixed 1000 900000000000"
  rc 0 list -j
  jq_fields "$(lim w)" "algorithm burst remaining" "sliding 120 120"
  jq_fields "$(lim h)" "algorithm align_ns" "fixed 900000000000"
  jq_fields "$(lim c)" "algorithm" "gcra"
  rc 0 list
  [ "$(row w)" = "w 120/min sliding - 120 0 0 0" ] || fail "list row w: $(row w)"
  [ "$(row h)" = "h 1000/h fixed - 1000 0 0 0" ] || fail "list row h: $(row h)"
  rc 0 status w;                   has "$out" "^algorithm  *sliding window"
  lacks "$out" "^burst"
  rc 0 status h;                   has "$out" "^algorithm  *fixed window (the count per wall-clock period, starting +15m"
  rc 0 metrics --match 'w'
  grep -q 'rld_limit_info{.*limit="w",algorithm="sliding"} 1' "$out" || fail "metrics: w's algorithm"
  rc 0 try w 120
  rc 1 try w;                      has "$out" "window full\|retry"
  rc 0 set w rate=240/60s -j;      jq_fields . "rate algorithm burst" "240/min sliding 240"
  rc 0 status -j w;                jq_fields . "algorithm remaining" "sliding 120"
  rc 2 set w burst=5;              has "$err" "is a sliding window: burst= is for gcra"
  rc 2 set h align=+2h
  has "$err" "align must be shorter than the period"
  rc 0 set w algorithm=gcra;       has "$out" "^changed w: rate 240/min, burst 240$"
  rc 0 status -j w;                jq_fields . "algorithm burst remaining" "gcra 240 240"
  grep -q "limit w: algorithm sliding -> gcra: it starts full" "$log" || fail "algorithm change not logged"
  rc 0 set c algorithm=fixed;      has "$out" "^changed c: rate 20/min, fixed window$"
  rc 0 set c algorithm=gcra burst=7
  rc 0 delete w
  rc 0 delete h
  rc 0 try c 7
  rc 1 try c
  rc 0 reset c
  rc 0 try c 7 -j;                 jq_is '.remaining' 0
  rc 5 reset zz
  rc 0 delete c -j;                jq_fields . "ok name" "true c"
  # no such limit: said by name, not as librld's "instance or limit"
  rc 5 delete c;                   has "$err" "^rlctl: delete c: no limit 'c' in instance '$inst'"
  lacks "$err" "instance or"
  rc 5 reset c;                    has "$err" "no limit 'c' in instance '$inst'"
  rc 5 set c rate=1/s;             has "$err" "no limit 'c' in instance '$inst'"
  rc 5 status c
  # a full segment (64 slots): said once, with what to do
  i=0
  while :; do
    i=$((i + 1))
    [ $i -le 70 ] || fail "64 slots and still room"
    set +e; "$rlctl" create "fill.$i" rate=1/s >"$out" 2>"$err"; got=$?; set -e
    [ $got = 0 ] || break
  done
  [ $got = 1 ] || fail "create in a full segment exited $got"
  has "$err" "create fill.$i: .*full.*max_limits.*--fresh"
  [ "$(grep -o 'full' "$err" | wc -l)" = 1 ] && [ "$(grep -o 'max_limits' "$err" | wc -l)" = 1 ] ||
    fail "the full-segment error repeats itself: $(cat "$err")"
  ok
  j=1
  while [ $j -lt $i ]; do
    "$rlctl" delete "fill.$j" >"$out" 2>"$err" || fail "delete fill.$j"
    j=$((j + 1))
  done
  rc 0 stats
  has "$out" "^daemon  *rld [0-9.]*, pid $rld_pid, instance $inst$"
  rc 0 stats -j
  jq_true 'keys == ["bad_messages","connections","global_limits","grants","instance","limits",
                   "max_limits","pid","redis","requests","segment_bytes","server","timeouts",
                   "uptime_ns","waiters"]'
  jq_is '.redis' null
  jq_is '.global_limits' 0
  jq_fields . "pid limits max_limits instance" "$rld_pid 5 64 $inst"
  jq_true '.uptime_ns > 0 and .requests > 0 and .grants >= 1'
  # reload: 'gone' removed from the file, 'a' changed
  sed -i -e '/^\[limit gone\]/,$d' -e 's|^rate  = 10/s|rate  = 20/s|' "$conf"
  rc 0 reload -j
  jq_fields . "kept changed created deleted" "3 1 0 1"
  rc 5 status gone
  rc 0 reload;                     has "$out" "^reloaded: 4 kept, 0 created, 0 changed, 0 deleted$"
  printf '[limit broken]\nrate = 7/fortnight\n' >>"$conf"
  rc 1 reload;                     has "$err" "reload refused, configuration unchanged"
  rc 0 list -j;                    jq_is '.limits | length' 4

fi
if [ "$proto" = 1 ] && [ $root = 1 ]; then
  # permission: nobody (in the instance's group: it may read, not change)
  as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$rlctl" "$@"; }
  set +e; as_nobody list >"$out" 2>"$err"; got=$?; set -e
  [ "$got" = 0 ] || fail "nobody (group nogroup) cannot list: $got"
  set +e; as_nobody set a rate=1/s >"$out" 2>"$err"; got=$?; set -e
  [ "$got" = 4 ] || fail "set as nobody exited $got, expected 4"
  has "$err" "permission denied"
  set +e; as_nobody delete a >"$out" 2>"$err"; got=$?; set -e
  [ "$got" = 4 ] || fail "delete as nobody exited $got, expected 4"
  rc 0 status -j a;                jq_is '.rate' "20/s"
fi

# ---- the daemon stopped: the segment still answers ---------------------------------------
kill -TERM "$rld_pid"; wait "$rld_pid" || true; rld_pid=
rc 0 list -j
jq_true '.limits | length >= 4'
rc 0 status -j slow;               jq_is '.daemon' null
rc 0 status slow;                  has "$out" "^daemon  *not answering"
rc 1 try slow
rc 0 metrics
check_metrics
grep -qxF "rld_up{$I} 0" "$out" || fail "metrics with the daemon down: rld_up not 0"
grep -qxF "rld_daemon_attached{$I} 0" "$out" || fail "metrics with the daemon down: still attached"
ok
# wait degrades to a client-side reservation and sleep, and says so
rc 1 wait -j slow --timeout 100ms  # a day's wait: refused at once, nothing to ask
jq_fields . "granted" "false"
rc 0 wait a 10 --timeout 5s       # empty a (full, or within 1 s)
rc 0 wait -j a 10 --timeout 5s    # then a full refill's wait, slept client-side
jq_fields . "granted degraded" "true true"
has "$err" "waited client-side (degraded"
jq_true '.waited_ns > 100000000 and .waited_ns < 3000000000'
if [ "$proto" = 1 ]; then
  rc 3 stats;                      has "$err" "rld is not running for instance '$inst'"
  has "$err" "start it with: rld --instance $inst --config"
  rc 3 create d rate=1/s
  rc 3 reload
fi

echo "test_rlctl: ok ($checks checks)"
