#!/usr/bin/env bash
# Build the .deb as a Debian user installs it: a release build configured for /usr (rld
# then reads /etc/rld/rld.conf), no tests, packed by CPack from the install rules.
# Usage: scripts/package.sh [BUILD_DIR]    (default build-deb; prints the .deb's path)
#   apt install ./build-deb/rld_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-deb}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
      -DBUILD_TESTING=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
rm -f "$dir"/rld_*.deb
(cd "$dir" && cpack -G DEB >/dev/null)
ls "$dir"/rld_*.deb
