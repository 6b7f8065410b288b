#!/bin/bash
# Faults of the environment: each gets a clear error that says what to do, and leaves
# nothing half made. /dev/shm without room or permission (a private tmpfs in a mount
# namespace, root only), a runtime directory that cannot be made or written, and a
# truncated or zeroed segment (refused until --fresh).
set -u
rld=$1
tmp=$(mktemp -d /tmp/rldtest.faults.XXXXXX)
chmod 755 "$tmp"
inst="t-faults-$$"
fails=0
trap 'rm -f /dev/shm/rld.$inst; rm -rf "$tmp"' EXIT
printf '[rld]\nmax_limits = 4096\n\n[limit x]\nrate = 10/s\n' > "$tmp/rld.conf"

check() {   # check NAME EXPECTED-EXIT PATTERN COMMAND...
  local name=$1 want=$2 pat=$3; shift 3
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -q -- "$pat" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output: $out"; fails=$((fails + 1))
  else
    echo "ok   $name: $(head -1 <<<"$out")"
  fi
}
start() { RLD_RUNTIME_DIR=$tmp "$rld" --foreground --config "$tmp/rld.conf" --instance "$inst" "$@"; }

# runtime directory that cannot be created
check "runtime dir under a file" 1 "cannot create runtime directory" \
  env RLD_RUNTIME_DIR=/dev/null/rld "$rld" --foreground --config "$tmp/rld.conf" --instance "$inst"
[ ! -e "/dev/shm/rld.$inst" ] || { echo "FAIL segment left behind"; fails=$((fails + 1)); }

# truncated and zeroed segments: refused, with the way out named
head -c 100 /dev/zero > "/dev/shm/rld.$inst"
check "truncated segment" 1 "damaged.*--fresh" timeout 10 bash -c "$(declare -f start); tmp=$tmp rld=$rld inst=$inst start"
head -c 1085440 /dev/zero > "/dev/shm/rld.$inst"
check "zeroed segment" 1 "damaged.*--fresh" timeout 10 bash -c "$(declare -f start); tmp=$tmp rld=$rld inst=$inst start"
rm -f "/dev/shm/rld.$inst"

if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
  # /dev/shm without room: a 256 KiB tmpfs in a private mount namespace
  check "/dev/shm full" 1 "No space left on device: free room in /dev/shm or lower" \
    unshare -m bash -c "mount -t tmpfs -o size=256k tmpfs /dev/shm && $(declare -f start) && tmp=$tmp rld=$rld inst=$inst start; rc=\$?; ls /dev/shm | grep -q rld && echo LEFT; exit \$rc"
  # /dev/shm not writable for the daemon's user
  if id nobody >/dev/null 2>&1; then
    mkdir -p "$tmp/nobody" && chown nobody "$tmp/nobody"
    check "/dev/shm read-only for nobody" 1 "cannot create segment.*Permission denied" \
      unshare -m bash -c "mount -t tmpfs -o size=4m,mode=0755 tmpfs /dev/shm && setpriv --reuid=nobody --regid=nogroup --clear-groups env RLD_RUNTIME_DIR=$tmp/nobody $rld --foreground --config $tmp/rld.conf --instance $inst"
    mkdir -p "$tmp/ro" && chmod 755 "$tmp/ro"
    check "runtime dir not writable" 1 "cannot open lock file.*Permission denied" \
      setpriv --reuid=nobody --regid=nogroup --clear-groups env RLD_RUNTIME_DIR="$tmp/ro" \
      "$rld" --foreground --config "$tmp/rld.conf" --instance "$inst"
  fi
else
  echo "skip /dev/shm and permission faults (need root and mount namespaces)"
fi
[ "$fails" -eq 0 ] && echo "test_faults: ok"
exit $((fails > 0))
