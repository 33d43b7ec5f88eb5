#!/usr/bin/env bash
# ci/deps_selftest.sh - self-test of ci/deps.py on throwaway C files.
#
# Builds small module sets in a temporary directory and checks the exit
# status and the findings of ci/deps.py on each:
#   symcycle  a <-> b through a function and a global variable   -> 1
#   inccycle  p <-> q through a macro and a static inline only    -> 1
#   clean     base <- mid <- top, a header-only module, libc calls,
#             same-named static functions, includes in comments,
#             strings and '#if 0'; meson-style object names     -> 0
#   meson     a meson project (when meson and ninja are here), BUILDDIR
#             mode with both_libraries                            -> 1
# Prints "deps_selftest: OK" and exits 0 when all hold.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
DEPS=(python3 "$HERE/deps.py")
CC=${CC:-cc}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/deps_selftest.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
fails=0

fail() { echo "deps_selftest: FAIL: $*"; fails=$((fails + 1)); }

# run NAME EXPECTED_RC ARGS... : runs deps.py, keeps its output in $TMP/NAME.out
run() {
  local name=$1 want=$2 rc=0
  shift 2
  "${DEPS[@]}" "$@" >"$TMP/$name.out" 2>&1 || rc=$?
  if [[ $rc -ne $want ]]; then
    fail "$name: exit status $rc, expected $want"
    sed 's/^/    /' "$TMP/$name.out"
  fi
}

# expect NAME REGEX / reject NAME REGEX : on NAME's output
expect() { grep -Eq -- "$2" "$TMP/$1.out" || { fail "$1: no line matching '$2'"; sed 's/^/    /' "$TMP/$1.out"; }; }
reject() { ! grep -Eq -- "$2" "$TMP/$1.out" || { fail "$1: unexpected line matching '$2'"; grep -E -- "$2" "$TMP/$1.out" | sed 's/^/    /'; }; }

compile() {  # compile DIR OBJDIR [NAMEFMT]: every DIR/*.c to OBJDIR
  local dir=$1 obj=$2 fmt=${3:-%s.o} c base
  mkdir -p "$obj"
  for c in "$dir"/*.c; do
    base=$(basename "$c" .c)
    # shellcheck disable=SC2059
    "$CC" -O2 -Wall -c "$c" -I"$dir" -o "$obj/$(printf "$fmt" "$base")"
  done
}

# ---- symcycle: a calls b_g, b reads a_var ---------------------------------------------
d=$TMP/symcycle/src
mkdir -p "$d"
cat >"$d/a.h" <<'EOF'
extern int a_var;
void a_f(void);
EOF
cat >"$d/b.h" <<'EOF'
void b_g(void);
EOF
cat >"$d/a.c" <<'EOF'
#include "a.h"
#include "b.h"
int a_var;
void a_f(void) { b_g(); }
EOF
cat >"$d/b.c" <<'EOF'
#include "b.h"
extern int a_var;           /* declared by hand: no include edge back to a */
void b_g(void) { a_var++; }
EOF
compile "$d" "$TMP/symcycle/obj"
run symcycle 1 --objects "$TMP/symcycle/obj" --sources "$d" --dot "$TMP/symcycle.dot"
expect symcycle '^deps: symbols: cycle: a -> b -> a$'
expect symcycle '^deps: includes graph: .*no cycle'
expect symcycle 'a -> b: b_g \(symbols\), a.c includes b.h'
expect symcycle 'b -> a: a_var \(symbols\)'
expect symcycle '^deps: FAILED'
grep -q '^digraph deps' "$TMP/symcycle.dot" || fail "symcycle: no dot graph"
grep -q '"a" -> "b".*color=red' "$TMP/symcycle.dot" || fail "symcycle: cycle edge not red in dot"

# ---- inccycle: p.c uses q.h's static inline, q.h uses p.h's macro ----------------------
d=$TMP/inccycle/src
mkdir -p "$d"
cat >"$d/p.h" <<'EOF'
#define P_SIZE 16
int p_size(void);
EOF
cat >"$d/q.h" <<'EOF'
#include "p.h"
static inline int q_twice(int x) { return 2 * x + P_SIZE; }
EOF
cat >"$d/p.c" <<'EOF'
#include "p.h"
#include "q.h"
int p_size(void) { return q_twice(P_SIZE); }
EOF
cat >"$d/q.c" <<'EOF'
#include "q.h"
int q_unused(int x) { return q_twice(x); }
EOF
compile "$d" "$TMP/inccycle/obj" '%s.c.o'
run inccycle 1 --objects "$TMP/inccycle/obj" --sources "$d"
expect inccycle '^deps: symbols graph: 0 edges, no cycle'
expect inccycle '^deps: includes: cycle: p -> q -> p$'
expect inccycle 'q -> p: q.h includes p.h'

# ---- clean: layered, with the traps for false edges -----------------------------------
d=$TMP/clean/src
mkdir -p "$d"
cat >"$d/util.h" <<'EOF'
/* header-only module */
#include <stddef.h>
#define UTIL_MIN(a, b) ((a) < (b) ? (a) : (b))
EOF
cat >"$d/base.h" <<'EOF'
#include "util.h"
extern __thread int base_tls;
int base_f(int);
EOF
cat >"$d/mid.h" <<'EOF'
#include "base.h"
int mid_f(int);
EOF
cat >"$d/top.h" <<'EOF'
int top_f(int);
EOF
cat >"$d/base.c" <<'EOF'
#include "base.h"
/* #include "top.h" -- a comment is no dependency */
// #include "mid.h"
#include <string.h>
__thread int base_tls;
int counter;                /* top.c has a static one: no edge mid -> top */
static int helper(int x) { return x + counter++; }  /* top.c has one too */
int base_f(int x) { return UTIL_MIN(helper(x), (int)strlen("#include \"top.h\"")); }
EOF
cat >"$d/mid.c" <<'EOF'
#include "mid.h"
extern int counter;         /* base.c's; top.c has a static one */
#if 0
#include "top.h"
#endif
int mid_f(int x) { return base_f(x) + base_tls + counter; }
EOF
cat >"$d/top.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include "top.h"
#include "mid.h"
static int counter;
static int helper(int x) { return x * counter++; }
int top_f(int x) {
  char *p = malloc(16);
  printf("%p\n", (void *)p);
  free(p);
  return helper(mid_f(x));
}
EOF
compile "$d" "$TMP/clean/obj" 'src_%s.c.o'
run clean 0 --objects "$TMP/clean/obj" --sources "$d" --dot "$TMP/clean.dot"
expect clean '^deps: 4 modules .*header-only: util'
expect clean '^deps: OK'
expect clean '^deps: symbols graph: 2 edges'
expect clean '^    0: util$'
expect clean '^    1: base$'
expect clean '^    2: mid$'
expect clean '^    3: top$'
reject clean 'cycle:'
# No edge from base or mid up to top (comments, strings, #if 0, statics).
grep -Eq '"(base|mid)" -> "top"' "$TMP/clean.dot" && fail "clean: false edge up to top in dot"
grep -q '"mid" -> "base".*base_f, base_tls, counter (symbols)' "$TMP/clean.dot" ||
  fail "clean: mid -> base (base_f, base_tls, counter) missing in dot"

# ---- meson: BUILDDIR mode --------------------------------------------------------------
if command -v meson >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1; then
  m=$TMP/mesonproj
  mkdir -p "$m/src" "$m/tests"
  cp "$TMP/symcycle/src/"* "$m/src/"
  cat >"$m/meson.build" <<'EOF'
project('t', 'c')
lib = both_libraries('t', files('src/a.c', 'src/b.c'))
executable('tool', 'tests/tool.c', link_with : lib.get_static_lib())
EOF
  cat >"$m/tests/tool.c" <<'EOF'
void a_f(void);
int main(void) { a_f(); return 0; }
EOF
  if meson setup "$m/build" "$m" >"$TMP/meson.log" 2>&1 && ninja -C "$m/build" >>"$TMP/meson.log" 2>&1; then
    run meson 1 "$m/build"
    expect meson '^deps: symbols: cycle: a -> b -> a$'
    expect meson 'objects .* \(2\)$'
    reject meson 'tool'
  else
    fail "meson: the throwaway meson project did not build"
    sed 's/^/    /' "$TMP/meson.log"
  fi
else
  echo "deps_selftest: meson or ninja missing, BUILDDIR mode not tested"
fi

# ---- usage errors ----------------------------------------------------------------------
run usage 2 --objects "$TMP/clean/obj"
run nobuild 2 "$TMP/clean"

if [[ $fails -ne 0 ]]; then
  echo "deps_selftest: FAILED: $fails check(s)"
  exit 1
fi
echo "deps_selftest: OK"
