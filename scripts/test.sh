#!/usr/bin/env bash
# Build rld twice (plain with -Werror, and with ASan+UBSan) and run the whole test suite in
# each. Installs the Debian packages first. Usage: scripts/test.sh [ctest args...]
#   scripts/test.sh -L unit        only the fast unit tests
#   scripts/test.sh -LE slow       everything but the slow multi-process group
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

jobs=$(nproc)
run() {   # run DIR CMAKE-ARGS...
  local dir=$1; shift
  cmake -S . -B "$dir" -DRLD_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs" >/dev/null
  (cd "$dir" && ctest --output-on-failure "${CTEST_ARGS[@]}")
}
CTEST_ARGS=("$@")

echo "== ASan + UBSan build: the whole suite (the fuzzers bring their own sanitizers: once, below) =="
if [ ${#CTEST_ARGS[@]} -eq 0 ]; then
  CTEST_ARGS=(-LE fuzz)
  ASAN_OPTIONS=detect_leaks=1 run build-asan -DRLD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  CTEST_ARGS=()
else
  ASAN_OPTIONS=detect_leaks=1 run build-asan -DRLD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
fi
if [ ${#CTEST_ARGS[@]} -eq 0 ]; then
  echo "== ThreadSanitizer build: the multi-threaded tests =="
  CTEST_ARGS=(-L threads)
  TSAN_OPTIONS=halt_on_error=1 run build-tsan -DRLD_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
  CTEST_ARGS=()
fi
echo "== release build: the whole suite, the daemon also under valgrind =="
run build -DCMAKE_BUILD_TYPE=RelWithDebInfo
