#!/bin/sh
# Install into a temporary prefix, then build consumers with only
# `pkg-config --cflags --libs rld` (shared), `--static`, and a CMake project with
# find_package(rld CONFIG) (target rld::rld); run them against a real rld on a private
# instance; check the library exports nothing but rld_* symbols, every man page is in the
# section its .TH says and renders without a warning, `man NAME` finds a page for every
# exported call and every RLD_ macro of rld.h is documented, and the versions agree.
# Then a staged install as packagers do it (DESTDIR, the configured prefix): the
# configuration lands where the installed rld, its unit and rlctl's hints look for it.
set -eu
build=$1 src=$2 ccflags=${3:-}   # $3: the sanitizer flags of a sanitized build
tmp=$(mktemp -d /tmp/rldtest.install.XXXXXX)
inst="t-install-$$"
cleanup() {
  [ -n "${rld_pid:-}" ] && kill "$rld_pid" 2>/dev/null && wait "$rld_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_install: $*" >&2; exit 1; }

# (another prefix than the configured one: the install warns that rld reads its own path)
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 || fail "install: $(cat "$tmp/install.log")"
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

export RLD_RUNTIME_DIR=$tmp      # where the consumers find the instance (its segment socket)
LD_LIBRARY_PATH=$(dirname "$(find "$tmp/prefix" -name 'librld.so.*' | head -1)") \
  "$tmp/consumer" "$inst" | grep -q "took 1 token, 9 left" || fail "shared consumer"
# the bucket is now in use: the coarse-clock path may report one token less (toward denying)
"$tmp/consumer-static" "$inst" | grep -Eq "took 1 token, [78] left" || fail "static consumer"

bad=$(nm -D --defined-only "$(find "$tmp/prefix" -name 'librld.so.*' | head -1)" |
      awk '$3 !~ /^rld_/ && $3 !~ /^RLD_/ {print $3}')
[ -z "$bad" ] || fail "librld exports non-rld_ symbols: $bad"
# ---- man pages ------------------------------------------------------------------------
mandir=$tmp/prefix/share/man
for page in rld.8 rld.conf.5 librld.3 rlctl.8 rld_open.3 rld_try.3 rld_wait.3; do
  [ -n "$(find "$mandir" -name "$page")" ] || fail "man page $page not installed"
done
# each page in the section its .TH names (rld.conf.5 went to "manc" once)
for f in "$mandir"/*/*; do
  dir=$(basename "$(dirname "$f")")
  if head -1 "$f" | grep -q '^\.so '; then continue; fi
  sec=$(awk '$1 == ".TH" {print $3; exit}' "$f")
  [ "$dir" = "man$sec" ] || fail "$(basename "$f") (.TH section $sec) installed in $dir"
done
ls "$mandir" | grep -qvx 'man[1-8]' && fail "man directories other than man1-8: $(ls "$mandir")"
if command -v man >/dev/null; then
  # what `man 5 rld.conf` and the unit's Documentation= look up
  man -M "$mandir" -w 5 rld.conf >/dev/null 2>&1 || fail "man 5 rld.conf finds nothing"
  # every page and every link renders by name, without a warning
  for f in "$mandir"/*/*; do
    sec=${f##*.} name=$(basename "$f" ".$sec")
    out=$(MANWIDTH=80 man --warnings -M "$mandir" "$sec" "$name" 2>&1 >/dev/null) ||
      fail "man $sec $name failed: $out"
    [ -z "$out" ] || fail "man $sec $name warns: $out"
    MANWIDTH=80 man -M "$mandir" "$sec" "$name" 2>/dev/null | grep -q "^NAME" ||
      fail "man $sec $name renders nothing"
  done
  # `man rld_try`: a page for every call librld exports
  for sym in $(nm -D --defined-only "$(find "$tmp/prefix" -name 'librld.so.*' | head -1)" |
               awk '$3 ~ /^rld_/ {sub(/@.*/, "", $3); print $3}' | sort -u); do
    man -M "$mandir" -w 3 "$sym" >/dev/null 2>&1 || fail "man 3 $sym finds nothing"
    MANWIDTH=80 man -M "$mandir" 3 "$sym" 2>/dev/null | sed -n '/^NAME/,/^SYNOPSIS/p' |
      grep -q "$sym" || fail "man 3 $sym: the page's NAME does not list $sym"
  done
fi
# every macro the installed headers define (flags, codes, limits) is in a section 3 page
for m in $(sed -n 's/^#define \(RLD_[A-Z0-9_]*\).*/\1/p' "$tmp/prefix/include"/rld*.h); do
  case $m in *_H) continue ;; esac
  grep -q "$m" "$mandir"/man3/* || fail "rld.h's $m is in no man page"
done

# ---- versions: rld, rlctl, librld, rld.pc and the CMake package say the same --------------
v=$("$tmp/prefix/sbin/rld" --version | awk 'NR == 1 {print $2}')
[ -n "$v" ] || fail "rld --version printed no version"
"$tmp/prefix/bin/rlctl" --version | grep -qx "rlctl $v (librld $v)" ||
  fail "rlctl --version disagrees with rld $v: $("$tmp/prefix/bin/rlctl" --version)"
[ "$(pkg-config --modversion rld)" = "$v" ] || fail "rld.pc says $(pkg-config --modversion rld), rld $v"

# ---- find_package(rld CONFIG): rld::rld, with the version file ------------------------------
mkdir "$tmp/cm"
cp "$tmp/consumer.c" "$tmp/cm/consumer.c"
cat > "$tmp/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(rld $v CONFIG REQUIRED)
if(NOT rld_VERSION STREQUAL "$v")
  message(FATAL_ERROR "rld_VERSION \${rld_VERSION}")
endif()
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE rld::rld)
add_executable(consumer-static consumer.c)
target_link_libraries(consumer-static PRIVATE rld::rld_static)
find_package(rld 99 CONFIG QUIET)
if(rld_FOUND)
  message(FATAL_ERROR "rld 99 found: the version file accepts anything")
endif()
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
      -DCMAKE_C_FLAGS="$ccflags" -DCMAKE_EXE_LINKER_FLAGS="$ccflags" >"$tmp/cm.log" 2>&1 ||
  fail "find_package(rld CONFIG): $(cat "$tmp/cm.log")"
cmake --build "$tmp/cm/b" >>"$tmp/cm.log" 2>&1 || fail "building with rld::rld: $(cat "$tmp/cm.log")"
"$tmp/cm/b/consumer" "$inst" | grep -Eq "took 1 token, [0-9]+ left \(librld" ||
  fail "consumer built with rld::rld"
"$tmp/cm/b/consumer-static" "$inst" | grep -Eq "took 1 token" || fail "consumer built with rld::rld_static"

# ---- a staged install at the configured prefix (what packagers and CPack do) ---------------
# The configuration must land where the installed rld reads it without --config.
dest=$tmp/dest
DESTDIR=$dest cmake --install "$build" >"$tmp/destdir.log" 2>&1 || fail "DESTDIR install: $(cat "$tmp/destdir.log")"
grep -q "CMake Warning" "$tmp/destdir.log" && fail "DESTDIR install warns: $(cat "$tmp/destdir.log")"
drld=$(find "$dest" -path '*/sbin/rld' | head -1)
drlctl=$(find "$dest" -path '*/bin/rlctl' | head -1)
conf=$("$drld" --help | sed -n 's/.*--config FILE.*(default \(\/[^)]*\)).*/\1/p')
[ -n "$conf" ] || fail "rld --help names no default configuration"
[ -f "$dest$conf" ] || fail "rld reads $conf by default, the install left none there: $(cd "$dest" && find . -name rld.conf)"
"$drld" --check-config --config "$dest$conf" >/dev/null || fail "the installed configuration is not valid"
unit=$(find "$dest" -name rld.service | head -1)
grep -q -- "--config $conf\$" "$unit" || fail "the unit does not run rld with $conf: $(grep Exec "$unit")"
RLD_RUNTIME_DIR=$tmp "$drlctl" -i "nosuch-$$" list 2>&1 | grep -qF -- "--config $conf" ||
  fail "rlctl's start hint does not name $conf"
rld8=$(find "$dest" -name rld.8 | head -1)
MANWIDTH=200 man -l "$rld8" 2>/dev/null | grep -qF "$conf" || fail "rld(8) does not name $conf"
[ -z "$(find "$dest" -path '*/etc/rld/rld.conf' ! -path "$dest$conf")" ] ||
  fail "a second rld.conf: $(find "$dest" -name rld.conf)"
echo "test_install: ok"
