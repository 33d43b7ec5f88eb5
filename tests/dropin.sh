#!/usr/bin/env bash
# The run functions are called indirectly (through bash -c).
# shellcheck disable=SC2317,SC2163
# dropin.sh - run real programs with LD_PRELOAD=libstrata.so and compare
# their output with a run without it.
#
# usage: dropin.sh /path/to/libstrata.so
#
# Programs: python3 (threads), sort, perl, sqlite3, git, gcc. Each prints
# PASS, FAIL (with a diff) or SKIP (only when the program is not installed;
# a skip is not a pass). Exit status 0 only when nothing failed; 77 (the
# meson "skip" code) when every program was skipped.
set -uo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 /path/to/libstrata.so" >&2
  exit 2
fi
SO=$(readlink -f -- "$1")
if [[ ! -f "$SO" ]]; then
  echo "dropin: $1: no such library" >&2
  exit 2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-dropin.XXXXXX")
# DROPIN_KEEP=1 keeps the outputs for a look.
if [[ -z "${DROPIN_KEEP:-}" ]]; then trap 'rm -rf -- "$TMP"' EXIT; else echo "dropin: outputs in $TMP"; fi
export LC_ALL=C TZ=UTC
# Per-run limit: a hang is a failure, not a stuck test suite.
LIMIT=${DROPIN_TIMEOUT:-300}

pass=0 fail=0 skip=0

# run_both NAME FUNC: runs the shell function FUNC twice (in a fresh bash,
# under timeout), in working dirs $TMP/NAME.{ref,strata}/work, without and
# with the preload (with it, the bash running FUNC is preloaded too).
# Compares stdout and the exit status; stderr of the preloaded run must not
# carry a Strata diagnostic.
export TMP
run_both() {
  local name=$1 func=$2
  export -f "$func"
  local ref=$TMP/$name.ref sub=$TMP/$name.strata
  mkdir -p "$ref/work" "$sub/work"
  local rc_ref rc_sub
  (cd "$ref/work" && timeout "$LIMIT" bash -c "set -o pipefail; $func") >"$ref/out" 2>"$ref/err"
  rc_ref=$?
  (cd "$sub/work" && LD_PRELOAD="$SO${LD_PRELOAD:+:$LD_PRELOAD}" \
    timeout "$LIMIT" bash -c "set -o pipefail; $func") >"$sub/out" 2>"$sub/err"
  rc_sub=$?
  local why=""
  if [[ $rc_ref -ne 0 ]]; then
    why="the reference run (without Strata) failed with status $rc_ref"
  elif [[ $rc_sub -ne 0 ]]; then
    why="exit status $rc_sub with Strata (0 without)"
    [[ $rc_sub -eq 124 ]] && why="timed out after ${LIMIT}s with Strata"
    [[ $rc_sub -gt 128 ]] && why="killed by signal $((rc_sub - 128)) with Strata"
  elif ! cmp -s "$ref/out" "$sub/out"; then
    why="output differs"
  elif grep -q '^strata: ' "$sub/err"; then
    why="Strata printed a diagnostic"
  elif [[ ! -s "$ref/out" ]]; then
    why="no output to compare"
  fi
  if [[ -z "$why" ]]; then
    echo "PASS: $name ($(wc -l <"$sub/out") lines compared)"
    pass=$((pass + 1))
  else
    echo "FAIL: $name: $why"
    diff "$ref/out" "$sub/out" | head -20 | sed 's/^/    /'
    if [[ -s "$sub/err" ]]; then
      echo "    stderr with Strata:"
      tail -20 "$sub/err" | sed 's/^/    | /'
    fi
    if [[ $rc_ref -ne 0 && -s "$ref/err" ]]; then
      echo "    stderr without Strata:"
      tail -20 "$ref/err" | sed 's/^/    | /'
    fi
    fail=$((fail + 1))
  fi
}

have() {
  if command -v "$1" >/dev/null 2>&1; then
    return 0
  fi
  echo "SKIP: $2 ($1 is not installed)"
  skip=$((skip + 1))
  return 1
}

# ---- sanity: the preload is in effect -------------------------------------
# cat is the process under test here.
# shellcheck disable=SC2002
if LD_PRELOAD="$SO" cat /proc/self/maps | grep -F "$SO" >/dev/null; then
  echo "PASS: preload (libstrata.so is mapped into a preloaded process)"
  pass=$((pass + 1))
else
  echo "FAIL: preload: $SO is not mapped into a process run with LD_PRELOAD"
  LD_PRELOAD="$SO" true 2>&1 | head -5 | sed 's/^/    /'
  fail=$((fail + 1))
fi

# ---- python3 with threads ---------------------------------------------------
cat >"$TMP/threads.py" <<'EOF'
import threading, hashlib

def work(tid, out):
    h = hashlib.sha256()
    for r in range(60):
        d = {}
        for i in range(2000):
            k = "k%d-%d-%d" % (tid, r, i)
            d[k] = [i, str(i) * (i % 7), {"x": i, "y": (tid, r)}]
        l = sorted(d.items())
        for k, v in l[::97]:
            h.update(k.encode())
            h.update(repr(v).encode())
        big = bytearray(200000 + tid * 1000)
        big[-1] = r
        h.update(bytes(big[-16:]))
        del d, l, big
    out[tid] = h.hexdigest()

out = {}
ts = [threading.Thread(target=work, args=(t, out)) for t in range(8)]
for t in ts: t.start()
for t in ts: t.join()
for t in sorted(out): print(t, out[t])
total = hashlib.sha256("".join(out[t] for t in sorted(out)).encode()).hexdigest()
print("total", total)
EOF
py_run() { PYTHONHASHSEED=0 python3 "$TMP/threads.py"; }
if have python3 "python3 threads"; then run_both python3 py_run; fi

# ---- sort -------------------------------------------------------------------
# 200k pseudo-random lines, generated deterministically (LCG in awk).
awk 'BEGIN { x = 12345; for (i = 0; i < 200000; i++) {
       x = (x * 1103515245 + 12345) % 2147483648;
       printf "%d line %d %s\n", x % 1000003, i, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, x % 20 + 1) } }' \
  >"$TMP/lines.txt"
sort_run() {
  sort "$TMP/lines.txt" | cksum
  sort -n -k1,1 -k3,3 "$TMP/lines.txt" | cksum
  # Small buffer: temporary files and merges; two threads.
  sort -S 1M --parallel=2 -T . -r "$TMP/lines.txt" | cksum
  sort -u -k4 "$TMP/lines.txt" | wc -l
}
if have sort "sort"; then run_both sort sort_run; fi

# ---- perl ---------------------------------------------------------------------
perl_run() {
  perl -e '
    my %h; my @a;
    for my $i (1 .. 300000) { $h{"key$i"} = [$i, "v" x ($i % 13)]; }
    for my $i (1 .. 300000) { delete $h{"key$i"} if $i % 3 == 0; }
    my $s = 0; $s += $h{$_}[0] + length($h{$_}[1]) for keys %h;
    push @a, join(",", map { $_ * 2 } 1 .. ($_ % 50)) for 1 .. 20000;
    my %w; $w{$_}++ for map { split /,/ } @a;
    my $t = 0; $t += $w{$_} * length($_) for sort keys %w;
    print scalar(keys %h), " $s $t\n";
    print join(" ", (sort { $a <=> $b } keys %w)[0 .. 9]), "\n";'
}
if have perl "perl"; then run_both perl perl_run; fi

# ---- sqlite3 ---------------------------------------------------------------------
awk 'BEGIN { print "CREATE TABLE t(id INTEGER PRIMARY KEY, g INTEGER, name TEXT, v REAL);";
             print "CREATE INDEX tg ON t(g);";
             print "BEGIN;";
             x = 7;
             for (i = 1; i <= 50000; i++) {
               x = (x * 1103515245 + 12345) % 2147483648;
               printf "INSERT INTO t VALUES(%d, %d, %cname-%d-%d%c, %d.25);\n", i, x % 97, 39, i, x % 1000, 39, x % 100000 }
             print "COMMIT;" }' >"$TMP/load.sql"
sqlite_run() {
  sqlite3 db.sqlite <"$TMP/load.sql" &&
    sqlite3 db.sqlite "SELECT count(*), sum(v), min(name), max(name) FROM t;" \
      "SELECT g, count(*), round(avg(v), 3), group_concat(id % 10, '') FROM (SELECT * FROM t ORDER BY id) GROUP BY g ORDER BY g LIMIT 20;" \
      "SELECT count(DISTINCT name), sum(length(name)) FROM t WHERE g < 50;" \
      "CREATE TABLE u AS SELECT g, max(v) AS m FROM t GROUP BY g;" \
      "SELECT count(*) FROM t JOIN u USING (g) WHERE t.v = u.m;" \
      "PRAGMA integrity_check;"
}
if have sqlite3 "sqlite3"; then run_both sqlite3 sqlite_run; fi

# ---- git ---------------------------------------------------------------------------
git_run() {
  export HOME=$PWD GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Strata GIT_AUTHOR_EMAIL=t@example.org
  export GIT_COMMITTER_NAME=Strata GIT_COMMITTER_EMAIL=t@example.org
  export GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
  git init -q -b main repo && cd repo || return 1
  for d in 1 2 3 4; do
    mkdir -p "dir$d"
    for f in $(seq 1 50); do
      seq "$f" $((f * d * 20)) >"dir$d/file$f.txt"
    done
  done
  git add -A && git commit -q -m "first commit" || return 1
  for f in $(seq 1 2 50); do echo "change $f" >>"dir2/file$f.txt"; done
  git rm -q dir3/file7.txt && git mv dir4/file8.txt dir1/moved.txt
  git add -A && git commit -q -m "second commit" || return 1
  git log --stat --format='%H %s' | cat
  git diff --stat HEAD~1 HEAD | cat
  git gc -q --aggressive 2>&1
  git fsck --full --strict 2>&1
  git rev-parse HEAD 'HEAD^{tree}'
  git count-objects -v | grep -E '^(count|in-pack|packs)'
}
if have git "git"; then run_both git git_run; fi

# ---- gcc ---------------------------------------------------------------------------
cat >"$TMP/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *l, *r; int k; };
static struct node *ins(struct node *t, int k) {
  if (!t) { t = calloc(1, sizeof *t); t->k = k; return t; }
  if (k < t->k) t->l = ins(t->l, k); else t->r = ins(t->r, k);
  return t;
}
static long sum(struct node *t, int d) { return t ? t->k * (long)d + sum(t->l, d + 1) + sum(t->r, d + 1) : 0; }
static void drop(struct node *t) { if (t) { drop(t->l); drop(t->r); free(t); } }
int main(void) {
  struct node *t = NULL;
  unsigned x = 1;
  for (int i = 0; i < 100000; i++) { x = x * 1664525u + 1013904223u; t = ins(t, (int)(x >> 8)); }
  char *s = malloc(16); strcpy(s, "tree");
  printf("%s %ld\n", s, sum(t, 1));
  free(s); drop(t);
  return 0;
}
EOF
gcc_run() {
  gcc -O2 -Wall -S -o - "$TMP/prog.c" | grep -v '\.ident' | cksum &&
    gcc -O2 -Wall -o prog "$TMP/prog.c" && ./prog &&
    gcc -O0 -g -c -o prog.o "$TMP/prog.c" && size prog.o | tail -1 | awk '{print $1, $2, $3}'
}
if have gcc "gcc"; then run_both gcc gcc_run; fi

echo "dropin: $pass passed, $fail failed, $skip skipped"
if [[ $fail -gt 0 ]]; then exit 1; fi
if [[ $pass -le 1 ]]; then exit 77; fi
exit 0
