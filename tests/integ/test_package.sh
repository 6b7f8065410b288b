#!/bin/sh
# The .deb as a Debian user installs it, on this machine: built by scripts/package.sh
# (CPack, prefix /usr), installed with `apt-get install ./rld_*.deb`, checked (every file
# dpkg lists is there, the conffile is registered, the group exists, `rld --check-config`
# reads the installed /etc/rld/rld.conf without being told, man finds the pages, the
# versions agree, a program builds against it with pkg-config and with find_package, the
# installed rld serves the installed configuration), then removed (only the conffile
# stays) and purged (nothing stays).
#
#   test_package.sh SRCDIR PKG_BUILD_DIR     exit 0 pass, 1 fail, 77 skip (not root)
set -eu
src=$1 pkgbuild=$2
if [ "$(id -u)" != 0 ]; then
  echo "test_package: skipped: installs a package into this machine, needs root"
  exit 77
fi
tmp=$(mktemp -d /tmp/rldtest.package.XXXXXX)
inst="t-package-$$"
rld_pid= installed=
export DEBIAN_FRONTEND=noninteractive
unset MANPATH
apt() { apt-get -q -y -o DPkg::Lock::Timeout=120 "$@" >>"$tmp/apt.log" 2>&1; }
cleanup() {
  set +e
  [ -n "$rld_pid" ] && kill "$rld_pid" 2>/dev/null && wait "$rld_pid" 2>/dev/null
  [ -n "$installed" ] && apt purge rld
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { echo "test_package: $*" >&2; exit 1; }
t0=$(date +%s)

# Nothing of an rld already on this machine is touched.
if dpkg-query -W -f='${Status}' rld 2>/dev/null | grep -qv "not-installed"; then
  fail "a package rld is on this machine ($(dpkg-query -W -f='${Status}' rld)): remove it first"
fi
for f in /etc/rld /usr/sbin/rld /usr/bin/rlctl; do
  [ ! -e "$f" ] || fail "$f exists and belongs to no package: not touching it"
done

deb=$("$src/scripts/package.sh" "$pkgbuild" 2>"$tmp/build.log") || fail "package.sh: $(cat "$tmp/build.log")"
[ -f "$deb" ] || fail "package.sh made no .deb"
v=$("$pkgbuild/daemon/rld" --version | awk '{print $2}')
[ "$(dpkg-deb -f "$deb" Package)" = rld ] || fail "package name"
[ "$(dpkg-deb -f "$deb" Version)" = "$v-1" ] || fail "version $(dpkg-deb -f "$deb" Version), rld $v"
case $(basename "$deb") in "rld_${v}-1_$(dpkg --print-architecture).deb") ;; *) fail "file name $deb" ;; esac
deps=$(dpkg-deb -f "$deb" Depends)
for d in liburing2 libprotobuf-c1 libinih1 libsystemd0 libc6; do
  echo "$deps" | grep -q "\\b$d\\b" || fail "Depends lacks $d: $deps"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles | grep -qx /etc/rld/rld.conf ||
  fail "/etc/rld/rld.conf is not a conffile"
size=$(stat -c %s "$deb")

# ---- install ---------------------------------------------------------------------------
installed=1
apt install --no-install-recommends "$deb" || fail "apt-get install $deb: $(tail -20 "$tmp/apt.log")"
dpkg-query -W -f='${Status}' rld | grep -qx "install ok installed" || fail "not installed"
dpkg -L rld >"$tmp/files"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine)
for f in /usr/sbin/rld /usr/bin/rlctl /etc/rld/rld.conf /lib/systemd/system/rld.service \
         /usr/lib/sysusers.d/rld.conf /usr/include/rld.h "/usr/lib/$ma/librld.so.0" \
         "/usr/lib/$ma/pkgconfig/rld.pc" "/usr/lib/$ma/cmake/rld/rldConfig.cmake" \
         /usr/share/man/man5/rld.conf.5.gz /usr/share/man/man8/rld.8.gz \
         /usr/share/man/man3/rld_try.3.gz /usr/share/man/man3/rld_close.3.gz \
         /usr/share/doc/rld/examples/rld.conf; do
  grep -qx "$f" "$tmp/files" || fail "the package lacks $f"
done
while read -r f; do
  [ -e "$f" ] || [ -L "$f" ] || fail "dpkg lists $f, which is not there"
done <"$tmp/files"
dpkg-query -W -f='${Conffiles}\n' rld | grep -q "^ /etc/rld/rld.conf " ||
  fail "dpkg has no conffile /etc/rld/rld.conf"
getent group rld >/dev/null || fail "postinst made no group rld"
ldconfig -p | grep -q "librld.so.0 " || fail "librld.so.0 is not in ld.so.cache"

# rld reads the installed configuration without being told where it is
/usr/sbin/rld --check-config >"$tmp/check" 2>&1 || fail "rld --check-config: $(cat "$tmp/check")"
grep -q "configuration /etc/rld/rld.conf is valid" "$tmp/check" || fail "checked: $(cat "$tmp/check")"
grep -q -- "--config /etc/rld/rld.conf$" /lib/systemd/system/rld.service || fail "unit's config"
grep -q "^ExecStart=/usr/sbin/rld " /lib/systemd/system/rld.service || fail "unit's ExecStart"

# man finds every page by name; the links resolve
man -w 5 rld.conf | grep -qx /usr/share/man/man5/rld.conf.5.gz || fail "man 5 rld.conf"
out=$(MANWIDTH=80 man --warnings 3 rld_close 2>&1 >"$tmp/page") || fail "man rld_close: $out"
[ -z "$out" ] || fail "man rld_close warns: $out"
grep -q "rld_open, rld_close" "$tmp/page" || fail "man rld_close is not rld_open(3)"

# one version everywhere
/usr/bin/rlctl --version | grep -qx "rlctl $v (librld $v)" || fail "rlctl --version: $(/usr/bin/rlctl --version)"
[ "$(pkg-config --modversion rld)" = "$v" ] || fail "rld.pc version"

# the installed rld serves the installed configuration; programs build against it
RLD_RUNTIME_DIR=$tmp /usr/sbin/rld --foreground --instance "$inst" 2>"$tmp/log" &
rld_pid=$!
for _ in $(seq 200); do grep -q " ready: " "$tmp/log" && break; sleep 0.05; done
grep -q " ready: " "$tmp/log" || fail "the installed rld did not start: $(cat "$tmp/log")"
RLD_RUNTIME_DIR=$tmp /usr/bin/rlctl -i "$inst" list 'llm.*' >"$tmp/list" || fail "rlctl list"
[ "$(awk 'NR > 1 {print $1}' "$tmp/list" | tr '\n' ' ')" = "llm.requests llm.tokens " ] ||
  fail "rlctl list 'llm.*': $(cat "$tmp/list")"
mkdir "$tmp/cm"
cat >"$tmp/cm/c.c" <<'C'
#include <stdio.h>
#include <rld.h>
int main(int argc, char **argv)
{
    rld_client *c;
    rld_limit l;
    int e = rld_open(argv[1], 0, &c);
    if (e == 0)
        e = rld_find(c, "llm.requests", &l);
    if (e == 0)
        e = rld_try(c, l, 1, NULL);
    printf("%s %d\n", rld_strerror(e), rld_version());
    rld_close(c);
    return argc > 1 && e == 0 ? 0 : 1;
}
C
# shellcheck disable=SC2046
cc -Wall -Werror -o "$tmp/c" "$tmp/cm/c.c" $(pkg-config --cflags --libs rld) || fail "cc with rld.pc"
RLD_RUNTIME_DIR=$tmp "$tmp/c" "$inst" >/dev/null || fail "a program linked with -lrld: $(RLD_RUNTIME_DIR=$tmp "$tmp/c" "$inst")"
printf 'cmake_minimum_required(VERSION 3.25)\nproject(c C)\nfind_package(rld %s CONFIG REQUIRED)\nadd_executable(c c.c)\ntarget_link_libraries(c PRIVATE rld::rld)\n' "$v" >"$tmp/cm/CMakeLists.txt"
{ cmake -S "$tmp/cm" -B "$tmp/cm/b" && cmake --build "$tmp/cm/b"; } >"$tmp/cm.log" 2>&1 ||
  fail "find_package(rld CONFIG) against the package: $(cat "$tmp/cm.log")"
RLD_RUNTIME_DIR=$tmp "$tmp/cm/b/c" "$inst" >/dev/null || fail "a program linked with rld::rld"
kill "$rld_pid"; wait "$rld_pid" 2>/dev/null || true; rld_pid=

# ---- remove: only the conffile stays; purge: nothing ------------------------------------
apt remove rld || fail "apt-get remove: $(tail -20 "$tmp/apt.log")"
dpkg-query -W -f='${Status}' rld | grep -qx "deinstall ok config-files" ||
  fail "after remove: $(dpkg-query -W -f='${Status}' rld)"
[ -f /etc/rld/rld.conf ] || fail "remove took the conffile"
while read -r f; do
  [ "$f" = /etc/rld/rld.conf ] && continue
  [ -d "$f" ] && continue     # directories (and /lib, a link to one) shared with others
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "remove left $f"
done <"$tmp/files"
apt purge rld || fail "apt-get purge: $(tail -20 "$tmp/apt.log")"
installed=
if dpkg-query -W -f='${Status}' rld 2>/dev/null | grep -qv "not-installed"; then
  fail "after purge: $(dpkg-query -W -f='${Status}' rld)"
fi
dpkg -L rld >/dev/null 2>&1 && fail "dpkg -L rld still lists files after purge"
[ ! -e /etc/rld ] || fail "purge left /etc/rld: $(ls -la /etc/rld)"
while read -r f; do
  [ -d "$f" ] && continue
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "purge left $f"
done <"$tmp/files"
[ ! -e "/usr/lib/$ma/librld.so.0" ] && ! ldconfig -p | grep -q "librld.so.0 " ||
  fail "librld.so.0 still in ld.so.cache after purge"
echo "test_package: ok ($(basename "$deb"), $size bytes, $(($(date +%s) - t0)) s)"
