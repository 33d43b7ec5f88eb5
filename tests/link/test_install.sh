#!/usr/bin/env bash
# test_install.sh - Strata used the way an installed library is used.
#
# usage: test_install.sh BUILD_DIR MESON PROGRAM_SOURCE [SANITIZER...]
#   BUILD_DIR       the meson build directory (already built)
#   MESON           the meson command
#   PROGRAM_SOURCE  tests/link/install_prog.c
#   SANITIZER...    the b_sanitize option of the build ("none", "undefined";
#                   newer meson versions give a list: one argument each)
# The C compiler is $CC (meson.build passes the one the build uses).
#
# 1. `meson install --destdir` into a temporary directory; every file must
#    be where the build's prefix and directories say: libstrata.so.1 (its
#    SONAME), the libstrata.so link to it, libstrata.a, strata.h, strata.pc,
#    the strata(3) man page and the `strata` command.
# 2. Point pkg-config at the installed strata.pc, relocating ${prefix} into
#    the temporary root.
# 3. `strata`: --help prints the usage; the library path it preloads is the
#    installed libstrata.so.1. A copy that preloads the staged library instead
#    runs a program that is not linked with Strata: its malloc(16) must be
#    Strata's, STRATA_OPTIONS must reach it (stats=1 prints the statistics),
#    an LD_PRELOAD already set must come after Strata, and a missing program
#    must fail with a message.
# 4. Build install_prog.c with `pkg-config --cflags --libs strata` and run it
#    with LD_LIBRARY_PATH on the installed libdir: malloc must come from the
#    installed libstrata.so.1.
# 5. Build it again with -static and `pkg-config --static` (libstrata.a plus
#    -lpthread) and run it: malloc must still be Strata's.
# Exit 0 on success, 1 on failure, 77 (meson's "skipped") when pkg-config or
# a static C library is missing.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 BUILD_DIR MESON PROGRAM_SOURCE [SANITIZER...]" >&2
  exit 2
fi
BUILD=$1 MESON=$2 SRC=$3
shift 3
SANITIZE=$(IFS=,; echo "$*")   # "undefined", "address,undefined", "none" or ""
CC=${CC:-cc}
# Sanitized builds put calls to the sanitizer runtime into libstrata; a
# program linking the library must link that runtime too.
SAN_FLAGS=()
if [[ -n "$SANITIZE" && "$SANITIZE" != none ]]; then
  SAN_FLAGS=("-fsanitize=$SANITIZE")
fi

fail() { echo "test_install: FAIL: $*" >&2; exit 1; }

if ! command -v pkg-config >/dev/null; then
  echo "test_install: SKIP: pkg-config is not installed" >&2
  exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-install.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
DEST=$TMP/root

# --no-rebuild: `meson test` has built everything, and a second ninja in the
# same build directory must not race with it.
# $MESON may be a command with arguments (e.g. "python3 /path/meson.py").
# shellcheck disable=SC2086
$MESON install -C "$BUILD" --no-rebuild --quiet --destdir "$DEST" \
  >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log" >&2; fail "meson install failed"; }

# ---- the installed files -----------------------------------------------------
# Where the build puts them: prefix, and bindir, libdir, ... under it.
# shellcheck disable=SC2086
read -r PREFIX BINDIR LIBDIR_REL INCLUDEDIR MANDIR < <($MESON introspect "$BUILD" --buildoptions |
  python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(*(o[k] for k in ("prefix", "bindir", "libdir", "includedir", "mandir")))') \
  || fail "meson introspect --buildoptions failed"
at() { case $1 in /*) echo "$DEST$1" ;; *) echo "$DEST$PREFIX/$1" ;; esac; }
LIBDIR=$(at "$LIBDIR_REL")
SO1=$LIBDIR/libstrata.so.1
WRAPPER=$(at "$BINDIR")/strata
PC=$LIBDIR/pkgconfig/strata.pc
echo "test_install: installed into $DEST (prefix $PREFIX)"
[[ -f "$SO1" && ! -L "$SO1" ]] || fail "$SO1 was not installed"
readelf -d "$SO1" | grep -q 'SONAME.*\[libstrata\.so\.1\]' || fail "$SO1: the SONAME is not libstrata.so.1"
[[ -L "$LIBDIR/libstrata.so" && "$(readlink -f "$LIBDIR/libstrata.so")" == "$(readlink -f "$SO1")" ]] \
  || fail "$LIBDIR/libstrata.so is not a link to libstrata.so.1"
[[ -f "$LIBDIR/libstrata.a" ]] || fail "$LIBDIR/libstrata.a was not installed"
[[ -f "$(at "$INCLUDEDIR")/strata.h" ]] || fail "$(at "$INCLUDEDIR")/strata.h was not installed"
[[ -f "$PC" ]] || fail "$PC was not installed"
[[ -f "$(at "$MANDIR")/man3/strata.3" ]] || fail "$(at "$MANDIR")/man3/strata.3 was not installed"
[[ -f "$WRAPPER" && -x "$WRAPPER" ]] || fail "$WRAPPER was not installed executable"

# The .pc file says prefix=/usr/local (say); the files are under $DEST/usr/local.
[[ "$(sed -n 's/^prefix=//p' "$PC")" == "$PREFIX" ]] || fail "$PC: prefix= is not $PREFIX"
pc() {
  PKG_CONFIG_PATH=$(dirname "$PC") PKG_CONFIG_LIBDIR=$(dirname "$PC") \
    pkg-config --define-variable=prefix="$DEST$PREFIX" "$@" strata
}
[[ "$(pc --variable=libdir)" == "$LIBDIR" ]] || fail "strata.pc's libdir is not $LIBDIR"
echo "test_install: pkg-config --cflags --libs strata: $(pc --cflags --libs)"

# ---- the strata command ------------------------------------------------------
"$WRAPPER" --help >"$TMP/help.out" 2>&1 || fail "strata --help exited with status $?"
grep -q '^usage: strata PROGRAM' "$TMP/help.out" || fail "strata --help prints no usage"
INSTALLED_SO1=${SO1#"$DEST"}
grep -qxF "lib='$INSTALLED_SO1'" "$WRAPPER" || fail "strata does not preload $INSTALLED_SO1"
# Run from the temporary root, the command must preload the staged library.
sed "s|^lib='$INSTALLED_SO1'\$|lib='$SO1'|" "$WRAPPER" >"$TMP/strata"
chmod +x "$TMP/strata"
grep -qxF "lib='$SO1'" "$TMP/strata" || fail "cannot point a copy of strata at $SO1"
cat >"$TMP/owns.c" <<'PROG'
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "strata_owns");
  void *p = malloc(16);
  int ok = owns && p && owns(p) == 1;
  printf("malloc(16) = %p is %s\n", p, ok ? "Strata's" : "not Strata's");
  free(p);
  return !ok;
}
PROG
$CC -fno-builtin -o "$TMP/owns" "$TMP/owns.c" -ldl || fail "building owns.c failed"
! "$TMP/owns" >/dev/null 2>&1 || fail "owns says malloc is Strata's without the preload"
STRATA_OPTIONS=stats=1 "$TMP/strata" "$TMP/owns" >"$TMP/owns.out" 2>"$TMP/owns.err" \
  || { cat "$TMP/owns.out" "$TMP/owns.err" >&2; fail "strata owns: malloc is not Strata's"; }
grep -q '^strata statistics' "$TMP/owns.err" \
  || { cat "$TMP/owns.err" >&2; fail "STRATA_OPTIONS=stats=1 did not reach the program"; }
OTHER=$($CC -print-file-name=libm.so.6)
[[ "$(LD_PRELOAD=$OTHER "$TMP/strata" printenv LD_PRELOAD)" == "$SO1 $OTHER" ]] \
  || fail "strata does not put itself before an LD_PRELOAD already set"
if "$TMP/strata" "$TMP/no-such-program" >"$TMP/missing.out" 2>&1; then
  fail "strata succeeded with a missing program"
fi
grep -q '^strata: .*no-such-program' "$TMP/missing.out" \
  || fail "strata with a missing program says: $(cat "$TMP/missing.out")"
echo "test_install: strata runs $(cat "$TMP/owns.out")"

# ---- dynamic -----------------------------------------------------------------
# shellcheck disable=SC2046
$CC "${SAN_FLAGS[@]}" -o "$TMP/prog_dynamic" "$SRC" $(pc --cflags --libs) -ldl \
  || fail "building against the installed libstrata.so failed"
# The program must not find the build directory's copy: no RPATH, and only the
# installed libdir on LD_LIBRARY_PATH.
if readelf -d "$TMP/prog_dynamic" | grep -qE 'R(UN)?PATH'; then
  fail "prog_dynamic has an RPATH"
fi
readelf -d "$TMP/prog_dynamic" | grep -q 'NEEDED.*\[libstrata\.so\.1\]' \
  || fail "prog_dynamic does not depend on libstrata.so.1"
LD_LIBRARY_PATH=$LIBDIR "$TMP/prog_dynamic" dynamic "$DEST" \
  || fail "the dynamically linked program failed"

# ---- static ------------------------------------------------------------------
# A static program needs libc.a; without it this part cannot be tested.
if [[ ! -e "$($CC -print-file-name=libc.a)" || "$($CC -print-file-name=libc.a)" == libc.a ]]; then
  echo "test_install: SKIP: no static C library (libc.a)" >&2
  exit 77
fi
# shellcheck disable=SC2046
$CC "${SAN_FLAGS[@]}" -static -o "$TMP/prog_static" "$SRC" $(pc --static --cflags --libs) -ldl \
  2>"$TMP/static.log" || { cat "$TMP/static.log" >&2; fail "static link against libstrata.a failed"; }
# (glibc warns that dlopen/dlsym in a static program need the shared libs at
#  run time; the program calls them only in its dynamic mode.)
if readelf -d "$TMP/prog_static" 2>/dev/null | grep -q NEEDED; then
  fail "prog_static is not static"
fi
"$TMP/prog_static" static || fail "the statically linked program failed"

echo "test_install: OK (dynamic and static)"
