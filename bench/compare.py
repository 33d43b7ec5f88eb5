#!/usr/bin/env python3
"""Compare malloc implementations on the Strata benchmark workloads.

Runs the same benchmark binary (build/bench/strata_bench) once per allocator,
swapping the allocator with LD_PRELOAD, with repetitions interleaved across
allocators (A B C D E A B C D E ...) so that a noisy machine hurts every
allocator alike; quotes medians.  Writes, under bench/results/<timestamp>/
(also reachable as bench/results/latest):

    raw/<alloc>.r<N>.<run>.json   Google Benchmark JSON of every process
    raw/<alloc>.r<N>.<run>.log    its console output (stdout + stderr)
    summary.json                  medians, samples and metadata
    table.md                      throughput and memory tables
    charts/*.png                  throughput vs threads; memory per allocator

With --replay FILE... it instead replays traces with strata-trace
(build/bench/strata-trace, or --trace-tool) under each allocator, in the
same interleaved rounds: rows replay/<trace name>, throughput in replayed
operations per second, and their peak RSS.

With --models [NAMES] it instead runs the model programs of the
mimalloc-bench programs (build/bench/models/NAME, bench/models/) as
processes of their own under each allocator, in the same interleaved
rounds: rows model/<name> with their thread count, the program's own time
in seconds (lower is better) and the process's peak RSS (VmHWM, as the
program reports it).

With --callgrind it instead counts instructions per malloc/free pair under
valgrind --tool=callgrind (build/bench/strata_callgrind) and writes
callgrind.md / callgrind.json.

Standard library only; charts need matplotlib (Debian: python3-matplotlib)
or gnuplot, and are skipped with a message when neither is available.

Usage: bench/compare.py [--full] [--callgrind] [name=path.so[?STRATA_OPTIONS] ...] [options]
       bench/compare.py [name=path.so ...] [options] --replay TRACE...
       bench/compare.py [name=path.so ...] [options] --models [NAME,...]
See --help and docs/benchmarks.md.
"""

import argparse
import datetime
import functools
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

from allocators import allocators

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

PROFILES = {
    # About 3 minutes for 5 allocators on a 2-core machine.
    "quick": {"rounds": 3, "min_time": 0.01, "threads": "1,2,8", "timeout": 900,
              "stall_timeout": 60, "model_threads": "2,8"},
    # Careful runs: every thread count, longer runs, more repetitions.
    "full": {"rounds": 5, "min_time": 0.2, "threads": "1,2,4,8,16", "timeout": 3600,
             "stall_timeout": 300, "model_threads": "1,2,4,8,16"},
}

QUICK_NOTE = ("Quick profile: rough numbers. On a loaded machine the rounds of one "
              "cell spread 3-5x; for careful numbers use --full, or more --rounds "
              "and a longer --min-time.")

MEMORY_RE = re.compile(r"^memory(/|$)")
# Significance level of the rank test that tells a difference from noise, as
# in Google Benchmark's tools/compare.py.
ALPHA = 0.05
MAX_FAILURES = 8  # per allocator, round and process kind, before giving up
CALLGRIND_ITERS = {"pair": 200000, "batch": 200}  # 200k pairs each
# The model programs (bench/models/, built into BUILD/bench/models/) and
# the thread counts each runs at: None for those of --threads; malloc-large
# models a single-threaded program, start a program that mallocs once.
MODELS = {
    "larson": None, "cache-scratch": None, "rptest": None, "mstress": None,
    "alloc-test": None, "glibc-thread": None, "malloc-large": [1], "xmalloc-test": None,
    "thread-churn": None, "start": [1],
}
# Models whose time is only a process start: in the peak-RSS table only.
MODELS_RSS_ONLY = {"start"}
MODEL_RE = re.compile(r"^model/")


# ---------------------------------------------------------------- helpers

def log(msg=""):
    print(msg, flush=True)


def warn(msg):
    print("compare.py: " + msg, file=sys.stderr, flush=True)


def fmt_duration(s):
    s = int(round(s))
    return "%dm%02ds" % (s // 60, s % 60) if s >= 60 else "%ds" % s


def fmt_rate(v):
    if v is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return "%.3g %s/s" % (v / div, unit)
    return "%.3g /s" % v


def fmt_num(v, digits=3):
    if v is None:
        return "-"
    if v >= 100:
        return "%.0f" % v
    return "%.*g" % (digits, v)


@functools.lru_cache(maxsize=None)
def u_counts(m, n):
    """How many orderings of m + n distinct values give the first sample a
    Mann-Whitney U of u, for u = 0 .. m*n."""
    if m == 0 or n == 0:
        return (1,)
    # The largest value is in the first sample (it beats all n values of the
    # second: U grows by n) or in the second (U does not change).
    first, second = u_counts(m - 1, n), u_counts(m, n - 1)
    return tuple((first[u - n] if u >= n else 0) + (second[u] if u < len(second) else 0)
                 for u in range(m * n + 1))


def mann_whitney_p(xs, ys):
    """Two-sided p-value of the Mann-Whitney U test of xs against ys, from
    the exact distribution of U.  Ties get mid-ranks, which makes the
    p-value approximate; timings rarely tie."""
    m, n = len(xs), len(ys)
    pooled = sorted(xs + ys)
    rank, i = {}, 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j] == pooled[i]:
            j += 1
        rank[pooled[i]] = (i + 1 + j) / 2.0
        i = j
    u = sum(rank[x] for x in xs) - m * (m + 1) / 2.0
    u = max(u, m * n - u)
    tail = sum(u_counts(m, n)[math.ceil(u):])
    return min(1.0, 2.0 * tail / math.comb(m + n, m))


def u_test_min_p(m, n):
    """The smallest two-sided p-value samples of these sizes can reach:
    2 / C(m+n, m), when they do not overlap at all."""
    return 2.0 / math.comb(m + n, m)


def u_test_has_power(m, n):
    """Can samples of these sizes ever differ significantly?"""
    return u_test_min_p(m, n) < ALPHA


def spread(xs, mid):
    """Largest distance of a sample from the median, relative to it."""
    return max(abs(x - mid) for x in xs) / mid


def fmt_spread(s):
    return "" if s is None else " \u00b1%.0f%%" % (100 * s)


def is_throughput(row):
    """The memory workload's items per second time a fragmentation pattern
    that waits on page faults, not allocation speed; a model's figure is
    its time, in a table of its own."""
    return not MEMORY_RE.match(row["benchmark"]) and not MODEL_RE.match(row["benchmark"])


def throughput_geomeans(rows, allocs):
    """Each allocator's geometric mean of its ratios to the best of the row,
    over the throughput rows where every allocator has a number."""
    ratios = {a: [] for a in allocs}
    for r in filter(is_throughput, rows):
        vals = [r["items_per_second"].get(a) for a in allocs]
        if all(vals):
            best = max(vals)
            for a, v in zip(allocs, vals):
                ratios[a].append(v / best)
    return {a: statistics.geometric_mean(xs) if xs else None for a, xs in ratios.items()}


def lowest_ratio_geomeans(rows, allocs, value):
    """Each allocator's geometric mean of its ratios to the lowest of the
    row (1.00 = lowest; for times and memory, where lower is better), over
    the rows where every allocator has a value; value(row, alloc) gives it."""
    ratios = {a: [] for a in allocs}
    for r in rows:
        vals = [value(r, a) for a in allocs]
        if all(vals):
            best = min(vals)
            for a, v in zip(allocs, vals):
                ratios[a].append(v / best)
    return {a: statistics.geometric_mean(xs) if xs else None for a, xs in ratios.items()}


def split_name(name):
    """'batch/lifo/64/real_time/threads:8' -> ('batch/lifo/64', 8)."""
    m = re.search(r"/threads:(\d+)", name)
    threads = int(m.group(1)) if m else 1
    base = re.sub(r"/threads:\d+", "", name)
    base = re.sub(r"/(real_time|process_time|manual_time|iterations:\d+|"
                  r"min_time:[\d.]+|repeats:\d+)", "", base)
    return base, threads


def load_bench_json(path):
    """Google Benchmark JSON; salvages the runs of a process that died."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    # A crash leaves '... "benchmarks": [ {...}, {...' : cut after the last
    # complete run and close the document.
    cut = text.rfind("\n    }")
    while cut > 0:
        try:
            return json.loads(text[:cut + 6] + "\n  ]\n}")
        except ValueError:
            cut = text.rfind("\n    }", 0, cut)
    return None


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


class Progress:
    """One status line on a terminal, one line per process otherwise."""

    def __init__(self, total_benchmarks, total_procs):
        self.total = max(1, total_benchmarks)
        self.procs = total_procs
        self.done = 0
        self.procs_done = 0
        self.t0 = time.monotonic()
        self.tty = sys.stdout.isatty()
        self.label = ""

    def eta(self):
        el = time.monotonic() - self.t0
        if self.procs_done:
            left = el / self.procs_done * (self.procs - self.procs_done)
        elif self.done:
            left = el / self.done * (self.total - self.done)
        else:
            return "?"
        return fmt_duration(left)

    def line(self, extra=""):
        pct = 100.0 * self.done / self.total
        return "[%3.0f%%] %s %s  elapsed %s, ETA %s" % (
            pct, self.label, extra, fmt_duration(time.monotonic() - self.t0), self.eta())

    def start(self, label):
        self.label = label
        if self.tty:
            self._show(self.line())

    def bench_done(self, name):
        self.done += 1
        if self.tty:
            self._show(self.line(name))

    def proc_done(self, summary):
        self.procs_done += 1
        if self.tty:
            sys.stdout.write("\r\033[K")
        log(self.line("- " + summary))

    def _show(self, s):
        cols = shutil.get_terminal_size((100, 20)).columns
        sys.stdout.write("\r\033[K" + s[:cols - 1])
        sys.stdout.flush()


def run_process(cmd, env, stdout_log, known_names, progress, timeout, stall):
    """Runs cmd, streams its console output to stdout_log and counts the
    benchmarks it reports.  Kills it after `timeout` seconds in all, or
    after `stall` seconds without a benchmark finishing (a hang).
    Returns (exit code, wall seconds, max RSS in KiB, None or why it was
    killed, benchmarks seen)."""
    t0 = time.monotonic()
    state = {"last": t0, "killed": None, "done": False}
    with open(stdout_log, "w") as logf:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             universal_newlines=True, errors="replace")

        def watchdog():
            while not state["done"]:
                time.sleep(0.5)
                now = time.monotonic()
                why = None
                if now - t0 > timeout:
                    why = "timed out after %ds" % timeout
                elif now - state["last"] > stall:
                    why = "hung (no benchmark finished for %ds)" % stall
                if why and not state["done"]:
                    state["killed"] = why
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    return

        dog = threading.Thread(target=watchdog, daemon=True)
        dog.start()
        seen = 0
        for line in p.stdout:
            logf.write(line)
            tok = line.split(" ", 1)[0]
            if tok in known_names:
                seen += 1
                state["last"] = time.monotonic()
                progress.bench_done(split_name(tok)[0])
        p.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)
        state["done"] = True
        p.returncode = os.waitstatus_to_exitcode(status)
        if state["killed"]:
            logf.write("\n[compare.py: killed: %s]\n" % state["killed"])
    return p.returncode, time.monotonic() - t0, ru.ru_maxrss, state["killed"], seen


# ---------------------------------------------------------------- setup

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Compare allocators on the Strata benchmark workloads "
                    "(LD_PRELOAD swap, interleaved repetitions, medians).",
        epilog="Extra allocators: NAME=/path/to/lib.so (any number).  "
               "Profiles: quick (default, ~3 min) and --full.  "
               "See docs/benchmarks.md.")
    ap.add_argument("extra", nargs="*", metavar="NAME=PATH.so",
                    help="additional allocator to compare")
    ap.add_argument("--full", action="store_true", help="full profile (careful runs)")
    ap.add_argument("--callgrind", action="store_true",
                    help="instruction counts per malloc/free pair under callgrind")
    ap.add_argument("--build", default=os.path.join(REPO, "build"),
                    help="meson build directory (default: %(default)s)")
    ap.add_argument("--only", metavar="A,B",
                    help="comma-separated subset of allocator names to run")
    ap.add_argument("--rounds", type=int, help="interleaved repetitions per allocator")
    ap.add_argument("--min-time", type=float,
                    help="--benchmark_min_time in seconds (plain number, 1.7.1)")
    ap.add_argument("--threads", help="thread counts, e.g. 1,2,4,8,16")
    ap.add_argument("--filter", help="regex on benchmark names (Google Benchmark syntax)")
    ap.add_argument("--timeout", type=float, help="seconds allowed per process")
    ap.add_argument("--stall-timeout", type=float,
                    help="seconds without a benchmark finishing before a process "
                         "counts as hung and is killed")
    ap.add_argument("--out", help="results directory (default: bench/results/<timestamp>)")
    ap.add_argument("--replay", nargs="+", action="extend", metavar="FILE",
                    help="rank the allocators on these traces (strata-trace replay) "
                         "instead of the benchmark workloads")
    ap.add_argument("--models", nargs="?", const="all", metavar="NAME,...",
                    help="rank the allocators on the model programs of the mimalloc-bench "
                         "programs (all, or these: %s) instead of the benchmark workloads; "
                         "threads default to %s (--full: %s)" % (
                             ",".join(MODELS), PROFILES["quick"]["model_threads"],
                             PROFILES["full"]["model_threads"]))
    ap.add_argument("--model-scale", type=float, default=1.0, metavar="X",
                    help="multiply the work of every model program by X (default 1: "
                         "about 0.3-1.5 s a run at 2 threads)")
    ap.add_argument("--trace-tool", metavar="PATH",
                    help="the trace replay tool (default: BUILD/bench/strata-trace)")
    ap.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    ap.add_argument("--list", action="store_true",
                    help="show the allocators and whether they are installed, then exit")
    args = ap.parse_intermixed_args(argv)
    prof = PROFILES["full" if args.full else "quick"]
    args.profile = "full" if args.full else "quick"
    if args.models is not None:
        if args.threads is None:
            args.threads = prof["model_threads"]
        names = list(MODELS) if args.models == "all" else [
            m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in names if m not in MODELS]
        if unknown or not names:
            ap.error("--models: unknown model(s) %s; known: %s%s" % (
                ", ".join(unknown) or "(none given)", ", ".join(MODELS),
                " (an allocator NAME=PATH.so goes before --models, which takes the "
                "word after it as its list)" if any("=" in m for m in unknown) else ""))
        args.models = names
    if not args.model_scale > 0:
        ap.error("--model-scale must be > 0")
    for k in ("rounds", "min_time", "threads", "timeout", "stall_timeout"):
        if getattr(args, k) is None:
            setattr(args, k, prof[k])
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if not re.fullmatch(r"\d+(,\d+)*", args.threads):
        ap.error("--threads wants a list like 1,2,4")
    return args


def resolve_allocators(args):
    """[(name, path or None)] of the allocators present; messages for the
    others."""
    wanted = allocators(args.build)
    for spec in args.extra:
        if "=" not in spec:
            warn("ignoring %r: extra allocators are given as name=path.so" % spec)
            continue
        name, path = spec.split("=", 1)
        path, _, opts = path.partition("?")     # name=lib.so?k=v,...: STRATA_OPTIONS
        path = os.path.abspath(path) + ("?" + opts if opts else "")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            warn("ignoring %r: allocator names are letters, digits and _.+-" % spec)
            continue
        wanted = [w for w in wanted if w[0] != name]
        wanted.append((name, path, "check the path"))
    if args.only:
        sel = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in sel if s not in [w[0] for w in wanted]]
        for s in unknown:
            warn("--only: unknown allocator %r" % s)
        wanted = [w for w in wanted if w[0] in sel]
    present, missing = [], []
    for name, path, hint in wanted:
        if path is None or os.path.isfile(path.partition("?")[0]):
            present.append((name, path))
        else:
            missing.append((name, path, hint))
    return present, missing


def list_benchmarks(binary, threads, filt):
    cmd = [binary, "--benchmark_list_tests", "--threads=" + threads]
    if filt:
        cmd.append("--benchmark_filter=" + filt)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), r.stderr))
    return [l.strip() for l in r.stdout.splitlines() if l.strip()]


def starts_up(binary, threads, path):
    """Can the benchmark binary start (and list its benchmarks) under this
    preload?"""
    try:
        r = subprocess.run([binary, "--benchmark_list_tests", "--threads=" + threads],
                           env=preload_env(path), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        return r.returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


def exact_filter(names):
    for n in names:
        if not re.fullmatch(r"[\w/:.\-]+", n):
            raise RuntimeError("unexpected benchmark name %r" % n)
    return "^(" + "|".join(re.escape(n).replace("\\:", ":").replace("\\/", "/")
                           for n in names) + ")$"


def machine_info():
    info = {"nproc": os.cpu_count(), "uname": " ".join(os.uname())}
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    info["cpu"] = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["git"] = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     universal_newlines=True).stdout.strip() or None
    except OSError:
        pass
    return info


def make_outdir(args):
    if args.out:
        out = os.path.abspath(args.out)
    else:
        base = os.path.join(HERE, "results")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = os.path.join(base, stamp)
        n = 1
        while os.path.exists(out):
            n += 1
            out = os.path.join(base, "%s-%d" % (stamp, n))
    os.makedirs(os.path.join(out, "raw"), exist_ok=True)
    if not args.out:
        latest = os.path.join(os.path.dirname(out), "latest")
        try:
            if os.path.islink(latest) or os.path.exists(latest):
                os.remove(latest)
            os.symlink(os.path.basename(out), latest)
        except OSError as e:
            warn("could not update %s: %s" % (latest, e))
    return out


def preload_env(path):
    """The environment for one allocator: LD_PRELOAD, and STRATA_OPTIONS
    when the path carries them (lib.so?key=value,...)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("STRATA_OPTIONS", None)
    if path:
        path, _, opts = path.partition("?")
        env["LD_PRELOAD"] = path
        if opts:
            env["STRATA_OPTIONS"] = opts
    return env


def check_provider(name, path, provider):
    """None if the expected allocator served malloc, else a message."""
    if provider is None:
        return "could not tell which allocator served malloc"
    if path is None:
        if re.search(r"/libc[.-]", provider):
            return None
        return "expected the C library's malloc, got %s" % provider
    if same_file(provider, path.partition("?")[0]):
        return None
    return ("LD_PRELOAD=%s did not take effect: malloc came from %s "
            "(wrong architecture, or no malloc exported?)" % (path, provider))


# ---------------------------------------------------------------- benchmark mode

def run_benchmarks(args, allocs, missing, out):
    """The benchmark workloads and the traces of --replay, in interleaved
    rounds. With traces and a --filter that keeps only them, the benchmark
    binary is not needed."""
    loaded = load_traces(args)
    if loaded is None:
        return 2
    traces, tool = loaded
    models = load_models(args)
    if models is None:
        return 2
    binary = os.path.join(os.path.abspath(args.build), "bench", "strata_bench")
    names = []
    if args.models is not None:
        pass    # the model programs instead of the benchmark workloads
    elif os.access(binary, os.X_OK):
        try:
            names = list_benchmarks(binary, args.threads, args.filter)
        except RuntimeError as e:
            warn(str(e))
            return 2
    elif not traces:
        warn("%s not found: build it first (ninja -C %s, or ./ci/bench)" % (binary, args.build))
        return 2
    jobs = [replay_job(name, tool, trace) for name, trace in traces.items()] + \
        [model_job(name, cmd) for name, cmd in models.items()]
    if not names and not jobs:
        warn("no benchmark matches --filter %r" % args.filter)
        return 2
    mem_names = [n for n in names if MEMORY_RE.match(n)]
    main_names = [n for n in names if not MEMORY_RE.match(n)]
    # The memory workload runs in a process of its own, so its RSS / VmHWM
    # readings are not polluted by what ran before.
    runs = [(kind, ns) for kind, ns in (("main", main_names), ("memory", mem_names)) if ns]

    log("Strata allocator comparison: %s profile, %d round(s), min_time %gs, threads %s" %
        (args.profile, args.rounds, args.min_time, args.threads))
    if args.profile == "quick":
        log("  " + QUICK_NOTE)
    log("  binary:     %s" % binary)
    log("  allocators: %s" % ", ".join("%s (%s)" % (n, p or "no preload") for n, p in allocs))
    for n, p, hint in missing:
        log("  skipped:    %s: %s not found (%s)" % (n, p, hint))
    if names:
        log("  workloads:  %d benchmarks per allocator and round" % len(names))
    if traces:
        log("  traces:     %s (replayed by %s)" % (", ".join(traces), tool))
    if models:
        log("  models:     %s (threads %s; %s)" % (
            ", ".join(args.models), args.threads, model_dir(args)))
    log("  results:    %s" % out)
    log()

    total = (len(names) + len(jobs)) * len(allocs) * args.rounds
    progress = Progress(total, len(allocs) * args.rounds * (len(runs) + len(jobs)))
    samples = {a: {} for a, _ in allocs}     # alloc -> bench name -> [entry]
    maxrss = {a: {} for a, _ in allocs}      # alloc -> run kind -> [KiB]
    problems = {a: [] for a, _ in allocs}
    failures = {a: {} for a, _ in allocs}    # alloc -> bench name -> "crashed" ...
    providers = {a: None for a, _ in allocs}
    context = None
    known = set(names)
    t_start = time.monotonic()

    for rnd in range(1, args.rounds + 1):
        for name, path in allocs:
            for kind, ns in runs:
                progress.start("round %d/%d %-9s %-6s" % (rnd, args.rounds, name, kind))
                remaining, part, got, t_proc = list(ns), 0, 0, time.monotonic()
                statuses, rss_parts, nfail = [], [], 0
                # A process that crashes or hangs loses only the benchmark it
                # was running: the runner starts another for the ones after.
                while remaining:
                    part += 1
                    tag = "%s.r%d.%s%s" % (name, rnd, kind, "" if part == 1 else ".part%d" % part)
                    jpath = os.path.join(out, "raw", tag + ".json")
                    cmd = [binary, "--threads=" + args.threads,
                           "--benchmark_filter=" + exact_filter(remaining),
                           "--benchmark_min_time=%g" % args.min_time,
                           "--benchmark_repetitions=1",
                           "--benchmark_color=false",
                           "--benchmark_out=" + jpath, "--benchmark_out_format=json"]
                    rc, wall, rss_kib, killed, seen = run_process(
                        cmd, preload_env(path), os.path.join(out, "raw", tag + ".log"),
                        known, progress, args.timeout, args.stall_timeout)
                    rss_parts.append(rss_kib / 1024.0)
                    data = load_bench_json(jpath)
                    completed = set()
                    if data:
                        context = context or data.get("context")
                        prov = data.get("context", {}).get("malloc_provider")
                        note_provider(name, path, prov, providers, problems)
                        for b in data.get("benchmarks", []):
                            if b.get("run_type", "iteration") != "iteration":
                                continue
                            samples[name].setdefault(b["name"], []).append(b)
                            completed.add(b["name"])
                            got += 1
                            if b.get("error_occurred"):
                                problems[name].append("round %d: %s: %s" % (
                                    rnd, b["name"], b.get("error_message")))
                    status, short = outcome(rc, killed)
                    statuses.append(status)
                    todo = [n for n in remaining if n not in completed]
                    if not todo:
                        if status != "ok":
                            problems[name].append("round %d %s run: %s (see raw/%s.log)" %
                                                  (rnd, kind, status, tag))
                        break
                    # The first benchmark that did not complete is the culprit,
                    # unless the process cannot even start (checked by listing
                    # the benchmarks under the same preload), or too many
                    # benchmarks fail (each hang costs the stall timeout).
                    culprit = todo[0]
                    nfail += 1
                    log_path = os.path.join(out, "raw", tag + ".log")
                    why_stop = None
                    if not completed and not starts_up(binary, args.threads, path):
                        why_stop = "the benchmark process does not even start"
                    elif nfail > MAX_FAILURES:
                        why_stop = "more than %d benchmarks failed" % MAX_FAILURES
                    if why_stop:
                        for n in todo:
                            failures[name].setdefault(n, short or "failed")
                        progress.done += len(todo)
                        problems[name].append("round %d %s run: %s: %s; %d benchmarks not run "
                                              "(see raw/%s.log)" % (rnd, kind, status, why_stop,
                                                                    len(todo), tag))
                        warn("%s: %s: %s; giving up on this round (log: %s)" %
                             (name, status, why_stop, log_path))
                        break
                    failures[name].setdefault(culprit, short or "failed")
                    problems[name].append("round %d: %s: process %s (see raw/%s.log)" %
                                          (rnd, culprit, status, tag))
                    warn("%s round %d: %s: %s; log: %s%s" % (
                        name, rnd, culprit, status, log_path,
                        "; resuming after it" if len(todo) > 1 else ""))
                    progress.done += 1
                    remaining = todo[1:]
                maxrss[name].setdefault(kind, []).append(max(rss_parts))
                bad = [s for s in statuses if s != "ok"]
                progress.proc_done("%d benchmarks in %s, %s" % (
                    got, fmt_duration(time.monotonic() - t_proc),
                    "ok" if not bad else "%d process(es) failed: %s" % (len(bad), bad[0])))
            process_round(jobs, rnd, name, path, args, out, progress,
                          (samples, problems, failures, providers))

    summary = summarize(args, allocs, missing, names + [j["name"] for j in jobs], samples,
                        maxrss, problems, failures, providers, context,
                        time.monotonic() - t_start)
    return finish(args, out, summary, progress.procs_done)


def outcome(rc, killed):
    """How a process ended: a message and the table's short word for it
    (None when it went well). killed: why the runner killed it, if it did."""
    if killed:
        return killed, "hung" if killed.startswith("hung") else "timeout"
    if rc < 0:
        return "crashed (signal %d)" % -rc, "crashed"
    if rc != 0:
        return "exit status %d" % rc, "failed"
    return "ok", None


def run_json_process(cmd, path, tag, out, timeout, check):
    """Runs cmd, a program that prints one JSON object, under one
    allocator's preload; its stdout goes to raw/<tag>.json, its stderr to
    raw/<tag>.log; killed (its process group) after `timeout` seconds.
    check(result) raises ValueError when the object lacks what the row
    needs.  Returns (result or None, status, its short word (outcome), the
    object that served malloc as the program reports it).  The programs
    report their peak RSS themselves (VmHWM): wait4's ru_maxrss would count
    what this runner had resident when it forked them (Linux keeps that
    across exec), ~19 MiB of Python."""
    jpath = os.path.join(out, "raw", tag + ".json")
    with open(jpath, "w") as fout, open(os.path.join(out, "raw", tag + ".log"), "w") as ferr:
        p = subprocess.Popen(cmd, env=preload_env(path), stdout=fout, stderr=ferr,
                             start_new_session=True)
        ended, killed = threading.Event(), []

        def watchdog():
            if not ended.wait(timeout):
                killed.append("timed out after %ds" % timeout)
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass

        dog = threading.Thread(target=watchdog, daemon=True)
        dog.start()
        rc = p.wait()
        ended.set()
        dog.join()
    status, short = outcome(rc, killed[0] if killed else None)
    result = None
    if status == "ok":
        try:
            with open(jpath) as f:
                result = json.load(f)
            if not isinstance(result, dict):
                raise ValueError("not a JSON object")
            check(result)
        except ValueError as e:
            status, short, result = "unreadable output (%s)" % e, "failed", None
    return result, status, short, result and result.get("malloc_provider")


def positive(result, *keys):
    """Raises ValueError unless every key of result is a positive number."""
    for k in keys:
        if not (isinstance(result.get(k), (int, float)) and result[k] > 0):
            raise ValueError("no %s" % k)


def replay_job(name, tool, trace):
    """Replaying a trace: the row's sample is the replayed operations per
    second and the replayer's own peak RSS above its loaded trace."""
    def sample(res):
        return {"items_per_second": res["ops_per_s"], "threads": res.get("threads", 1),
                "peak_rss_MiB": res["peak_rss_kib"] / 1024.0,
                "ops": res.get("ops"), "seconds": res.get("seconds")}

    def say(smp):
        return "%s ops/s, peak RSS %s MiB" % (
            fmt_rate(smp["items_per_second"]).replace("/s", ""), fmt_num(smp["peak_rss_MiB"]))
    return {"name": name, "cmd": [tool, "replay", trace, "--json"],
            "check": lambda r: positive(r, "ops_per_s", "peak_rss_kib"),
            "sample": sample, "say": say}


def model_job(name, cmd):
    """Running a model program: the row's sample is its own time in seconds
    (and ops per second) and the whole process's peak RSS, VmHWM as the
    program reports it (see run_json_process)."""
    def sample(res):
        return {"seconds": res["seconds"], "items_per_second": res["ops"] / res["seconds"],
                "threads": res.get("threads", 1), "ops": res["ops"],
                "peak_rss_MiB": res["peak_rss_kib"] / 1024.0}

    def say(smp):
        return "%.3f s, peak RSS %s MiB" % (smp["seconds"], fmt_num(smp["peak_rss_MiB"]))
    return {"name": name, "cmd": cmd,
            "check": lambda r: positive(r, "seconds", "ops", "peak_rss_kib"),
            "sample": sample, "say": say}


def model_dir(args):
    return os.path.join(os.path.abspath(args.build), "bench", "models")


def load_models(args):
    """The model runs of --models that --filter keeps, as {row name:
    command}, rows model/<name>/threads:<N>; None after a warning."""
    runs = {}
    for m in args.models or []:
        prog = os.path.join(model_dir(args), m)
        if not os.access(prog, os.X_OK):
            warn("%s not found: build it first (ninja -C %s)" % (prog, args.build))
            return None
        for t in MODELS[m] or [int(x) for x in args.threads.split(",")]:
            name = "model/%s/threads:%d" % (m, t)
            if not args.filter or re.search(args.filter, name):
                runs[name] = [prog, str(t)] + (
                    ["%g" % args.model_scale] if args.model_scale != 1 else [])
    return runs


def note_provider(alloc, path, prov, providers, problems):
    """Keeps what served malloc in alloc's first process, and reports it when
    that is not the allocator under test."""
    if providers[alloc] is not None:
        return
    providers[alloc] = prov
    msg = check_provider(alloc, path, prov)
    if msg:
        problems[alloc].append(msg)
        warn("%s: %s" % (alloc, msg))


def load_traces(args):
    """The traces of --replay that --filter keeps, as {row name: path}, and
    the replay tool; None after a warning."""
    tool = args.trace_tool or os.path.join(os.path.abspath(args.build), "bench", "strata-trace")
    traces = {}
    for t in args.replay or []:
        name = "replay/" + os.path.basename(t)
        if not os.path.isfile(t):
            warn("%s: no such trace" % t)
            return None
        if name in traces:
            warn("two traces named %s: rename one" % os.path.basename(t))
            return None
        if not args.filter or re.search(args.filter, name):
            traces[name] = os.path.abspath(t)
    if traces and not os.access(tool, os.X_OK):
        warn("%s not found: build it first (ninja -C %s), or give --trace-tool" %
             (tool, args.build))
        return None
    return traces, tool


def process_round(jobs, rnd, alloc, path, args, out, progress, st):
    """Runs every job (a replayed trace, a model program: replay_job,
    model_job) once under one allocator (one round); adds to the samples,
    problems, failures and providers of st."""
    samples, problems, failures, providers = st
    for job in jobs:
        name = job["name"]
        progress.start("round %d/%d %-9s %s" % (rnd, args.rounds, alloc, name))
        tag = "%s.r%d.%s" % (alloc, rnd, name.replace("/", "-").replace(":", ""))
        res, status, short, prov = run_json_process(
            job["cmd"], path, tag, out, args.timeout, job["check"])
        note_provider(alloc, path, prov, providers, problems)
        progress.done += 1
        if res is None:
            failures[alloc][name] = short
            problems[alloc].append("round %d: %s: %s (see raw/%s.log)" %
                                   (rnd, name, status, tag))
            progress.proc_done("%s: %s" % (name, status))
            continue
        smp = job["sample"](res)
        samples[alloc].setdefault(name, []).append(smp)
        progress.proc_done("%s: %s" % (name, job["say"](smp)))


def finish(args, out, summary, nprocs):
    """Writes summary.json, table.md and the charts, prints the table and
    where the results are; the exit status."""
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    table = render_table(summary)
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write(table)

    charts = []
    if args.no_charts:
        log("charts: skipped (--no-charts)")
    else:
        sys.path.insert(0, HERE)
        try:
            import charts as charts_mod
            charts, msg = charts_mod.render(os.path.join(out, "summary.json"),
                                            os.path.join(out, "charts"))
            if msg:
                log("charts: " + msg)
        except Exception as e:  # charts are optional: never lose the table
            log("charts: failed (%s: %s); the table and JSON are complete" %
                (type(e).__name__, e))

    log()
    log(table)
    log("Wall time: %s (%d processes)" % (fmt_duration(summary["wall_seconds"]), nprocs))
    log("Results:")
    log("  table:    %s" % os.path.join(out, "table.md"))
    log("  summary:  %s" % os.path.join(out, "summary.json"))
    log("  raw JSON: %s" % os.path.join(out, "raw", ""))
    if charts:
        log("  charts:   %s (%d PNG files)" % (os.path.join(out, "charts", ""), len(charts)))
        for c in charts:
            if "/throughput-" not in c:
                log("            %s" % c)
    failed = [a for a, ps in summary["problems"].items() if ps]
    if failed:
        log("Problems with: %s (details in table.md)" % ", ".join(failed))
        return 1
    return 0


def median(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else None


STD_FIELDS = {"name", "family_index", "per_family_instance_index", "run_name", "run_type",
              "repetitions", "repetition_index", "threads", "iterations", "real_time",
              "cpu_time", "time_unit", "error_occurred", "error_message", "label",
              "aggregate_name", "aggregate_unit", "items_per_second", "bytes_per_second"}


def summarize(args, allocs, missing, names, samples, maxrss, problems, failures,
              providers, context, wall):
    rows = []
    for n in names:
        base, threads = split_name(n)
        row = {"benchmark": n, "workload": base, "threads": threads,
               "items_per_second": {}, "samples": {}, "spread": {}, "p_vs_best": {},
               "counters": {}, "errors": {}}
        for a, _ in allocs:
            runs = samples[a].get(n, [])
            good = [r for r in runs if not r.get("error_occurred")]
            bad = [r for r in runs if r.get("error_occurred")]
            if bad:
                row["errors"][a] = bad[0].get("error_message")
            elif n in failures[a] and not good:
                row["errors"][a] = failures[a][n]
            ips = [x for x in (r.get("items_per_second") for r in good) if x]
            row["samples"][a] = ips
            row["items_per_second"][a] = median(ips)
            row["spread"][a] = spread(ips, median(ips)) if len(ips) > 1 else None
            keys = sorted({k for r in good for k, v in r.items()
                           if k not in STD_FIELDS and isinstance(v, (int, float))})
            row["counters"][a] = {k: median([r.get(k) for r in good]) for k in keys}
            # A replayed trace's name does not carry its thread count; its
            # result does.  (Google Benchmark's own "threads" is 1 for the
            # workloads that start their own threads.)
            if base.startswith("replay/") and good:
                row["threads"] = good[0]["threads"]
            # A model's figure is its time for a fixed amount of work.
            if MODEL_RE.match(base):
                secs = [r["seconds"] for r in good if r.get("seconds")]
                row.setdefault("seconds", {})[a] = median(secs)
                row.setdefault("time_samples", {})[a] = secs
                row.setdefault("time_spread", {})[a] = (
                    spread(secs, median(secs)) if len(secs) > 1 else None)
        if MODEL_RE.match(base):
            # Lower is better: the best is the shortest time.
            medians = {a: v for a, v in row["seconds"].items() if v}
            best = min(medians, key=medians.get) if medians else None
            sample_key = "time_samples"
        else:
            medians = {a: v for a, v in row["items_per_second"].items() if v}
            best = max(medians, key=medians.get) if medians else None
            sample_key = "samples"
        for a in medians:
            if a != best:
                row["p_vs_best"][a] = mann_whitney_p(row[sample_key][a], row[sample_key][best])
        rows.append(row)
    return {
        "profile": args.profile,
        "rounds": args.rounds,
        "min_time": args.min_time,
        "threads": args.threads,
        "filter": args.filter,
        "traces": [n for n in names if n.startswith("replay/")],
        "models": [n for n in names if MODEL_RE.match(n)],
        "allocators": [{"name": a, "path": p, "malloc_provider": providers.get(a)}
                       for a, p in allocs],
        "skipped": [{"name": n, "path": p, "hint": h} for n, p, h in missing],
        "problems": problems,
        "process_max_rss_MiB": {a: {k: median(v) for k, v in maxrss[a].items()} for a, _ in allocs},
        "machine": machine_info(),
        "benchmark_context": context,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "wall_seconds": round(wall, 1),
        "rows": rows,
    }


def render_table(s):
    allocs = [a["name"] for a in s["allocators"]]
    L = []
    L.append("# Strata allocator comparison")
    L.append("")
    runs = "%s profile, min_time %gs, threads %s" % (s["profile"], s["min_time"], s["threads"])
    if s.get("traces"):
        runs += ", %d trace(s) replayed" % len(s["traces"])
    if s.get("models"):
        runs = "%s profile, threads %s, %d model run(s)" % (
            s["profile"], s["threads"], len(s["models"]))
    L.append("%s: %d interleaved round(s) per allocator, median quoted; "
             "%s; %s CPUs (%s); %s; wall time %s." % (
                 runs, s["rounds"], s["date"],
                 s["machine"].get("nproc"), s["machine"].get("cpu", "?"),
                 "git " + s["machine"]["git"] if s["machine"].get("git") else "no git",
                 fmt_duration(s["wall_seconds"])))
    L.append("")
    for a in s["allocators"]:
        bad = check_provider(a["name"], a["path"], a["malloc_provider"])
        L.append("- **%s**: %s (malloc served by %s)%s" % (
            a["name"], a["path"] or "no preload", a["malloc_provider"] or "?",
            " - **not the allocator under test: its numbers are not valid**" if bad else ""))
    for m in s["skipped"]:
        L.append("- *%s skipped*: %s not found (%s)" % (m["name"], m["path"], m["hint"]))
    L.append("")
    marks = u_test_has_power(s["rounds"], s["rounds"])
    render_models(s, allocs, marks, L)
    thr_rows = [r for r in s["rows"] if not MODEL_RE.match(r["workload"])]
    if thr_rows:
        render_throughput(s, allocs, marks, thr_rows, L)
    render_memory(s, allocs, L)
    render_problems(s, L)
    return "\n".join(L)


def noise_note(s, marks):
    if marks:
        return ("\u2248 after the ratio: not significantly different from the best of "
                "the row (two-sided Mann-Whitney U test on the rounds, p >= %g): "
                "within noise." % ALPHA)
    return ("With %d round(s) a rank test cannot tell any difference from noise "
            "(its smallest p-value is %.2f), so no cell says whether it is within "
            "noise: run 4 rounds or more (--rounds, or --full) for that." % (
                s["rounds"], u_test_min_p(s["rounds"], s["rounds"])))


def ratio_line(L, first, vals, allocs, lower, fmt, near=None, spreads=None, errors=None):
    """One table line: each allocator's value, in brackets its ratio to the
    best of the line (**bold** for the best: the lowest if lower, else the
    highest), then \u2248 when near(alloc) and the spread; without a value,
    how the allocator's run failed (errors) or -."""
    present = [vals[a] for a in allocs if vals.get(a)]
    best = (min(present) if lower else max(present)) if present else None
    cells = []
    for a in allocs:
        v = vals.get(a)
        if not v:
            e = (errors or {}).get(a)
            cells.append("-" if not e else
                         e if e in ("crashed", "hung", "timeout", "failed") else "error")
            continue
        c = "%s (%.2f%s)%s" % (fmt(v), v / best, "\u2248" if near and near(a) else "",
                               fmt_spread(spreads.get(a)) if spreads else "")
        cells.append("**%s**" % c if v == best else c)
    L.append("| %s | %s |" % (first, " | ".join(cells)))


def table_head(L, first, allocs):
    """A table's header: `first` (the row's name), threads, one column an allocator."""
    L.append("| %s | threads | %s |" % (first, " | ".join(allocs)))
    L.append("|---|--:|" + "--:|" * len(allocs))


def geomean_line(L, gm, allocs, label="*geometric mean of ratios*"):
    """The per-allocator geometric means under a table, when there are any."""
    if any(gm.values()):
        L.append("| %s | | %s |" % (label, " | ".join(
            "-" if gm[a] is None else "%.2f" % gm[a] for a in allocs)))


def render_models(s, allocs, marks, L):
    rows = [r for r in s["rows"] if MODEL_RE.match(r["workload"])]
    if not rows:
        return
    L.append("## Models of the mimalloc-bench programs")
    L.append("")
    L.append("Each model (bench/models/; what it keeps of its public program: "
             "docs/benchmarks.md) runs as a process of its own and does a fixed amount "
             "of work. **Time** is the program's own measure of that work in seconds, "
             "median over rounds; in brackets the ratio to the fastest allocator of the "
             "row (1.00 = fastest, **bold**); then \u00b1N%: every round lies within N% "
             "of the median. Lower is better. The `start` model (a program that mallocs "
             "once) is in the peak-RSS table only: its time is a process start. " +
             noise_note(s, marks))
    if s["profile"] == "quick":
        L.append("")
        L.append(QUICK_NOTE)
    L.append("")
    table_head(L, "model", allocs)
    timed = [r for r in rows if r["workload"].split("/", 1)[1] not in MODELS_RSS_ONLY]
    for r in timed:
        ratio_line(L, "%s | %d" % (r["workload"], r["threads"]), r["seconds"], allocs, True,
                   lambda v: "%.3f s" % v,
                   near=lambda a: marks and r["p_vs_best"].get(a, 0) >= ALPHA,
                   spreads=r["time_spread"], errors=r["errors"])
    gm = lowest_ratio_geomeans(timed, allocs, lambda r, a: r["seconds"].get(a))
    geomean_line(L, gm, allocs)
    L.append("")
    L.append("**Peak RSS** of the model's process (VmHWM) in MiB, median over "
             "rounds; in brackets the ratio to the lowest of the row (1.00 = lowest, "
             "**bold**). Lower is better.")
    L.append("")
    table_head(L, "model", allocs)

    def rss(r, a):
        return r["counters"].get(a, {}).get("peak_rss_MiB")
    for r in rows:
        ratio_line(L, "%s | %d" % (r["workload"], r["threads"]),
                   {a: rss(r, a) for a in allocs}, allocs, True, fmt_num, errors=r["errors"])
    gm = lowest_ratio_geomeans(rows, allocs, rss)
    geomean_line(L, gm, allocs)
    L.append("")


def render_throughput(s, allocs, marks, rows, L):
    L.append("## Throughput")
    L.append("")
    L.append("Items per second (see docs/benchmarks.md for what an item is in each "
             "workload), median over rounds; in brackets the ratio to the best "
             "allocator of the row (1.00 = best, **bold**); then \u00b1N%: every round "
             "lies within N% of the median. Higher is better." +
             (" A `replay/<trace>` row counts the trace's operations replayed per second."
              if s.get("traces") else ""))
    L.append("")
    L.append(noise_note(s, marks))
    if s["profile"] == "quick":
        L.append("")
        L.append(QUICK_NOTE)
    L.append("")
    table_head(L, "workload", allocs)
    for r in rows:
        vals = r["items_per_second"]
        present = [vals[a] for a in allocs if vals.get(a)]
        best = max(present) if present else None
        cells = []
        for a in allocs:
            v = vals.get(a)
            if a in r["errors"] and not v:
                e = r["errors"][a]
                cells.append(e if e in ("crashed", "hung", "timeout", "failed") else "error")
            elif not v:
                cells.append("-")
            else:
                p = r["p_vs_best"].get(a)
                near = "\u2248" if marks and p is not None and p >= ALPHA else ""
                c = "%s (%.2f%s)%s" % (fmt_rate(v), v / best, near, fmt_spread(r["spread"][a]))
                cells.append("**%s**" % c if v == best else c)
        L.append("| %s | %d | %s |" % (r["workload"], r["threads"], " | ".join(cells)))
    gm = throughput_geomeans(s["rows"], allocs)
    geomean_line(L, gm, allocs, "*geometric mean of ratios* (all rows but memory)")
    L.append("")


def render_memory(s, allocs, L):
    # Memory.
    mem_rows = [r for r in s["rows"] if r["workload"] == "memory"]
    preamble = ("Resident memory in MiB, median over rounds; in brackets the ratio to the "
                "lowest of the row (1.00 = lowest, **bold**). Lower is better. "
                "The `memory` rows are measured inside the workload, as deltas from the "
                "process RSS at its start, in a process of its own; the `process peak RSS` "
                "rows are the peak RSS of the whole benchmark processes (getrusage)." +
                (" A `replay/<trace>` row is the peak RSS of the replaying process."
                 if s.get("traces") else ""))
    mem_start = len(L)

    def mem_line(wl, label, vals, ratio=True):
        present = [vals[a] for a in allocs if vals.get(a) is not None]
        best = min(present) if present else None
        cells = []
        for a in allocs:
            v = vals.get(a)
            if v is None:
                cells.append("-")
            elif ratio and best and best > 0:
                c = "%s (%.2f)" % (fmt_num(v), v / best)
                cells.append("**%s**" % c if v == best else c)
            else:
                cells.append(fmt_num(v))
        L.append("| %s | %s | %s |" % (wl, label, " | ".join(cells)))

    for r in mem_rows:
        for key, label in (("peak_MiB", "peak"),
                           ("allocated_MiB", "after the first allocations"),
                           ("after_free_MiB", "after freeing 90%"),
                           ("final_MiB", "after re-allocating other sizes")):
            mem_line("memory", label, {a: r["counters"].get(a, {}).get(key) for a in allocs})
        mem_line("memory", "live data requested (reference)",
                 {a: r["counters"].get(a, {}).get("live_MiB") for a in allocs}, ratio=False)
    for r in s["rows"]:
        if r["workload"].startswith("replay/"):
            mem_line(r["workload"], "peak RSS",
                     {a: r["counters"].get(a, {}).get("peak_rss_MiB") for a in allocs})
    for kind, label in (("main", "all other workloads"), ("memory", "memory workload")):
        vals = {a: s["process_max_rss_MiB"].get(a, {}).get(kind) for a in allocs}
        if any(v is not None for v in vals.values()):
            mem_line("process peak RSS", label, vals)
    if len(L) > mem_start:
        L[mem_start:mem_start] = ["## Memory", "", preamble, "",
                                  "| workload | measure | " + " | ".join(allocs) + " |",
                                  "|---|---|" + "--:|" * len(allocs)]
        L.append("")


def render_problems(s, L):
    probs = {a: p for a, p in s["problems"].items() if p}
    if probs:
        L.append("## Problems")
        L.append("")
        for a, ps in probs.items():
            for p in ps[:20]:
                L.append("- %s: %s" % (a, p))
            if len(ps) > 20:
                L.append("- %s: ... %d more" % (a, len(ps) - 20))
        L.append("")


# ---------------------------------------------------------------- callgrind mode

def parse_callgrind_totals(path):
    events, totals = None, None
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:") or (totals is None and line.startswith("summary:")):
                totals = [int(x) for x in line.split()[1:]]
    if not events or not totals:
        return None
    return dict(zip(events, totals)).get("Ir")


def run_callgrind(args, allocs, missing, out):
    binary = os.path.join(os.path.abspath(args.build), "bench", "strata_callgrind")
    valgrind = shutil.which("valgrind")
    if not valgrind:
        warn("valgrind not found: apt-get install valgrind (or run ./ci/bench)")
        return 2
    if not os.access(binary, os.X_OK):
        warn("%s not found: build it first (ninja -C %s, or ./ci/bench)" % (binary, args.build))
        return 2
    log("Instruction counts under callgrind (%s)" % valgrind)
    log("  allocators: %s" % ", ".join(n for n, _ in allocs))
    for n, p, hint in missing:
        log("  skipped:    %s: %s not found (%s)" % (n, p, hint))
    log("  results:    %s" % out)
    log()
    results = {}
    problems = {}
    t0 = time.monotonic()
    for name, path in allocs:
        results[name] = {}
        for mode, iters in CALLGRIND_ITERS.items():
            cgout = os.path.join(out, "raw", "callgrind.out.%s.%s" % (name, mode))
            cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=" + cgout,
                   "--toggle-collect=strata_cg_%s_loop" % mode, binary, mode, str(iters)]
            log("  %-9s %-5s: %s" % (name, mode, " ".join(shlex.quote(c) for c in cmd)))
            try:
                r = subprocess.run(cmd, env=preload_env(path), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, universal_newlines=True,
                                   errors="replace", timeout=args.timeout)
            except subprocess.TimeoutExpired as e:
                r = subprocess.CompletedProcess(cmd, -9, (e.output or b"").decode(
                    "utf-8", "replace") if isinstance(e.output, bytes) else (e.output or ""))
            with open(os.path.join(out, "raw", "callgrind.%s.%s.log" % (name, mode)), "w") as f:
                f.write(r.stdout)
            m = re.search(r"pairs=(\d+) malloc_provider=(\S+)", r.stdout)
            ir = parse_callgrind_totals(cgout) if os.path.exists(cgout) else None
            if r.returncode != 0 or not m or ir is None:
                problems.setdefault(name, []).append(
                    "%s: valgrind exit status %d; see raw/callgrind.%s.%s.log" %
                    (mode, r.returncode, name, mode))
                warn(problems[name][-1])
                continue
            pairs = int(m.group(1))
            msg = check_provider(name, path, m.group(2))
            if msg:
                problems.setdefault(name, []).append(msg)
                warn("%s: %s" % (name, msg))
            results[name][mode] = {"Ir": ir, "pairs": pairs, "Ir_per_pair": ir / pairs,
                                   "malloc_provider": m.group(2)}
    doc = {"results": results, "problems": problems, "iterations": CALLGRIND_ITERS,
           "machine": machine_info(),
           "date": datetime.datetime.now().isoformat(timespec="seconds")}
    with open(os.path.join(out, "callgrind.json"), "w") as f:
        json.dump(doc, f, indent=1)
    L = ["# Instructions per malloc/free pair (callgrind)", "",
         "Instructions (Ir) counted by `valgrind --tool=callgrind --toggle-collect` in the "
         "measured loop only (allocator start-up and a warm-up are excluded), divided by "
         "the number of pairs; loop overhead (~3-4 instructions per pair) included. "
         "In brackets the ratio to the lowest of the column. Lower is better.", "",
         "| allocator | malloc(32) + free, repeated | 1000 x malloc(32), then 1000 x free |",
         "|---|--:|--:|"]
    best = {}
    for mode in CALLGRIND_ITERS:
        vals = [results[a][mode]["Ir_per_pair"] for a in results if mode in results[a]]
        best[mode] = min(vals) if vals else None
    for name, _ in allocs:
        cells = []
        for mode in CALLGRIND_ITERS:
            v = results.get(name, {}).get(mode)
            if not v:
                cells.append("failed")
            else:
                c = "%.1f (%.2f)" % (v["Ir_per_pair"], v["Ir_per_pair"] / best[mode])
                cells.append("**%s**" % c if v["Ir_per_pair"] == best[mode] else c)
        L.append("| %s | %s |" % (name, " | ".join(cells)))
    L.append("")
    if problems:
        L.append("Problems:")
        L.append("")
        for name, ps in problems.items():
            for p in ps:
                L.append("- %s: %s" % (name, p))
        L.append("")
    table = "\n".join(L)
    with open(os.path.join(out, "callgrind.md"), "w") as f:
        f.write(table)
    log()
    log(table)
    log("Wall time: %s" % fmt_duration(time.monotonic() - t0))
    log("Results:")
    log("  table:  %s" % os.path.join(out, "callgrind.md"))
    log("  json:   %s" % os.path.join(out, "callgrind.json"))
    log("  raw:    %s (callgrind_annotate these)" % os.path.join(out, "raw", ""))
    return 1 if problems else 0


def main(argv):
    args = parse_args(argv)
    allocs, missing = resolve_allocators(args)
    if args.list:
        for n, p in allocs:
            log("%-10s %s" % (n, p or "(no preload: the C library)"))
        for n, p, hint in missing:
            log("%-10s %s  NOT FOUND (%s)" % (n, p, hint))
        return 0
    for n, p, hint in missing:
        warn("skipping %s: %s not found (%s)" % (n, p, hint))
    if not allocs:
        warn("no allocator to run")
        return 2
    out = make_outdir(args)
    if args.callgrind:
        return run_callgrind(args, allocs, missing, out)
    return run_benchmarks(args, allocs, missing, out)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
