#!/usr/bin/env bash
# Builds glibc 2.36's own malloc tests from Debian's glibc-source package
# (/usr/src/glibc/glibc-2.36.tar.xz) at test time, against the INSTALLED
# glibc, and runs each of them twice: under glibc's malloc and under Strata
# (LD_PRELOAD).  Nothing of glibc is kept in this repository.
#
#   tests/glibc/run.sh LIBSTRATA_SO [WORKDIR]
#
# Exit status: 0 no test passes under glibc and fails (or times out) under
# Strata; 1 some do (or a test that should build did not); 2 usage or
# environment error (no compiler, no ninja, Strata not loadable); 77 glibc's
# source cannot be obtained (meson: skip).
#
# Environment: CI_JOBS (parallel jobs, default nproc), CC (default gcc),
# NINJA (default ninja), GLIBC_TARBALL (default
# /usr/src/glibc/glibc-2.36.tar.xz), TIMEOUTFACTOR (read by glibc's test
# driver too), STRATA_GLIBC_NO_INSTALL=1 (never run apt-get). See README.md.
set -euo pipefail

GLIBC_VERSION=2.36
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"

# ---------------------------------------------------------------------------
# Internal mode: run one test under one allocator and record the result.
# Called in parallel through xargs; the environment carries OBJ, LOGS,
# RESULTS and STRATA_SO.
#   run.sh --run-one TIMEOUT TEST glibc|strata
if [[ ${1:-} == --run-one ]]; then
  exec 9>&-   # the WORKDIR lock: a stray test process must not keep it
  t_timeout=$2 t=$3 alloc=$4
  factor=${TIMEOUTFACTOR:-1}
  [[ $factor =~ ^[1-9][0-9]*$ ]] || factor=1
  # glibc's driver kills the test at TIMEOUT * TIMEOUTFACTOR seconds and
  # says "Timed out"; this outer limit only catches a driver that hangs.
  ext=$((2 * t_timeout * factor))
  ((ext >= 60)) || ext=60
  # Both runs see the same environment except LD_PRELOAD.  meson sets
  # MALLOC_PERTURB_ at random; glibc's own knobs are cleared so that the
  # glibc column is plain glibc malloc.
  envv=(env -u LD_PRELOAD -u MALLOC_PERTURB_ -u MALLOC_CHECK_ -u MALLOC_TRACE
        -u GLIBC_TUNABLES -u MALLOC_ARENA_MAX -u MALLOC_TOP_PAD_
        -u MALLOC_MMAP_THRESHOLD_ -u MALLOC_TRIM_THRESHOLD_ LC_ALL=C)
  [[ $alloc == strata ]] && envv+=("LD_PRELOAD=$STRATA_SO")
  log="$LOGS/$t.$alloc.log"
  t0=$(date +%s%N)
  set +e
  (cd "$OBJ/run" && exec timeout -k 10 "$ext" "${envv[@]}" "$OBJ/tests/$t") \
    >"$log" 2>&1 </dev/null
  rc=$?
  set -e
  t1=$(date +%s%N)
  if ((rc == 0)); then res=PASS
  elif ((rc == 77)); then res=UNSUPPORTED
  elif ((rc == 124 || rc == 137)); then res=TIMEOUT
  elif grep -q '^Timed out: killed the child process' "$log"; then res=TIMEOUT
  else res=FAIL
  fi
  printf '%s %d %d.%01d\n' "$res" "$rc" $(((t1 - t0) / 1000000000)) \
    $((((t1 - t0) / 100000000) % 10)) >"$RESULTS/$t.$alloc"
  exit 0
fi

# ---------------------------------------------------------------------------
usage() { echo "usage: $0 LIBSTRATA_SO [WORKDIR]" >&2; exit 2; }
die() { echo "glibc-tests: error: $*" >&2; exit 2; }
skip() { echo "glibc-tests: SKIP: $*" >&2; exit 77; }
note() { echo "glibc-tests: $*"; }

(($# >= 1 && $# <= 2)) || usage
[[ -f $1 ]] || die "$1: no such file (build Strata first: ninja -C build)"
STRATA_SO=$(realpath "$1")
T_START=$(date +%s)

# Default scratch directory: beside libstrata.so when that lives in a meson
# build directory, else under /tmp.
if (($# == 2)); then
  WORKDIR=$2
elif [[ -f $(dirname "$STRATA_SO")/build.ninja ]]; then
  WORKDIR=$(dirname "$STRATA_SO")/glibc-tests
else
  WORKDIR=/tmp/strata-glibc-tests-$(id -u)
fi
mkdir -p "$WORKDIR"
WORKDIR=$(realpath "$WORKDIR")
[[ $WORKDIR =~ ^[A-Za-z0-9_./+-]+$ ]] ||
  die "WORKDIR '$WORKDIR' has characters ninja cannot take; pass another"
[[ $HERE =~ ^[A-Za-z0-9_./+-]+$ ]] ||
  die "the checkout's path '$HERE' has characters ninja cannot take"

CC=${CC:-gcc}
NINJA=${NINJA:-ninja}
JOBS=${CI_JOBS:-$(nproc 2>/dev/null || echo 2)}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || JOBS=2
command -v "$CC" >/dev/null || die "no C compiler ($CC)"
command -v "$NINJA" >/dev/null || die "ninja not found (set NINJA=)"
command -v timeout >/dev/null || die "timeout (coreutils) not found"

# --- 1. glibc's source ------------------------------------------------------
TARBALL=${GLIBC_TARBALL:-/usr/src/glibc/glibc-$GLIBC_VERSION.tar.xz}
if [[ ! -f $TARBALL || -z $(command -v xz) ]]; then
  if [[ ${STRATA_GLIBC_NO_INSTALL:-0} != 1 && $(id -u) == 0 ]] &&
     command -v apt-get >/dev/null; then
    note "$TARBALL or xz missing: apt-get install -y glibc-source xz-utils"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y glibc-source xz-utils >&2 ||
      { apt-get update >&2 && apt-get install -y glibc-source xz-utils >&2; } ||
      true
  fi
fi
if [[ ! -f $TARBALL ]]; then
  others=(/usr/src/glibc/glibc-*.tar.xz)
  other=${others[0]}
  [[ -n ${GLIBC_TARBALL:-} || ! -f $other ]] || skip "$TARBALL not found; there is $other, but this" \
    "runner is written for glibc $GLIBC_VERSION (set GLIBC_TARBALL to try it)"
  skip "$TARBALL not found and package glibc-source could not be" \
    "installed (needs root and apt-get; or set GLIBC_TARBALL)"
fi
command -v xz >/dev/null || skip "xz not found: cannot unpack $TARBALL"
TOP=$(basename "$TARBALL" .tar.xz)        # glibc-2.36
installed=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}') || true
[[ $TOP == "glibc-$installed" ]] ||
  note "warning: tests from $TOP, installed glibc is ${installed:-unknown}"

exec 9>"$WORKDIR/.lock"
flock 9 || die "cannot lock $WORKDIR"

SRC=$WORKDIR/src
# Only what the malloc tests need: malloc/ (tests and the dynarray,
# scratch_buffer and alloc_buffer code some of them test), support/ (the
# test driver), the old test-skeleton.c and a few internal headers.
INC_HEADERS=(include/libc-diag.h include/array_length.h include/intprops.h
  include/libc-pointer-arith.h include/scratch_buffer.h
  include/alloc_buffer.h malloc/dynarray.h
  sysdeps/generic/malloc-size.h sysdeps/generic/malloc-alignment.h)
MEMBERS=(malloc support test-skeleton.c)
for h in "${INC_HEADERS[@]}"; do [[ $h == malloc/* ]] || MEMBERS+=("$h"); done
stamp="$(realpath "$TARBALL") $(stat -c '%s %Y' "$TARBALL") ${MEMBERS[*]}"
t0=$(date +%s)
if [[ -f $SRC/.extracted && $(cat "$SRC/.extracted") == "$stamp" ]]; then
  note "reusing extraction in $SRC"
else
  note "extracting $TOP/{malloc,support,...} from $TARBALL into $SRC"
  rm -rf "$SRC" "$SRC.tmp"
  mkdir -p "$SRC.tmp"
  tar -xJf "$TARBALL" -C "$SRC.tmp" --strip-components=1 \
    "${MEMBERS[@]/#/$TOP/}" ||
    die "cannot unpack ${MEMBERS[*]} from $TARBALL"
  echo "$stamp" >"$SRC.tmp/.extracted"
  mv "$SRC.tmp" "$SRC"
fi
T_EXTRACT=$(($(date +%s) - t0))

# --- 2. test list -------------------------------------------------------------
# Every name assigned to tests, tests-internal, tests-static or test-srcs in
# malloc/Makefile, whatever the ifeq around it; exclude.txt takes some out.
mapfile -t ALL_TESTS < <(
  sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$SRC/malloc/Makefile" |
    sed -n -E 's/^(tests|tests-internal|tests-static|test-srcs)[[:space:]]*[:+]?=(.*)$/\2/p' |
    tr -s '[:space:]' '\n' | grep -E '^[A-Za-z0-9_-]+$' | sort -u)
((${#ALL_TESTS[@]} > 20)) || die "could not read the test list of $SRC/malloc/Makefile"

declare -A EXCL_REASON=()
EXCL_PATTERNS=()
while read -r pat reason; do
  [[ -z $pat || $pat == \#* ]] && continue
  EXCL_PATTERNS+=("$pat")
  EXCL_REASON[$pat]=$reason
done <"$HERE/exclude.txt"

TESTS=() EXCLUDED=()
for t in "${ALL_TESTS[@]}"; do
  ex=
  for pat in "${EXCL_PATTERNS[@]}"; do
    # shellcheck disable=SC2053  # patterns are globs on purpose
    if [[ $t == $pat ]]; then ex=$pat; break; fi
  done
  if [[ -n $ex ]]; then EXCLUDED+=("$t"); else TESTS+=("$t"); fi
done
for pat in "${EXCL_PATTERNS[@]}"; do
  [[ $pat == *'*'* ]] && continue
  printf '%s\n' "${ALL_TESTS[@]}" | grep -qxF "$pat" ||
    note "warning: exclude.txt names $pat, which malloc/Makefile does not list"
done

# --- 3. build (ninja: parallel, incremental, rebuilds when flags change) -----
OBJ=$WORKDIR/obj
mkdir -p "$OBJ/inc" "$OBJ/run" "$OBJ/tests"
for h in "${INC_HEADERS[@]}"; do ln -sfn "$SRC/$h" "$OBJ/inc/"; done

# The parts of glibc's support/ library that the malloc tests link against.
SUPPORT=(check ignore_stderr oom_error support-xstat
  support_capture_subprocess support_copy_file support_copy_file_range
  support_paths support_quote_blob support_record_failure
  support_shared_allocate support_subprocess support_test_compare_blob
  support_test_compare_failure support_test_main support_test_verify_impl
  temp_file write_message xasprintf xcalloc xchdir xclose xdup2 xfclose
  xfopen xfork xmalloc xmemstream xmmap xmunmap xopen xpipe xpoll
  xposix_spawn xposix_spawn_file_actions_addclose
  xposix_spawn_file_actions_adddup2 xpthread_barrier_destroy
  xpthread_barrier_init xpthread_barrier_wait xpthread_barrierattr_destroy
  xpthread_barrierattr_init xpthread_barrierattr_setpshared
  xpthread_check_return xpthread_create xpthread_join xpthread_kill xsignal
  xstrdup xsysconf xwaitpid)
# glibc-internal helpers that tst-dynarray*, tst-scratch_buffer and
# tst-alloc_buffer test; built from malloc/ like glibc does.
HELPERS=(dynarray_at_failure dynarray_emplace_enlarge dynarray_finalize
  dynarray_resize dynarray_resize_clear scratch_buffer_dupfree
  scratch_buffer_grow scratch_buffer_grow_preserve
  scratch_buffer_set_array_size alloc_buffer_alloc_array
  alloc_buffer_allocate alloc_buffer_copy_bytes alloc_buffer_copy_string
  alloc_buffer_create_failure)

{
  echo "# generated by $SELF"
  echo "builddir = $OBJ"
  echo "cc = $CC"
  # As glibc builds its tests (-std=gnu11 -O2 -g, Makeconfig), plus the
  # shim that stands in for config.h/libc-symbols.h.
  echo "cflags = -std=gnu11 -fgnu89-inline -O2 -g -Wall -Wno-unused -D_GNU_SOURCE -pthread -include $HERE/shim/glibc-shim.h -I$HERE/shim -I$OBJ/inc -I$SRC"
  echo "rule cc"
  echo "  command = \$cc -MD -MF \$out.d \$cflags \$extra -c \$in -o \$out"
  echo "  depfile = \$out.d"
  echo "  deps = gcc"
  echo "  description = CC \$out"
  echo "rule ar"
  echo "  command = rm -f \$out && ar rcs \$out \$in"
  echo "  description = AR \$out"
  echo "rule test"
  echo "  command = \$cc -MD -MF \$out.d \$cflags -DTEST_NO_MALLOPT \$in -o \$out \$libs"
  echo "  depfile = \$out.d"
  echo "  deps = gcc"
  echo "  description = TEST \$out"
  echo "rule probe"
  echo "  command = \$cc -O2 \$in -o \$out -ldl"
  for f in "${SUPPORT[@]}"; do
    # Per-file flags of support/Makefile (CFLAGS-x.c += -D_FILE_OFFSET_BITS=64
    # -D_TIME_BITS=64 and the like; support_paths' paths are set here).
    extra="-I$SRC/support $(sed -n -E "s/^CFLAGS-$f\.c[[:space:]]*\+?=[[:space:]]*([^\\\$\`]*)\$/\1/p" \
      "$SRC/support/Makefile" | tr '\n' ' ')"
    [[ $f == support_paths ]] && extra+=" -DSRCDIR_PATH=\\\"$SRC\\\" -DOBJDIR_PATH=\\\"$OBJ\\\" -DOBJDIR_ELF_LDSO_PATH=\\\"/unused/ld.so\\\" -DINSTDIR_PATH=\\\"/usr\\\" -DLIBDIR_PATH=\\\"/usr/lib\\\" -DBINDIR_PATH=\\\"/usr/bin\\\" -DSBINDIR_PATH=\\\"/usr/sbin\\\" -DSLIBDIR_PATH=\\\"/lib\\\" -DROOTSBINDIR_PATH=\\\"/sbin\\\" -DCOMPLOCALEDIR_PATH=\\\"/usr/lib/locale\\\""
    echo "build $OBJ/support/$f.o: cc $SRC/support/$f.c"
    echo "  extra = $extra"
  done
  echo "build $OBJ/libsupport.a: ar $(printf "$OBJ/support/%s.o " "${SUPPORT[@]}")"
  for f in "${HELPERS[@]}"; do
    echo "build $OBJ/helpers/$f.o: cc $SRC/malloc/$f.c"
    # The at-failure message ("Fatal glibc error: array index ...") that
    # tst-dynarray-at-fail expects is only printed under _LIBC.
    if [[ $f == dynarray_at_failure ]]; then echo "  extra = -DSTRATA_SHIM_LIBC"; fi
  done
  echo "build $OBJ/libhelpers.a: ar $(printf "$OBJ/helpers/%s.o " "${HELPERS[@]}")"
  for t in "${TESTS[@]}"; do
    [[ -f $SRC/malloc/$t.c ]] || continue
    echo "build $OBJ/tests/$t: test $SRC/malloc/$t.c | $OBJ/libhelpers.a $OBJ/libsupport.a"
    echo "  libs = $OBJ/libhelpers.a $OBJ/libsupport.a"
  done
  echo "build $OBJ/probe: probe $HERE/probe.c"
} >"$OBJ/build.ninja.new"
if ! cmp -s "$OBJ/build.ninja.new" "$OBJ/build.ninja"; then
  mv "$OBJ/build.ninja.new" "$OBJ/build.ninja"
else
  rm -f "$OBJ/build.ninja.new"
fi

note "building support/ and ${#TESTS[@]} tests with $CC, $JOBS jobs (log: $OBJ/build.log)"
t0=$(date +%s)
"$NINJA" -C "$OBJ" -j "$JOBS" -k 0 >"$OBJ/build.log" 2>&1 || true
T_BUILD=$(($(date +%s) - t0))
[[ -f $OBJ/libsupport.a && -f $OBJ/libhelpers.a && -x $OBJ/probe ]] || {
  tail -n 40 "$OBJ/build.log" >&2
  die "glibc's support library did not build (see $OBJ/build.log)"
}

# --- 4. is Strata really in place under LD_PRELOAD? --------------------------
probe_out=$(env LD_PRELOAD="$STRATA_SO" "$OBJ/probe" 2>&1) ||
  die "probe failed under LD_PRELOAD=$STRATA_SO: $probe_out"
while read -r lib; do
  [[ $(realpath "$lib" 2>/dev/null) == "$STRATA_SO" ]] ||
    die "under LD_PRELOAD=$STRATA_SO, malloc/free come from '$lib':"$'\n'"$probe_out"
done <<<"$probe_out"

# --- 5. run -------------------------------------------------------------------
LOGS=$WORKDIR/logs RESULTS=$WORKDIR/results
rm -rf "$LOGS" "$RESULTS"
mkdir -p "$LOGS" "$RESULTS"
export OBJ LOGS RESULTS STRATA_SO

declare -A TMO=()
jobs_list=()
for t in "${TESTS[@]}"; do
  [[ -x $OBJ/tests/$t ]] || continue
  to=$(sed -n -E 's/^#[[:space:]]*define[[:space:]]+TIMEOUT[[:space:]]+([0-9]+)[[:space:]]*$/\1/p' \
    "$SRC/malloc/$t.c" | head -n 1)
  TMO[$t]=${to:-20}    # DEFAULT_TIMEOUT of support/test-driver.h
  jobs_list+=("${TMO[$t]} $t strata" "${TMO[$t]} $t glibc")
done
note "running ${#jobs_list[@]} runs ($((${#jobs_list[@]} / 2)) tests x glibc, strata), $JOBS at a time"
t0=$(date +%s)
# Longest timeouts first, so that a hang overlaps with the short tests.
printf '%s\n' "${jobs_list[@]}" | sort -k1,1nr -s |
  xargs -P "$JOBS" -L 1 "$SELF" --run-one
T_RUN=$(($(date +%s) - t0))

# --- 6. report ----------------------------------------------------------------
REGRESS=() NOBUILD=() ODD=()
printf '\n%-32s %-12s %-12s\n' TEST GLIBC STRATA
printf '%-32s %-12s %-12s\n' ---- ----- ------
for t in "${TESTS[@]}"; do
  if [[ ! -x $OBJ/tests/$t ]]; then
    printf '%-32s %-12s %-12s  <- did not build\n' "$t" NOBUILD NOBUILD
    NOBUILD+=("$t")
    continue
  fi
  for a in glibc strata; do
    [[ -f $RESULTS/$t.$a ]] || echo "FAIL norun 0" >"$RESULTS/$t.$a"
  done
  read -r g _ <"$RESULTS/$t.glibc"
  read -r s _ <"$RESULTS/$t.strata"
  mark=
  if [[ $g == PASS && ($s == FAIL || $s == TIMEOUT) ]]; then
    mark="  <- REGRESSION"; REGRESS+=("$t")
  elif [[ $g != PASS && $g != UNSUPPORTED ]]; then
    mark="  <- fails under glibc too"; ODD+=("$t")
  elif [[ $g != "$s" ]]; then
    mark="  <- differs"
  fi
  printf '%-32s %-12s %-12s%s\n' "$t" "$g" "$s" "$mark"
done
echo
echo "not run (tests/glibc/exclude.txt):"
for t in "${EXCLUDED[@]}"; do
  for pat in "${EXCL_PATTERNS[@]}"; do
    # shellcheck disable=SC2053
    if [[ $t == $pat ]]; then printf '  %-30s %s\n' "$t" "${EXCL_REASON[$pat]}"; break; fi
  done
done
echo "  (variants *-malloc-check, *-mcheck, *-malloc-hugetlb1/2 and -static: not built)"
echo
T_TOTAL=$(($(date +%s) - T_START))
echo "time: ${T_TOTAL}s in all (extract ${T_EXTRACT}s, build ${T_BUILD}s, run ${T_RUN}s; $JOBS jobs); logs in $LOGS"

status=0
if ((${#ODD[@]})); then
  echo "note: fail under glibc itself (the runner or this machine is off): ${ODD[*]}"
fi
if ((${#NOBUILD[@]})); then
  echo "FAILED TO BUILD (see $OBJ/build.log): ${NOBUILD[*]}"
  status=1
fi
if ((${#REGRESS[@]})); then
  echo "PASS UNDER GLIBC BUT NOT UNDER STRATA (${#REGRESS[@]}):"
  for t in "${REGRESS[@]}"; do
    read -r s src ss <"$RESULTS/$t.strata"
    echo "  $t: $s (exit $src, ${ss}s) -- $LOGS/$t.strata.log:"
    tail -n 4 "$LOGS/$t.strata.log" | sed 's/^/      | /'
  done
  status=1
fi
((status == 0)) && echo "OK: every test that passes under glibc passes under Strata"
exit $status
