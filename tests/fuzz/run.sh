#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run them: first every saved regression input,
# then each target for a bounded time on its seed corpus and dictionary.
#
#   tests/fuzz/run.sh [BUILD_DIR [SECONDS_PER_TARGET [TARGET...]]]
#
#   BUILD_DIR            where to build (default: build); binaries in BUILD_DIR/tests/fuzz/bin,
#                        the growing corpora in BUILD_DIR/tests/fuzz/corpus/<target>, crash
#                        inputs in BUILD_DIR/tests/fuzz/artifacts/<target>, logs beside them
#   SECONDS_PER_TARGET   fuzzing time per target (default 10); 0 = regressions only
#   TARGET...            default: all of fuzz_rate fuzz_config fuzz_segment fuzz_gcra fuzz_dispatch
#                        fuzz_wire
#
# Environment: CLANG (compiler to use; default clang, then clang-14), FUZZ_JOBS (parallel
# libFuzzer workers per target, default 1), FUZZ_ARGS (extra libFuzzer flags), FUZZ_CFLAGS
# (extra compiler flags, first: e.g. -I/tmp/patched to try a fixed header; use another
# BUILD_DIR, binaries are rebuilt only when a source changes).
#
# Exit: 0 all clean; 1 a crash, leak, timeout or invariant failure (the input is saved and
# its path printed: copy it into tests/fuzz/regressions/<target>/); 77 no clang with
# libFuzzer here (ctest maps that to "skipped").
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-build}
secs=${2:-10}
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_rate fuzz_config fuzz_segment fuzz_gcra fuzz_dispatch fuzz_wire)
case $secs in ''|*[!0-9]*) echo "run.sh: SECONDS_PER_TARGET must be a whole number" >&2; exit 2;; esac

mkdir -p "$build"
build=$(cd "$build" && pwd)
out=$build/tests/fuzz
mkdir -p "$out/bin"

# ---- a clang that can link -fsanitize=fuzzer ----
cc=""
for c in ${CLANG:-} clang clang-14; do
  command -v "$c" >/dev/null 2>&1 || continue
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    > "$out/probe.c"
  if "$c" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" >/dev/null 2>&1; then
    cc=$(command -v "$c"); break
  fi
done
rm -f "$out/probe.c" "$out/probe"
if [ -z "$cc" ]; then
  echo "run.sh: SKIP: no clang that links -fsanitize=fuzzer (Debian 12: apt-get install clang libclang-rt-14-dev)"
  exit 77
fi
if ! inih=$(pkg-config --cflags --libs inih 2>/dev/null); then
  echo "run.sh: SKIP: pkg-config cannot find inih (apt-get install libinih-dev)"
  exit 77
fi
# Symbolized stack traces when llvm-symbolizer is around (package llvm or llvm-14).
for s in llvm-symbolizer llvm-symbolizer-14 /usr/lib/llvm-14/bin/llvm-symbolizer; do
  if command -v "$s" >/dev/null 2>&1; then
    ASAN_SYMBOLIZER_PATH=$(command -v "$s"); export ASAN_SYMBOLIZER_PATH; break
  fi
done
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# shellcheck disable=SC2206,SC2054
CFLAGS=(${FUZZ_CFLAGS:-} -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=all -Wall -Wextra -Wno-unused-parameter
        -I"$here" -I"$src/common" -I"$src/daemon" -I"$src/libclient/include"
        -I"$out/proto")
case $(uname -m) in x86_64|amd64) CFLAGS+=(-mcx16);; esac

sources() {   # the sources of target $1
  case $1 in
    fuzz_rate)    echo "$here/fuzz_rate.c $src/common/rate.c";;
    fuzz_config)  echo "$here/fuzz_config.c $src/daemon/config.c $src/common/rate.c $src/common/limitdef.c" \
                       "$src/common/bucket.c $src/common/window.c $src/common/breaker.c $src/common/keys.c" \
                       "$src/common/codes.c $src/common/segment.c $src/common/handout.c";;
    fuzz_segment) echo "$here/fuzz_segment.c $src/common/segment.c $src/common/bucket.c $src/common/window.c" \
                       "$src/common/breaker.c $src/common/keys.c $src/common/handout.c" \
                       "$src/common/rate.c $src/common/codes.c";;
    fuzz_gcra)    echo "$here/fuzz_gcra.c $src/common/rate.c";;
    fuzz_dispatch) echo "$here/fuzz_dispatch.c $src/daemon/handlers.c $src/daemon/waitq.c" \
                        "$src/daemon/lease.c $src/common/breaker.c" \
                        "$src/daemon/dseg.c $src/daemon/config.c $src/daemon/log.c" \
                        "$src/daemon/global.c $src/daemon/redis.c" \
                        "$src/common/rate.c $src/common/instance.c $src/common/segment.c $src/common/handout.c" \
                        "$src/common/bucket.c $src/common/window.c $src/common/keys.c" \
                        "$src/common/limitdef.c $src/common/codes.c" \
                        "$src/common/wire.c $src/common/limitstat.c $src/common/metrics.c" \
                        "$out/proto/rld.pb-c.c";;
    fuzz_wire)    echo "$here/fuzz_wire.c $src/common/wire.c $out/proto/rld.pb-c.c";;
    *) return 1;;
  esac
}
max_len() {   # libFuzzer -max_len of target $1
  case $1 in
    fuzz_rate) echo 256;; fuzz_config) echo 8192;; fuzz_segment) echo 24576;; fuzz_gcra) echo 256;;
    fuzz_dispatch) echo 16384;; fuzz_wire) echo 4200;;
  esac
}

# The daemon's target needs the protocol's generated code.
mkdir -p "$out/proto"
if [ ! -f "$out/proto/rld.pb-c.c" ] || [ "$src/proto/rld.proto" -nt "$out/proto/rld.pb-c.c" ]; then
  if ! protoc-c --c_out="$out/proto" --proto_path="$src/proto" "$src/proto/rld.proto"; then
    echo "run.sh: SKIP: protoc-c failed (apt-get install protobuf-c-compiler)"
    exit 77
  fi
fi
pbc=$(pkg-config --cflags --libs libprotobuf-c 2>/dev/null) || pbc=-lprotobuf-c
# handlers.c tells systemd of a grown segment (sd_pid_notify_with_fds)
sysd=$(pkg-config --cflags --libs libsystemd 2>/dev/null) || sysd=-lsystemd

status=0
declare -A summary

build_target() {   # compile $1 unless the binary is newer than every input
  local t=$1 bin=$out/bin/$1 srcs
  srcs=$(sources "$t") || { echo "run.sh: unknown target $t" >&2; return 1; }
  local stale=1
  if [ -x "$bin" ]; then
    stale=0
    for f in $srcs "$here"/*.h "$src"/common/*.h "$src"/daemon/*.h "$src"/libclient/*.h "$0"; do
      [ "$f" -nt "$bin" ] && { stale=1; break; }
    done
  fi
  [ $stale -eq 0 ] && return 0
  echo "== build $t ($cc)"
  # shellcheck disable=SC2086
  # a failed build leaves no binary: the run must not fuzz the last one that built
  rm -f "$bin"
  "$cc" "${CFLAGS[@]}" $srcs $inih $pbc $sysd -lhiredis -lm -lrt -lpthread -o "$bin.tmp" &&
    mv "$bin.tmp" "$bin"
}

regressions() {   # run target $1 over tests/fuzz/regressions/$1/*
  local t=$1 dir=$here/regressions/$1 files=()
  [ -d "$dir" ] || return 0
  while IFS= read -r -d '' f; do files+=("$f"); done \
    < <(find "$dir" -maxdepth 1 -type f ! -name '.*' ! -name '*.md' -print0 | sort -z)
  [ ${#files[@]} -eq 0 ] && return 0
  echo "== regressions $t: ${#files[@]} input(s)"
  if ! "$out/bin/$t" -error_exitcode=1 -timeout=10 -rss_limit_mb=2048 "${files[@]}" \
       > "$out/$t.regress.log" 2>&1; then
    echo "FAIL: $t regression input crashes (log: $out/$t.regress.log):"
    grep -E "invariant failed|ERROR: |runtime error|Running: " "$out/$t.regress.log" | tail -n 20
    return 1
  fi
}

fuzz() {   # run target $1 for $secs seconds
  local t=$1 work=$out/corpus/$1 art=$out/artifacts/$1/ log=$out/$1.log dict=()
  mkdir -p "$work" "$art"
  [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
  local seeds=()
  [ -d "$here/corpus/$t" ] && seeds=("$here/corpus/$t")
  local jobs=${FUZZ_JOBS:-1} par=()
  [ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
  echo "== fuzz $t for ${secs}s"
  touch "$out/.start.$t"
  # shellcheck disable=SC2086
  (cd "$out" && rm -f fuzz-*.log &&
   "$out/bin/$t" "$work" "${seeds[@]}" "${dict[@]}" "${par[@]}" -max_total_time="$secs" \
     -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 \
     -timeout_exitcode=1 -artifact_prefix="$art" -print_final_stats=1 ${FUZZ_ARGS:-} \
     > "$log" 2>&1)
  local rc=$?
  if [ "$jobs" -gt 1 ]; then cat "$out"/fuzz-*.log >> "$log" 2>/dev/null; rm -f "$out"/fuzz-*.log; fi
  local execs cov
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  cov=$(grep -E '^#[0-9]+' "$log" | grep -oE 'cov: [0-9]+ ft: [0-9]+' | tail -n 1)
  local crashes
  crashes=$(find "$art" -maxdepth 1 -type f -newer "$out/.start.$t" 2>/dev/null | wc -l)
  summary[$t]="execs $execs, ${cov:-cov: ?}, crash files $crashes"
  if [ $rc -ne 0 ]; then
    echo "FAIL: $t exited $rc (log: $log)"
    grep -E "invariant failed|ERROR: |runtime error|SUMMARY|Test unit written" "$log" | tail -n 20
    echo "   add the saved input to $here/regressions/$t/ once the bug is fixed"
    return 1
  fi
}

for t in "${targets[@]}"; do
  build_target "$t" || { echo "FAIL: build of $t"; status=1; continue; }
  regressions "$t" || status=1
done
if [ "$secs" -gt 0 ]; then
  for t in "${targets[@]}"; do
    [ -x "$out/bin/$t" ] || continue
    fuzz "$t" || status=1
  done
  echo "== summary (${secs}s per target)"
  for t in "${targets[@]}"; do echo "  $t: ${summary[$t]:-not run}"; done
fi
exit $status
