#!/usr/bin/env bash
# Runs every native fuzz target for a while (default 30s each) and prints
# each target's final exec count. Usage: scripts/fuzz.sh [DURATION] [PKG-REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-30s}
filter=${2:-.}
status=0
for pkg in $(go list ./... | grep -E "$filter"); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" 2>&1) || { status=1; echo "$out" | tail -20; }
    last=$(echo "$out" | grep -E 'execs: [0-9]+' | tail -1 | sed -E 's/.*elapsed: ([^,]+), execs: ([0-9]+).*/\1 \2/')
    printf '%-60s %s\n' "${pkg#github.com/rampartgw/rampart/}.${target}" "elapsed/execs: ${last:-?}"
  done
done
exit $status
