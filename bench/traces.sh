#!/usr/bin/env bash
# usage: bench/traces.sh [--build DIR] [--out DIR] [--all] [NAME...]
#
# Records traces of real programs for the replay workloads (docs/benchmarks.md,
# "Replayed traces"): with DIR/bench/strata-trace (default DIR: build), the
# malloc calls of programs installed on this machine go to OUT/NAME.trace
# (default OUT: DIR/traces); it prints the path of each trace, one a line:
#
#   python   python3 (PYTHONMALLOC=malloc) building and serialising JSON and
#            dicts (short: the quick profile's trace)
#   sqlite   sqlite3 loading 200,000 rows into a database, indexing and
#            querying it
#   gcc      gcc's compiler proper (cc1) compiling a generated 600-function
#            C file at -O2
#   redis    redis-server serving redis-benchmark (SET, GET, LPUSH, LPOP)
#
# With no NAME it records python; --all records them all. A program that is
# not installed is skipped with a message on stderr. Traces are recorded
# afresh each time (they are not shipped: they depend on the machine's
# programs and libraries).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

build=build
out=
names=()
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --build) build=${2:?--build needs a directory}; shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --all) names=(python sqlite gcc redis) ;;
    python|sqlite|gcc|redis) names+=("$1") ;;
    *) echo "traces.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
((${#names[@]})) || names=(python)
out=${out:-$build/traces}
tool=$build/bench/strata-trace
[[ -x $tool ]] || { echo "traces.sh: $tool is missing (ninja -C $build)" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d)
server=
# A recording that fails (set -e) must not leave redis-server running.
trap '[[ -n $server ]] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

skip() { echo "traces.sh: $1: skipped ($2)" >&2; }
record() {    # record NAME PROGRAM ARGS... (the program's output is dropped)
  local name=$1
  shift
  "$tool" record -o "$out/$name.trace" -- "$@" > /dev/null
  echo "$out/$name.trace"
}

for name in "${names[@]}"; do
  case "$name" in
    python)
      py=$(command -v python3 || true)
      [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
      [[ -n $py ]] || { skip python "no python3"; continue; }
      # PYTHONMALLOC=malloc: every object comes from malloc, not only what
      # pymalloc's arenas do not serve, so the trace exercises the allocator.
      PYTHONMALLOC=malloc record python "$py" -c '
import json
rows = [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5)} for i in range(60000)]
text = json.dumps(rows)
back = json.loads(text)
index = {r["name"]: r for r in back}
print(len(text), len(index), sum(len(r["tags"]) for r in index.values()))
'
      ;;
    sqlite)
      command -v sqlite3 >/dev/null || { skip sqlite "no sqlite3"; continue; }
      cat > "$work/load.sql" <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, payload TEXT);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
INSERT INTO t SELECT i, 'name' || i, i % 97, hex(randomblob(40)) FROM n;
COMMIT;
CREATE INDEX t_grp ON t(grp);
SELECT grp, count(*), max(length(payload)) FROM t GROUP BY grp ORDER BY 2 DESC LIMIT 5;
SELECT count(*) FROM t a JOIN t b ON a.grp = b.grp AND b.id = a.id + 97 WHERE a.id < 50000;
EOF
      record sqlite sqlite3 "$work/db.sqlite" < "$work/load.sql"
      ;;
    gcc)
      cc1=$(gcc -print-prog-name=cc1 2>/dev/null || true)
      [[ -x $cc1 ]] || { skip gcc "no gcc (cc1)"; continue; }
      python3 - "$work/big.c" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("struct s { int a, b; double c[4]; };\n")
    for i in range(600):
        f.write("int f%d(struct s *p, int n) { int r = %d; for (int k = 0; k < n; k++) "
                "{ r += p[k].a * %d - p[k].b; p[k].c[k & 3] += r * 0.5; } "
                "return r ^ (n << %d); }\n" % (i, i, i % 13 + 1, i % 7))
EOF
      record gcc "$cc1" -quiet -O2 "$work/big.c" -o "$work/big.s"
      ;;
    redis)
      command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null &&
        command -v redis-cli >/dev/null || { skip redis "no redis-server/redis-benchmark"; continue; }
      port=$((20000 + RANDOM % 20000))
      "$tool" record -o "$out/redis.trace" -- redis-server --port "$port" --save '' \
        --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
      server=$!
      for _ in $(seq 100); do
        redis-cli -p "$port" ping > /dev/null 2>&1 && break
        sleep 0.05
      done
      redis-benchmark -p "$port" -n 100000 -c 20 -d 100 -q -t set,get,lpush,lpop > /dev/null
      redis-cli -p "$port" shutdown nosave > /dev/null 2>&1 || true
      wait "$server" || true
      server=
      echo "$out/redis.trace"
      ;;
  esac
done
