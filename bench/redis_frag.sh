#!/usr/bin/env bash
# usage: bench/redis_frag.sh [libstrata.so]     (default build/libstrata.so)
#
# redis-server's own view of fragmentation per allocator: load a dataset
# (values of mixed sizes), delete half of the keys at random, wait for the
# allocator's decay, and report redis's used_memory, used_memory_rss and
# mem_fragmentation_ratio at each step. Allocators, each preloaded: strata
# (the library given), glibc (libc.so.6, ahead of redis's own jemalloc) and
# jemalloc (the library Debian's redis links anyway). Before measuring, it
# checks that redis-server's malloc binds to each library, and stops if one
# does not (a missing library would otherwise leave redis on its jemalloc).
# Environment: KEYS (default 200000). Needs redis-server redis-tools
# python3 bc. A measurement, not a test.
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/bench/lib.sh"
parse_args 1 "$@"
load_allocators "$ROOT/build"
STRATA=${ARGS[0]:-${ALLOCATOR[strata]}}
KEYS=${KEYS:-200000}
SPECS=("strata=$STRATA" "glibc=$(libc_path)" "jemalloc=${ALLOCATOR[jemalloc]}")
for spec in "${SPECS[@]}"; do
  require_malloc "${spec#*=}" redis-server --version || exit 1
done
TMP=$(mktemp -d)
# shellcheck source=../tests/servers/lib.sh
source "$ROOT/tests/servers/lib.sh"
trap 'kill_servers; rm -rf "$TMP"' EXIT

info() { redis-cli -p "$PORT" info memory | tr -d '\r' | grep -E "^$1:" | cut -d: -f2; }
row() {  # label
  printf '| %s | %s | %-6s | %6.1f | %6.1f | %s |\n' "$NAME" "$1" "$(info used_memory_human)" \
    "$(echo "$(info used_memory_rss) / 1048576" | bc -l)" "$(echo "$(info used_memory) / 1048576" | bc -l)" \
    "$(info mem_fragmentation_ratio)"
}

echo "| allocator | step | used_memory | RSS MiB | used MiB | mem_fragmentation_ratio |"
echo "|---|---|---|---:|---:|---:|"
for spec in "${SPECS[@]}"; do
  NAME=${spec%%=*}; PRELOAD=${spec#*=}
  PORT=$((20000 + RANDOM % 20000))
  start_server "redis-$NAME" "$PRELOAD" redis-server --port "$PORT" --save "" --appendonly no \
    --dir "$TMP" --activedefrag no --lazyfree-lazy-user-del no
  for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  # Values of 16 B .. 4 KiB, in pipelined batches.
  python3 - "$PORT" "$KEYS" <<'PY'
import random, socket, sys
port, keys = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
rnd = random.Random(1)
def batch(cmds):
    out = b"".join(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in c) for c in cmds)
    s.sendall(out)
    got = 0
    buf = b""
    while got < len(cmds):
        buf += s.recv(1 << 16)
        got = buf.count(b"\r\n")
for start in range(0, keys, 1000):
    batch([[b"SET", b"key:%d" % k, b"v" * rnd.choice([16, 40, 100, 300, 700, 1500, 4000])]
           for k in range(start, min(keys, start + 1000))])
PY
  row "loaded $KEYS keys"
  python3 - "$PORT" "$KEYS" <<'PY'
import random, socket, sys
port, keys = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
gone = random.Random(2).sample(range(keys), keys // 2)
for i in range(0, len(gone), 1000):
    ks = gone[i:i + 1000]
    s.sendall(b"".join(b"*2\r\n$3\r\nDEL\r\n$%d\r\nkey:%d\r\n" % (len(b"key:%d" % k), k) for k in ks))
    n = 0
    while n < len(ks):
        n += s.recv(1 << 16).count(b"\r\n")
PY
  row "half deleted"
  sleep 2
  row "2 s later"
  stop_server "$SERVER_PID"
done
