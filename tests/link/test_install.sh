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
# 1. `meson install --destdir` into a temporary directory.
# 2. Find strata.pc there and point pkg-config at it, relocating ${prefix}
#    into the temporary root.
# 3. Build install_prog.c with `pkg-config --cflags --libs strata` and run it
#    with LD_LIBRARY_PATH on the installed libdir: malloc must come from the
#    installed libstrata.so.
# 4. Build it again with -static and `pkg-config --static` (libstrata.a plus
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

PC=$(find "$DEST" -name strata.pc -print -quit)
[[ -n "$PC" ]] || fail "no strata.pc under $DEST"
[[ -n "$(find "$DEST" -name strata.h -print -quit)" ]] || fail "strata.h was not installed"
# The .pc file says prefix=/usr/local (say); the files are under $DEST/usr/local.
PREFIX=$(sed -n 's/^prefix=//p' "$PC")
[[ -n "$PREFIX" ]] || fail "$PC has no prefix= line"
pc() {
  PKG_CONFIG_PATH=$(dirname "$PC") PKG_CONFIG_LIBDIR=$(dirname "$PC") \
    pkg-config --define-variable=prefix="$DEST$PREFIX" "$@" strata
}
LIBDIR=$(pc --variable=libdir)
echo "test_install: installed into $DEST; strata.pc: $PC"
echo "test_install: pkg-config --cflags --libs strata: $(pc --cflags --libs)"
[[ -e "$LIBDIR/libstrata.so" ]] || fail "libstrata.so is not in libdir $LIBDIR"
[[ -e "$LIBDIR/libstrata.a" ]] || fail "libstrata.a is not in libdir $LIBDIR"

# ---- dynamic -----------------------------------------------------------------
# shellcheck disable=SC2046
$CC "${SAN_FLAGS[@]}" -o "$TMP/prog_dynamic" "$SRC" $(pc --cflags --libs) -ldl \
  || fail "building against the installed libstrata.so failed"
# The program must not find the build directory's copy: no RPATH, and only the
# installed libdir on LD_LIBRARY_PATH.
if readelf -d "$TMP/prog_dynamic" | grep -qE 'R(UN)?PATH'; then
  fail "prog_dynamic has an RPATH"
fi
readelf -d "$TMP/prog_dynamic" | grep -q 'NEEDED.*libstrata' \
  || fail "prog_dynamic does not depend on libstrata.so"
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
