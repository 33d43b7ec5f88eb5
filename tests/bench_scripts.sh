#!/usr/bin/env bash
# tests/bench_scripts.sh - the benchmark scripts cannot mislead: each answers
# --help and -h with its usage (exit 0) and an unknown option with exit 2,
# and a script given a library that is not there, or one that serves no
# malloc, fails with a message before printing any result.
#
# usage: tests/bench_scripts.sh   (meson test --suite bench runs it)
set -uo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"                  # libc_path
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-scripts.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
FAILED=0

fail() { echo "FAIL: $*"; FAILED=1; }

# expect RC PATTERN WHAT COMMAND...: COMMAND exits with RC and its output
# (stdout and stderr) matches the extended regex PATTERN.
expect() {
  local want=$1 pattern=$2 what=$3 rc
  shift 3
  "$@" >"$TMP/out" 2>&1
  rc=$?
  if [[ $rc -ne $want ]]; then
    fail "$what: exit $rc, not $want"
  elif ! grep -qE -- "$pattern" "$TMP/out"; then
    fail "$what: output does not match /$pattern/"
  else
    echo "ok: $what"
    return 0
  fi
  sed 's/^/    /' "$TMP/out"
  return 1
}

SCRIPTS=(bench/memory.sh bench/servers.sh bench/redis_frag.sh bench/compare.py
         bench/allocators.py bench/charts.py bench/traces.sh bench/glibc_bench.sh)
for s in "${SCRIPTS[@]}"; do
  for h in --help -h; do
    expect 0 '^usage:' "$s $h" "$ROOT/$s" "$h"
  done
  expect 2 'usage:' "$s --bogus-option" "$ROOT/$s" --bogus-option
done

# A library that does not exist, and one that exists but exports no malloc
# (libm): the dynamic linker only warns about the first, and runs the
# program on its own malloc with either, so the scripts must refuse both.
LIBM=$(dirname "$(libc_path)")/libm.so.6
# Tiny workloads, so that a script that wrongly goes on to measure fails
# the test in seconds rather than running a full benchmark.
export ROUNDS=1 MODES=steady STEADY_SECS=0.1 KEYS=100
for lib in "$TMP/no-such-lib.so" "$LIBM"; do
  # memory.sh checks with its own program, so it needs no server.
  expect 2 "memory's malloc binds|no such library" "memory.sh $lib" \
    env BUILD="$TMP/mem" "$ROOT/bench/memory.sh" "$lib" &&
    if grep -q '^|' "$TMP/out"; then fail "memory.sh $lib printed a result line"; fi
  if command -v redis-server >/dev/null; then
    expect 1 "redis-server's malloc binds|no such library" "redis_frag.sh $lib" \
      "$ROOT/bench/redis_frag.sh" "$lib" &&
      if grep -q '^|' "$TMP/out"; then fail "redis_frag.sh $lib printed a result line"; fi
  fi
done
if ! command -v redis-server >/dev/null; then
  echo "note: redis-server not installed: redis_frag.sh's check tested through memory.sh only"
fi
exit "$FAILED"
