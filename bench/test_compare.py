#!/usr/bin/env python3
"""Unit tests of bench/compare.py's statistics and bench/charts.py's colours
(meson test compare-stats, suite bench)."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import charts  # noqa: E402
import compare  # noqa: E402


class MannWhitney(unittest.TestCase):
    # Expected p-values are counted by hand from the distribution of U
    # (scipy.stats.mannwhitneyu(..., method="exact") gives the same).
    def test_u_distribution(self):
        # 3 against 3: the 20 orderings by U.
        self.assertEqual(compare.u_counts(3, 3), (1, 1, 2, 3, 3, 3, 3, 2, 1, 1))
        self.assertEqual(sum(compare.u_counts(5, 5)), 252)

    def test_exact_p(self):
        cases = [
            ([1, 2, 3], [4, 5, 6], 2 / 20),             # apart: the smallest p for 3+3
            ([1, 3, 5], [2, 4, 6], 14 / 20),            # U=3: P(U<=3) = 7/20
            ([1, 2, 3, 4], [5, 6, 7, 8], 2 / 70),
            ([1, 2, 3, 4, 6], [5, 7, 8, 9, 10], 4 / 252),   # U=1
            ([1, 2, 4, 7, 9], [3, 5, 6, 8, 10], 106 / 252),  # U=8: P(U<=8) = 53/252
            ([5, 6, 7], [5, 6, 7], 1.0),
        ]
        for xs, ys, p in cases:
            self.assertAlmostEqual(compare.mann_whitney_p(xs, ys), p, places=12,
                                   msg="%s vs %s" % (xs, ys))
            self.assertAlmostEqual(compare.mann_whitney_p(ys, xs), p, places=12)

    def test_power(self):
        self.assertFalse(compare.u_test_has_power(3, 3))
        self.assertTrue(compare.u_test_has_power(4, 4))
        self.assertFalse(compare.u_test_has_power(1, 20))


class Formatting(unittest.TestCase):
    def test_spread(self):
        self.assertAlmostEqual(compare.spread([96, 100, 104], 100), 0.04)
        self.assertAlmostEqual(compare.spread([100, 100, 150], 100), 0.5)
        self.assertEqual(compare.fmt_spread(0.04), " \u00b14%")
        self.assertEqual(compare.fmt_spread(None), "")


def row(bench, **ips):
    return {"benchmark": bench, "items_per_second": ips}


class Geomean(unittest.TestCase):
    def test_memory_left_out(self):
        rows = [row("pair/64/real_time/threads:1", a=100.0, b=50.0),
                row("larson/threads:2/real_time", a=100.0, b=200.0),
                row("memory/iterations:1/real_time", a=1.0, b=1000.0),
                row("batch/64/real_time/threads:1", a=100.0, b=None)]
        gm = compare.throughput_geomeans(rows, ["a", "b"])
        self.assertAlmostEqual(gm["a"], (1.0 * 0.5) ** 0.5)
        self.assertAlmostEqual(gm["b"], (0.5 * 1.0) ** 0.5)

    def test_no_complete_row(self):
        gm = compare.throughput_geomeans([row("memory/iterations:1", a=1.0, b=2.0)], ["a", "b"])
        self.assertEqual(gm, {"a": None, "b": None})


class LowestRatio(unittest.TestCase):
    def test_lower_is_better(self):
        rows = [{"v": {"a": 1.0, "b": 2.0}}, {"v": {"a": 4.0, "b": 1.0}},
                {"v": {"a": 3.0, "b": None}}]
        gm = compare.lowest_ratio_geomeans(rows, ["a", "b"], lambda r, a: r["v"].get(a))
        self.assertAlmostEqual(gm["a"], (1.0 * 4.0) ** 0.5)
        self.assertAlmostEqual(gm["b"], (2.0 * 1.0) ** 0.5)


class Colours(unittest.TestCase):
    def test_by_name(self):
        self.assertEqual(charts.color("strata"), charts.COLORS["strata"])
        # crc32("hoard") % 10 == 4: the same colour in every run.
        self.assertEqual(charts.color("hoard"), charts.PALETTE[4])
        self.assertNotIn(charts.color("nodecay"), charts.COLORS.values())


# The C library this interpreter runs on, preloaded again under another
# name: an allocator that is sure to exist and to serve malloc.
with open("/proc/self/maps") as _maps:
    LIBC = next(l.split()[-1] for l in _maps if "/libc.so" in l or "/libc-" in l)

# Stands in for strata-trace: a replay under a preload is twice as fast, it
# reports the C library as what served malloc, and trace "bad" fails.
FAKE_TOOL = """#!%s
import json, os, sys
assert sys.argv[1] == "replay" and sys.argv[3] == "--json"
if os.path.basename(sys.argv[2]) == "bad":
    sys.exit(3)
ops_per_s = (2e6 if os.environ.get("LD_PRELOAD") else 1e6) * (1 + os.getpid() %% 7 / 100)
with open("/proc/self/maps") as maps:
    libc = next(l.split()[-1] for l in maps if "/libc.so" in l or "/libc-" in l)
print(json.dumps({"ops": 1000, "seconds": 1000 / ops_per_s, "ops_per_s": ops_per_s,
                  "peak_rss_kib": 10240, "rss_kib": [[0.0, 5000], [0.1, 10240]],
                  "threads": 3, "malloc_provider": libc}))
"""


class Replay(unittest.TestCase):
    def run_compare(self, tmp, *traces):
        tool = os.path.join(tmp, "strata-trace")
        with open(tool, "w") as f:
            f.write(FAKE_TOOL % sys.executable)
        os.chmod(tool, 0o755)
        for t in traces:
            open(os.path.join(tmp, t), "w").close()
        out = os.path.join(tmp, "out")
        r = subprocess.run(
            [sys.executable, os.path.join(os.path.dirname(compare.__file__), "compare.py"),
             "--only", "glibc,libc2", "libc2=" + LIBC,
             "--rounds", "4", "--no-charts", "--out", out, "--trace-tool", tool,
             "--filter", "^replay/", "--replay"] + [os.path.join(tmp, t) for t in traces],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        with open(os.path.join(out, "summary.json")) as f:
            return r, json.load(f)

    def test_ranks_traces(self):
        with tempfile.TemporaryDirectory() as tmp:
            r, s = self.run_compare(tmp, "a.trace")
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertEqual([os.path.realpath(a["malloc_provider"]) for a in s["allocators"]],
                             [os.path.realpath(LIBC)] * 2)
            (row,) = s["rows"]
            self.assertEqual((row["workload"], row["threads"]), ("replay/a.trace", 3))
            self.assertEqual(len(row["samples"]["glibc"]), 4)
            self.assertGreater(row["items_per_second"]["libc2"],
                               row["items_per_second"]["glibc"])
            self.assertAlmostEqual(row["p_vs_best"]["glibc"], 2 / 70)
            self.assertEqual(row["counters"]["glibc"]["peak_rss_MiB"], 10.0)
            self.assertIn("| replay/a.trace | 3 | 1.0", r.stdout)
            self.assertIn("| replay/a.trace | peak RSS | **10 (1.00)** |", r.stdout)

    def test_failure_reported(self):
        with tempfile.TemporaryDirectory() as tmp:
            r, s = self.run_compare(tmp, "a.trace", "bad")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertEqual(s["rows"][1]["errors"], {"glibc": "failed", "libc2": "failed"})


# Stands in for a model program: twice as fast and with half the peak RSS
# under a preload, and reports the C library as what served malloc.
FAKE_MODEL = """#!%s
import json, os, sys
threads = int(sys.argv[1])
fast = bool(os.environ.get("LD_PRELOAD"))
with open("/proc/self/maps") as maps:
    libc = next(l.split()[-1] for l in maps if "/libc.so" in l or "/libc-" in l)
seconds = (0.5 if fast else 1.0) * (1 + os.getpid() %% 7 / 100)
print(json.dumps({"model": os.path.basename(sys.argv[0]), "threads": threads,
                  "scale": 1, "seconds": seconds, "ops": 1000,
                  "peak_rss_kib": 5120 if fast else 10240, "malloc_provider": libc}))
"""


class Models(unittest.TestCase):
    def test_lower_time_is_best(self):
        with tempfile.TemporaryDirectory() as tmp:
            mdir = os.path.join(tmp, "bench", "models")
            os.makedirs(mdir)
            for name in ("larson", "malloc-large"):
                with open(os.path.join(mdir, name), "w") as f:
                    f.write(FAKE_MODEL % sys.executable)
                os.chmod(os.path.join(mdir, name), 0o755)
            out = os.path.join(tmp, "out")
            r = subprocess.run(
                [sys.executable, os.path.join(os.path.dirname(compare.__file__), "compare.py"),
                 "--only", "glibc,libc2", "libc2=" + LIBC, "--build", tmp,
                 "--rounds", "4", "--no-charts", "--out", out, "--threads", "1,3",
                 "--models", "larson,malloc-large"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            self.assertEqual(r.returncode, 0, r.stdout)
            with open(os.path.join(out, "summary.json")) as f:
                s = json.load(f)
            # malloc-large runs at 1 thread only.
            self.assertEqual([(row["workload"], row["threads"]) for row in s["rows"]],
                             [("model/larson", 1), ("model/larson", 3),
                              ("model/malloc-large", 1)])
            row = s["rows"][1]
            self.assertLess(row["seconds"]["libc2"], row["seconds"]["glibc"])
            self.assertAlmostEqual(row["p_vs_best"]["glibc"], 2 / 70)
            self.assertNotIn("libc2", row["p_vs_best"])
            self.assertEqual(row["counters"]["glibc"]["peak_rss_MiB"], 10.0)
            # The faster (preloaded) run is the best of the row: 1.00, bold;
            # the other about 2x. Memory: the lower is the best.
            self.assertRegex(r.stdout, r"\| model/larson \| 3 \| 1\.\d+ s \([12]\.\d\d\)"
                                       r"[^|]* \| \*\*0\.\d+ s \(1\.00\)")
            self.assertIn("| model/larson | 3 | 10 (2.00) | **5 (1.00)** |", r.stdout)
            self.assertRegex(r.stdout, r"\| \*geometric mean of ratios\* \| \| [12]\.\d\d \| 1\.00 \|")
            self.assertIn("| *geometric mean of ratios* | | 2.00 | 1.00 |", r.stdout)
            self.assertNotIn("## Throughput", r.stdout)


if __name__ == "__main__":
    unittest.main()
