#!/bin/sh
# The units of a rate are written one way everywhere a person reads them, and every
# spelling the documentation promises is one rld accepts.
#   - README.md, examples/rld.conf and rld.conf(5) list the units as rld prints them:
#     "ms, s, min, h, day" (rldi_format_rate; `rlctl list` shows 1/day, 1000/h);
#   - every rate written in README.md, examples/rld.conf, the man pages and rlctl's help
#     uses one of those units;
#   - the other spellings rld.conf(5) lists are the example's, and rld --check-config
#     accepts each of them (and each unit above).
#
#   test_docs.sh RLD RLCTL BUILD_DIR SRCDIR     exit 0 pass, 1 fail, 77 skip (no man)
set -eu
rld=$1 rlctl=$2 build=$3 src=$4
units="ms, s, min, h, day"
tmp=$(mktemp -d /tmp/rldtest.docs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_docs: $*" >&2; exit 1; }
if ! command -v man >/dev/null; then
  echo "test_docs: skipped: man is not installed (scripts/deps.sh installs man-db)"
  exit 77
fi

# The man pages as installed (configured), rendered without line breaks.
for p in "$build"/man/*.[0-9]; do
  [ -f "$p" ] || fail "no man pages in $build/man"
  MANWIDTH=2000 man -l "$p" 2>/dev/null >"$tmp/$(basename "$p").txt" || fail "man -l $p failed"
done
conf5=$tmp/rld.conf.5.txt
[ -s "$conf5" ] || fail "rld.conf(5) did not render"
"$rlctl" --help >"$tmp/rlctl-help.txt" 2>&1 || true
for f in "$src/README.md" "$src/examples/rld.conf" "$conf5"; do
  grep -qF "$units" "$f" || fail "$(basename "$f") does not list the units as '$units'"
done

# Every rate written anywhere a person reads: COUNT/[N]UNIT.
for f in "$src/README.md" "$src/examples/rld.conf" "$src/tools/rlctl/README.md" \
         "$tmp"/*.txt; do
  grep -oE '(^|[^0-9A-Za-z_./])[0-9][0-9]*/[0-9]*[a-z]+' "$f" |
    sed -E 's,^[^0-9]*,,' | while read -r rate; do
      u=$(echo "$rate" | sed -E 's,^[0-9]+/[0-9]*,,')
      case ", $units," in
        *", $u,"*) ;;
        *) echo "$(basename "$f"): $rate" ;;
      esac
    done
done >"$tmp/bad"
[ -s "$tmp/bad" ] && fail "rates not written with $units: $(tr '\n' ' ' <"$tmp/bad")"

# The other spellings: rld.conf(5)'s list is the example's, and rld accepts every one.
aliases=$(sed -n 's/.*also accepted: \([a-z, ]*\)\..*/\1/p' "$conf5" | head -1)
[ -n "$aliases" ] || fail "rld.conf(5) lists no other spellings ('also accepted: ...')"
grep -qF "also accepted: $aliases)" "$src/examples/rld.conf" ||
  fail "examples/rld.conf does not list the other spellings as rld.conf(5): $aliases"
n=0
for u in $(echo "$units, $aliases" | tr ',' ' '); do
  n=$((n + 1))
  printf '[limit u%d]\nrate = 7/%s\n[limit v%d]\nrate = 7/2%s\n' $n "$u" $n "$u" >>"$tmp/units.conf"
done
"$rld" --check-config --config "$tmp/units.conf" >"$tmp/out" 2>&1 ||
  fail "a documented unit is refused: $(cat "$tmp/out")"
# ...and an undocumented one is not (the check above would pass anything otherwise)
printf '[limit x]\nrate = 7/fortnight\n' >"$tmp/bad.conf"
! "$rld" --check-config --config "$tmp/bad.conf" >/dev/null 2>&1 || fail "rld accepts 7/fortnight"
echo "test_docs: ok ($n units)"
