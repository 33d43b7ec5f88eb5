#!/usr/bin/env python3
"""redis_client.py - write a known dataset into a Redis server, read it back
and check every value; used by tests/servers/servers.sh. Standard library
only (a minimal RESP client, pipelined).

  redis_client.py --port 6379 [--keys 3000] [--max-size 200000] [--seed 1]

Steps, each one checked:
  1. FLUSHALL, then write --keys keys of five types: strings (log-uniform
     random sizes, 1 byte to --max-size, some grown by APPEND and SETRANGE),
     hashes, lists, sets and sorted sets, with random binary contents.
  2. Read every key back (GET, HGETALL, LRANGE, SMEMBERS, ZRANGE) and compare
     it with the copy kept here.
  3. BGSAVE (the server forks a child that writes an RDB file) and wait for
     it; DEBUG RELOAD (save, empty the dataset, load it again from the
     file: every value freed and allocated anew); read everything back again.
  4. Delete a random half; check DBSIZE, that the deleted keys are gone and
     the others intact.
  5. INFO memory, MEMORY USAGE, MEMORY STATS and MEMORY DOCTOR must answer.
Prints one "redis_client: ..." summary line; exit status 0 only when every
check passed. The server needs enable-debug-command yes (for DEBUG RELOAD)
and a writable dir.
"""

import argparse
import math
import random
import socket
import sys
import time


class RespError(Exception):
    """An error reply (-ERR ...) from the server, or a broken connection."""


class Redis:
    """One connection; call() sends one command, pipeline() many."""

    def __init__(self, port, host="127.0.0.1", timeout=120):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = bytearray()
        self.chunk = bytearray(256 * 1024)
        self.view = memoryview(self.chunk)

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, (int, float)):
                a = repr(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _fill(self):
        n = self.sock.recv_into(self.chunk)
        if n == 0:
            raise RespError("connection closed by the server")
        self.buf += self.view[:n]

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read(self):
        """One reply: bytes, int, None, list, or a RespError instance (not
        raised, so that a pipeline can go on)."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RespError("bad reply line %r" % line[:80])

    def pipeline(self, cmds):
        self.sock.sendall(b"".join(self.encode(c) for c in cmds))
        return [self.read() for _ in cmds]

    def call(self, *args):
        reply = self.pipeline([args])[0]
        if isinstance(reply, RespError):
            raise reply
        return reply


def random_size(rng, max_size):
    return max(1, min(max_size, int(math.exp(rng.uniform(0, math.log(max_size))))))


def build_dataset(rng, nkeys, max_size):
    """The keys to write: {key: (type, value)} and the commands that write
    them (in order)."""
    data, cmds = {}, []
    for i in range(nkeys):
        r = rng.random()
        if r < 0.55:                               # string, maybe grown
            key = b"str:%d" % i
            v = rng.randbytes(random_size(rng, max_size))
            cmds.append(("SET", key, v))
            if rng.random() < 0.3:                 # APPEND: the value grows (realloc)
                extra = rng.randbytes(random_size(rng, 5000))
                cmds.append(("APPEND", key, extra))
                v += extra
            if rng.random() < 0.1:                 # SETRANGE past the end: zero padding
                off = len(v) + rng.randint(0, 3000)
                piece = rng.randbytes(rng.randint(1, 100))
                cmds.append(("SETRANGE", key, off, piece))
                v = v + b"\0" * (off - len(v)) + piece
            data[key] = ("string", v)
        elif r < 0.70:                             # hash
            key = b"hash:%d" % i
            h = {b"f%d" % j: rng.randbytes(random_size(rng, 2000))
                 for j in range(rng.randint(1, 60))}
            cmds.append(("HSET", key, *[x for kv in h.items() for x in kv]))
            data[key] = ("hash", h)
        elif r < 0.85:                             # list
            key = b"list:%d" % i
            lst = [rng.randbytes(random_size(rng, 3000)) for _ in range(rng.randint(1, 150))]
            cmds.append(("RPUSH", key, *lst))
            data[key] = ("list", lst)
        elif r < 0.93:                             # set
            key = b"set:%d" % i
            s = {b"m%d-" % j + rng.randbytes(rng.randint(0, 40)) for j in range(rng.randint(1, 200))}
            cmds.append(("SADD", key, *s))
            data[key] = ("set", s)
        else:                                      # sorted set
            key = b"zset:%d" % i
            z = {b"z%d" % j: rng.randint(-10**6, 10**6) for j in range(rng.randint(1, 200))}
            cmds.append(("ZADD", key, *[x for m, sc in z.items() for x in (sc, m)]))
            data[key] = ("zset", z)
    return data, cmds


def read_cmd(key, kind):
    return {"string": ("GET", key), "hash": ("HGETALL", key), "list": ("LRANGE", key, 0, -1),
            "set": ("SMEMBERS", key), "zset": ("ZRANGE", key, 0, -1, "WITHSCORES")}[kind]


def decode(kind, reply):
    """A read reply as the same Python value that build_dataset keeps."""
    if reply is None or isinstance(reply, RespError):
        return reply
    if kind == "hash":
        return dict(zip(reply[0::2], reply[1::2]))
    if kind == "set":
        return set(reply)
    if kind == "zset":
        return {m: int(float(s)) for m, s in zip(reply[0::2], reply[1::2])}
    return reply


def verify(r, data, errors, what):
    """Read every key of data back; returns how many were read."""
    keys = list(data)
    for i in range(0, len(keys), 100):
        batch = keys[i:i + 100]
        replies = r.pipeline([read_cmd(k, data[k][0]) for k in batch])
        for k, rep in zip(batch, replies):
            kind, want = data[k]
            got = decode(kind, rep)
            if got != want:
                desc = repr(got)[:60] if not isinstance(got, (bytes, list)) else \
                    "%d bytes/items, expected %d" % (len(got), len(want))
                errors.append("%s: %s %s: %s" % (what, kind, k.decode(), desc))
    return len(keys)


def info(r, section):
    text = r.call("INFO", section).decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--keys", type=int, default=3000)
    p.add_argument("--max-size", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = random.Random(a.seed)
    errors = []
    start = time.monotonic()
    r = Redis(a.port)

    # 1. Write.
    r.call("FLUSHALL")
    data, cmds = build_dataset(rng, a.keys, a.max_size)
    for i in range(0, len(cmds), 100):
        for c, rep in zip(cmds[i:i + 100], r.pipeline(cmds[i:i + 100])):
            if isinstance(rep, RespError):
                errors.append("write: %s %s: %s" % (c[0], c[1].decode(), rep))
    nbytes = sum(len(v) for kind, v in data.values() if kind == "string")

    # 2. Read back.
    reads = verify(r, data, errors, "read")

    # 3. Fork a saving child; reload the dataset from disk; read back again.
    r.call("BGSAVE")
    for _ in range(600):
        pers = info(r, "persistence")
        if pers.get("rdb_bgsave_in_progress") == "0":
            break
        time.sleep(0.1)
    if pers.get("rdb_last_bgsave_status") != "ok":
        errors.append("BGSAVE: status %s" % pers.get("rdb_last_bgsave_status"))
    if r.call("DEBUG", "RELOAD") != b"OK":
        errors.append("DEBUG RELOAD did not answer OK")
    reads += verify(r, data, errors, "after reload")

    # 4. Delete half.
    gone = rng.sample(list(data), len(data) // 2)
    deleted = sum(r.pipeline([("DEL", k) for k in gone]))
    if deleted != len(gone):
        errors.append("DEL removed %d keys, expected %d" % (deleted, len(gone)))
    for k in gone:
        del data[k]
    if r.call("DBSIZE") != len(data):
        errors.append("DBSIZE is %d, expected %d" % (r.call("DBSIZE"), len(data)))
    if any(x != 0 for x in r.pipeline([("EXISTS", k) for k in gone])):
        errors.append("some deleted keys still exist")
    reads += verify(r, data, errors, "after delete")

    # 5. Memory introspection (malloc_usable_size, allocator statistics).
    mem = info(r, "memory")
    for field in ("used_memory", "used_memory_rss", "used_memory_peak", "mem_allocator"):
        if field not in mem:
            errors.append("INFO memory has no %s" % field)
    usage = r.call("MEMORY", "USAGE", next(iter(data)))
    if not isinstance(usage, int) or usage <= 0:
        errors.append("MEMORY USAGE answered %r" % (usage,))
    if not isinstance(r.call("MEMORY", "STATS"), list):
        errors.append("MEMORY STATS did not answer a list")
    if not r.call("MEMORY", "DOCTOR"):
        errors.append("MEMORY DOCTOR answered nothing")
    r.call("FLUSHALL")

    for e in errors[:20]:
        print("redis_client: ERROR " + e)
    print("redis_client: %d keys written (%.1f MB of strings), %d reads checked, "
          "BGSAVE + DEBUG RELOAD, %d deleted; used_memory %.1f MB, rss %.1f MB "
          "(mem_allocator %s); %.1f s, %d errors"
          % (a.keys, nbytes / 1e6, reads, len(gone), int(mem.get("used_memory", 0)) / 1e6,
             int(mem.get("used_memory_rss", 0)) / 1e6, mem.get("mem_allocator", "?"),
             time.monotonic() - start, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, RespError) as e:
        print("redis_client: ERROR %s: %s" % (type(e).__name__, e))
        sys.exit(1)
