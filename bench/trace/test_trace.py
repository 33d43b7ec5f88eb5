#!/usr/bin/env python3
"""test_trace.py DRIVER TRACE_PROG [LIBSTRATA]: strata-trace end to end.

Records bench/trace/trace_prog.c and checks that
 - its stdout is the same recorded or not;
 - `info` counts, per operation and in each worker thread, exactly what the
   program says it called; the main thread's calls are those of
   `trace_prog idle` (the same threads doing nothing);
 - `replay --json` (plain, and under LD_PRELOAD of LIBSTRATA when given)
   makes as many calls as recorded, in as many threads, and reports time
   and resident memory;
 - a fork child is not recorded (nor does it write its parent's records
   again), and an executed child is, into FILE.<pid>.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


def run(argv, env=None):
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        sys.exit("FAIL %s exited %d: %s" % (" ".join(argv), r.returncode, r.stderr))
    return r.stdout


def expect_of(stdout):
    line = [l for l in stdout.splitlines() if l.startswith("expect ")]
    return json.loads(line[0][len("expect "):])


def main():
    driver, prog = sys.argv[1], sys.argv[2]
    libstrata = sys.argv[3] if len(sys.argv) > 3 else ""
    tmp = tempfile.mkdtemp(prefix="strata-trace-test.")
    trace = os.path.join(tmp, "work.trace")
    idle_trace = os.path.join(tmp, "idle.trace")

    plain = run([prog, "work"])
    recorded = run([driver, "record", "-o", trace, "--", prog, "work"])
    check(plain == recorded, "stdout differs under recording: %r vs %r" % (plain, recorded))
    expect = expect_of(recorded)
    per_worker = expect["per_worker"]
    check(expect["workers"] == 4 and per_worker["malloc"] >= 100, "trace_prog's own counts")

    run([driver, "record", "-o", idle_trace, "--", prog, "idle"])
    work = json.loads(run([driver, "info", "--json", trace]))
    idle = json.loads(run([driver, "info", "--json", idle_trace]))
    # Thread 0 is the main thread (it calls first); the idle run's workers
    # call too, as they exit (the C library's own frees).
    check(work["threads"] == 5 and idle["threads"] == 5,
          "threads: %d recorded, %d idle, main + 4 workers" % (work["threads"], idle["threads"]))
    check(work["per_thread"][0] == idle["per_thread"][0],
          "main thread: %r, idle %r" % (work["per_thread"][0], idle["per_thread"][0]))
    beyond = sorted(sorted((op, n - per_worker[op]) for op, n in t.items())
                    for t in work["per_thread"][1:])
    idle_workers = sorted(sorted(t.items()) for t in idle["per_thread"][1:])
    check(beyond == idle_workers, "each worker thread less the program's calls: %r, "
          "the idle workers: %r" % (beyond, idle_workers))
    for op, n in per_worker.items():
        got = work["per_op"][op] - idle["per_op"][op]
        check(got == 4 * n, "%s: %d calls beyond the idle run, the program made %d"
              % (op, got, 4 * n))
    check(work["ops"] == sum(work["per_op"].values()), "ops is the sum of the operations")
    check(work["peak_live_bytes"] >= 2 * sum(16 * i for i in range(1, 101)),
          "peak of live bytes %d" % work["peak_live_bytes"])

    human = run([driver, "info", trace])
    check("calls in %d threads" % work["threads"] in human and "peak of live bytes" in human,
          "the readable info: %r" % human)

    preloads = [("glibc", None)]
    if libstrata:
        preloads.append(("strata", dict(os.environ, LD_PRELOAD=libstrata)))
    for name, env in preloads:
        out = run([driver, "replay", "--json", trace], env=env)
        rep = json.loads(out)
        check(rep["ops"] == work["ops"], "%s replay: %d ops, %d recorded"
              % (name, rep["ops"], work["ops"]))
        check(rep["threads"] == work["threads"], "%s replay: %d threads, %d recorded"
              % (name, rep["threads"], work["threads"]))
        check(rep["seconds"] > 0 and rep["ops_per_s"] > 0 and rep["peak_rss_kib"] > 0,
              "%s replay: time and peak %r" % (name, rep))
        check(len(rep["rss_kib"]) >= 1 and all(len(s) == 2 and s[1] > 0 for s in rep["rss_kib"]),
              "%s replay: the RSS samples %r" % (name, rep["rss_kib"]))
        text = run([driver, "replay", trace], env=env)
        check("calls per s" in text, "%s replay, readable: %r" % (name, text))

    # A trace written by hand (format.h): a free of a block allocated before
    # the recording (id 5, never made), realloc(NULL, n) and realloc(p, 0).
    def varint(v):
        out = bytearray()
        while v >= 0x80:
            out.append(v & 0x7f | 0x80)
            v >>= 7
        return bytes(out + bytes([v]))

    def zz(v):
        return varint(v * 2 if v >= 0 else -v * 2 - 1)

    MALLOC, REALLOC, FREE = 0, 2, 3
    body = (bytes([MALLOC]) + varint(10) + varint(100) + zz(1)          # 1 = malloc(100)
            + bytes([FREE]) + varint(10) + zz(4)                        # free(id 5)
            + bytes([REALLOC]) + varint(10) + zz(-5) + varint(50) + zz(2)  # 2 = realloc(NULL, 50)
            + bytes([REALLOC]) + varint(10) + zz(2) + varint(0) + zz(-2)   # realloc(2, 0)
            + bytes([FREE]) + varint(10) + zz(1))                       # free(1)
    edge = os.path.join(tmp, "edge.trace")
    with open(edge, "wb") as f:
        f.write(b"STRTRACE\x01" + varint(0) + varint(len(body)) + body)
    edge_info = json.loads(run([driver, "info", "--json", edge]))
    check(edge_info["per_op"]["malloc"] == 1 and edge_info["per_op"]["realloc"] == 2
          and edge_info["per_op"]["free"] == 2 and edge_info["peak_live_bytes"] == 150,
          "hand-made trace, info: %r" % edge_info)
    for name, env in preloads:
        rep = json.loads(run([driver, "replay", "--json", edge], env=env))
        check(rep["ops"] == 5 and rep["threads"] == 1, "%s replay of the hand-made trace: %r"
              % (name, rep))

    # fork: the allocating child is not recorded (no block of its size, no
    # record of its parent's twice), the executed one writes FILE.<pid>.
    fork_trace = os.path.join(tmp, "fork.trace")
    run([driver, "record", "-o", fork_trace, "--", prog, "fork"])
    forked = json.loads(run([driver, "info", "--json", fork_trace]))
    check(not any(int(size) >= 777777 for size in forked["sizes"]),
          "the fork child's blocks are in the trace: %r" % forked["sizes"])
    check(forked["per_thread"] == work["per_thread"], "fork: the threads' calls %r, %r without the children"
          % (forked["per_thread"], work["per_thread"]))
    for op, n in per_worker.items():
        got = forked["per_op"][op] - idle["per_op"][op]
        check(got == 4 * n, "fork: %s: %d calls beyond the idle run, the program made %d"
              % (op, got, 4 * n))
    children = glob.glob(fork_trace + ".*")
    check(len(children) == 1, "executed child's traces: %r" % children)
    if children:
        child = json.loads(run([driver, "info", "--json", children[0]]))
        check(child["per_op"] == idle["per_op"],
              "the executed child's calls %r, idle's %r" % (child["per_op"], idle["per_op"]))

    # exec without fork: the program's records are written before its image
    # goes, the new image's go to FILE.<pid>.
    exec_trace = os.path.join(tmp, "exec.trace")
    run([driver, "record", "-o", exec_trace, "--", prog, "exec"])
    execd = json.loads(run([driver, "info", "--json", exec_trace]))
    check(execd["per_thread"] == work["per_thread"],
          "exec: the threads' calls before the exec %r, %r in the plain run"
          % (execd["per_thread"], work["per_thread"]))
    images = glob.glob(exec_trace + ".*")
    check(len(images) == 1, "the executed image's traces: %r" % images)

    for f in glob.glob(os.path.join(tmp, "*")):
        os.unlink(f)
    os.rmdir(tmp)
    if failures:
        sys.exit("%d checks failed" % len(failures))
    print("all checks passed")


main()
