#!/bin/bash
# Faults of the environment: each gets a clear error that says what to do, and leaves
# nothing half made (no keeper, no socket). No memory for the segment (an address-space
# limit), a runtime directory that cannot be made, is not the daemon's own or cannot be
# written, a planted lock file (a symlink).
set -u
rld=$1
tmp=$(mktemp -d /tmp/rldtest.faults.XXXXXX)
chmod 755 "$tmp"
inst="t-faults-$$"
fails=0
trap 'rm -rf "$tmp"' EXIT
printf '[rld]\nmax_limits = 4096\n\n[limit x]\nrate = 10/s\n' > "$tmp/rld.conf"
printf '[rld]\nmax_limits = 2000000\n\n[limit x]\nrate = 10/s\n' > "$tmp/big.conf"

check() {   # check NAME EXPECTED-EXIT PATTERN COMMAND...
  local name=$1 want=$2 pat=$3; shift 3
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -q -- "$pat" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output: $out"; fails=$((fails + 1))
  else
    echo "ok   $name: $(head -1 <<<"$out")"
  fi
}
nothing_left() {   # nothing_left NAME DIR
  if [ -e "$2/$inst.seg" ] || [ -e "$2/$inst.sock" ]; then
    echo "FAIL $1: a socket was left behind in $2"; fails=$((fails + 1))
  fi
}

# runtime directory that cannot be created
check "runtime dir under a file" 1 "cannot create runtime directory" \
  env RLD_RUNTIME_DIR=/dev/null/rld "$rld" --foreground --config "$tmp/rld.conf" --instance "$inst"

# no address space for a segment of 2,000,000 limits (~520 MiB): refused before any memory
# is committed, naming the way out
mkdir -p "$tmp/mem" && chmod 700 "$tmp/mem"
if prlimit --as=$((256 << 20)) "$rld" --version >/dev/null 2>&1; then
  check "no memory for the segment" 1 "cannot set up the segment.*lower \[rld\] max_limits" \
    prlimit --as=$((256 << 20)) env RLD_RUNTIME_DIR="$tmp/mem" \
    "$rld" --foreground --config "$tmp/big.conf" --instance "$inst"
  nothing_left "no memory" "$tmp/mem"
else
  echo "skip no memory for the segment (this rld cannot run in 256 MiB of address space: a sanitizer build)"
fi

# a runtime directory others can write: anyone could plant a socket or a symlink there
mkdir -p "$tmp/wide" && chmod 777 "$tmp/wide"
check "runtime dir writable by others" 1 "writable by others: refusing" \
  env RLD_RUNTIME_DIR="$tmp/wide" "$rld" --foreground --config "$tmp/rld.conf" --instance "$inst"
nothing_left "wide dir" "$tmp/wide"

# a lock file planted as a symlink to a file of ours: never followed, never truncated
mkdir -p "$tmp/planted" && chmod 700 "$tmp/planted"
echo "precious" > "$tmp/precious"
ln -s "$tmp/precious" "$tmp/planted/$inst.lock"
check "planted lock symlink" 1 "a symlink: refusing to follow it" \
  env RLD_RUNTIME_DIR="$tmp/planted" "$rld" --foreground --config "$tmp/rld.conf" --instance "$inst"
[ "$(cat "$tmp/precious")" = precious ] || { echo "FAIL the symlink's target was written"; fails=$((fails + 1)); }
nothing_left "planted lock" "$tmp/planted"

if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
  # a runtime directory of another user (root's), for a daemon running as nobody
  mkdir -p "$tmp/ro" && chmod 755 "$tmp/ro"
  check "runtime dir of another user" 1 "owned by another user: refusing" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups env RLD_RUNTIME_DIR="$tmp/ro" \
    "$rld" --foreground --config "$tmp/rld.conf" --instance "$inst"
  # nobody's own directory, which nobody cannot write (0500)
  mkdir -p "$tmp/nw" && chown nobody "$tmp/nw" && chmod 500 "$tmp/nw"
  check "runtime dir not writable" 1 "cannot open lock file.*Permission denied" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups env RLD_RUNTIME_DIR="$tmp/nw" \
    "$rld" --foreground --config "$tmp/rld.conf" --instance "$inst"
else
  echo "skip the other-user faults (need root and the nobody user)"
fi
[ "$fails" -eq 0 ] && echo "test_faults: ok"
exit $((fails > 0))
