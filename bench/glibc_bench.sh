#!/usr/bin/env bash
# usage: bench/glibc_bench.sh [--threads LIST] [--rounds N] [--duration S]
#                             [--allocators LIST] [--build DIR] [--out DIR]
#        bench/glibc_bench.sh --smoke
#
# glibc's own malloc benchmarks, bench-malloc-thread and bench-malloc-simple
# (glibc's benchtests/), under every allocator, as a markdown table.
#
# The programs are not in this repository: they are built at run time from
# the Debian package glibc-source (/usr/src/glibc/glibc-*.tar.xz; without it
# the script says `apt-get install glibc-source` and exits 2). Only the
# files they need are extracted, into build/glibc-bench/src/, and each is
# compiled standalone with gcc -O2 -pthread -fno-builtin-malloc
# -fno-builtin-free (so that every malloc and free reaches the preloaded
# allocator) into build/glibc-bench/:
#   -DUSE_CLOCK_GETTIME  times in nanoseconds from clock_gettime(MONOTONIC),
#                        as glibc's `make USE_CLOCK_GETTIME=1 bench-malloc`
#                        (otherwise x86's rdtsc ticks)
#   -D_ISOMAC            sysdeps/generic/hp-timing.h's public clock_gettime
#                        branch (not glibc's internal __clock_gettime64)
#   -I build/glibc-bench/shim: an empty _itoa.h, written by this script:
#                        hp-timing-common.h includes that glibc-internal
#                        header for HP_TIMING_PRINT, which these programs
#                        never use.
#
# Rows of the table:
#   glibc-thread/N  bench-malloc-thread N: N threads, each freeing and
#                   allocating blocks of 4 B..32 KiB (inverse-square sizes)
#                   at random slots of its own 1024-block working set until
#                   SIGALRM. Its own alarm is fixed at 10 s (no duration
#                   argument in glibc 2.36), so the script sends the
#                   SIGALRM itself after --duration seconds, once the
#                   program has installed its handler. Time: its
#                   time_per_iteration (thread-time ns per free+malloc).
#   glibc-simple    bench-malloc-simple (16-byte blocks): 200000
#                   malloc+free pairs in each of 12 scenarios (main
#                   thread before and after a thread exists, and in a
#                   thread; 25, 100, 400, 1600 blocks live). Time: the mean
#                   of its 12 figures (ns per malloc+free pair).
# Each cell: the median over rounds of that time, with its ratio to the
# row's best allocator, and the median peak RSS in MiB with its ratio to the
# row's lowest. Last row: the geometric mean of each allocator's ratios.
# Lower is better everywhere.
#
# Allocators: bench/allocators.py's list (glibc = no preload), each by
# LD_PRELOAD; one not installed is skipped with a message; a missing Strata
# library, or a library the programs' malloc does not bind to (bench/lib.sh's
# require_malloc), stops the script before any run. Runs are interleaved:
# each round runs every row under every allocator, the allocator order
# rotated by one each round.
#
# Peak RSS: the program's ru_maxrss (from wait4), as GNU time's %M reports
# it (/usr/bin/time; when not installed, a tiny C wrapper the script
# compiles into build/glibc-bench/). Each program runs as `/usr/bin/env
# [LD_PRELOAD=LIB] PROGRAM ARGS` under that measurer, as mimalloc-bench runs
# its programs. A python3 runner starts the measurer, sends the SIGALRM,
# and enforces RUN_TIMEOUT; it does not fork the program itself, because
# Linux carries the forking process's RSS high-water mark into the child's
# ru_maxrss across exec (every program would report python's ~10 MiB).
#
# Options:
#   --threads LIST     thread counts of bench-malloc-thread (default 1,2,4,8)
#   --rounds N         interleaved rounds (default 3)
#   --duration S       seconds of each bench-malloc-thread run, 0 < S <= 10
#                      (default 2; 10 = the program's own alarm)
#   --allocators LIST  a subset of bench/allocators.py's names (default all)
#   --build DIR        Strata's library is DIR/libstrata.so (default build)
#   --out DIR          where table.md, raw.txt and logs/ go (default
#                      bench/results/glibc-<timestamp>/)
#   --smoke            a quick check that everything runs: by default
#                      --duration 0.2 --threads 1,2 --rounds 1 --allocators
#                      glibc,strata --out build/glibc-bench/smoke (options
#                      given as well win); exits 0 when every run gave
#                      its figures
#   -h, --help         this text
# Environment: RUN_TIMEOUT=120 (seconds before one run is killed and
# reported failed), GLIBC_TARBALL (default /usr/src/glibc/glibc-*.tar.xz).
#
# Exit status: 0 all ran; 1 a run failed (the table is still printed, the
# failures listed under it); 2 bad usage, a missing package or library, a
# build failure, or a binding check failed.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$repo/bench/lib.sh"

threads='' rounds='' duration='' only='' out=''
build=$repo/build
smoke=0
RUN_TIMEOUT=${RUN_TIMEOUT:-120}

bad_usage() {
  echo "$0: $*" >&2
  usage >&2
  exit 2
}
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --smoke) smoke=1; shift; continue ;;
    --threads | --rounds | --duration | --allocators | --build | --out)
      (($# >= 2)) || bad_usage "$1 needs a value" ;;
    *) bad_usage "unknown option or argument $1" ;;
  esac
  case $1 in
    --threads) threads=$2 ;;
    --rounds) rounds=$2 ;;
    --duration) duration=$2 ;;
    --allocators) only=$2 ;;
    --build) build=$2 ;;
    --out) out=$2 ;;
  esac
  shift 2
done
build=$(realpath -m -- "$build")
work=$repo/build/glibc-bench
# Defaults; --smoke's are smaller (options given explicitly win).
if ((smoke)); then
  threads=${threads:-1,2} rounds=${rounds:-1} duration=${duration:-0.2}
  only=${only:-glibc,strata} out=${out:-$work/smoke}
fi
threads=${threads:-1,2,4,8} rounds=${rounds:-3} duration=${duration:-2}
out=${out:-$repo/bench/results/glibc-$(date +%Y%m%d-%H%M%S)}

[[ $threads =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || bad_usage "--threads: not a list of positive integers: $threads"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || bad_usage "--rounds: not a positive integer: $rounds"
if ! [[ $duration =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] ||
  ! awk -v d="$duration" 'BEGIN { exit !(d > 0 && d <= 10) }'; then
  bad_usage "--duration: not a number of seconds in (0, 10]: $duration"
fi

say() { printf '==> %s\n' "$*" >&2; }

# ------------------------------------------------------------- sources
shopt -s nullglob
tarballs=(/usr/src/glibc/glibc-*.tar.xz)
shopt -u nullglob
tarball=${GLIBC_TARBALL:-}
((${#tarballs[@]})) && tarball=${tarball:-${tarballs[-1]}}
if [[ -z "$tarball" || ! -f "$tarball" ]]; then
  echo "$0: glibc's source tarball (/usr/src/glibc/glibc-*.tar.xz) is missing:" \
    "apt-get install glibc-source" >&2
  exit 2
fi
command -v gcc >/dev/null || { echo "$0: gcc is missing: apt-get install gcc" >&2; exit 2; }
command -v python3 >/dev/null || { echo "$0: python3 is missing" >&2; exit 2; }

top=$(basename "$tarball" .tar.xz) # glibc-2.36
members=(benchtests/bench-malloc-thread.c benchtests/bench-malloc-simple.c
  benchtests/bench-timing.h benchtests/json-lib.h benchtests/json-lib.c
  sysdeps/generic/hp-timing.h sysdeps/generic/hp-timing-common.h)
src=$work/src/$top
mkdir -p "$work/src" "$work/shim"
stamp=$src/.extracted
if [[ ! -f $stamp || $tarball -nt $stamp ]]; then
  say "extracting ${#members[@]} files from $tarball"
  rm -rf -- "$src"
  tar -xJf "$tarball" -C "$work/src" "${members[@]/#/$top/}" ||
    { echo "$0: could not extract the benchmarks from $tarball" >&2; exit 2; }
  touch "$stamp"
fi
cat >"$work/shim/_itoa.h" <<'EOF'
/* Written by bench/glibc_bench.sh.  glibc's sysdeps/generic/hp-timing-common.h
   includes this glibc-internal header for its HP_TIMING_PRINT macro, which
   the malloc benchmarks never use, so nothing needs to be declared here.  */
EOF

# ------------------------------------------------------------- build
cflags=(-O2 -pthread -fno-builtin-malloc -fno-builtin-free
  -DUSE_CLOCK_GETTIME -D_ISOMAC
  -I"$work/shim" -I"$src" -I"$src/sysdeps/generic" -I"$src/benchtests")
declare -A bin=([thread]=$work/bench-malloc-thread [simple]=$work/bench-malloc-simple)
for p in thread simple; do
  gcc "${cflags[@]}" "$src/benchtests/bench-malloc-$p.c" "$src/benchtests/json-lib.c" \
    -o "${bin[$p]}" -lm ||
    { echo "$0: building bench-malloc-$p failed" >&2; exit 2; }
done

# ------------------------------------------------------------- allocators
load_allocators "$build" || exit 2
allocs=()
declare -A lib
wanted=("${ALLOCATOR_NAMES[@]}")
[[ -z $only ]] || IFS=, read -r -a wanted <<<"$only"
for name in "${wanted[@]}"; do
  [[ -v "ALLOCATOR[$name]" ]] ||
    bad_usage "--allocators: unknown allocator $name (bench/allocators.py: ${ALLOCATOR_NAMES[*]})"
  path=${ALLOCATOR[$name]}
  if [[ $name != strata && -n $path && ! -f $path ]]; then
    say "skipping $name: $path not found"
    continue
  fi
  for p in thread simple; do
    # Two arguments: each program prints its usage and exits at once.
    require_malloc "$path" "${bin[$p]}" x x || exit 2
  done
  allocs+=("$name")
  lib[$name]=$path
done
((${#allocs[@]})) || { echo "$0: no allocator to measure" >&2; exit 2; }

# ------------------------------------------------------------- runs
# Peak RSS: GNU time's %M (ru_maxrss from wait4) when /usr/bin/time is
# installed, else rss_wrapper, a tiny C program of ours that does the same.
# Not python3's os.wait4 on a child forked by python: Linux carries the
# forking process's resident high-water mark into the child's ru_maxrss
# across exec, so every program would report at least python's ~10 MiB.
# Either measurer forks the command `/usr/bin/env -u ... [LD_PRELOAD=LIB]
# PROGRAM ARGS` (as mimalloc-bench runs its programs), so the measurer
# itself runs without the preload.
if [[ -x /usr/bin/time && ${GLIBC_BENCH_NO_TIME:-0} != 1 ]]; then
  measure=(/usr/bin/time -f %M -o)
  rss_by="GNU time's %M"
else
  cat >"$work/rss_wrapper.c" <<'EOF'
/* Written by bench/glibc_bench.sh: rss_wrapper FILE COMMAND ARGS... runs
   COMMAND, writes its peak RSS (ru_maxrss from wait4, KiB) to FILE, as GNU
   time -f %M -o FILE does, and exits with its exit status (128 + the
   signal number if a signal ended it).  */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) return 126;
  pid_t pid = fork();
  if (pid == 0) {
    execvp(argv[2], argv + 2);
    _exit(127);
  }
  int status;
  struct rusage ru;
  if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return 126;
  FILE *f = fopen(argv[1], "w");
  if (!f || fprintf(f, "%ld\n", ru.ru_maxrss) < 0 || fclose(f)) return 126;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
EOF
  gcc -O2 -Wall "$work/rss_wrapper.c" -o "$work/rss_wrapper" ||
    { echo "$0: building rss_wrapper failed" >&2; exit 2; }
  measure=("$work/rss_wrapper")
  rss_by="wait4 (no /usr/bin/time: build/glibc-bench/rss_wrapper)"
fi

# The runner: python3 runner.py DURATION OUT ERR RSSFILE MEASURER... --
# COMMAND...: runs MEASURER... RSSFILE COMMAND..., stdout to OUT, stderr to
# ERR. With 0 < DURATION < 10, it sends SIGALRM to the benchmark (the
# measurer's child) after DURATION seconds, once /proc/PID/status shows the
# benchmark catches SIGALRM (bench-malloc-thread's own stop signal; its
# alarm is fixed at 10 s). Kills the measurer's process group after
# RUN_TIMEOUT seconds. Prints "status=S maxrss_kib=K": the measurer's exit
# status (the benchmark's; 128 + signal if killed) and the peak RSS.
cat >"$work/runner.py" <<'EOF'
# Written by bench/glibc_bench.sh (see there).
import os, signal, subprocess, sys, time

duration, out, err, rssfile = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sep = sys.argv.index("--")
cmd = sys.argv[5:sep] + [rssfile] + sys.argv[sep + 1:]
limit = float(os.environ.get("RUN_TIMEOUT", "120"))
env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "STRATA_OPTIONS")}

def children(ppid):
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == ppid:
                pids.append(int(d))
    return pids

def catches_sigalrm(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16) >> (signal.SIGALRM - 1) & 1
    except OSError:
        pass
    return 0

with open(os.devnull) as i, open(out, "w") as o, open(err, "w") as e:
    p = subprocess.Popen(cmd, stdin=i, stdout=o, stderr=e, env=env, start_new_session=True)
deadline = time.monotonic() + limit
if 0 < duration < 10:
    time.sleep(duration)
    while p.poll() is None and time.monotonic() < deadline:
        kids = [k for k in children(p.pid) if catches_sigalrm(k)]
        if kids:
            os.kill(kids[0], signal.SIGALRM)
            break
        time.sleep(0.001)
try:
    code = p.wait(max(deadline - time.monotonic(), 0.001))
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    sys.exit("killed after %g s" % limit)
try:
    with open(rssfile) as f:
        rss = int(f.read().split()[-1])  # GNU time writes a note first if it failed
except (OSError, ValueError, IndexError):
    sys.exit("no peak RSS in %s" % rssfile)
print("status=%d maxrss_kib=%d" % (code, rss))
EOF

# The parser: python3 parse.py KIND FILE: the time figure of KIND's JSON
# output (thread: time_per_iteration; simple: the mean of its 12 *_time
# figures) and the program's own max_rss, as "ns=T self_rss_kib=K".
cat >"$work/parse.py" <<'EOF'
# Written by bench/glibc_bench.sh (see there).
import json, sys

kind, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    r = json.load(f)["functions"]["malloc"][""]
if kind == "thread":
    if not r["iterations"] > 0:
        sys.exit("no iterations")
    ns = r["time_per_iteration"]
else:
    times = [v for k, v in r.items() if k.endswith("_time")]
    if len(times) != 12:
        sys.exit("%d *_time figures, not 12" % len(times))
    ns = sum(times) / len(times)
print("ns=%.6g self_rss_kib=%d" % (ns, r["max_rss"]))
EOF

rm -rf -- "$out/logs"
mkdir -p "$out/logs"
raw=$out/raw.txt       # one line a run: ALLOC ROW ROUND ns=T maxrss_kib=K self_rss_kib=K
failures=$out/failures.txt
: >"$raw"
: >"$failures"
IFS=, read -r -a nthreads <<<"$threads"
rows=()
for n in "${nthreads[@]}"; do rows+=("glibc-thread/$n"); done
rows+=(glibc-simple)

# run ALLOC ROW ROUND: one process; appends its result line to raw.txt, or
# a line to failures.txt.
run() {
  local name=$1 row=$2 round=$3 kind dur log why='' res='' fig=
  local -a args
  if [[ $row == glibc-simple ]]; then
    kind=simple args=() dur=0
  else
    kind=thread args=("${row#glibc-thread/}") dur=$duration
  fi
  log=$out/logs/$name.${row//\//-}.r$round
  local -a cmd=(/usr/bin/env -u LD_PRELOAD -u STRATA_OPTIONS)
  [[ -z ${lib[$name]} ]] || cmd+=("LD_PRELOAD=${lib[$name]}")
  if ! res=$(RUN_TIMEOUT=$RUN_TIMEOUT python3 "$work/runner.py" "$dur" "$log.json" "$log.err" \
    "$log.rss" "${measure[@]}" -- "${cmd[@]}" "${bin[$kind]}" "${args[@]}" 2>"$log.runner"); then
    why="runner: $(tail -n1 "$log.runner")"
  elif [[ $res != "status=0 "* ]]; then
    why="exit ${res%% *}"
  elif ! fig=$(python3 "$work/parse.py" "$kind" "$log.json" 2>>"$log.err"); then
    why="no figures in its output"
  fi
  if [[ -n $why ]]; then
    echo "$name $row round $round: $why (see $log.json, $log.err)" >>"$failures"
    printf 'x' >&2
  else
    echo "$name $row $round $fig ${res#* }" >>"$raw"
    printf '.' >&2
  fi
}

start=$(date +%s)
load_start=$(cut -d' ' -f1 /proc/loadavg)
say "${#allocs[@]} allocators (${allocs[*]}), rows ${rows[*]}, $rounds rounds," \
  "${duration}s a thread run; raw results in $out"
for ((r = 1; r <= rounds; r++)); do
  printf '==> round %d/%d ' "$r" "$rounds" >&2
  for row in "${rows[@]}"; do
    for ((i = 0; i < ${#allocs[@]}; i++)); do
      run "${allocs[(i + r - 1) % ${#allocs[@]}]}" "$row" "$r"
    done
  done
  printf ' %ds\n' "$(($(date +%s) - start))" >&2
done

# ------------------------------------------------------------- table
strata_rev=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)
{
  echo "## glibc's malloc benchmarks ($top, Debian glibc-source)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $rounds interleaved rounds, medians;" \
    "bench-malloc-thread ${duration} s a run; peak RSS by $rss_by." \
    "Strata: ${lib[strata]:-not measured}" \
    "(repository at $strata_rev). 1-minute load average: $load_start at the" \
    "start, $(cut -d' ' -f1 /proc/loadavg) at the end."
  echo
  python3 - "$raw" "${rows[*]}" "${allocs[*]}" <<'EOF'
import math, statistics, sys

raw, rows, allocs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
vals = {}
for line in open(raw):
    a, row, _, *kv = line.split()
    d = dict(x.split("=") for x in kv)
    vals.setdefault((a, row), []).append((float(d["ns"]), int(d["maxrss_kib"]) / 1024))

def med(a, row, i):
    v = [x[i] for x in vals.get((a, row), [])]
    return statistics.median(v) if v else None

print("Time: ns per iteration (thread: free+malloc, thread-time; simple: malloc+free pair),")
print("x = ratio to the row's fastest. RSS: peak resident MiB, x = ratio to the row's lowest.")
print()
print("| row | " + " | ".join("%s ns | %s RSS MiB" % (a, a) for a in allocs) + " |")
print("|---|" + "---:|---:|" * len(allocs))
ratios = {a: ([], []) for a in allocs}
for row in rows:
    cells = []
    best = [min((m for m in (med(a, row, i) for a in allocs) if m is not None), default=None)
            for i in (0, 1)]
    for a in allocs:
        for i, fmt in ((0, "%.1f"), (1, "%.1f")):
            m = med(a, row, i)
            if m is None or not best[i]:
                cells.append("-")
                continue
            ratios[a][i].append(m / best[i])
            cells.append((fmt + " (%.2fx)") % (m, m / best[i]))
    print("| %s | %s |" % (row, " | ".join(cells)))

def gmean(v):
    return "%.2fx" % math.exp(sum(map(math.log, v)) / len(v)) if v else "-"

print("| geometric mean of ratios | " +
      " | ".join("%s | %s" % (gmean(ratios[a][0]), gmean(ratios[a][1])) for a in allocs) + " |")
EOF
  echo
  if [[ -s $failures ]]; then
    echo "Failed runs:"
    echo
    sed 's/^/- /' "$failures"
  else
    echo "No run failed."
  fi
} | tee "$out/table.md"
say "$(($(date +%s) - start)) s; table: $out/table.md"
[[ ! -s $failures ]]
