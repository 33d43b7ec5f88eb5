#!/usr/bin/env python3
"""Smoke test of the model programs (meson tests models-glibc and
models-strata, suite bench): each runs at 1 and 2 threads with a tiny
SCALE (a single-threaded model at 1 only), with nothing preloaded or under --preload LIB, and must exit 0 and
print one JSON line that names it, its thread count, a positive time and
operation count, and the allocator expected as the one that served malloc.

    test_models.py [--preload LIB] PROGRAM...
"""

import argparse
import json
import os
import re
import subprocess
import sys

# A tenth of a percent of the default work at least, so each run takes
# milliseconds; malloc-large's 500 replacements become 1.
SCALE = "0.002"
# Models of single-threaded programs, which refuse a second thread.
SINGLE = {"start"}


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check(prog, threads, preload):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    name = os.path.basename(prog)
    r = subprocess.run([prog, str(threads), SCALE], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    where = "%s %d %s%s" % (name, threads, SCALE, " under " + preload if preload else "")
    if r.returncode != 0:
        return "%s: exit status %d\n%s" % (where, r.returncode, r.stderr)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    if len(lines) != 1:
        return "%s: %d lines of output, expected one JSON line:\n%s" % (where, len(lines), r.stdout)
    try:
        res = json.loads(lines[0])
    except ValueError as e:
        return "%s: not JSON (%s): %s" % (where, e, lines[0])
    problems = []
    if res.get("model") != name:
        problems.append("model %r, expected %r" % (res.get("model"), name))
    if res.get("threads") != threads:
        problems.append("threads %r, expected %d" % (res.get("threads"), threads))
    for k in ("seconds", "ops", "peak_rss_kib"):
        if not (isinstance(res.get(k), (int, float)) and res[k] > 0):
            problems.append("%s is %r, expected a positive number" % (k, res.get(k)))
    prov = res.get("malloc_provider", "")
    if preload:
        if not same_file(prov, preload):
            problems.append("malloc served by %r, not by %s" % (prov, preload))
    elif not re.search(r"/libc[.-]", prov):
        problems.append("malloc served by %r, not by the C library" % prov)
    if problems:
        return "%s: %s\n  %s" % (where, "; ".join(problems), lines[0])
    print("ok   %s: %.3f s, %d ops" % (where, res["seconds"], res["ops"]))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preload", help="library to preload (LD_PRELOAD)")
    ap.add_argument("programs", nargs="+")
    args = ap.parse_args()
    failures = []
    runs = 0
    for prog in args.programs:
        for threads in (1,) if os.path.basename(prog) in SINGLE else (1, 2):
            runs += 1
            msg = check(os.path.abspath(prog), threads, args.preload)
            if msg:
                print("FAIL " + msg)
                failures.append(msg)
    print("%d of %d runs failed" % (len(failures), runs))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
