#!/bin/sh
# Install into a temporary prefix, then build a consumer with only
# `pkg-config --cflags --libs rld` (shared) and `--static`, run it against a real rld on a
# private instance, and check the library exports nothing but rld_* symbols.
set -eu
build=$1 src=$2 ccflags=${3:-}   # $3: the sanitizer flags of a sanitized build
tmp=$(mktemp -d /tmp/rldtest.install.XXXXXX)
inst="t-install-$$"
cleanup() {
  [ -n "${rld_pid:-}" ] && kill "$rld_pid" 2>/dev/null && wait "$rld_pid" 2>/dev/null
  rm -f "/dev/shm/rld.$inst"
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/$(gcc -dumpmachine)/pkgconfig"
pkg-config --exists rld || fail "pkg-config does not find rld under the prefix"
[ -x "$tmp/prefix/sbin/rld" ] || fail "rld not installed in sbin"
[ -f "$tmp/prefix/include/rld.h" ] || fail "rld.h not installed"

cat > "$tmp/consumer.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <rld.h>
int main(int argc, char **argv)
{
    rld_client *c;
    rld_limit l;
    rld_result r;
    int e = rld_open(argv[1], 0, &c);
    if (e < 0) { fprintf(stderr, "rld_open: %s\n", rld_strerror(e)); return 1; }
    if ((e = rld_find(c, "x", &l)) < 0 || (e = rld_try(c, l, 1, &r)) < 0) {
        fprintf(stderr, "%s\n", rld_strerror(e));
        return 1;
    }
    printf("took 1 token, %llu left (librld %d)\n", (unsigned long long)r.remaining, rld_version());
    rld_close(c);
    return argc > 2 ? 0 : 0;
}
C
# shellcheck disable=SC2046
cc -Wall -Werror $ccflags -o "$tmp/consumer" "$tmp/consumer.c" $(pkg-config --cflags --libs rld)
# static: the archive by path, its dependencies from pkg-config --static
cc -Wall -Werror $ccflags -o "$tmp/consumer-static" "$tmp/consumer.c" $(pkg-config --cflags rld) \
   "$(pkg-config --variable=libdir rld)/librld.a" $(pkg-config --static --libs rld | sed 's/-lrld//')

printf '[limit x]\nrate = 10/s\n' > "$tmp/rld.conf"
RLD_RUNTIME_DIR=$tmp "$tmp/prefix/sbin/rld" --foreground --config "$tmp/rld.conf" --instance "$inst" 2>"$tmp/log" &
rld_pid=$!
for _ in $(seq 200); do grep -q " ready: " "$tmp/log" && break; sleep 0.05; done
grep -q " ready: " "$tmp/log" || fail "rld did not start: $(cat "$tmp/log")"

LD_LIBRARY_PATH=$(dirname "$(find "$tmp/prefix" -name 'librld.so.*' | head -1)") \
  "$tmp/consumer" "$inst" | grep -q "took 1 token, 9 left" || fail "shared consumer"
# the bucket is now in use: the coarse-clock path may report one token less (toward denying)
"$tmp/consumer-static" "$inst" | grep -Eq "took 1 token, [78] left" || fail "static consumer"

bad=$(nm -D --defined-only "$(find "$tmp/prefix" -name 'librld.so.*' | head -1)" |
      awk '$3 !~ /^rld_/ && $3 !~ /^RLD_/ {print $3}')
[ -z "$bad" ] || fail "librld exports non-rld_ symbols: $bad"
# every man page is installed and renders without a warning
for page in rld.8 rld.conf.5 librld.3 rlctl.8; do
  f=$(find "$tmp/prefix" -name "$page" | head -1)
  [ -n "$f" ] || fail "man page $page not installed"
  if command -v man >/dev/null; then
    out=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null) || fail "man -l $page failed"
    [ -z "$out" ] || fail "man -l $page warns: $out"
    MANWIDTH=80 man -l "$f" 2>/dev/null | grep -q "NAME" || fail "man -l $page renders nothing"
  fi
done
[ -f "$(find "$tmp/prefix" -name rld.service | head -1)" ] || fail "systemd unit not installed"
[ -f "$tmp/prefix/etc/rld/rld.conf" ] || fail "example config not installed as etc/rld/rld.conf"
echo "test_install: ok"
