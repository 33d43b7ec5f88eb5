# shellcheck shell=bash
# tests/servers/lib.sh - helpers shared by tests/servers/servers.sh and
# bench/servers.sh (sourced, not run).
#
# The caller sets TMP (a directory for the servers' output) and calls
# kill_servers from its EXIT trap, so that no server outlives it. The
# functions work with and without set -e.

# malloc_binding comes from bench/lib.sh, where the benchmark scripts' check
# of the allocator they preload uses it too.
# shellcheck source=../../bench/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../../bench/lib.sh"

# PIDS: the servers started and not yet stopped.
PIDS=()

# start_server NAME PRELOAD COMMAND...: start COMMAND in the background with
# LD_PRELOAD=PRELOAD (empty: nothing preloaded); its stdout and stderr go to
# $TMP/NAME.out and $TMP/NAME.err. Sets SERVER_PID.
start_server() {
  local name=$1 preload=$2
  shift 2
  LD_PRELOAD="$preload" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

# stop_server PID: SIGTERM, wait up to 20 s (then SIGKILL); sets STOP_RC to
# the exit status (137 when it had to be killed, 128+N for a signal). Not
# to be called in $(...): only this shell can wait for its children.
stop_server() {
  local pid=$1 i p keep=()
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  # shellcheck disable=SC2034 # read by the caller
  wait "$pid" 2>/dev/null && STOP_RC=0 || STOP_RC=$?
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# kill_servers: stop every server still running (for the EXIT trap).
kill_servers() {
  local pid i
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# free_port: a TCP port nobody listens on now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: wait (up to 20 s) until something accepts connections
# on 127.0.0.1:PORT; fails at once if process PID has died.
wait_port() {
  local port=$1 pid=$2 i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# mapped PID LIB: is LIB mapped into process PID?
mapped() {
  grep -qF "$2" "/proc/$1/maps" 2>/dev/null
}

# memory_kib PID...: "HWM RSS" in KiB, each summed over the processes:
# VmHWM is the peak resident set, VmRSS the current one.
memory_kib() {
  local pid hwm=0 rss=0 h r
  for pid in "$@"; do
    h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || true
    r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || true
    hwm=$((hwm + ${h:-0}))
    rss=$((rss + ${r:-0}))
  done
  echo "$hwm $rss"
}

# write_www DIR "TEXT SIZES" "BINARY SIZES": the static files served by
# nginx, tSIZE.txt (base64 of random bytes, so gzip has work to do) and
# bSIZE.bin (random bytes). Prints their names.
write_www() {
  local dir=$1 size
  mkdir -p "$dir"
  for size in $2; do
    head -c $((size * 3 / 4 + 3)) /dev/urandom | base64 -w 76 | head -c "$size" >"$dir/t$size.txt"
    echo "t$size.txt"
  done
  for size in $3; do
    head -c "$size" /dev/urandom >"$dir/b$size.bin"
    echo "b$size.bin"
  done
  chmod 755 "$dir"
  chmod 644 "$dir"/*
}

# nginx_conf PREFIX PORT: an nginx.conf that keeps everything under PREFIX
# and serves PREFIX/www on 127.0.0.1:PORT with 2 workers. sendfile off:
# nginx reads the files through its own buffers; gzip for text files (zlib
# state allocated and freed per response); autoindex: a generated page.
nginx_conf() {
  local dir=$1 port=$2
  mkdir -p "$dir/logs" "$dir/tmp"
  cat <<EOF
worker_processes 2;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log notice;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  types { text/plain txt; application/octet-stream bin; text/html html; }
  default_type application/octet-stream;
  sendfile off;
  output_buffers 2 64k;
  gzip on;
  gzip_types text/plain;
  gzip_min_length 0;
  gzip_comp_level 1;
  server {
    listen 127.0.0.1:$port;
    root $dir/www;
    autoindex on;
  }
}
EOF
}

# wrk_result FIELD LINE: one field of wrk_rotate.lua's "WRK_RESULT k=v ..."
# line.
wrk_result() {
  local v=" ${2#WRK_RESULT}"
  v=${v#* "$1"=}
  echo "${v%% *}"
}
