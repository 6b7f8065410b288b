#!/usr/bin/env bash
# The main job in one command: install packages, build, start rld with the example
# configuration on a private instance, and let several worker processes share one limit.
# Usage: scripts/demo.sh [LIMIT] [WORKERS] [SECONDS]    (default: demo 4 3)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

export RLD_INSTANCE=demo
export RLD_RUNTIME_DIR="$PWD/build/run"
mkdir -p "$RLD_RUNTIME_DIR"
build/daemon/rld --foreground --fresh --config examples/rld.conf 2>"$RLD_RUNTIME_DIR/rld.log" &
rld_pid=$!
trap 'kill $rld_pid 2>/dev/null; wait $rld_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q " ready: " "$RLD_RUNTIME_DIR/rld.log" && break
  kill -0 $rld_pid 2>/dev/null || { cat "$RLD_RUNTIME_DIR/rld.log"; exit 1; }
  sleep 0.05
done
cat "$RLD_RUNTIME_DIR/rld.log"
build/examples/demo_workers "${1:-demo}" "${2:-4}" "${3:-3}"
