#!/usr/bin/env bash
# test_man.sh - the strata(3) man page renders without a warning and stays
# complete.
#
# usage: test_man.sh MAN_PAGE HEADER README
#
# 1. groff -man -ww -z: every warning groff knows, no output; any message
#    fails the test (groff-base, which ci/test installs).
# 2. Each function strata.h declares is named in the page, and so is each
#    key of the README's table of STRATA_OPTIONS (its section "Options").
# Exit 0 on success, 1 on failure, 77 (skipped) when groff is missing.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 MAN_PAGE HEADER README" >&2
  exit 2
fi
PAGE=$1 HEADER=$2 README=$3
failed=0
fail() { echo "test_man: FAIL: $*" >&2; failed=1; }

if ! command -v groff >/dev/null; then
  echo "test_man: SKIP: groff is not installed" >&2
  exit 77
fi
messages=$(groff -man -ww -z "$PAGE" 2>&1) || fail "groff exited with status $?"
[[ -z "$messages" ]] || fail "groff warns about $PAGE:"$'\n'"$messages"

functions=$(grep -oE '\bstrata_[a-z0-9_]+ *\(' "$HEADER" | tr -d ' (' | sort -u)
[[ -n "$functions" ]] || fail "no strata_ function found in $HEADER"
for f in $functions; do
  grep -qE "\\b$f\\b" "$PAGE" || fail "$PAGE does not name $f (declared in strata.h)"
done
keys=$(sed -n '/^## Options$/,/^## /s/^| `\([a-z_]*\)` |.*/\1/p' "$README")
[[ -n "$keys" ]] || fail "no options table found in $README"
for k in $keys; do
  grep -qE "^\\.BR $k( |\$)" "$PAGE" || fail "$PAGE does not describe the option $k"
done

if [[ $failed -ne 0 ]]; then exit 1; fi
echo "test_man: OK ($(wc -w <<<"$functions") functions, $(wc -w <<<"$keys") options)"
