#!/bin/bash
# test_metrics_http.sh - the daemon's Prometheus endpoint, [rld] metrics_listen (issue 16,
# item 11), with curl against a real rld on a private instance: GET /metrics answers the
# exact text `rlctl metrics` prints (one generator, common/metrics.c), checked by
# promcheck.awk, over HTTP/1.1 (chunked) and HTTP/1.0 (close-delimited), HEAD too, and a
# body of many chunks; anything else gets an error or a close and changes nothing: other
# paths (404), other methods (405), garbage (400), another HTTP version (505), an oversized
# head (431), a head that never ends (408 after 5 s: slowloris), more connections from one
# address than allowed (503); the limits, the counters and the daemon's socket are as they
# were. rld --check-config refuses bad addresses with FILE:LINE; a port in use stops the
# start with the reason.
#
#   test_metrics_http.sh RLCTL RLD SRCDIR    exit 0 pass, 1 fail, 77 skip (no curl or jq)
set -eu
rlctl=$1 rld=$2 src=$3
here=$src/tests/rlctl

for tool in curl jq timeout; do
  if ! command -v "$tool" >/dev/null; then
    echo "test_metrics_http: skipped: $tool is not installed (scripts/deps.sh installs it)"
    exit 77
  fi
done

dir=$(mktemp -d /tmp/rldtest.mhttp.XXXXXX)
inst="t-mhttp-$$"
rld_pid=
cleanup() {
  set +e
  for fd in 3 4 5 6 7; do eval "exec $fd>&-" 2>/dev/null; done
  if [ -n "$rld_pid" ]; then kill "$rld_pid" 2>/dev/null; wait "$rld_pid" 2>/dev/null; fi
  if [ -n "${RLD_TEST_KEEP:-}" ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export RLD_RUNTIME_DIR="$dir" RLD_INSTANCE="$inst"
conf=$dir/rld.conf log=$dir/rld.log out=$dir/out err=$dir/err
checks=0
fail() {
  echo "test_metrics_http: FAIL: $*" >&2
  echo "---- last output ----" >&2; head -c 3000 "$out" >&2 2>/dev/null; echo >&2
  echo "---- last stderr ----" >&2; cat "$err" >&2 2>/dev/null
  echo "---- rld log ----" >&2; cat "$log" >&2 2>/dev/null
  exit 1
}
ok() { checks=$((checks + 1)); }
has() { grep -q -- "$2" "$1" || fail "$1 lacks '$2'"; ok; }

write_conf() {   # write_conf PORT [N extra limits]
  {
    printf '[rld]\nmax_limits = 4096\nmetrics_listen = 127.0.0.1:%s\n\n' "$1"
    printf '[limit a]\nrate = 10/s\n\n[limit b.x]\nrate = 3500/min\n\n[limit free]\nrate = unlimited\n\n'
    printf '[limit q]\nrate = 1/s\n\n[limit w]\nrate = 10/s\nalgorithm = sliding\n\n'
    printf '[limit sh]\nrate = 5/s\nmode = shadow\n\n[limit cc]\nrate = 5/s\nconcurrency = 4\n\n'
    printf '[breaker brk]\nfailures = 3\n\n'
    i=0
    while [ "$i" -lt "${2:-0}" ]; do printf '[limit many.%d]\nrate = %d/min\n\n' "$i" $((i + 1)); i=$((i + 1)); done
  } >"$conf"
}
start_rld() {   # start_rld: 0 ready, 1 it exited (reason in the log)
  : >"$log"
  "$rld" --foreground --config "$conf" --instance "$inst" 2>>"$log" &
  rld_pid=$!
  for _ in $(seq 200); do
    grep -q " ready: " "$log" && return 0
    kill -0 "$rld_pid" 2>/dev/null || { wait "$rld_pid" || true; rld_pid=; return 1; }
    sleep 0.05
  done
  fail "rld did not start"
}

# A port nobody uses (the test may run beside others): try a few.
port=
for try in 1 2 3 4 5 6 7 8; do
  p=$((20000 + (($$ * 7 + try * 7919) % 30000)))
  write_conf "$p" 3000
  if start_rld; then port=$p; break; fi
  grep -q "Address already in use" "$log" || fail "rld did not start"
done
[ -n "$port" ] || fail "no free port found"
url=http://127.0.0.1:$port/metrics
has "$log" "metrics served on http://127.0.0.1:$port/metrics"

# ---- GET /metrics: 200, the exposition format, the text rlctl prints -------------------
# (full limits only, so that nothing moves between the two reads but the heartbeat's age)
curl -sS -D "$dir/head" -o "$dir/http.prom" "$url" 2>"$err" || fail "curl GET failed"
cp "$dir/http.prom" "$out"
has "$dir/head" "^HTTP/1.1 200 OK"
has "$dir/head" "^Content-Type: text/plain; version=0.0.4; charset=utf-8"
has "$dir/head" "^Transfer-Encoding: chunked"
awk -f "$here/promcheck.awk" "$dir/http.prom" >"$err" 2>&1 || fail "promcheck rejects the scrape"
ok
if command -v promtool >/dev/null; then
  promtool check metrics <"$dir/http.prom" >"$err" 2>&1 || fail "promtool check metrics"
  ok
fi
"$rlctl" metrics >"$dir/cli.prom" 2>"$err" || fail "rlctl metrics failed"
I="rld_instance=\"$inst\""
same() {   # the two texts, the heartbeat's age aside
  diff <(grep -v '^rld_daemon_heartbeat_age_seconds{' "$1") \
       <(grep -v '^rld_daemon_heartbeat_age_seconds{' "$2") >"$err" ||
    fail "the endpoint's text is not rlctl metrics': $(head -20 "$err")"
  ok
}
same "$dir/http.prom" "$dir/cli.prom"
grep -qxF "rld_up{$I} 1" "$dir/http.prom" || fail "scrape: rld_up is not 1"
grep -qxF "rld_limits{$I} 3007" "$dir/http.prom" || fail "scrape: rld_limits is not 3007"
[ "$(grep -c '^rld_limit_burst_tokens{' "$dir/http.prom")" = 3007 ] ||
  fail "scrape: not 3007 bursts"
# the families of some limits and of the breakers, served by the daemon too (rlctl's alone
# until they moved into the one generator)
for want in "rld_limit_shadow_denied_total{$I,limit=\"sh\"} 0" \
            "rld_limit_leases_max{$I,limit=\"cc\"} 4" "rld_limit_leases_held{$I,limit=\"cc\"} 0" \
            "rld_limit_leases_reclaimed_total{$I,limit=\"cc\"} 0" \
            "rld_breaker_state{$I,breaker=\"brk\"} 0" "rld_breaker_opens_total{$I,breaker=\"brk\"} 0" \
            "rld_breaker_closes_total{$I,breaker=\"brk\"} 0" \
            "rld_breaker_admitted_total{$I,breaker=\"brk\"} 0" \
            "rld_breaker_denied_total{$I,breaker=\"brk\"} 0"; do
  grep -qxF "$want" "$dir/http.prom" || fail "scrape: no '$want'"
  ok
done
[ "$(grep -c 'limit="sh"\|limit="cc"\|breaker="brk"' "$dir/http.prom")" -ge 9 ] || fail "scrape: extra families"
grep -qxF "rld_limit_info{$I,limit=\"w\",algorithm=\"sliding\"} 1" "$dir/http.prom" ||
  fail "scrape: no rld_limit_info of the sliding window w"
[ "$(wc -c <"$dir/http.prom")" -gt 200000 ] || fail "scrape: not many chunks' worth"
ok

# HTTP/1.0: no chunks, the body ends with the connection; the same text
curl -sS -0 -D "$dir/head" -o "$dir/http10.prom" "$url" 2>"$err" || fail "curl -0 failed"
has "$dir/head" "^HTTP/1.1 200 OK"
! grep -q "^Transfer-Encoding" "$dir/head" || fail "HTTP/1.0 reply is chunked"
ok
same "$dir/http10.prom" "$dir/cli.prom"
# HEAD: the head only; a query string is ignored
curl -sS -I "$url?x=1" >"$out" 2>"$err" || fail "curl HEAD failed"
has "$out" "^HTTP/1.1 200 OK"
[ "$(curl -sS -X HEAD --max-time 5 "$url" 2>/dev/null | wc -c)" = 0 ] || fail "HEAD had a body"
ok

# ---- what is left the way it was, by everything that follows --------------------------
"$rlctl" -j list a b.x free q w >"$dir/before.json"

# ---- other paths, other methods ------------------------------------------------------
status() {   # status EXPECTED CURL-ARGS...: the status code curl sees
  want=$1; shift
  got=$(curl -sS -o "$out" -w '%{http_code}' --max-time 10 "$@" 2>"$err") || true
  [ "$got" = "$want" ] || fail "curl $* gave $got, expected $want"
  ok
}
status 404 "http://127.0.0.1:$port/"
status 404 "http://127.0.0.1:$port/metricsx"
status 404 "http://127.0.0.1:$port/metrics/"
status 404 --path-as-is "http://127.0.0.1:$port/../metrics"
status 405 -X POST -d x=1 "$url"
status 405 -X DELETE "$url"
curl -sS -D "$dir/head" -o /dev/null -X PUT "$url" 2>/dev/null || true
has "$dir/head" "^Allow: GET, HEAD"

# ---- raw requests: garbage, versions, oversized, slowloris ------------------------------
# raw TEXT [SECONDS]: send TEXT on a fresh connection, print what comes back until the
# server closes (at most SECONDS, default 3)
raw() {
  timeout "${2:-3}" bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port"'; printf "%b" "$1" >&3; cat <&3' \
    _ "$1" >"$out" 2>"$err" || true
}
raw 'GARBAGE\r\n\r\n';                      has "$out" "^HTTP/1.1 400 Bad Request"
raw '\x00\x01\x02\xff\xfe\n\n';             has "$out" "^HTTP/1.1 400 Bad Request"
raw 'GET /metrics\r\n\r\n';                 has "$out" "^HTTP/1.1 400 Bad Request"
raw 'GET /metrics HTTP/1.1 extra\r\n\r\n';  has "$out" "^HTTP/1.1 400 Bad Request"
raw 'GET /metrics HTTP/2.0\r\n\r\n';        has "$out" "^HTTP/1.1 505 "
raw 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';    has "$out" "^HTTP/1.1 400 Bad Request"
raw 'GET /metrics HTTP/1.0\n\n';            has "$out" "^HTTP/1.1 200 OK"
big=$(head -c 9000 /dev/zero | tr '\0' 'a')
raw "GET /metrics HTTP/1.1\r\nX-Big: $big\r\n\r\n"
has "$out" "^HTTP/1.1 431 "
# a connection that says nothing, or never ends its head: 408 and closed after 5 s
t0=$(date +%s)
raw 'GET /metrics HTTP/1.1\r\nHost: x\r\n' 9
t1=$(date +%s)
has "$out" "^HTTP/1.1 408 "
[ $((t1 - t0)) -ge 4 ] && [ $((t1 - t0)) -le 8 ] || fail "slowloris closed after $((t1 - t0)) s"
ok
# a peer that connects and goes: nothing to answer, nothing left behind
raw ''

# ---- connections: at most 4 from one address ---------------------------------------------
open4() {
  exec 3<>/dev/tcp/127.0.0.1/"$port" 4<>/dev/tcp/127.0.0.1/"$port" \
       5<>/dev/tcp/127.0.0.1/"$port" 6<>/dev/tcp/127.0.0.1/"$port"
  opened=$(date +%s)
}
open4
# the daemon accepts the four in its own time: until it has, a fifth is one of the four.
# Each look is a short request (a 404, not a whole scrape), and four idle connections
# live 5 s (the request head's timeout): on a host so loaded that none of the looks came
# back in time, they are opened again.
seen=
for _ in $(seq 100); do
  got=$(curl -sS -o "$out" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/x" 2>"$err") || true
  if [ "$got" = 503 ]; then seen=1; break; fi
  if [ $(($(date +%s) - opened)) -ge 4 ]; then
    exec 3>&- 4>&- 5>&- 6>&-
    open4
  fi
  sleep 0.1
done
[ -n "$seen" ] || { ss -tn "( sport = :$port or dport = :$port )" >&2 || true; }
status 503 "$url"
has "$out" "too many metrics connections"
exec 3>&- 4>&- 5>&- 6>&-
sleep 0.3
status 200 "$url"
has "$log" "metrics: refused a connection from 127.0.0.1"

# ---- nothing changed: the limits, their counters, the daemon's socket --------------------
"$rlctl" -j list a b.x free q w >"$dir/after.json"
diff "$dir/before.json" "$dir/after.json" >"$err" || fail "the limits changed: $(cat "$err")"
ok
"$rlctl" try q >"$out" 2>"$err" || fail "rlctl try after the bad requests"
ok
kill -0 "$rld_pid" || fail "rld died"
ok
# what rlctl stats says of it: 3 whole scrapes and a HEAD at least, the refusal, the errors
"$rlctl" -j stats >"$out" 2>"$err" || fail "rlctl stats"
jq -e --arg l "127.0.0.1:$port" '.metrics_listen == $l and .metrics_served >= 4 and
  .metrics_refused >= 1 and .metrics_bad >= 14' "$out" >/dev/null || fail "stats: $(cat "$out")"
ok
! grep -q "error" "$log" || fail "the log has errors"
ok

# ---- configuration: check-config names the line; a reload says it needs a restart --------
bad() {   # bad VALUE MESSAGE
  printf '[rld]\nmetrics_listen = %s\n' "$1" >"$dir/bad.conf"
  set +e; "$rld" --check-config --config "$dir/bad.conf" >"$out" 2>"$err"; rc=$?; set -e
  [ "$rc" = 1 ] || fail "check-config accepted metrics_listen = $1"
  grep -q "bad.conf:2: bad metrics_listen: $2" "$err" || fail "check-config on '$1': $(cat "$err")"
  ok
}
bad 127.0.0.1 "expected HOST:PORT"
bad 127.0.0.1:0 "the port must be 1..65535"
bad '[::1]:65536' "the port must be 1..65535"
bad ::1:9731 "an IPv6 address goes in brackets"
bad 'prometheus.example:9731' "an IPv4 address, \[IPv6\] or localhost"
bad '[127.0.0.1]:9731' "not an IPv6 address"
for good in 127.0.0.1:9731 '[::1]:9731' localhost:9731 0.0.0.0:80 '[::]:9731'; do
  printf '[rld]\nmetrics_listen = %s\n' "$good" >"$dir/good.conf"
  "$rld" --check-config --config "$dir/good.conf" >"$out" 2>"$err" ||
    fail "check-config refused metrics_listen = $good: $(cat "$err")"
  ok
done
sed -i "s/^metrics_listen = .*/metrics_listen = 127.0.0.1:$((port + 1))/" "$conf"
kill -HUP "$rld_pid"
for _ in $(seq 100); do grep -q "metrics_listen changed" "$log" && break; sleep 0.05; done
has "$log" "metrics_listen changed from '127.0.0.1:$port' to '127.0.0.1:$((port + 1))': that takes effect when rld restarts"
status 200 "$url"

# ---- a second daemon on the same port: refused at start, with the reason -----------------
write_conf "$port"
printf '[limit z]\nrate = 1/s\n' >>"$conf"
set +e
RLD_INSTANCE="$inst-2" "$rld" --foreground --config "$conf" --instance "$inst-2" >"$out" 2>"$err"
rc=$?
set -e
[ "$rc" != 0 ] || fail "a second rld started on a port in use"
has "$err" "cannot listen on 127.0.0.1:$port for metrics: Address already in use"

kill "$rld_pid"; wait "$rld_pid" || fail "rld exited $? on SIGTERM"
rld_pid=
echo "test_metrics_http: ok ($checks checks)"
