#!/usr/bin/env bash
# make bench-detect: detection and false-positive rates of the payload
# analyzers on both labelled development corpora, measured end to end
# through the running gateway (default configuration, X-Forwarded-For
# trusted from 127.0.0.1, in-memory store), then the analyzers' Go
# benchmarks.
#
# For each corpus it prints wafeval's per-category table (detection rate for
# attack categories, false-positive rate for benign ones) and its summary
# line
#   tpr=… fpr=… balanced=… n=…
# then `go test -bench` for detections/payload and detections/normalize.
#
# Needs ../shared beside the repository (the corpora and the wafeval
# runner), or SHARED pointing at it. Knobs (env): GATEWAY_PORT,
# UPSTREAM_PORT, ADMIN_PORT (free ports are picked otherwise), CORPORA
# (space-separated files; default dev.jsonl.gz and dev-extra.jsonl.gz of
# $SHARED/corpus), CORPUS (one file, for compatibility), WAFEVAL_ARGS (extra
# runner flags, e.g. "-sources mgm,crs -max-pl 1"), BENCHTIME (go test
# -benchtime, default 1s), SKIP_BENCH=1 (corpora only).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$(cd "$root/.." && pwd)/shared}
cd "$root"

CORPORA=${CORPORA:-${CORPUS:-$shared/corpus/dev.jsonl.gz $shared/corpus/dev-extra.jsonl.gz}}
for c in $CORPORA; do
  [ -f "$c" ] || { echo "bench-detect: corpus not found at $c (clone shared/ beside the repository, or set SHARED)" >&2; exit 1; }
done
[ -d "$shared/tools/wafeval" ] || { echo "bench-detect: $shared/tools/wafeval not found" >&2; exit 1; }

work=$(mktemp -d /tmp/rampart-bench-detect.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "bench-detect: building into $work" >&2
CGO_ENABLED=0 go build -trimpath -o "$work/" ./cmd/gateway ./cmd/demo-upstream
# The runner's directory may be read-only: build it with -o elsewhere.
(cd "$shared/tools/wafeval" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -o "$work/wafeval" ./cmd/wafeval)

# freeport prints a port nothing listens on: the kernel's choice when
# python3 is there, otherwise a random high port that refuses connections.
freeport() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "bench-detect: no free port found" >&2; exit 1
}
wait_http() {
  for _ in $(seq 1 100); do
    if command -v curl >/dev/null; then
      curl -s -o /dev/null "$1" && return 0
    elif (exec 3<>"/dev/tcp/127.0.0.1/${1##*:}") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "bench-detect: $1 did not come up" >&2
  exit 1
}

UP=${UPSTREAM_PORT:-$(freeport)}
GW=${GATEWAY_PORT:-$(freeport)}
ADM=${ADMIN_PORT:-$(freeport)}

"$work/demo-upstream" -listen "127.0.0.1:$UP" >"$work/upstream.log" 2>&1 &
pids+=($!)
GATEWAY_LISTEN="127.0.0.1:$GW" GATEWAY_UPSTREAM="http://127.0.0.1:$UP" GATEWAY_ADMIN_LISTEN="127.0.0.1:$ADM" \
GATEWAY_TRUSTED_PROXIES=127.0.0.1/32 GATEWAY_LOG_LEVEL=error \
  "$work/gateway" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$UP"
wait_http "http://127.0.0.1:$GW"

for c in $CORPORA; do
  echo
  echo "== $(basename "$c") through 127.0.0.1:$GW"
  # shellcheck disable=SC2086 # WAFEVAL_ARGS is a list of flags.
  "$work/wafeval" -url "http://127.0.0.1:$GW" -corpus "$c" -max-duration 10m ${WAFEVAL_ARGS:-} || {
    status=$?
    echo "bench-detect: wafeval exited with $status on $c; gateway log:" >&2
    tail -20 "$work/gateway.log" >&2
    exit "$status"
  }
done

if [ "${SKIP_BENCH:-}" = 1 ]; then
  exit 0
fi
echo
echo "bench-detect: analyzer benchmarks (go test -bench, -benchtime ${BENCHTIME:-1s})" >&2
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" ./detections/payload/ ./detections/normalize/
