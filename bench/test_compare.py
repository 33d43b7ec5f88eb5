#!/usr/bin/env python3
"""Unit tests of bench/compare.py's statistics and bench/charts.py's colours
(meson test compare-stats, suite bench)."""

import os
import sys
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


class Colours(unittest.TestCase):
    def test_by_name(self):
        self.assertEqual(charts.color("strata"), charts.COLORS["strata"])
        # crc32("hoard") % 10 == 4: the same colour in every run.
        self.assertEqual(charts.color("hoard"), charts.PALETTE[4])
        self.assertNotIn(charts.color("nodecay"), charts.COLORS.values())


if __name__ == "__main__":
    unittest.main()
