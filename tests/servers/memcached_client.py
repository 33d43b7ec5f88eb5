#!/usr/bin/env python3
"""memcached_client.py - a small memcached text-protocol client for Strata's
server tests (tests/servers/servers.sh) and server benchmark
(bench/servers.sh). Standard library only.

Two modes:

  check  several threads, one connection each, run a random mix of set,
         get, multi-get, append and delete on their own keys, with values of
         random sizes (log-uniform, 1 byte to --max-size). Every reply is
         compared with a model of what the server must hold. At the end each
         thread reads back all its keys, deletes them and checks they are
         gone. Prints one "memcached_client: ..." summary line; exit status
         0 only when every reply was right.

           memcached_client.py check --port 11211 --threads 4 --ops 2500

  bench  several processes (not threads: no GIL between them), one
         connection each, send pipelined batches of 90% get / 10% set on a
         shared key space for a fixed time, and print the operations per
         second. Replies are counted, not checked (that is check's job).

           memcached_client.py bench --port 11211 --duration 5

The server must be started with an item size limit above --max-size
(memcached -I 1m) and enough memory (-m) that nothing is evicted: check
treats any missing value as a failure.
"""

import argparse
import math
import multiprocessing
import random
import socket
import sys
import threading
import time


class ProtocolError(Exception):
    """The server sent something the text protocol does not allow here."""


class Conn:
    """One TCP connection to memcached, with a receive buffer."""

    def __init__(self, port, host="127.0.0.1", timeout=60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.chunk = bytearray(256 * 1024)
        self.chunk_view = memoryview(self.chunk)

    def close(self):
        self.sock.close()

    # ---- receiving ----------------------------------------------------------
    def _fill(self):
        # recv_into a reused buffer: recv(big) would allocate (and map) a
        # fresh big bytes object on every call.
        n = self.sock.recv_into(self.chunk)
        if n == 0:
            raise ProtocolError("connection closed by the server")
        self.buf += self.chunk_view[:n]

    def readline(self):
        """One reply line, without its \\r\\n."""
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def readexact(self, n):
        """Exactly n bytes (a value and its trailing \\r\\n)."""
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    # ---- commands -------------------------------------------------------------
    def store(self, verb, key, value, flags=0):
        """set/add/append/...: returns the reply line (b"STORED", ...)."""
        self.sock.sendall(b"%s %s %d 0 %d\r\n" % (verb, key, flags, len(value))
                          + value + b"\r\n")
        return self.readline()

    def get_multi(self, keys):
        """get k1 k2 ...: returns {key: (flags, value)} for the hits."""
        self.sock.sendall(b"get " + b" ".join(keys) + b"\r\n")
        found = {}
        while True:
            line = self.readline()
            if line == b"END":
                return found
            parts = line.split()
            # VALUE <key> <flags> <bytes>
            if len(parts) != 4 or parts[0] != b"VALUE":
                raise ProtocolError("unexpected get reply %r" % line[:80])
            n = int(parts[3])
            data = self.readexact(n + 2)
            if data[-2:] != b"\r\n":
                raise ProtocolError("value of %r not followed by \\r\\n" % parts[1])
            if parts[1] in found:
                raise ProtocolError("key %r returned twice" % parts[1])
            found[parts[1]] = (int(parts[2]), data[:-2])

    def delete(self, key):
        """True when the key existed, False when it did not."""
        self.sock.sendall(b"delete %s\r\n" % key)
        line = self.readline()
        if line == b"DELETED":
            return True
        if line == b"NOT_FOUND":
            return False
        raise ProtocolError("unexpected delete reply %r" % line[:80])

    def stats(self):
        """The general statistics, as {name: value string}."""
        self.sock.sendall(b"stats\r\n")
        out = {}
        while True:
            line = self.readline()
            if line == b"END":
                return out
            parts = line.decode().split(" ", 2)
            if parts[0] != "STAT" or len(parts) != 3:
                raise ProtocolError("unexpected stats reply %r" % line[:80])
            out[parts[1]] = parts[2]


# ---- check mode -----------------------------------------------------------------

def random_size(rng, max_size):
    """Log-uniform in [1, max_size]: as many tiny as huge values, with an
    occasional exact max_size."""
    if rng.random() < 0.02:
        return max_size
    return max(1, min(max_size, int(math.exp(rng.uniform(0, math.log(max_size))))))


class CheckWorker(threading.Thread):
    """One connection running random operations on its own key space."""

    def __init__(self, args, tid):
        super().__init__(name="worker-%d" % tid)
        self.args = args
        self.tid = tid
        self.rng = random.Random(args.seed * 1000 + tid)
        self.counts = dict(set=0, get=0, multiget=0, append=0, delete=0,
                           bytes_sent=0, bytes_received=0)
        self.errors = []

    def error(self, msg):
        if len(self.errors) < 10:
            self.errors.append("thread %d: %s" % (self.tid, msg))
        else:
            self.errors.append(None)  # counted, not printed

    def compare(self, key, want, got):
        """want and got are (flags, value) or None."""
        if want == got:
            return
        if want is None:
            self.error("%s: expected no value, got %d bytes" % (key.decode(), len(got[1])))
        elif got is None:
            self.error("%s: expected %d bytes, got no value" % (key.decode(), len(want[1])))
        elif want[0] != got[0]:
            self.error("%s: flags %d, expected %d" % (key.decode(), got[0], want[0]))
        else:
            w, g = want[1], got[1]
            first = next((i for i in range(min(len(w), len(g))) if w[i] != g[i]), None)
            self.error("%s: value differs: %d bytes, expected %d, first difference at %s"
                       % (key.decode(), len(g), len(w), first))

    def run(self):
        try:
            self.work()
        except (OSError, ProtocolError) as e:
            self.error("%s: %s" % (type(e).__name__, e))

    def work(self):
        a, rng, c = self.args, self.rng, self.counts
        conn = Conn(a.port)
        keys = [b"t%d:key%d" % (self.tid, i) for i in range(a.keys)]
        model = {}  # key -> (flags, value): what the server must hold
        for _ in range(a.ops):
            r = rng.random()
            key = rng.choice(keys)
            if r < 0.40:                                   # set
                value = rng.randbytes(random_size(rng, a.max_size))
                flags = rng.randrange(1 << 16)
                reply = conn.store(b"set", key, value, flags)
                if reply != b"STORED":
                    self.error("set %s (%d bytes): %r" % (key.decode(), len(value), reply))
                model[key] = (flags, value)
                c["set"] += 1
                c["bytes_sent"] += len(value)
            elif r < 0.70:                                 # get one key
                got = conn.get_multi([key]).get(key)
                self.compare(key, model.get(key), got)
                c["get"] += 1
                c["bytes_received"] += len(got[1]) if got else 0
            elif r < 0.80:                                 # get several keys
                some = rng.sample(keys, rng.randint(2, 12))
                got = conn.get_multi(some)
                for k in some:
                    self.compare(k, model.get(k), got.get(k))
                    c["bytes_received"] += len(got[k][1]) if k in got else 0
                c["multiget"] += 1
            elif r < 0.88:                                 # append (grows a value)
                extra = rng.randbytes(rng.randint(1, 2000))
                reply = conn.store(b"append", key, extra)
                if key in model:
                    want = b"STORED"
                    model[key] = (model[key][0], model[key][1] + extra)
                else:
                    want = b"NOT_STORED"
                if reply != want:
                    self.error("append %s: %r, expected %r" % (key.decode(), reply, want))
                c["append"] += 1
                c["bytes_sent"] += len(extra)
            else:                                          # delete
                existed = conn.delete(key)
                if existed != (key in model):
                    self.error("delete %s: server says existed=%s, model says %s"
                               % (key.decode(), existed, key in model))
                model.pop(key, None)
                c["delete"] += 1
        # Read everything back, delete it all, check it is all gone.
        for i in range(0, len(keys), 16):
            some = keys[i:i + 16]
            got = conn.get_multi(some)
            for k in some:
                self.compare(k, model.get(k), got.get(k))
            c["multiget"] += 1
        for k in keys:
            if conn.delete(k) != (k in model):
                self.error("final delete %s: unexpected reply" % k.decode())
            c["delete"] += 1
        left = conn.get_multi(keys)
        if left:
            self.error("%d keys still there after deleting them all" % len(left))
        conn.close()


def run_check(a):
    start = time.monotonic()
    workers = [CheckWorker(a, t) for t in range(a.threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    secs = time.monotonic() - start
    total = {k: sum(w.counts[k] for w in workers) for k in workers[0].counts}
    errors = [e for w in workers for e in w.errors]
    ops = sum(total[k] for k in ("set", "get", "multiget", "append", "delete"))
    st = {}
    try:
        conn = Conn(a.port)
        st = conn.stats()
        conn.close()
    except (OSError, ProtocolError) as e:
        errors.append("stats: %s" % e)
    for e in errors:
        if e is not None:
            print("memcached_client: ERROR " + e)
    if len(errors) > sum(1 for e in errors if e is not None):
        print("memcached_client: ... %d errors in all" % len(errors))
    if st.get("evictions", "0") != "0":
        print("memcached_client: note: the server evicted %s items (raise -m)" % st["evictions"])
    print("memcached_client: %d threads, %d ops (%d set, %d get, %d multi-get, %d append, "
          "%d delete), %.1f MB sent, %.1f MB received, max value %d B, %.1f s, %d errors"
          % (a.threads, ops, total["set"], total["get"], total["multiget"], total["append"],
             total["delete"], total["bytes_sent"] / 1e6, total["bytes_received"] / 1e6,
             a.max_size, secs, len(errors)))
    return 1 if errors else 0


# ---- bench mode -------------------------------------------------------------------

def bench_process(a, pid, ready, go, results):
    """Fill this process's share of the keys, then run pipelined batches
    until the deadline; puts the operation count on results."""
    rng = random.Random(a.seed * 1000 + pid)
    conn = Conn(a.port)
    sizes = [rng.randint(a.min_size, a.max_size) for _ in range(1024)]
    # Values are all 'v': no "\r\n", "END" or "STORED" inside, so replies
    # can be counted by their terminators alone.
    values = [b"v" * n for n in sizes]
    keys = [b"b:%d" % i for i in range(a.keys)]
    mine = range(pid, a.keys, a.procs)
    for start in range(0, len(mine), 100):    # 100 sets per write
        batch = mine[start:start + 100]
        conn.sock.sendall(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (keys[i], sizes[i % 1024],
                                                                   values[i % 1024])
                                   for i in batch))
        for _ in batch:
            if conn.readline() != b"STORED":
                raise SystemExit("bench: set failed during the fill")
    ready.release()
    go.wait()
    deadline = time.monotonic() + a.duration
    ops = 0
    while time.monotonic() < deadline:
        out = []
        n_set = n_get = 0
        for _ in range(a.batch):
            key = keys[rng.randrange(a.keys)]
            if rng.random() < 0.1:
                v = values[rng.randrange(1024)]
                out.append(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(v), v))
                n_set += 1
            else:
                out.append(b"get %s\r\n" % key)
                n_get += 1
        conn.sock.sendall(b"".join(out))
        # Wait for n_set "STORED" and n_get "END" replies.
        buf = bytearray()
        while True:
            n = conn.sock.recv_into(conn.chunk)
            if n == 0:
                raise SystemExit("bench: connection closed by the server")
            buf += conn.chunk_view[:n]
            if buf.endswith(b"\r\n") and \
               buf.count(b"STORED\r\n") == n_set and buf.count(b"END\r\n") == n_get:
                break
        ops += a.batch
    conn.close()
    results.put(ops)


def run_bench(a):
    ready = multiprocessing.Semaphore(0)
    go = multiprocessing.Event()
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=bench_process, args=(a, p, ready, go, results))
             for p in range(a.procs)]
    for p in procs:
        p.start()
    # Wait until every process has filled its keys (or one has died).
    filled = 0
    limit = time.monotonic() + 300
    while filled < len(procs):
        if ready.acquire(timeout=0.5):
            filled += 1
        elif any(p.exitcode is not None for p in procs) or time.monotonic() > limit:
            print("memcached_client: bench: the fill failed", file=sys.stderr)
            for p in procs:
                p.terminate()
            return 1
    start = time.monotonic()
    go.set()
    ops = sum(results.get(timeout=a.duration + 120) for _ in procs)
    secs = time.monotonic() - start
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        return 1
    print("memcached_client: bench: %d processes, %d ops in %.2f s, ops_per_s=%.0f"
          % (a.procs, ops, secs, ops / secs))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("check", help="random operations, every value checked")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--threads", type=int, default=4)
    c.add_argument("--ops", type=int, default=2500, help="operations per thread")
    c.add_argument("--keys", type=int, default=150, help="keys per thread")
    c.add_argument("--max-size", type=int, default=500_000)
    c.add_argument("--seed", type=int, default=1)
    b = sub.add_parser("bench", help="fixed-duration throughput")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--procs", type=int, default=2)
    b.add_argument("--duration", type=float, default=5.0)
    b.add_argument("--keys", type=int, default=20000)
    b.add_argument("--min-size", type=int, default=16)
    b.add_argument("--max-size", type=int, default=4096)
    b.add_argument("--batch", type=int, default=32, help="commands per pipelined write")
    b.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    return run_check(a) if a.mode == "check" else run_bench(a)


if __name__ == "__main__":
    sys.exit(main())
