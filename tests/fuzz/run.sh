#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
#
# Build the libFuzzer target fuzz_api (the library sources compiled in, with
# -DSTRATA_NO_OVERRIDE, under ASan + UBSan) with clang and run it for SECONDS
# (default 120), starting from the seed corpus in tests/fuzz/corpus.
# Exit status: 0 when the time ran out without a finding; 1 on a crash, a
# failed check, a hang (-timeout) or memory growth (-rss_limit_mb), or when
# the build fails (never libFuzzer's own status: its default for a finding
# is 77, which meson reads as a skip). The crash file is kept and the
# command to replay it printed.
#
# Environment:
#   CC                 the compiler (default: clang, else clang-14)
#   STRATA_ROOT        fuzz the library sources of another checkout
#   FUZZ_WORK          working directory (binary, corpus copy, crash files);
#                      default: a new temporary directory, removed on success
#   STRATA_FUZZ_DEBUG  the library's debug level (default 2: misuse checks
#                      and internal asserts)
#   FUZZ_SANITIZE      sanitizers beside fuzzer (default "address,undefined")
#   FUZZ_CFLAGS        extra compiler flags, e.g. -DFUZZ_TRACE_MAPPED (print
#                      Strata's mapped/resident bytes every 200 inputs)
#
# Reproduce a crash:  FUZZ_WORK=/tmp/fz tests/fuzz/run.sh 0   (builds only)
#                     /tmp/fz/fuzz_api CRASH-FILE
set -euo pipefail

SECONDS_TO_RUN=${1:-120}
shift || true
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=${STRATA_ROOT:-$(cd -- "$HERE/../.." && pwd)}

CC=${CC:-}
if [[ -z "$CC" ]]; then
  for c in clang clang-14; do
    if command -v "$c" >/dev/null 2>&1; then CC=$c; break; fi
  done
fi
if [[ -z "$CC" ]]; then
  echo "fuzz: clang not found" >&2
  exit 1
fi

keep_work=1
if [[ -z "${FUZZ_WORK:-}" ]]; then
  FUZZ_WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-fuzz.XXXXXX")
  keep_work=0
fi
mkdir -p "$FUZZ_WORK/corpus" "$FUZZ_WORK/artifacts"

# ---- build ---------------------------------------------------------------------
# The same defines as meson.build's c_args, minus the override.
DEBUG=${STRATA_FUZZ_DEBUG:-2}
SAN=${FUZZ_SANITIZE:-address,undefined}
CFLAGS=(-std=gnu11 -O2 -g -fno-omit-frame-pointer
        "-fsanitize=fuzzer,$SAN" -fno-sanitize-recover=undefined
        -D_GNU_SOURCE "-DSTRATA_DEBUG=$DEBUG" -DSTRATA_STATS=1 -DSTRATA_NO_OVERRIDE
        -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc
        -ftls-model=initial-exec
        -I"$ROOT/include" -I"$ROOT/src")
# shellcheck disable=SC2206
CFLAGS+=(${FUZZ_CFLAGS:-})
echo "fuzz: building $FUZZ_WORK/fuzz_api with $CC (debug level $DEBUG, sanitizers $SAN)"
"$CC" "${CFLAGS[@]}" "$ROOT"/src/*.c "$HERE/fuzz_api.c" -lpthread -o "$FUZZ_WORK/fuzz_api"

if [[ "$SECONDS_TO_RUN" == 0 ]]; then
  echo "fuzz: built $FUZZ_WORK/fuzz_api (not run)"
  exit 0
fi

# ---- run -------------------------------------------------------------------------
# New inputs go to the working corpus; the seeds are read, never written.
# -rss_limit_mb: Strata's memory is capped by the harness (about 150 MiB
# live), so a process above 2 GiB means a leak in the allocator.
# -timeout: one input takes milliseconds; 30 s means a hang (a deadlock).
# -max_len 1536 / -len_control 0: inputs of up to 256 operations from the
# start (long sequences reach fragmented heaps; libFuzzer would otherwise
# grow the length limit slowly from the seeds' size).
# Leak detection is off: the harness allocates nothing on the sanitizer's
# heap, and Strata's own memory is invisible to LeakSanitizer (a leak there
# shows as RSS growth, caught by -rss_limit_mb).
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
set +e
"$FUZZ_WORK/fuzz_api" \
  -max_total_time="$SECONDS_TO_RUN" \
  -rss_limit_mb=2048 \
  -timeout=30 \
  -max_len=1536 \
  -len_control=0 \
  -print_final_stats=1 \
  -detect_leaks=0 \
  -artifact_prefix="$FUZZ_WORK/artifacts/" \
  "$@" \
  "$FUZZ_WORK/corpus" "$HERE/corpus"
rc=$?
set -e

if [[ $rc -ne 0 ]]; then
  echo "fuzz: FAILED (libFuzzer exit status $rc)"
  for f in "$FUZZ_WORK"/artifacts/*; do
    [[ -e "$f" ]] && echo "fuzz: reproduce with: $FUZZ_WORK/fuzz_api $f"
  done
  exit 1
fi
echo "fuzz: OK (${SECONDS_TO_RUN}s, no finding; corpus $(find "$FUZZ_WORK/corpus" -type f | wc -l) inputs)"
if [[ $keep_work -eq 0 ]]; then rm -rf -- "$FUZZ_WORK"; fi
exit 0
