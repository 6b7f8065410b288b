#!/usr/bin/env bash
# The main job in one command: install packages, build, start rld with the example
# configuration on a private instance, and let several worker processes share one limit.
# Usage: scripts/demo.sh [LIMIT] [WORKERS] [SECONDS]    (default: demo 4 3)
#
# The instance is this run's own, demo-UID-PID, in a temporary runtime directory removed at
# the end (its segment keeper goes with it): the demo never touches another user's or
# another run's instance (a fixed name collided with theirs). RLD_DEMO_BUILD=DIR runs the binaries of
# an existing build instead of installing packages and building in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${RLD_DEMO_BUILD:-}" ]; then
  build=$RLD_DEMO_BUILD
else
  scripts/deps.sh
  build=build
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" >/dev/null
fi

export RLD_INSTANCE="demo-$(id -u)-$$"
RLD_RUNTIME_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rld-demo.XXXXXX")
export RLD_RUNTIME_DIR
log=$RLD_RUNTIME_DIR/rld.log
rld_pid=
cleanup() {
  if [ -n "$rld_pid" ]; then kill "$rld_pid" 2>/dev/null; wait "$rld_pid" 2>/dev/null || true; fi
  rm -rf "$RLD_RUNTIME_DIR"      # the keeper sees its socket gone and exits
}
trap cleanup EXIT
"$build/daemon/rld" --foreground --config examples/rld.conf 2>"$log" &
rld_pid=$!
for _ in $(seq 100); do
  grep -q " ready: " "$log" && break
  kill -0 "$rld_pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.05
done
cat "$log"
echo "(instance $RLD_INSTANCE: RLD_RUNTIME_DIR=$RLD_RUNTIME_DIR rlctl -i $RLD_INSTANCE list, while it runs)"
"$build/examples/demo_workers" "${1:-demo}" "${2:-4}" "${3:-3}"
