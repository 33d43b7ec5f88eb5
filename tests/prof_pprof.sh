#!/usr/bin/env bash
# prof_pprof.sh PROGRAM DIR - google-pprof reads Strata's heap profiles.
#
# PROGRAM (prof_leak.c) runs with prof=1, prof_leak=1 and a sample every
# 32 KiB on average (about 500 samples of the 16 MiB leak, so the estimate's
# standard deviation is under 5 % and the 25 % bound below is 5 of them;
# at the default 512 KiB it would be 18 %): google-pprof
# --text must put its leaking function first in in-use space, and its
# churning one first in allocated space; the leak report at exit must name
# the leaking site first, with about the 16 MiB it holds.
set -euo pipefail
prog=$1
dir=$2
command -v google-pprof >/dev/null || { echo "google-pprof is missing (package google-perftools)"; exit 1; }
rm -f "$dir"/prof_leak.*.heap
STRATA_OPTIONS=prof=1,prof_leak=1,prof_rate=32k,prof_out="$dir/prof_leak" "$prog" 2> "$dir/prof_leak.err"
profile=$(ls "$dir"/prof_leak.*.heap)
fail=0
first_function() {   # the function of the first row of a --text report
  google-pprof --text "$@" "$prog" "$profile" 2>/dev/null | awk '$2 ~ /%$/ { print $6; exit }'
}
inuse=$(first_function --inuse_space)
alloc=$(first_function --alloc_space)
echo "in use, first: $inuse; allocated, first: $alloc"
[[ $inuse == leak_here ]] || { echo "FAIL: in-use space is not led by leak_here"; fail=1; }
[[ $alloc == churn ]] || { echo "FAIL: allocated space is not led by churn"; fail=1; }
google-pprof --text --inuse_space "$prog" "$profile" 2>/dev/null | head -4
# The leak report: its first site is about 16 MiB (within 25 %) and is
# leak_here's (backtrace_symbols_fd names the program's address; pprof's
# addr2line does not run here, so compare with the first frame's offset).
head -8 "$dir/prof_leak.err"
mib=$(awk '/^strata: leak: about/ { v = $4; u = $5; if (u == "KiB") v /= 1024; if (u == "GiB") v *= 1024; print v; exit }' "$dir/prof_leak.err")
awk -v m="${mib:-0}" 'BEGIN { exit !(m >= 12 && m <= 20) }' || { echo "FAIL: the first leak is ${mib:-none} MiB, not about 16"; fail=1; }
frame=$(awk '/^strata: leak: about/ { getline; print; exit }' "$dir/prof_leak.err" | sed -n 's/.*(+\(0x[0-9a-f]*\)).*/\1/p')
start=$(nm "$prog" | awk '$3 == "leak_here" { print "0x" $1 }')
size=$(nm -S "$prog" | awk '$4 == "leak_here" { print "0x" $2 }')
if [[ -z $frame || -z $start ]] || (( frame < start || frame >= start + size )); then
  echo "FAIL: the first leak's first frame ($frame) is not in leak_here ($start, $size bytes)"
  fail=1
fi
rm -f "$profile" "$dir/prof_leak.err"
exit $fail
