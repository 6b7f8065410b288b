#!/usr/bin/env bash
# Install the Debian 12 packages rld needs to build and test. Safe to run again: it only
# calls apt-get when something is missing. Needs root (or prints what to run).
set -euo pipefail

PKGS=(gcc make cmake pkg-config
      liburing-dev libprotobuf-c-dev protobuf-c-compiler
      libinih-dev libcmocka-dev libsystemd-dev
      procps psmisc tmux man-db jq valgrind
      dpkg-dev file curl
      clang libclang-rt-14-dev
      redis-server libhiredis-dev
      python3-dev python3-pytest python3-limits python3-redis
      python3-flask python3-flask-limiter gunicorn python3-requests python3-httpx)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "rld needs these Debian packages: ${missing[*]}" >&2
  echo "install them as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
