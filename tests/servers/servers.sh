#!/usr/bin/env bash
# servers.sh - run real servers with LD_PRELOAD=libstrata.so under load and
# check that they answer right.
#
# usage: servers.sh /path/to/libstrata.so [redis|nginx|memcached|all]
#
# Parts (each prints one PASS or FAIL line with its figures):
#   redis      redis-server; redis-benchmark (>1M requests, 50 clients,
#              -P 16, values of 16, 256 and 4096 bytes); then a second
#              server with two I/O threads: a short load and a known
#              dataset written, read back and checked (redis_client.py),
#              including BGSAVE (fork) and DEBUG RELOAD, and INFO memory.
#              Both free big values in redis' lazyfree thread.
#   nginx      nginx serving static files of several sizes (plain and
#              gzip), loaded by wrk for 10 s; zero socket errors and zero
#              error responses; every file fetched with curl and compared.
#   memcached  memcached -I 1m; memcached_client.py check: 4 connections
#              (threads), set/get/multi-get/append/delete of values from
#              1 B to 500 KB, every value checked.
#
# For each part it also checks that the server's malloc really is Strata's
# (the dynamic linker binds the executable's malloc to libstrata.so, and the
# library is mapped into the running server), that no "strata:" diagnostic
# was printed, and that the server exits with status 0 when stopped
# (SIGTERM). Every server listens on 127.0.0.1 only, on a free port, with
# its files in a temporary directory, and is killed when the script exits.
#
# A program that is not installed is a FAIL (CI must install: redis-server
# redis-tools nginx wrk memcached curl python3). Exit status 0 only when
# every part asked for passed. SERVERS_KEEP=1 keeps the temporary directory
# (logs, configs) for a look.
set -uo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 /path/to/libstrata.so [redis|nginx|memcached|all]" >&2
  exit 2
fi
SO=$(readlink -f -- "$1")
if [[ ! -f "$SO" ]]; then
  echo "servers: $1: no such library" >&2
  exit 2
fi
case "${2:-all}" in
  all) PARTS=(redis nginx memcached) ;;
  redis | nginx | memcached) PARTS=("$2") ;;
  *) echo "servers: unknown part '$2' (redis, nginx, memcached or all)" >&2; exit 2 ;;
esac

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-servers.XXXXXX")
# nginx workers run as "nobody" when started by root: they must be able to
# read the files under $TMP.
chmod 755 "$TMP"
export LC_ALL=C
# Limit for each client run: a hang is a failure, not a stuck test suite.
LIMIT=${SERVERS_TIMEOUT:-300}

# ---- helpers -----------------------------------------------------------------------
# lib.sh: start_server, stop_server, kill_servers, free_port, wait_port,
# malloc_binding, mapped, write_www, nginx_conf, wrk_result.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
cleanup() {
  kill_servers
  if [[ -z "${SERVERS_KEEP:-}" ]]; then rm -rf -- "$TMP"; else echo "servers: files kept in $TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# check_strata PROG ARGS...: fails (with a message in WHY) unless Strata's
# malloc is the one PROG gets.
check_strata() {
  local got
  got=$(malloc_binding "$SO" "$@")
  if [[ "$got" != "$SO" ]]; then
    WHY+="malloc of $1 binds to '${got:-?}', not to $SO; "
    return 1
  fi
}

# strata_messages FILE...: the first lines Strata printed (diagnostics start
# with "strata: ").
strata_messages() {
  grep -h '^strata: ' "$@" 2>/dev/null | head -5
}

# need PROGRAM...: fails (a FAIL line, not a skip) when a program is not
# installed.
need() {
  local missing=() p
  for p in "$@"; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    WHY="not installed: ${missing[*]} (apt-get install -y redis-server redis-tools nginx wrk memcached curl python3)"
    return 1
  fi
}

# ---- redis --------------------------------------------------------------------------
# Debian's redis-server links libjemalloc.so.2 and calls malloc, free,
# realloc, calloc and malloc_usable_size by their plain names: with
# LD_PRELOAD those go to Strata. It also calls nallocx and mallctl, which
# Strata does not define, so they still go to jemalloc (used only for a
# size-class shortcut in sdsResize, which stays correct since nallocx(n) >= n,
# and for jemalloc's statistics in INFO memory).
#
# Two server runs: the first takes the redis-benchmark load; the second
# runs with two I/O threads (client buffers allocated by one thread and
# freed by another) for a shorter load and the dataset check. (I/O threads
# spin while they wait: on two cores that slows the big load a lot.) Both
# free big deleted values and flushed databases in redis' lazyfree thread.

# redis_up NAME ARGS...: start redis-server with Strata and the extra ARGS;
# sets REDIS_PID and REDIS_CLI (a redis-cli command for it, as an array).
redis_up() {
  local name=$1 dir=$TMP/$1 port
  shift
  mkdir -p "$dir"
  port=$(free_port)
  start_server "$name" "$SO" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
    --save '' --appendonly no --daemonize no --logfile "$dir/redis.log" \
    --enable-debug-command yes --lazyfree-lazy-user-del yes --lazyfree-lazy-user-flush yes "$@"
  REDIS_PID=$SERVER_PID
  REDIS_PORT=$port
  REDIS_CLI=(redis-cli -h 127.0.0.1 -p "$port")
  if ! wait_port "$port" "$REDIS_PID"; then
    WHY+="redis-server did not start: $(tail -3 "$TMP/$name.err" "$dir/redis.log" 2>/dev/null | tr '\n' ' '); "
    return 1
  fi
  mapped "$REDIS_PID" "$SO" || WHY+="libstrata.so is not mapped into redis-server; "
}

# redis_down NAME: no error replies, still alive, exit status 0 on SIGTERM,
# no Strata diagnostic; else adds to WHY.
redis_down() {
  local name=$1 msg
  if "${REDIS_CLI[@]}" INFO errorstats | grep -q '^errorstat_'; then
    WHY+="error replies: $("${REDIS_CLI[@]}" INFO errorstats | grep '^errorstat_' | tr -d '\r' | tr '\n' ' '); "
  fi
  kill -0 "$REDIS_PID" 2>/dev/null || WHY+="redis-server ($name) died; "
  stop_server "$REDIS_PID"
  [[ $STOP_RC -ne 0 ]] && WHY+="redis-server ($name) exited with status $STOP_RC when stopped; "
  msg=$(strata_messages "$TMP/$name.err" "$TMP/$name/redis.log")
  [[ -n "$msg" ]] && WHY+="Strata printed: $msg; "
  grep -E 'BUG REPORT|crashed by signal|ASSERTION' "$TMP/$name/redis.log" 2>/dev/null | head -5 | sed 's/^/    | /'
}

# redis_commands: the server's count of commands processed so far.
redis_commands() {
  "${REDIS_CLI[@]}" INFO stats | tr -d '\r' | sed -n 's/^total_commands_processed://p'
}

# redis_bench N SIZES TESTS [LABEL]: redis-benchmark, 50 clients, -P 16, N
# requests per test, for each value size of SIZES; adds the number of
# requests to BENCH_TOTAL and the SET/GET rates to BENCH_FIGURES. 4096-byte values
# leave out MSET (10 x 4 KB per request, slow).
redis_bench() {
  local n=$1 d tests csv rc label=${4:-}
  for d in $2; do
    tests=$3
    [[ $d -ge 4096 ]] && tests=${tests/,mset/}
    csv=$(timeout "$LIMIT" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 50 -P 16 -n "$n" \
      -d "$d" -r 10000 -t "$tests" --csv 2>"$TMP/bench.err")
    rc=$?
    if [[ $rc -ne 0 ]]; then
      WHY+="redis-benchmark -d $d: exit status $rc: $(head -c 300 "$TMP/bench.err"); "
      return 1
    fi
    BENCH_TOTAL=$((BENCH_TOTAL + n * $(tr ',' '\n' <<<"$tests" | wc -l)))
    # "SET","326797.41",... -> SET 327k
    BENCH_FIGURES+="${BENCH_FIGURES:+, }$label-d $d: $(awk -F'"' '$2 == "SET" || $2 == "GET" {
      printf "%s%s %dk", (n++ ? " " : ""), $2, $4 / 1000 }' <<<"$csv")"
    "${REDIS_CLI[@]}" FLUSHALL >/dev/null
  done
}

test_redis() {
  need redis-server redis-cli redis-benchmark python3 || return 1
  check_strata redis-server --version || return 1
  local before after ds rc stats io_reads lazy=0
  BENCH_TOTAL=0 BENCH_FIGURES=""

  # 1. The load: 3 sizes x 9 or 10 tests x 40000 requests = 1.16 million.
  redis_up redis || return 1
  before=$(redis_commands)
  redis_bench 40000 "16 256 4096" set,get,incr,lpush,rpop,sadd,hset,spop,zadd,mset
  after=$(redis_commands)
  if [[ -z "$after" || $((after - before)) -lt $BENCH_TOTAL ]]; then
    WHY+="the server counted $((${after:-0} - ${before:-0})) commands, expected >= $BENCH_TOTAL; "
  fi
  lazy=$("${REDIS_CLI[@]}" INFO memory | tr -d '\r' | sed -n 's/^lazyfreed_objects://p')
  redis_down redis

  # 2. Two I/O threads: a short load, then the known dataset, read back and
  # checked (and INFO memory).
  redis_up redis-io --io-threads 2 --io-threads-do-reads yes || return 1
  redis_bench 20000 256 set,get,lpush,hset "2 I/O threads "
  ds=$(timeout "$LIMIT" python3 "$HERE/redis_client.py" --port "$REDIS_PORT" --keys 3000 2>&1)
  rc=$?
  [[ $rc -ne 0 ]] && WHY+="redis_client.py: exit status $rc: $(tail -5 <<<"$ds" | tr '\n' ' '); "
  # How much of the work crossed threads (figures, not checks: redis turns
  # its I/O threads on and off by itself).
  stats=$("${REDIS_CLI[@]}" INFO everything | tr -d '\r')
  io_reads=$(sed -n 's/^io_threaded_reads_processed://p' <<<"$stats")
  lazy=$((${lazy:-0} + $(sed -n 's/^lazyfreed_objects://p' <<<"$stats")))
  redis_down redis-io

  [[ -n "$WHY" ]] && return 1
  FIGURES="$BENCH_TOTAL benchmark requests (50 clients, -P 16; req/s $BENCH_FIGURES);"
  FIGURES+=" ${ds#redis_client: }; ${io_reads:-?} reads by I/O threads,"
  FIGURES+=" $lazy objects freed by the lazyfree thread"
}

# ---- nginx ----------------------------------------------------------------------------
test_nginx() {
  need nginx wrk curl python3 || return 1
  check_strata nginx -v || return 1
  local dir=$TMP/nginx port master files=()
  port=$(free_port)
  mapfile -t files < <(write_www "$dir/www" "1 100 1000 4096 20000 100000 1000000" "512 65536 2000000")
  chmod 755 "$dir"
  nginx_conf "$dir" "$port" >"$dir/nginx.conf"
  start_server nginx "$SO" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  master=$SERVER_PID
  if ! wait_port "$port" "$master"; then
    WHY="nginx did not start: $(tail -3 "$TMP/nginx.err" "$dir/logs/error.log" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  sleep 0.3 # let both workers start
  local workers w
  workers=$(pgrep -P "$master" | sort | tr '\n' ' ')
  [[ -z "$workers" ]] && WHY+="no nginx worker processes; "
  for w in $workers; do mapped "$w" "$SO" || WHY+="libstrata.so is not mapped into nginx worker $w; "; done

  # Load: wrk, 2 threads, 4 connections, 10 s, every file in turn, plain
  # and gzip.
  local url=http://127.0.0.1:$port out res rc
  out=$(timeout "$LIMIT" wrk -t 2 -c 4 -d 10s --timeout 10s -s "$HERE/wrk_rotate.lua" "$url" \
    -- "${files[@]/#//}" 2>&1)
  rc=$?
  res=$(grep '^WRK_RESULT' <<<"$out")
  if [[ $rc -ne 0 || -z "$res" ]]; then
    WHY+="wrk failed (status $rc): $(tail -3 <<<"$out" | tr '\n' ' '); "
  else
    local requests errors secs rps mbps
    requests=$(wrk_result requests "$res")
    errors=connect=${res#*connect=}
    secs=$(wrk_result duration_us "$res")
    rps=$(awk -v n="$requests" -v us="$secs" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
    mbps=$(awk -v b="$(wrk_result bytes "$res")" -v us="$secs" 'BEGIN { printf "%.0f", b / (us / 1e6) / 1e6 }')
    if [[ "$errors" != "connect=0 read=0 write=0 timeout=0 status=0" ]]; then
      WHY+="wrk errors: $errors; "
    fi
    [[ "${requests:-0}" -gt 0 ]] || WHY+="wrk made no request; "
  fi

  # Content: every file, plain and gzip (curl decompresses), byte for byte.
  local f checked=0 gz=0 hdr
  for f in "${files[@]}"; do
    if ! curl -sS --fail -o "$dir/got" "$url/$f" 2>>"$dir/curl.err" || ! cmp -s "$dir/got" "$dir/www/$f"; then
      WHY+="$f differs (plain); "
    fi
    if ! curl -sS --fail --compressed -D "$dir/hdr" -o "$dir/got" "$url/$f" 2>>"$dir/curl.err" ||
      ! cmp -s "$dir/got" "$dir/www/$f"; then
      WHY+="$f differs (gzip); "
    fi
    hdr=$(tr -d '\r' <"$dir/hdr" 2>/dev/null)
    grep -qi '^content-encoding: gzip' <<<"$hdr" && gz=$((gz + 1))
    checked=$((checked + 2))
  done
  [[ $gz -eq 0 ]] && WHY+="no response was gzip-compressed; "
  # The generated directory listing names every file.
  if curl -sS --fail -o "$dir/index" "$url/" 2>>"$dir/curl.err"; then
    for f in "${files[@]}"; do grep -qF "\"$f\"" "$dir/index" || WHY+="index lacks $f; "; done
  else
    WHY+="no directory index; "
  fi

  # Crashed workers are restarted by the master, which logs it.
  if grep -q 'exited on signal' "$dir/logs/error.log"; then
    WHY+="$(grep -m1 'exited on signal' "$dir/logs/error.log"); "
  fi
  [[ "$(pgrep -P "$master" | sort | tr '\n' ' ')" == "$workers" ]] || WHY+="the workers changed; "
  stop_server "$master"
  [[ $STOP_RC -ne 0 ]] && WHY+="nginx exited with status $STOP_RC when stopped; "
  local msg
  msg=$(strata_messages "$TMP/nginx.err" "$dir/logs/error.log")
  [[ -n "$msg" ]] && WHY+="Strata printed: $msg; "
  [[ -n "$WHY" ]] && return 1
  FIGURES="wrk 10 s, 2 threads, 4 connections, ${#files[@]} files (1 B - 2 MB, plain and gzip): $requests requests, $rps req/s, $mbps MB/s, 0 errors; $checked fetches compared ($gz gzip)"
}

# ---- memcached ----------------------------------------------------------------------
test_memcached() {
  need memcached python3 || return 1
  check_strata memcached -V || return 1
  local port pid user=() out rc
  port=$(free_port)
  # memcached refuses to run as root unless told which user to be.
  [[ $(id -u) -eq 0 ]] && user=(-u root)
  start_server memcached "$SO" memcached "${user[@]}" -l 127.0.0.1 -p "$port" -U 0 -m 512 -I 1m -t 2 -c 128
  pid=$SERVER_PID
  if ! wait_port "$port" "$pid"; then
    WHY="memcached did not start: $(tail -3 "$TMP/memcached.err" | tr '\n' ' ')"
    return 1
  fi
  mapped "$pid" "$SO" || WHY+="libstrata.so is not mapped into memcached; "
  out=$(timeout "$LIMIT" python3 "$HERE/memcached_client.py" check --port "$port" \
    --threads 4 --ops 2500 --max-size 500000 2>&1)
  rc=$?
  [[ $rc -ne 0 ]] && WHY+="memcached_client.py: exit status $rc: $(tail -8 <<<"$out" | tr '\n' ' '); "
  kill -0 "$pid" 2>/dev/null || WHY+="memcached died; "
  stop_server "$pid"
  [[ $STOP_RC -ne 0 ]] && WHY+="memcached exited with status $STOP_RC when stopped; "
  local msg
  msg=$(strata_messages "$TMP/memcached.err")
  [[ -n "$msg" ]] && WHY+="Strata printed: $msg; "
  [[ -n "$WHY" ]] && return 1
  FIGURES="${out##*memcached_client: }"
}

# ---- main --------------------------------------------------------------------------------
pass=0 fail=0
for part in "${PARTS[@]}"; do
  WHY="" FIGURES=""
  start=$SECONDS
  if "test_$part" && [[ -z "$WHY" ]]; then
    echo "PASS: $part ($FIGURES; $((SECONDS - start)) s)"
    pass=$((pass + 1))
  else
    echo "FAIL: $part: ${WHY%; } ($((SECONDS - start)) s)"
    if [[ -s "$TMP/$part.err" ]]; then
      tail -5 "$TMP/$part.err" | sed 's/^/    stderr | /'
    fi
    fail=$((fail + 1))
  fi
done
echo "servers: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
