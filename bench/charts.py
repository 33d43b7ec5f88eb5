#!/usr/bin/env python3
"""PNG charts for a compare.py run (summary.json).

    bench/charts.py bench/results/latest/summary.json [OUTDIR]

Draws, into OUTDIR (default: charts/ beside summary.json):
    throughput.png             every workload: items/s against threads
    throughput-<workload>.png  the same, one workload per file
    memory.png                 the memory workload's RSS and the peak RSS
                               of the benchmark processes, per allocator

Uses matplotlib if this interpreter has it; otherwise Debian's
/usr/bin/python3 with python3-matplotlib if that exists; otherwise gnuplot;
otherwise says so and draws nothing.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zlib

# An allocator keeps its colour in every chart of every run: the usual ones
# have their own, any other gets one of PALETTE by a hash of its name (crc32:
# Python's hash() of a string changes from run to run).
COLORS = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "tcmalloc": "#ff7f0e",
          "mimalloc": "#2ca02c", "strata": "#d62728"}
PALETTE = ["#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]

# The memory workload's phases, in greys and hatches so that they never look
# like an allocator.
PHASES = [("allocated_MiB", "after allocating", "#d9d9d9", ""),
          ("after_free_MiB", "after freeing 90%", "#a6a6a6", "//"),
          ("final_MiB", "after re-allocating", "#737373", ".."),
          ("peak_MiB", "peak", "#404040", "xx")]


def color(alloc):
    return COLORS.get(alloc) or PALETTE[zlib.crc32(alloc.encode()) % len(PALETTE)]


def _load(path):
    with open(path) as f:
        return json.load(f)


def _series(s):
    """[(workload, {alloc: [(threads, items/s)]})] in table order."""
    order, data = [], {}
    for r in s["rows"]:
        w = r["workload"]
        if w.startswith("model/"):   # times, not rates: the table has them
            continue
        if w not in data:
            order.append(w)
            data[w] = {}
        for a, v in r["items_per_second"].items():
            if v:
                data[w].setdefault(a, []).append((r["threads"], v))
    return [(w, {a: sorted(p) for a, p in data[w].items()}) for w in order if data[w]]


def _slug(w):
    return re.sub(r"[^A-Za-z0-9]+", "_", w).strip("_")


def _unit(workload, vmax):
    """(divisor, y-axis label) of a throughput chart."""
    what = "replayed ops/s" if workload.startswith("replay/") else "items/s"
    for div, prefix in ((1e9, "G "), (1e6, "M "), (1e3, "k ")):
        if vmax >= div:
            return div, prefix + what
    return 1.0, what


def _memory(s):
    allocs = [a["name"] for a in s["allocators"]]
    mem = {}
    for r in s["rows"]:
        if r["workload"] == "memory":
            for a in allocs:
                c = r["counters"].get(a) or {}
                if c:
                    mem[a] = c
    rss = s.get("process_max_rss_MiB", {})
    proc = {a: rss[a]["main"] for a in allocs if (rss.get(a) or {}).get("main") is not None}
    replay = [(r["workload"], {a: c["peak_rss_MiB"] for a, c in r["counters"].items()
                               if c.get("peak_rss_MiB") is not None})
              for r in s["rows"] if r["workload"].startswith("replay/")]
    return allocs, mem, proc, [(w, v) for w, v in replay if v]


# ---------------------------------------------------------------- matplotlib

def _draw_matplotlib(s, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    allocs = [a["name"] for a in s["allocators"]]
    ncpu = (s.get("machine") or {}).get("nproc")
    series = _series(s)
    files = []

    def plot(ax, w, per_alloc, small=False):
        vmax = max(v for pts in per_alloc.values() for _, v in pts)
        div, unit = _unit(w, vmax)
        ths = sorted({t for pts in per_alloc.values() for t, _ in pts})
        for a in allocs:
            if a in per_alloc:
                xs = [t for t, _ in per_alloc[a]]
                ys = [v / div for _, v in per_alloc[a]]
                ax.plot(xs, ys, marker="o", label=a, color=color(a),
                        linewidth=1.2 if small else 1.8, markersize=3 if small else 5)
        if len(ths) > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ths)
        ax.set_xticklabels([str(t) for t in ths])
        if ncpu and len(ths) > 1 and ths[0] <= ncpu <= ths[-1]:
            ax.axvline(ncpu, color="grey", linestyle=":", linewidth=1)
        ax.set_ylim(bottom=0)
        ax.set_title(w, fontsize=9 if small else 12)
        ax.set_ylabel(unit, fontsize=8 if small else 10)
        ax.set_xlabel("threads" if small else
                      "threads" + (" (dotted line: %d CPUs)" % ncpu if ncpu else ""),
                      fontsize=8 if small else 10)
        ax.tick_params(labelsize=7 if small else 9)
        ax.grid(True, alpha=0.3)

    for w, per_alloc in series:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        plot(ax, w, per_alloc)
        ax.legend(fontsize=9)
        fig.suptitle("Strata bench: throughput, higher is better", fontsize=9, color="grey")
        fig.tight_layout()
        f = os.path.join(outdir, "throughput-%s.png" % _slug(w))
        fig.savefig(f, dpi=100)
        plt.close(fig)
        files.append(f)

    if series:
        ncols = min(5, len(series))
        nrows = int(math.ceil(len(series) / float(ncols)))
        height = 3 * nrows + 0.9
        fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, height), squeeze=False)
        for i, (w, per_alloc) in enumerate(series):
            plot(axes[i // ncols][i % ncols], w, per_alloc, small=True)
        # The last row may be short: no empty frames after its panels.
        for j in range(len(series), nrows * ncols):
            axes[j // ncols][j % ncols].remove()
        shown = [a for a in allocs if any(a in p for _, p in series)]
        handles = [matplotlib.lines.Line2D([], [], color=color(a), marker="o") for a in shown]
        fig.suptitle("Strata bench: throughput (higher is better) against threads; "
                     "%s profile" % s.get("profile"), y=1 - 0.12 / height, fontsize=10,
                     color="grey")
        fig.legend(handles, shown, loc="upper center", ncol=len(shown), fontsize=11,
                   bbox_to_anchor=(0.5, 1 - 0.35 / height))
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.85 / height))
        f = os.path.join(outdir, "throughput.png")
        fig.savefig(f, dpi=80)
        plt.close(fig)
        files.insert(0, f)

    allocs, mem, proc, replay = _memory(s)

    def phases(ax):
        names = [a for a in allocs if a in mem]
        width = 0.8 / len(PHASES)
        for k, (key, label, grey, hatch) in enumerate(PHASES):
            xs = [i + (k - (len(PHASES) - 1) / 2.0) * width for i in range(len(names))]
            ax.bar(xs, [mem[a].get(key) or 0 for a in names], width, label=label,
                   color=grey, hatch=hatch, edgecolor="black", linewidth=0.5)
        live = [mem[a].get("live_MiB") for a in names if mem[a].get("live_MiB")]
        if live:
            ax.axhline(live[0], color="black", linestyle="--", linewidth=1,
                       label="live data requested")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names)
        ax.set_xlabel("allocator")
        ax.set_ylabel("MiB resident (delta from start)")
        ax.set_title("memory workload (lower is better)")
        ax.legend(fontsize=8)

    def process(ax):
        names = list(proc)
        ax.bar(range(len(names)), [proc[a] for a in names], color=[color(a) for a in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names)
        ax.set_xlabel("allocator")
        ax.set_ylabel("peak RSS, MiB")
        ax.set_title("peak RSS of the benchmark process\n(all other workloads)")

    def replayed(ax):
        names = [a for a in allocs if any(a in v for _, v in replay)]
        width = 0.8 / len(names)
        for k, a in enumerate(names):
            xs = [i + (k - (len(names) - 1) / 2.0) * width for i in range(len(replay))]
            ax.bar(xs, [v.get(a, 0) for _, v in replay], width, label=a, color=color(a))
        ax.set_xticks(range(len(replay)))
        ax.set_xticklabels([w[len("replay/"):] for w, _ in replay])
        ax.set_xlabel("trace")
        ax.set_ylabel("peak RSS, MiB")
        ax.set_title("replayed traces: peak RSS (lower is better)")
        ax.legend(fontsize=8)

    panels = [(draw, ratio) for draw, ratio, data in
              ((phases, 3, mem), (process, 2, proc), (replayed, 3, replay)) if data]
    if panels:
        fig, axes = plt.subplots(1, len(panels), squeeze=False,
                                 figsize=(2.4 * sum(r for _, r in panels) + 0.5, 4.5),
                                 gridspec_kw={"width_ratios": [r for _, r in panels]})
        for ax, (draw, _) in zip(axes[0], panels):
            draw(ax)
            ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        f = os.path.join(outdir, "memory.png")
        fig.savefig(f, dpi=100)
        plt.close(fig)
        files.insert(1 if series else 0, f)
    return files


# ---------------------------------------------------------------- gnuplot

def _draw_gnuplot(s, outdir, gnuplot):
    os.makedirs(outdir, exist_ok=True)
    allocs = [a["name"] for a in s["allocators"]]
    files = []

    def run(script):
        r = subprocess.run([gnuplot], input=script, universal_newlines=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("gnuplot failed: " + r.stderr.strip()[:500])

    terms = subprocess.run([gnuplot, "-e", "set terminal"], universal_newlines=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    term = "pngcairo size 700,450" if "pngcairo" in terms else "png size 700,450"
    for w, per_alloc in _series(s):
        vmax = max(v for pts in per_alloc.values() for _, v in pts)
        div, unit = _unit(w, vmax)
        dat = os.path.join(outdir, "throughput-%s.dat" % _slug(w))
        names = [a for a in allocs if a in per_alloc]
        with open(dat, "w") as f:
            for a in names:
                f.write("# %s\n" % a)
                for t, v in per_alloc[a]:
                    f.write("%d %g\n" % (t, v / div))
                f.write("\n\n")
        png = os.path.join(outdir, "throughput-%s.png" % _slug(w))
        plots = ", ".join("'%s' index %d with linespoints lc rgb '%s' title '%s'" % (
            dat, i, color(a), a) for i, a in enumerate(names))
        ths = sorted({t for pts in per_alloc.values() for t, _ in pts})
        run("set terminal %s noenhanced\nset output '%s'\nset title '%s'\nset logscale x 2\n"
            "set xtics (%s)\nset xrange [%g:%g]\n"
            "set xlabel 'threads'\nset ylabel '%s'\nset yrange [0:*]\nset grid\n"
            "set key outside right\nplot %s\n" % (
                term, png, w, ", ".join(str(t) for t in ths), ths[0] / 1.2, ths[-1] * 1.2,
                unit, plots))
        os.remove(dat)
        files.append(png)

    allocs, mem, _, _ = _memory(s)
    names = [a for a in allocs if a in mem]
    if names:
        dat = os.path.join(outdir, "memory.dat")
        with open(dat, "w") as f:
            for a in names:
                f.write("%s %s\n" % (a, " ".join("%g" % (mem[a].get(key) or 0)
                                                 for key, _, _, _ in PHASES)))
        png = os.path.join(outdir, "memory.png")
        # Phases as grey fill patterns, not the allocators' colours.
        plots = ", ".join("'%s' using %d%s title '%s' lc rgb '%s' fill pattern %d" % (
            dat if k == 0 else "", k + 2, ":xtic(1)" if k == 0 else "", label, grey, k + 1)
            for k, (_, label, grey, _) in enumerate(PHASES))
        run("set terminal %s noenhanced\nset output '%s'\nset title 'memory workload "
            "(lower is better)'\nset style data histograms\nset style fill border\n"
            "set xlabel 'allocator'\nset ylabel 'MiB resident (delta from start)'\n"
            "set key outside right\nset yrange [0:*]\nset grid ytics\nplot %s\n" % (
                term.replace("700,450", "1000,450"), png, plots))
        os.remove(dat)
        files.insert(0, png)
    return files


# ---------------------------------------------------------------- entry points

def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def render(summary_path, outdir):
    """Returns (files, message or None).  Never raises for a missing tool."""
    s = _load(summary_path)
    if _has_matplotlib():
        return _draw_matplotlib(s, outdir), None
    # Debian's python3-matplotlib lives in the system interpreter, which may
    # not be the python3 first on PATH (pyenv, venv ...).
    for py in ("/usr/bin/python3",):
        if os.path.exists(py) and os.path.realpath(py) != os.path.realpath(sys.executable):
            r = subprocess.run([py, "-c", "import matplotlib"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                r = subprocess.run([py, os.path.abspath(__file__), "--json", summary_path,
                                    outdir], stdout=subprocess.PIPE, universal_newlines=True)
                if r.returncode == 0:
                    out = json.loads(r.stdout.strip().splitlines()[-1])
                    return out["files"], out.get("message")
    gnuplot = shutil.which("gnuplot")
    if gnuplot:
        return (_draw_gnuplot(s, outdir, gnuplot),
                "drawn with gnuplot (matplotlib not found)")
    return [], ("skipped: neither matplotlib nor gnuplot is installed "
                "(Debian: apt-get install python3-matplotlib, or run ./ci/bench)")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true",
                    help="print the files drawn and the message as JSON")
    ap.add_argument("summary", help="a compare.py run's summary.json")
    ap.add_argument("outdir", nargs="?", help="default: charts/ beside summary.json")
    args = ap.parse_args(argv)
    outdir = args.outdir or os.path.join(os.path.dirname(args.summary), "charts")
    files, msg = render(args.summary, outdir)
    if args.json:
        print(json.dumps({"files": files, "message": msg}))
    else:
        if msg:
            print(msg)
        for f in files:
            print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
