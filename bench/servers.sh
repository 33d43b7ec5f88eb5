#!/usr/bin/env bash
# usage: bench/servers.sh [/path/to/libstrata.so]     (default build/libstrata.so)
#
# Server throughput and memory with Strata, glibc and jemalloc (a
# benchmark, not a test: it checks little; see tests/servers/servers.sh for
# the checks).
#
# For each round, for each server, for each allocator in turn (A B C A B C
# ...), start the server with that allocator, load it, read its memory, and
# stop it:
#   redis      redis-benchmark, 50 clients, -P 16, 256-byte values, 100000
#              random keys: SET then GET requests/s
#   nginx      wrk, 2 threads, 16 connections, small and medium static
#              files, every second pass gzip (tests/servers/wrk_rotate.lua):
#              requests/s
#   memcached  tests/servers/memcached_client.py bench: 2 processes,
#              pipelined 90% get / 10% set, 16 B - 4 KB values, 20000 keys:
#              operations/s
# and for each server its peak and final resident memory (VmHWM, VmRSS
# from /proc/PID/status just before it is stopped; nginx: master and
# workers summed). Prints the per-round figures, then the medians as a
# markdown table.
#
# Allocators, and what LD_PRELOAD each one means:
#   strata    the libstrata.so given.
#   glibc     glibc's own libc.so.6. For nginx and memcached that changes
#             nothing (their malloc is glibc's anyway). Debian's
#             redis-server is linked against the system libjemalloc.so.2
#             (not a bundled copy: it imports malloc, free, ... by their
#             plain names), so with no preload it runs on jemalloc;
#             preloading libc.so.6 puts glibc first in the symbol lookup,
#             and redis then runs on glibc's malloc.
#   jemalloc  the system libjemalloc.so.2 (bench/allocators.py finds it;
#             JEMALLOC_SO overrides it); for redis-server that is the
#             library it links anyway.
# Before measuring, the script checks with the dynamic linker
# (LD_DEBUG=bindings, bench/lib.sh's require_malloc) that each server's
# malloc binds to the library preloaded, and stops if one does not.
#
# Environment: ROUNDS (default 3), DURATION (seconds of wrk and memcached
# load, default 5), REDIS_REQUESTS (per redis-benchmark test, default
# 300000), SERVERS (default "redis nginx memcached"), ALLOCATORS (default
# "strata glibc jemalloc"), JEMALLOC_SO. Runtime with the defaults: about
# 3-4 minutes on 2 cores. Needs redis-server redis-tools nginx wrk
# memcached python3.
set -uo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/tests/servers
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/bench/lib.sh"
parse_args 1 "$@"
load_allocators "$ROOT/build" || exit 2
SO=${ARGS[0]:-${ALLOCATOR[strata]}}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
REDIS_REQUESTS=${REDIS_REQUESTS:-300000}
read -r -a SERVERS <<<"${SERVERS:-redis nginx memcached}"
read -r -a ALLOCATORS <<<"${ALLOCATORS:-strata glibc jemalloc}"
LIBC=$(libc_path)
JEMALLOC_SO=${JEMALLOC_SO:-${ALLOCATOR[jemalloc]}}

# preload_of ALLOCATOR: the LD_PRELOAD value for it.
preload_of() {
  case $1 in
    strata) echo "$SO" ;;
    glibc) echo "$LIBC" ;;
    jemalloc) echo "$JEMALLOC_SO" ;;
    *) echo "bench/servers.sh: unknown allocator $1" >&2; return 1 ;;
  esac
}

missing=()
for p in redis-server redis-cli redis-benchmark nginx wrk memcached python3; do
  command -v "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "bench/servers.sh: not installed: ${missing[*]}" \
    "(apt-get install -y redis-server redis-tools nginx wrk memcached python3)" >&2
  exit 2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-servers.XXXXXX")
chmod 755 "$TMP" # nginx workers (user nobody when run as root) read files here
# shellcheck source-path=SCRIPTDIR source=../tests/servers/lib.sh
source "$HERE/lib.sh"
trap 'kill_servers; rm -rf -- "$TMP"' EXIT
trap 'exit 130' INT TERM
RESULTS=$TMP/results # lines: SERVER METRIC ALLOCATOR ROUND VALUE
: >"$RESULTS"

# record SERVER METRIC ALLOCATOR VALUE (for the current round)
record() { echo "$1 $2 $3 $round $4" >>"$RESULTS"; }

# ---- which malloc each server gets ----------------------------------------------------
declare -A VERSION_ARGS=([redis-server]=--version [nginx]=-v [memcached]=-V)
for exe in redis-server nginx memcached; do
  for a in "${ALLOCATORS[@]}"; do
    pre=$(preload_of "$a") || exit 2
    require_malloc "$pre" "$exe" "${VERSION_ARGS[$exe]}" || exit 1
  done
done
echo "every server's malloc binds to the library preloaded (checked with LD_DEBUG=bindings)"

# ---- one measurement per server -------------------------------------------------------
# Each run_SERVER ALLOCATOR starts the server with that allocator, loads it,
# records its figures and stops it. A run that fails records nothing and
# prints why; the table shows "-" where no run succeeded.

run_redis() {
  local a=$1 port pid csv hwm rss
  port=$(free_port)
  rm -rf "$TMP/redis" && mkdir -p "$TMP/redis"
  start_server redis "$(preload_of "$a")" redis-server --port "$port" --bind 127.0.0.1 \
    --dir "$TMP/redis" --save '' --appendonly no --daemonize no --logfile "$TMP/redis/log"
  pid=$SERVER_PID
  if ! wait_port "$port" "$pid" ||
    ! csv=$(timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -P 16 \
      -n "$REDIS_REQUESTS" -d 256 -r 100000 -t set,get --csv 2>"$TMP/redis/bench.err"); then
    echo "  redis/$a: failed: $(tail -2 "$TMP/redis/bench.err" "$TMP/redis.err" 2>/dev/null | tr '\n' ' ')"
    stop_server "$pid"
    return 0
  fi
  read -r hwm rss < <(memory_kib "$pid")
  stop_server "$pid"
  # "SET","326797.41",...
  record redis set_rps "$a" "$(awk -F'"' '$2 == "SET" { print $4 }' <<<"$csv")"
  record redis get_rps "$a" "$(awk -F'"' '$2 == "GET" { print $4 }' <<<"$csv")"
  record redis hwm_kib "$a" "$hwm"
  record redis rss_kib "$a" "$rss"
}

NGINX_FILES=()
run_nginx() {
  local a=$1 dir=$TMP/nginx port master out res hwm rss
  port=$(free_port)
  if [[ ${#NGINX_FILES[@]} -eq 0 ]]; then
    mapfile -t NGINX_FILES < <(write_www "$dir/www" "100 1000 4096 16384 65536" "4096 65536")
    chmod 755 "$dir"
  fi
  nginx_conf "$dir" "$port" >"$dir/nginx.conf"
  : >"$dir/logs/error.log"
  start_server nginx "$(preload_of "$a")" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  master=$SERVER_PID
  if wait_port "$port" "$master"; then
    sleep 0.3 # both workers up
    out=$(timeout $((DURATION + 60)) wrk -t 2 -c 16 -d "${DURATION}s" --timeout 10s \
      -s "$HERE/wrk_rotate.lua" "http://127.0.0.1:$port" -- "${NGINX_FILES[@]/#//}" 2>&1) || true
  fi
  res=$(grep '^WRK_RESULT' <<<"${out:-}" || true)
  # shellcheck disable=SC2046 # the worker pids, one word each
  read -r hwm rss < <(memory_kib "$master" $(pgrep -P "$master"))
  stop_server "$master"
  if [[ -z "$res" || "connect=${res#*connect=}" != "connect=0 read=0 write=0 timeout=0 status=0" ]]; then
    echo "  nginx/$a: failed: ${res:-$(tail -2 <<<"${out:-no output}" | tr '\n' ' ')}"
    return 0
  fi
  record nginx rps "$a" "$(awk -v n="$(wrk_result requests "$res")" -v us="$(wrk_result duration_us "$res")" \
    'BEGIN { printf "%.0f", n / (us / 1e6) }')"
  record nginx hwm_kib "$a" "$hwm"
  record nginx rss_kib "$a" "$rss"
}

run_memcached() {
  local a=$1 port pid user=() out hwm rss
  port=$(free_port)
  [[ $(id -u) -eq 0 ]] && user=(-u root) # memcached refuses root without -u
  start_server memcached "$(preload_of "$a")" memcached "${user[@]}" -l 127.0.0.1 -p "$port" \
    -U 0 -m 1024 -I 1m -t 2 -c 128
  pid=$SERVER_PID
  if ! wait_port "$port" "$pid" ||
    ! out=$(timeout $((DURATION + 120)) python3 "$HERE/memcached_client.py" bench --port "$port" \
      --procs 2 --duration "$DURATION" --keys 20000 --min-size 16 --max-size 4096 2>&1); then
    echo "  memcached/$a: failed: $(tail -2 <<<"${out:-}" | tr '\n' ' ')"
    stop_server "$pid"
    return 0
  fi
  read -r hwm rss < <(memory_kib "$pid")
  stop_server "$pid"
  record memcached ops "$a" "${out##*ops_per_s=}"
  record memcached hwm_kib "$a" "$hwm"
  record memcached rss_kib "$a" "$rss"
}

# ---- rounds ------------------------------------------------------------------------------
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
start=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
  for server in "${SERVERS[@]}"; do
    for a in "${ALLOCATORS[@]}"; do
      "run_$server" "$a"
    done
    # This round's figures for the server, one line per metric.
    awk -v s="$server" -v n="$round" -v allocs="${ALLOCATORS[*]}" '
      $1 == s && $4 == n { v[$2 " " $3] = $5; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } }
      END { na = split(allocs, al, " ")
            for (i = 1; i <= k; i++) {
              line = sprintf("  round %d %-9s %-8s", n, s, order[i])
              for (j = 1; j <= na; j++) line = line sprintf(" %s %s", al[j], v[order[i] " " al[j]])
              print line } }' "$RESULTS"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $((SECONDS - start)) s"
echo

# ---- medians as a markdown table ---------------------------------------------------------
# median SERVER METRIC ALLOCATOR: the median of the recorded values ("-"
# when none).
median() {
  awk -v s="$1" -v m="$2" -v a="$3" '$1 == s && $2 == m && $3 == a { print $5 }' "$RESULTS" |
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-";
                                         else if (NR % 2) print v[(NR + 1) / 2];
                                         else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# row SERVER METRIC LABEL SCALE: one table line; SCALE divides the values
# (1000 for k/s, 1024 for KiB -> MiB).
row() {
  local line="| $1 | $3 |" a v
  for a in "${ALLOCATORS[@]}"; do
    v=$(median "$1" "$2" "$a")
    [[ "$v" != "-" ]] && v=$(awk -v v="$v" -v d="$4" 'BEGIN { printf "%.1f", v / d }')
    line+=" $v |"
  done
  echo "$line"
}

echo "Medians of $ROUNDS rounds (strata = $SO):"
echo
header="| server | metric |" sep="|---|---|"
for a in "${ALLOCATORS[@]}"; do header+=" $a |"; sep+="---:|"; done
echo "$header"
echo "$sep"
for server in "${SERVERS[@]}"; do
  case $server in
    redis)
      row redis set_rps "SET k req/s (-P 16, 50 clients, 256 B)" 1000
      row redis get_rps "GET k req/s" 1000
      ;;
    nginx) row nginx rps "k req/s (wrk, 16 connections)" 1000 ;;
    memcached) row memcached ops "k ops/s (2 clients, pipelined 90% get)" 1000 ;;
  esac
  row "$server" hwm_kib "peak RSS MiB (VmHWM)" 1024
  row "$server" rss_kib "final RSS MiB (VmRSS)" 1024
done
echo
echo "redis-server links the system libjemalloc.so.2: its 'jemalloc' column is its own"
echo "malloc; its 'glibc' column preloads libc.so.6 to put glibc's malloc first."
echo "memcached ops/s are bounded by the Python client (2 processes on the same cores)."
