# shellcheck shell=bash
# bench/lib.sh - helpers shared by the benchmark scripts (bench/memory.sh,
# bench/servers.sh, bench/redis_frag.sh) and tests/servers/lib.sh (sourced,
# not run).

BENCH_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

# usage: the calling script's header comment, which is its usage.
usage() {
  sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"
}

# parse_args MAX ARG...: --help or -h prints the usage and exits 0; any other
# option, or more than MAX operands, prints the usage on stderr and exits 2.
# Sets ARGS to the operands.
parse_args() {
  local max=$1 a
  shift
  ARGS=()
  for a in "$@"; do
    case $a in
      -h | --help) usage; exit 0 ;;
      -*) echo "$0: unknown option $a" >&2; usage >&2; exit 2 ;;
      *) ARGS+=("$a") ;;
    esac
  done
  if ((${#ARGS[@]} > max)); then
    echo "$0: too many arguments: ${ARGS[*]}" >&2
    usage >&2
    exit 2
  fi
}

# load_allocators BUILD: fills the associative array ALLOCATOR (name ->
# library path, empty for the C library's malloc) and the array
# ALLOCATOR_NAMES (in bench/allocators.py's order) from bench/allocators.py,
# the one list of allocators; Strata's library is BUILD/libstrata.so.
# shellcheck disable=SC2034 # ALLOCATOR*: read by the scripts that source this file
load_allocators() {
  local name path lines
  lines=$(python3 "$BENCH_DIR/allocators.py" --build "$1") || return 1
  declare -gA ALLOCATOR=()
  ALLOCATOR_NAMES=()
  while IFS='=' read -r name path; do
    ALLOCATOR[$name]=$path
    ALLOCATOR_NAMES+=("$name")
  done <<<"$lines"
}

# libc_path: the C library this machine's programs load (preloading it puts
# glibc's malloc ahead of one a program links, e.g. redis-server's jemalloc).
libc_path() {
  ldd "$BASH" | awk '$1 == "libc.so.6" { print $3 }'
}

# malloc_binding PRELOAD EXE ARGS...: the library (full path, links
# resolved) that the dynamic linker binds EXE's own calls to malloc to, when
# EXE runs with LD_PRELOAD=PRELOAD. EXE ARGS must just print something and
# exit (e.g. --version). LD_BIND_NOW makes the linker resolve every symbol
# at start, so LD_DEBUG=bindings lists them all.
malloc_binding() {
  local preload=$1 exe lib
  exe=$(command -v "$2")
  shift 2
  lib=$(LD_BIND_NOW=1 LD_DEBUG=bindings LD_PRELOAD="$preload" "$exe" "$@" 2>&1 >/dev/null </dev/null |
    grep -F "binding file $exe [0] to " | grep -F "normal symbol \`malloc'" | head -1 |
    sed -e 's/.* to \(.*\) \[[0-9]*\]: normal symbol.*/\1/') || true
  if [[ -n "$lib" ]]; then readlink -f -- "$lib"; fi
}

# require_malloc PRELOAD EXE ARGS...: succeeds if EXE's malloc binds to the
# library PRELOAD (to the C library's when PRELOAD is empty), else says why
# on stderr and fails. The dynamic linker only warns about a preload it
# cannot load (a wrong path, another architecture) and runs the program on
# its own malloc, so without this check a script would print that malloc's
# figures under the name of the allocator it meant to measure. Asking the
# linker which library EXE's malloc binds to works for any dynamically
# linked program, servers included, without a probe inside the process.
# EXE ARGS as for malloc_binding.
require_malloc() {
  local preload=$1 exe=$2 got
  if [[ -n "$preload" && ! -f "$preload" ]]; then
    echo "$0: $preload: no such library" >&2
    return 1
  fi
  got=$(malloc_binding "$@")
  if [[ -z "$preload" ]]; then
    [[ "${got##*/}" == libc.so.6 ]] && return 0
    echo "$0: $exe's malloc binds to ${got:-no library}, not to the C library's" >&2
  else
    [[ -n "$got" && "$got" == "$(readlink -f -- "$preload")" ]] && return 0
    echo "$0: with LD_PRELOAD=$preload, $exe's malloc binds to ${got:-no library}," \
      "not to that library (no malloc exported, another architecture?)" >&2
  fi
  return 1
}
