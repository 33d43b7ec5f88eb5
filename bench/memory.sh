#!/usr/bin/env bash
# usage: bench/memory.sh [path/to/libstrata.so]   (default build/libstrata.so)
#
# Memory benchmarks for the "lean memory" issue (bench/memory.c) under every
# allocator, as markdown tables.
#
# Builds bench/memory.c into $BUILD (default build-mem/) with gcc, then runs
# each mode (burst, burst-exit, frag, steady) under glibc (no preload),
# jemalloc, tcmalloc, mimalloc and Strata (the library given, by default the
# one `meson setup build && ninja -C build` makes), swapping the allocator
# with LD_PRELOAD (the list: bench/allocators.py).  A system allocator that
# is not installed is skipped with a message; a missing Strata library, or
# an allocator whose library does not serve the program's malloc, stops the
# script before any run.  Runs are interleaved (A B C D E A B C D E ...), ROUNDS
# times (default 3), and the tables quote medians.  Steady is also run under
# Strata with STRATA_OPTIONS=decay=3600000 (decay effectively off) and bg=0
# (no purge thread), to measure what decay costs.
#
# Environment:
#   ROUNDS=3          repetitions of every run
#   MODES="burst burst-exit frag steady"   the modes to run (and tabulate)
#   BUILD=build-mem   where the binary, raw results and logs go
#   STEADY_THREADS=4  STEADY_SECS=3   steady's threads and duration
#   RUN_TIMEOUT=300   seconds before one run is killed (and reported failed)
#
# Roughly 6 minutes with 3 rounds on an idle 2-core machine (estimate; 17
# minutes measured on one loaded by other jobs).  Raw lines and per-run logs:
# $BUILD/memory-results/ (replaced by each run).
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$repo/build-mem}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-burst burst-exit frag steady}
STEADY_THREADS=${STEADY_THREADS:-4}
STEADY_SECS=${STEADY_SECS:-3}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$repo/bench/lib.sh"
parse_args 1 "$@"
load_allocators "$repo/build" || exit 2
[ -n "${ARGS[0]:-}" ] && ALLOCATOR[strata]=${ARGS[0]}

say() { printf '==> %s\n' "$*" >&2; }

# ------------------------------------------------------------- build
mkdir -p "$BUILD" || exit 2
bin=$BUILD/memory
gcc -O2 -fno-builtin -pthread "$repo/bench/memory.c" -o "$bin" || { say "build failed"; exit 2; }

# ------------------------------------------------------------- allocators
# lib: name -> LD_PRELOAD value; empty means glibc's own malloc (no preload).
allocs=()
declare -A lib
for name in "${ALLOCATOR_NAMES[@]}"; do
  path=${ALLOCATOR[$name]}
  if [ "$name" != strata ] && [ -n "$path" ] && [ ! -f "$path" ]; then
    say "skipping $name: $path not found"
    continue
  fi
  require_malloc "$path" "$bin" || exit 2
  allocs+=("$name")
  lib[$name]=$path
done

# The steady runs add two Strata configurations (same library, options set).
steady_allocs=("${allocs[@]}" strata-nodecay strata-bg0)
declare -A opts=([strata]="")
lib[strata-nodecay]=${lib[strata]} opts[strata-nodecay]="decay=3600000"
lib[strata-bg0]=${lib[strata]} opts[strata-bg0]="bg=0"

for mode in $MODES; do
  case $mode in
    burst | burst-exit | frag | steady) ;;
    *) say "unknown mode in MODES: $mode (burst, burst-exit, frag, steady)"; exit 2 ;;
  esac
done

out=$BUILD/memory-results
rm -rf "$out" && mkdir -p "$out/logs" || exit 2
results=$out/results.txt   # one line per successful run: ALLOC MODE ROUND key=value...
failures=$out/failures.txt # one line per failed run
: >"$results" && : >"$failures"

# ------------------------------------------------------------- runs
# run ALLOC ROUND MODE [ARGS...]: one process; appends its result line (or
# a failure line: crash, timeout, no output).
run() {
  local name=$1 round=$2 mode=$3
  shift 3
  local log=$out/logs/$name.$mode.r$round.log
  local env_args=(env -u STRATA_OPTIONS -u LD_PRELOAD)
  [ -n "${lib[$name]}" ] && env_args+=("LD_PRELOAD=${lib[$name]}")
  [ -n "${opts[$name]:-}" ] && env_args+=("STRATA_OPTIONS=${opts[$name]}")
  timeout -k 10 "$RUN_TIMEOUT" "${env_args[@]}" "$bin" "$mode" "$@" >"$log" 2>&1
  local rc=$?
  local line
  line=$(grep -m1 "^$mode " "$log")
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    local why="exit status $rc"
    ((rc == 124 || rc == 137)) && why="timed out after ${RUN_TIMEOUT}s"
    ((rc > 128 && rc != 137)) && why="killed by signal $((rc - 128))"
    echo "$name $mode r$round: $why (see $log)" >>"$failures"
  else
    echo "$name ${line/ / $round }" >>"$results"
  fi
  printf '.' >&2
}

start=$(date +%s)
say "${#allocs[@]} allocators (${allocs[*]}), $ROUNDS rounds; raw results in $out"
for ((r = 1; r <= ROUNDS; r++)); do
  printf '==> round %d/%d ' "$r" "$ROUNDS" >&2
  for mode in $MODES; do
    case $mode in
      burst | burst-exit | frag) for a in "${allocs[@]}"; do run "$a" "$r" "$mode"; done ;;
      steady) for a in "${steady_allocs[@]}"; do run "$a" "$r" steady "$STEADY_THREADS" "$STEADY_SECS"; done ;;
    esac
  done
  printf ' %ds\n' "$(($(date +%s) - start))" >&2
done

# ------------------------------------------------------------- statistics
# values ALLOC MODE KEY: the KEY of every run of ALLOC in MODE, one a line.
values() {
  awk -v a="$1" -v m="$2" -v k="$3" '
    $1 == a && $2 == m { for (i = 4; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }
  ' "$results"
}
# median_of FORMAT: the median of the numbers on stdin (the mean of the two
# middle ones for an even count) printed with FORMAT, or "-" when there is
# none.
median_of() {
  sort -g | awk -v f="$1" '{ v[NR] = $1 }
    END { if (!NR) print "-"; else printf f "\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# median ALLOC MODE KEY: the median of values.
median() { values "$@" | median_of "%.10g"; }
# fmt SCALE FORMAT VALUE: VALUE / SCALE printed with FORMAT, "-" stays "-".
fmt() { [ "$3" = "-" ] && echo "-" || awk -v s="$1" -v f="$2" -v v="$3" 'BEGIN { printf f, v / s }'; }
mib() { fmt 1048576 "%.0f" "$1"; }
# pct_of ALLOC MODE KEY: median over runs of KEY / peak_rss, in percent.
pct_of() {
  awk -v a="$1" -v m="$2" -v k="$3" '
    $1 == a && $2 == m { x = ""; p = ""
      for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) x = kv[2]; if (kv[1] == "peak_rss") p = kv[2] }
      if (x != "" && p > 0) print 100 * x / p }' "$results" | median_of "%.1f"
}

# ------------------------------------------------------------- tables
echo
echo "## Memory benchmarks ($ROUNDS rounds, medians; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'))"
echo
echo "strata: ${lib[strata]}"

# wanted MODE: whether MODE is in $MODES.
wanted() { [[ " $MODES " == *" $1 "* ]]; }

# table_burst MODE
table_burst() {
  local mode=$1 a k v
  echo
  if [ "$mode" = burst ]; then
    echo "### burst: 1 GiB of 16..1024 B blocks over 4 threads, all freed; threads stay alive, idle"
  else
    echo "### burst-exit: the same, but the threads exit after freeing"
  fi
  echo
  echo "RSS after the last free, as % of the peak RSS (target: 1 s <= 5 %)."
  echo
  echo "| allocator | peak RSS MiB | 0 ms | 250 ms | 500 ms | 1 s | 2 s |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for a in "${allocs[@]}"; do
    printf '| %s | %s |' "$a" "$(mib "$(median "$a" "$mode" peak_rss)")"
    for k in rss_0ms rss_250ms rss_500ms rss_1000ms rss_2000ms; do
      v=$(pct_of "$a" "$mode" "$k")
      printf ' %s |' "$([ "$v" = - ] && echo - || echo "$v %")"
    done
    echo
  done
}

# table_frag
table_frag() {
  local a
  echo
  echo "### frag: ~512 MiB live, free a random 90 %, refill with other sizes, 3 rounds"
  echo
  echo "ratio = peak RSS / peak live bytes (lower is better; target: Strata <= best of the others)."
  echo "RSS values exclude the process's RSS before the first allocation."
  echo
  echo "| allocator | peak live MiB | peak RSS MiB | ratio | RSS after last 90 % free MiB | final RSS MiB | time s |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for a in "${allocs[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$a" \
      "$(mib "$(median "$a" frag peak_live)")" "$(mib "$(median "$a" frag peak_rss)")" \
      "$(fmt 1 "%.3f" "$(median "$a" frag ratio)")" \
      "$(mib "$(median "$a" frag rss_after_last_free)")" "$(mib "$(median "$a" frag final_rss)")" \
      "$(fmt 1 "%.1f" "$(median "$a" frag secs)")"
  done
}

# table_steady: also the ratios of the Strata configurations
table_steady() {
  local a k vals lo hi label
  echo
  echo "### steady: $STEADY_THREADS threads, window of 2048 blocks each (16 B..256 KiB), ${STEADY_SECS} s"
  echo
  echo "op = free + malloc (each new block written once per page). ops/s: wall-clock throughput;"
  echo "ops/CPU-s: ops per second of the process's CPU time (purge thread included), the"
  echo "steadier measure when other programs load the machine."
  echo
  echo "| allocator | ops/s (median) | min | max | ops/CPU-s (median) | min | max |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for a in "${steady_allocs[@]}"; do
    label=$a
    [ -n "${opts[$a]:-}" ] && label="$a (STRATA_OPTIONS=${opts[$a]})"
    printf '| %s |' "$label"
    for k in ops_per_s ops_per_cpu_s; do
      vals=$(values "$a" steady "$k" | sort -g)
      lo=$(head -n1 <<<"$vals") hi=$(tail -n1 <<<"$vals")
      printf ' %s | %s | %s |' "$(fmt 1e6 "%.3f M" "$(median "$a" steady "$k")")" \
        "$(fmt 1e6 "%.3f M" "${lo:--}")" "$(fmt 1e6 "%.3f M" "${hi:--}")"
    done
    echo
  done

  # ratio CONFIG KEY: CONFIG's KEY over decay-off's, from the runs of the
  # same round (adjacent in time, so less exposed to a machine whose load
  # drifts), then the median over the rounds.
  ratio() {
    awk -v x="$1" -v k="$2" '
      $2 == "steady" { for (i = 4; i <= NF; i++) if (index($i, k "=") == 1) v[$1 " " $3] = substr($i, length(k) + 2); r[$3] = 1 }
      END { for (n in r) if ((x " " n) in v && ("strata-nodecay " n) in v && v["strata-nodecay " n] > 0)
              print v[x " " n] / v["strata-nodecay " n] }' "$results" | median_of "%.3f"
  }
  echo
  echo "Strata relative to decay off (decay=3600000), median of per-round ratios (target: default >= 0.98):"
  echo
  echo "| configuration | ops/s ratio | ops/CPU-s ratio |"
  echo "|---|---:|---:|"
  echo "| default | $(ratio strata ops_per_s) | $(ratio strata ops_per_cpu_s) |"
  echo "| bg=0 | $(ratio strata-bg0 ops_per_s) | $(ratio strata-bg0 ops_per_cpu_s) |"
}

for mode in burst burst-exit; do wanted "$mode" && table_burst "$mode"; done
wanted frag && table_frag
wanted steady && table_steady

echo
if [ -s "$failures" ]; then
  echo "### failed runs"
  echo
  sed 's/^/- /' "$failures"
else
  echo "No run failed."
fi
echo
echo "Total time: $(($(date +%s) - start)) s. Raw results: $results"
