#!/bin/sh
# bench_peers smoke test (ctest bench_peers_smoke): a very short run prints every row.
# Timings and targets are not checked. Exit 0 pass, 1 fail, 77 skip (no Redis here).
set -u
bench=${1:?usage: smoke.sh path/to/bench_peers}
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT

"$bench" --quick --ms 20 --reps 1 --csv --require-redis >"$out"
rc=$?
[ $rc -eq 77 ] && { echo "skipped: the Redis rows cannot run here"; exit 77; }
[ $rc -eq 0 ] || { echo "bench_peers exited $rc"; cat "$out"; exit 1; }

fail=0
expect() {   # expect CONFIG NAME UNIT STATUS: one CSV row with exactly these fields
  if ! grep -qF "\"$1\",\"$2\",\"$3\"," "$out" || ! grep -F "\"$1\",\"$2\",\"$3\"," "$out" | grep -q ",$4\$"; then
    echo "missing row: $1 / $2 ($3, $4)"
    fail=1
  fi
}
thr="$(nproc) threads of 1 process, one limit"
for cfg in "1 process" "2 processes, one limit" "2 processes, two limits" "$thr"; do
  for k in "naive clock+load+CAS GCRA (floor)" "same, 16-byte CAS (diagnostic)" "rld_try (NULL result)" "rld_try (with result)" \
           "token bucket, robust pshared mutex" "token bucket, plain pshared mutex"; do
    expect "$cfg" "$k" "ns/call" measured
  done
done
for cfg in "1 client process" "2 client processes, one key"; do
  for s in "token bucket script" "GCRA script"; do
    expect "$cfg" "$s: latency" us measured
    expect "$cfg" "$s: throughput" calls/s measured
  done
done
expect "1 client process" "PING (no script, floor): latency" us measured
expect "2 processes, socketpair" "raw SEQPACKET ping-pong, 32 B" us measured
expect "2 processes, socketpair" "raw SEQPACKET ping-pong, 32 B" trips/s measured
for n in "rld_wait round trip" "grants/s with 10,000 waiters"; do
  grep -qF "\"through the daemon\",\"$n\"," "$out" || { echo "missing row: $n"; fail=1; }
done
expect "rld: slot + meta + index + header share" "segment size / max_limits, 1000" B/limit measured
expect "rld: slot + meta + index + header share" "segment size / max_limits, 1000000" B/limit measured
grep -q '"token bucket key: MEMORY USAGE","B/key",[0-9]' "$out" || { echo "missing row: token bucket MEMORY USAGE"; fail=1; }
grep -q '"GCRA key: MEMORY USAGE","B/key",[0-9]' "$out" || { echo "missing row: GCRA MEMORY USAGE"; fail=1; }
# keyed limits (issue 13): the config names the live count, so match on the names
for k in "rld_try, named limit (with result)" "rld_try_key, one hot key" "rld_try_key, random of" \
         "rld_try_key, new key (free place)" "rld_try_key, new key (table full)"; do
  grep -q "\"$k[^\"]*\",\"ns/call\",[0-9]" "$out" || { echo "missing row: $k"; fail=1; }
done
grep -q '"per-key GCRA script: latency","us",[0-9]' "$out" || { echo "missing row: per-key GCRA"; fail=1; }
grep -q '"key tables / max_keys, 100000","B/key",[0-9]' "$out" || { echo "missing row: key tables"; fail=1; }
n=$(grep -c '^"target"' "$out")
[ "$n" -ge 25 ] || { echo "expected at least 25 targets, got $n"; fail=1; }
# no measured row without a number
if grep -v '^"target"' "$out" | grep ',measured$' | grep -q '","[^"]*",,'; then
  echo "a measured row has no median"; fail=1
fi
[ $fail -eq 0 ] || { cat "$out"; exit 1; }
echo "ok: $(grep -c ',measured$' "$out") measured rows, $n targets"
