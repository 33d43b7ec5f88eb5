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


def _load(path):
    with open(path) as f:
        return json.load(f)


def _series(s):
    """[(workload, {alloc: [(threads, items/s)]})] in table order."""
    order, data = [], {}
    for r in s["rows"]:
        w = r["workload"]
        if w not in data:
            order.append(w)
            data[w] = {}
        for a, v in r["items_per_second"].items():
            if v:
                data[w].setdefault(a, []).append((r["threads"], v))
    return [(w, {a: sorted(p) for a, p in data[w].items()}) for w in order if data[w]]


def _slug(w):
    return re.sub(r"[^A-Za-z0-9]+", "_", w).strip("_")


def _unit(vmax):
    for div, unit in ((1e9, "G items/s"), (1e6, "M items/s"), (1e3, "k items/s")):
        if vmax >= div:
            return div, unit
    return 1.0, "items/s"


def _memory(s):
    allocs = [a["name"] for a in s["allocators"]]
    mem = {}
    for r in s["rows"]:
        if r["workload"] == "memory":
            for a in allocs:
                c = r["counters"].get(a) or {}
                if c:
                    mem[a] = c
    proc = {a: (s.get("process_max_rss_MiB", {}).get(a) or {}).get("main") for a in allocs}
    return allocs, mem, proc


# ---------------------------------------------------------------- matplotlib

def _draw_matplotlib(s, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    allocs = [a["name"] for a in s["allocators"]]
    colors = {a: "C%d" % (i % 10) for i, a in enumerate(allocs)}
    ncpu = (s.get("machine") or {}).get("nproc")
    series = _series(s)
    files = []

    def plot(ax, w, per_alloc, small=False):
        vmax = max(v for pts in per_alloc.values() for _, v in pts)
        div, unit = _unit(vmax)
        ths = sorted({t for pts in per_alloc.values() for t, _ in pts})
        for a in allocs:
            if a in per_alloc:
                xs = [t for t, _ in per_alloc[a]]
                ys = [v / div for _, v in per_alloc[a]]
                ax.plot(xs, ys, marker="o", label=a, color=colors[a],
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
        if not small:
            ax.set_xlabel("threads" + (" (dotted line: %d CPUs)" % ncpu if ncpu else ""))
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
        ncols = 5
        nrows = int(math.ceil(len(series) / float(ncols)))
        height = 3 * nrows + 0.9
        fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, height), squeeze=False)
        for i, (w, per_alloc) in enumerate(series):
            plot(axes[i // ncols][i % ncols], w, per_alloc, small=True)
        for j in range(len(series), nrows * ncols):
            axes[j // ncols][j % ncols].axis("off")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.suptitle("Strata bench: throughput (items/s, higher is better) against threads; "
                     "%s profile" % s.get("profile"), y=1 - 0.12 / height, fontsize=10,
                     color="grey")
        fig.legend(handles, labels, loc="upper center", ncol=len(allocs), fontsize=11,
                   bbox_to_anchor=(0.5, 1 - 0.35 / height))
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.85 / height))
        f = os.path.join(outdir, "throughput.png")
        fig.savefig(f, dpi=80)
        plt.close(fig)
        files.insert(0, f)

    allocs, mem, proc = _memory(s)
    if mem or any(v is not None for v in proc.values()):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5),
                                 gridspec_kw={"width_ratios": [3, 2]})
        ax = axes[0]
        keys = [("allocated_MiB", "after allocating"), ("after_free_MiB", "after freeing 90%"),
                ("final_MiB", "after re-allocating"), ("peak_MiB", "peak")]
        names = [a for a in allocs if a in mem]
        width = 0.8 / len(keys)
        for k, (key, label) in enumerate(keys):
            xs = [i + (k - (len(keys) - 1) / 2.0) * width for i in range(len(names))]
            ax.bar(xs, [mem[a].get(key) or 0 for a in names], width, label=label,
                   color="C%d" % k)
        live = [mem[a].get("live_MiB") for a in names if mem[a].get("live_MiB")]
        if live:
            ax.axhline(live[0], color="black", linestyle="--", linewidth=1,
                       label="live data requested")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names)
        ax.set_ylabel("MiB resident (delta from start)")
        ax.set_title("memory workload (lower is better)")
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax = axes[1]
        names = [a for a in allocs if proc.get(a) is not None]
        ax.bar(range(len(names)), [proc[a] for a in names],
               color=[colors[a] for a in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names)
        ax.set_ylabel("MiB")
        ax.set_title("peak RSS of the benchmark process\n(all other workloads)")
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
        div, unit = _unit(vmax)
        dat = os.path.join(outdir, "throughput-%s.dat" % _slug(w))
        names = [a for a in allocs if a in per_alloc]
        with open(dat, "w") as f:
            for a in names:
                f.write("# %s\n" % a)
                for t, v in per_alloc[a]:
                    f.write("%d %g\n" % (t, v / div))
                f.write("\n\n")
        png = os.path.join(outdir, "throughput-%s.png" % _slug(w))
        plots = ", ".join("'%s' index %d with linespoints title '%s'" % (dat, i, a)
                          for i, a in enumerate(names))
        ths = sorted({t for pts in per_alloc.values() for t, _ in pts})
        run("set terminal %s noenhanced\nset output '%s'\nset title '%s'\nset logscale x 2\n"
            "set xtics (%s)\nset xrange [%g:%g]\n"
            "set xlabel 'threads'\nset ylabel '%s'\nset yrange [0:*]\nset grid\n"
            "set key outside right\nplot %s\n" % (
                term, png, w, ", ".join(str(t) for t in ths), ths[0] / 1.2, ths[-1] * 1.2,
                unit, plots))
        os.remove(dat)
        files.append(png)

    allocs, mem, proc = _memory(s)
    names = [a for a in allocs if a in mem]
    if names:
        dat = os.path.join(outdir, "memory.dat")
        with open(dat, "w") as f:
            f.write("alloc allocated after-free-90% after-re-allocating peak\n")
            for a in names:
                c = mem[a]
                f.write("%s %g %g %g %g\n" % (a, c.get("allocated_MiB") or 0,
                                              c.get("after_free_MiB") or 0,
                                              c.get("final_MiB") or 0,
                                              c.get("peak_MiB") or 0))
        png = os.path.join(outdir, "memory.png")
        run("set terminal %s noenhanced\nset output '%s'\nset title 'memory workload (MiB, "
            "lower is better)'\nset style data histograms\nset style fill solid 0.8\n"
            "set key autotitle columnhead outside right\nset yrange [0:*]\nset grid ytics\n"
            "plot '%s' using 2:xtic(1), '' using 3, '' using 4, '' using 5\n" % (
                term.replace("700,450", "1000,450"), png, dat))
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
