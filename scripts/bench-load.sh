#!/usr/bin/env bash
# make bench-load: the gateway (every detection enforcing, Redis as store)
# against a plain httputil.ReverseProxy (and nginx when installed), under the
# same load, in interleaved rounds. Ends with one summary line:
#   legit_ratio=… reject_ratio=… p99_added_ms=… rss_mb=…
#
# CPU pinning (2 cores): every server (upstream, Redis, the proxy under test)
# runs on CPU 0, the load generator alone on CPU 1, so the servers' work is
# what is measured and the generator never steals their core. Override with
# SERVER_CPUS / LOAD_CPUS (e.g. on a bigger machine).
#
# REDIS_CPUS (default: SERVER_CPUS) moves Redis elsewhere, e.g. REDIS_CPUS=1
# to stand in for a deployment where Redis runs on its own host.
#
# Knobs (env): ROUNDS=5 ROUND_SECS=8 CONNS=64 OPEN_RATE=2000 OPEN_SECS=8
# ATTACK_SECS=10 MEM_CLIENTS=1000000.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ROUNDS=${ROUNDS:-5} ROUND_SECS=${ROUND_SECS:-8} CONNS=${CONNS:-64}
OPEN_RATE=${OPEN_RATE:-2000} OPEN_SECS=${OPEN_SECS:-8} ATTACK_SECS=${ATTACK_SECS:-10}
MEM_CLIENTS=${MEM_CLIENTS:-1000000}
SERVER_CPUS=${SERVER_CPUS:-0} LOAD_CPUS=${LOAD_CPUS:-1}
if [ "$(nproc)" -lt 2 ]; then SERVER_CPUS=0 LOAD_CPUS=0; fi
REDIS_CPUS=${REDIS_CPUS:-$SERVER_CPUS}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v taskset >/dev/null || need+=(util-linux)
command -v nginx >/dev/null || need+=(nginx-light)
command -v jq >/dev/null || need+=(jq)
if ((${#need[@]})) && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || true
fi
for c in redis-server redis-cli jq; do command -v $c >/dev/null || { echo "bench-load: $c is required" >&2; exit 1; }; done

work=$(mktemp -d /tmp/rampart-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "building into $work; servers on CPU $SERVER_CPUS, Redis on CPU $REDIS_CPUS, load generator on CPU $LOAD_CPUS" >&2
CGO_ENABLED=0 go build -trimpath -o "$work/" ./cmd/gateway ./cmd/demo-upstream ./bench/loadgen ./bench/plainproxy

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# taskset execs the program, so $! is the server's own PID.
srv=(taskset -c "$SERVER_CPUS")
load() { taskset -c "$LOAD_CPUS" "$work/loadgen" "$@"; }
wait_http() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "bench-load: $1 did not come up" >&2; exit 1; }

UP=$(freeport) RP=$(freeport) GW=$(freeport) ADM=$(freeport) PP=$(freeport) NX=$(freeport)
taskset -c "$REDIS_CPUS" redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
"${srv[@]}" "$work/demo-upstream" -listen "127.0.0.1:$UP" >"$work/upstream.log" 2>&1 &
pids+=($!)
GATEWAY_LISTEN="127.0.0.1:$GW" GATEWAY_UPSTREAM="http://127.0.0.1:$UP" GATEWAY_ADMIN_LISTEN="127.0.0.1:$ADM" \
GATEWAY_TRUSTED_PROXIES=127.0.0.1/32 GATEWAY_LOG_LEVEL=warn REDIS_URL="redis://127.0.0.1:$RP" GATEWAY_REPLICA=bench \
  "${srv[@]}" "$work/gateway" >"$work/gateway.log" 2>&1 &
gwpid=$!
pids+=($gwpid)
"${srv[@]}" "$work/plainproxy" -listen "127.0.0.1:$PP" -upstream "http://127.0.0.1:$UP" >"$work/plain.log" 2>&1 &
pids+=($!)
targets=(gateway plain)
declare -A url=([gateway]="http://127.0.0.1:$GW" [plain]="http://127.0.0.1:$PP")
if command -v nginx >/dev/null; then
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  upstream api { server 127.0.0.1:$UP; keepalive 256; }
  server {
    listen 127.0.0.1:$NX;
    location / {
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
  "${srv[@]}" nginx -c "$work/nginx/nginx.conf" >"$work/nginx.log" 2>&1 &
  pids+=($!)
  targets+=(nginx)
  url[nginx]="http://127.0.0.1:$NX"
fi
for t in "${targets[@]}"; do wait_http "${url[$t]}/api/endpoint"; done
wait_http "http://127.0.0.1:$ADM/healthz"

offset=0
next_ips() { offset=$((offset + 4000000)); echo $offset; }

echo "warming up" >&2
for t in "${targets[@]}"; do
  load -url "${url[$t]}" -mode open -rate "$OPEN_RATE" -c 128 -d 3s -ip-offset "$(next_ips)" >/dev/null
done

echo >&2
declare -A rps p99 p50
# Latency first, while Redis holds only the warm-up's keys: the later
# phases leave hundreds of thousands of expiring keys, and Redis' active
# expiry shares CPU 0 with the servers.
echo "open loop at $OPEN_RATE req/s, ${OPEN_SECS}s per round, latency from the scheduled start (coordinated omission corrected):"
printf '%-6s %-8s %10s %9s %9s %9s %7s\n' round target req/s p50_ms p99_ms p99.9_ms late
for r in $(seq 1 "$ROUNDS"); do
  for t in "${targets[@]}"; do
    out=$(load -url "${url[$t]}" -mode open -rate "$OPEN_RATE" -c 128 -d "${OPEN_SECS}s" -ip-offset "$(next_ips)")
    p99[$t]="${p99[$t]:-} $(jq -r .p99_ms <<<"$out")"
    p50[$t]="${p50[$t]:-} $(jq -r .p50_ms <<<"$out")"
    printf '%-6s %-8s %10.0f %9.2f %9.2f %9.2f %7s\n' "$r" "$t" "$(jq -r .rps <<<"$out")" "$(jq -r .p50_ms <<<"$out")" \
      "$(jq -r .p99_ms <<<"$out")" "$(jq -r .p999_ms <<<"$out")" "$(jq -r '.late // 0' <<<"$out")"
  done
done

echo
echo "closed loop, $CONNS connections, ${ROUND_SECS}s per round, targets interleaved:"
printf '%-6s %-8s %10s %9s %9s %9s %7s\n' round target req/s p50_ms p99_ms errors non200
for r in $(seq 1 "$ROUNDS"); do
  for t in "${targets[@]}"; do
    out=$(load -url "${url[$t]}" -mode closed -c "$CONNS" -d "${ROUND_SECS}s" -ip-offset "$(next_ips)")
    v=$(jq -r '.rps' <<<"$out")
    rps[$t]="${rps[$t]:-} $v"
    printf '%-6s %-8s %10.0f %9.2f %9.2f %9s %7s\n' "$r" "$t" "$v" "$(jq -r .p50_ms <<<"$out")" "$(jq -r .p99_ms <<<"$out")" \
      "$(jq -r .errors <<<"$out")" "$(jq -r '[.status | to_entries[] | select(.key != "200") | .value] | add // 0' <<<"$out")"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo
echo "attack: 50 banned + 50 over-limit addresses flooding (64 connections) while legitimate clients send 500 req/s:"
fbase=900000000
rcli() { redis-cli -p "$RP" "$@" >/dev/null; }
for i in $(seq 0 49); do
  n=$((fbase + i)); ip="$((10 + (n >> 24) % 100)).$(((n >> 16) & 255)).$(((n >> 8) & 255)).$((n & 255))"
  rcli HSET "gw:ban:{$ip}" reason bench detection admin count 1 until 0 && rcli PEXPIRE "gw:ban:{$ip}" 600000
done
# The other 50 exhaust their limit first.
load -url "${url[gateway]}" -mode closed -c 8 -n 1000 -ip-offset $((fbase + 50)) -ips 50 >/dev/null
out=$(load -url "${url[gateway]}" -mode attack -rate 500 -c 64 -d "${ATTACK_SECS}s" -ip-offset "$(next_ips)" \
  -flood-base "$fbase" -flood-ips 100 -flood-c 64)
reject_rps=$(jq -r .reject_rps <<<"$out")
printf '  flood: %.0f refusals/s (%s requests, status %s)\n' "$reject_rps" "$(jq -r .flood.requests <<<"$out")" "$(jq -c .flood.status <<<"$out")"
printf '  legitimate during the flood: p50 %.2f ms, p99 %.2f ms, status %s, late %s\n' "$(jq -r .p50_ms <<<"$out")" \
  "$(jq -r .p99_ms <<<"$out")" "$(jq -c .status <<<"$out")" "$(jq -r '.late // 0' <<<"$out")"

echo
echo "memory: $MEM_CLIENTS distinct client addresses through the gateway:"
rss_start=$(awk '/VmRSS/ {print $2}' /proc/$gwpid/status)
out=$(load -url "${url[gateway]}" -mode closed -c "$CONNS" -d 600s -n "$MEM_CLIENTS" -ip-offset "$(next_ips)" -ips "$MEM_CLIENTS")
hwm=$(awk '/VmHWM/ {print $2}' /proc/$gwpid/status)
rss_end=$(awk '/VmRSS/ {print $2}' /proc/$gwpid/status)
printf '  %s requests in %.0fs (%.0f req/s), status %s\n' "$(jq -r .requests <<<"$out")" "$(jq -r .seconds <<<"$out")" "$(jq -r .rps <<<"$out")" "$(jq -c .status <<<"$out")"
printf '  gateway RSS: %.1f MB at start, %.1f MB at the end, peak %.1f MB; Redis keys: %s\n' \
  "$(bc -l <<<"$rss_start/1024" 2>/dev/null || echo $((rss_start/1024)))" "$(bc -l <<<"$rss_end/1024" 2>/dev/null || echo $((rss_end/1024)))" \
  "$(bc -l <<<"$hwm/1024" 2>/dev/null || echo $((hwm/1024)))" "$(redis-cli -p "$RP" dbsize)"

g=$(echo "${rps[gateway]}" | median) p=$(echo "${rps[plain]}" | median)
gp99=$(echo "${p99[gateway]}" | median) pp99=$(echo "${p99[plain]}" | median)
echo
echo "medians: gateway $g req/s, plain proxy $p req/s$( [ -n "${rps[nginx]:-}" ] && echo ", nginx $(echo "${rps[nginx]}" | median) req/s"); p99 at $OPEN_RATE req/s: gateway $gp99 ms, plain $pp99 ms"
awk -v g="$g" -v p="$p" -v r="$reject_rps" -v gp="$gp99" -v pp="$pp99" -v h="$hwm" \
  'BEGIN { printf "legit_ratio=%.2f reject_ratio=%.2f p99_added_ms=%.2f rss_mb=%.0f\n", g/p, r/p, gp-pp, h/1024 }'
