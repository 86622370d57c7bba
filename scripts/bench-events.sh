#!/usr/bin/env bash
# Events under load: the same mixed traffic (every 5th request malicious)
# through a gateway writing security events to Redis and one with events
# off, interleaved; then checks that the stream holds exactly as many
# request_blocked events as /metrics counted blocks (nothing lost).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
RATE=${RATE:-1000} SECS=${SECS:-8} ROUNDS=${ROUNDS:-3}
SERVER_CPUS=${SERVER_CPUS:-0} LOAD_CPUS=${LOAD_CPUS:-1}
if [ "$(nproc)" -lt 2 ]; then SERVER_CPUS=0 LOAD_CPUS=0; fi
for c in redis-server redis-cli jq curl; do command -v $c >/dev/null || { echo "bench-events: $c is required" >&2; exit 1; }; done

work=$(mktemp -d /tmp/rampart-events.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
CGO_ENABLED=0 go build -trimpath -o "$work/" ./cmd/gateway ./cmd/demo-upstream ./bench/loadgen

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
srv=(taskset -c "$SERVER_CPUS")
load() { taskset -c "$LOAD_CPUS" "$work/loadgen" "$@"; }
wait_http() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 did not come up" >&2; exit 1; }

UP=$(freeport) RP=$(freeport) ON=$(freeport) OFF=$(freeport) AON=$(freeport) AOFF=$(freeport)
"${srv[@]}" redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
"${srv[@]}" "$work/demo-upstream" -listen "127.0.0.1:$UP" >/dev/null 2>&1 &
pids+=($!)
printf 'events:\n  enabled: false\n' >"$work/off.yaml"
common=(GATEWAY_UPSTREAM="http://127.0.0.1:$UP" GATEWAY_TRUSTED_PROXIES=127.0.0.1/32 GATEWAY_LOG_LEVEL=warn REDIS_URL="redis://127.0.0.1:$RP")
env "${common[@]}" GATEWAY_LISTEN="127.0.0.1:$ON" GATEWAY_ADMIN_LISTEN="127.0.0.1:$AON" GATEWAY_REPLICA=events-on \
  "${srv[@]}" "$work/gateway" >"$work/on.log" 2>&1 &
pids+=($!)
env "${common[@]}" GATEWAY_LISTEN="127.0.0.1:$OFF" GATEWAY_ADMIN_LISTEN="127.0.0.1:$AOFF" GATEWAY_REPLICA=events-off GATEWAY_REDIS_PREFIX=off: \
  "${srv[@]}" "$work/gateway" -config "$work/off.yaml" >"$work/off.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$ON/api/endpoint"; wait_http "http://127.0.0.1:$OFF/api/endpoint"
redis-cli -p "$RP" DEL gw:events >/dev/null

offset=0
printf '%-6s %-10s %8s %9s %9s %9s %9s\n' round events req/s blocked p50_ms p99_ms p99.9_ms
for r in $(seq 1 "$ROUNDS"); do
  for mode in on off; do
    port=$ON; [ $mode = off ] && port=$OFF
    offset=$((offset + 1000000))
    out=$(load -url "http://127.0.0.1:$port" -mode open -rate "$RATE" -c 128 -d "${SECS}s" -bad-every 5 -ip-offset "$offset")
    printf '%-6s %-10s %8.0f %9s %9.2f %9.2f %9.2f\n' "$r" "$mode" "$(jq -r .rps <<<"$out")" "$(jq -r '.status["403"] // 0' <<<"$out")" \
      "$(jq -r .p50_ms <<<"$out")" "$(jq -r .p99_ms <<<"$out")" "$(jq -r .p999_ms <<<"$out")"
  done
done
sleep 1 # the last batch is flushed every 100 ms
metric() { curl -s "http://127.0.0.1:$AON/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
blocked=$(metric 'rampart_requests_total{result="blocked"}')
dropped_full=$(metric 'rampart_events_dropped_total{reason="buffer_full"}')
dropped_err=$(metric 'rampart_events_dropped_total{reason="store_error"}')
written=$(metric 'rampart_events_written_total')
xlen=$(redis-cli -p "$RP" XLEN gw:events)
blocked_events=$(redis-cli -p "$RP" XRANGE gw:events - + | grep -c '^request_blocked$' || true)
echo
echo "events on: /metrics blocked=$blocked written=$written dropped(buffer_full)=$dropped_full dropped(store_error)=$dropped_err; stream XLEN=$xlen, request_blocked entries=$blocked_events"
if [ "${blocked%.*}" = "$blocked_events" ] && [ "${dropped_full%.*}" = 0 ] && [ "${dropped_err%.*}" = 0 ]; then
  echo "OK: every block counted by /metrics is in the stream"
else
  echo "MISMATCH"; exit 1
fi
