#!/usr/bin/env bash
# make bench-load: what the gateway itself costs. The gateway (every
# detection of the default chain enforcing, Redis as store) against a plain
# httputil.ReverseProxy, the same proxy making one redis_rate call per
# request, and nginx, under the same load, in interleaved rounds; medians
# at the end, then one summary line:
#   legit_ratio=… cpu_ratio=… vs_redis_rate=… reject_ratio=… p99_added_ms=… rss_mb=… [tls_…]
#
# Layout (2 cores). LAYOUT=split (default): the server under test alone on
# CPU 0; the upstream, Redis and the load generator on CPU 1, so what is
# measured is the target's own work. LAYOUT=shared: the old layout, every
# server (upstream, Redis, target) on CPU 0, the load generator alone on
# CPU 1. TARGET_CPUS, AUX_CPUS (upstream and Redis) and LOAD_CPUS override.
#
# Per target and round: req/s; CPU µs per request of the target process
# (utime+stime from /proc/PID/stat over the phase ÷ requests); how busy the
# target's core and the load generator's core were, and which saturated.
# A closed-loop row whose load core saturated while the target's did not
# measures the load side, not the target: the output says so.
#
# Phases: open loop at OPEN_RATE req/s (latency from each request's
# scheduled start: coordinated omission corrected), closed loop with CONNS
# connections (wrk when installed, X-Forwarded-For rotating over CLIENTS
# addresses per round), attack (banned and over-limit clients flooding
# while legitimate clients send 500 req/s), MEM_CLIENTS distinct clients
# (peak RSS), and TLS=1 (default): handshakes/s and kept-alive requests/s,
# gateway with tls.cert_file vs the plain proxy over TLS.
#
# Knobs (env): ROUNDS=3 ROUND_SECS=8 CONNS=64 CLIENTS=10000 OPEN_RATE=2000
# OPEN_SECS=8 ATTACK_SECS=6 TLS=1 TLS_SECS=5 MEM_CLIENTS=1000000
# REDIS=single (default) or REDIS=cluster (three masters on the auxiliary
# CPU, formed with redis-cli --cluster create; the gateways and the
# redis_rate proxy use it as a Cluster); QUICK=1
# for a short run (3 s phases, 100000 clients). GATEWAY_BIN replaces the
# gateway under test; BASELINES="name=path ..." adds those gateway binaries
# as more interleaved targets (e.g. builds of older commits; BASELINE_GATEWAY
# and BASELINE_NAME add one); the memory phase runs for every gateway with
# MEM_ALL=1, else for the one under test only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
t_start=$(date +%s)

if [ "${QUICK:-0}" = 1 ]; then
  : "${ROUND_SECS:=3}" "${OPEN_SECS:=3}" "${ATTACK_SECS:=3}" "${TLS_SECS:=2}" "${MEM_CLIENTS:=100000}"
fi
ROUNDS=${ROUNDS:-3} ROUND_SECS=${ROUND_SECS:-8} CONNS=${CONNS:-64} CLIENTS=${CLIENTS:-10000}
OPEN_RATE=${OPEN_RATE:-2000} OPEN_SECS=${OPEN_SECS:-8} ATTACK_SECS=${ATTACK_SECS:-6}
TLS=${TLS:-1} TLS_SECS=${TLS_SECS:-5} MEM_CLIENTS=${MEM_CLIENTS:-1000000}
LAYOUT=${LAYOUT:-split}
case "$LAYOUT" in
  split) TARGET_CPUS=${TARGET_CPUS:-0} AUX_CPUS=${AUX_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-1} ;;
  shared) TARGET_CPUS=${TARGET_CPUS:-0} AUX_CPUS=${AUX_CPUS:-0} LOAD_CPUS=${LOAD_CPUS:-1} ;;
  *) echo "bench-load: LAYOUT is split or shared" >&2; exit 2 ;;
esac
if [ "$(nproc)" -lt 2 ]; then TARGET_CPUS=0 AUX_CPUS=0 LOAD_CPUS=0; fi
# A rate limit legitimate clients stay under (CLIENTS addresses share the
# closed loop's tens of thousands of requests per second), which the
# flood's over-limit clients exceed at once.
RATE_PER_MIN=${RATE_PER_MIN:-300}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v taskset >/dev/null || need+=(util-linux)
command -v nginx >/dev/null || need+=(nginx-light)
command -v jq >/dev/null || need+=(jq)
command -v wrk >/dev/null || need+=(wrk)
command -v python3 >/dev/null || need+=(python3)
command -v bc >/dev/null || need+=(bc)
if ((${#need[@]})) && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || true
fi
for c in redis-server redis-cli jq curl python3 bc; do command -v $c >/dev/null || { echo "bench-load: $c is required" >&2; exit 1; }; done
have_wrk=0; command -v wrk >/dev/null && have_wrk=1
if [ "$TLS" = 1 ] && { [ $have_wrk = 0 ] || ! command -v openssl >/dev/null; }; then
  echo "bench-load: TLS phase skipped (needs wrk and openssl)" >&2; TLS=0
fi

work=$(mktemp -d /tmp/rampart-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "layout $LAYOUT: target on CPU $TARGET_CPUS; upstream and Redis on CPU $AUX_CPUS; load generator on CPU $LOAD_CPUS; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
CGO_ENABLED=0 go build -trimpath -o "$work/" ./cmd/gateway ./cmd/demo-upstream ./bench/loadgen ./bench/plainproxy
gwbin=${GATEWAY_BIN:-$work/gateway}

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# taskset execs the program, so $! is the server's own PID.
srv=(taskset -c "$TARGET_CPUS") aux=(taskset -c "$AUX_CPUS")
load() { taskset -c "$LOAD_CPUS" "$work/loadgen" "$@"; }
# wrkrun URL SECS CONNS OFFSET IPS [MAX] [CLOSE]: one JSON line like loadgen's.
wrkrun() {
  taskset -c "$LOAD_CPUS" wrk -t1 -c"$3" -d"$2"s -s bench/wrk/clients.lua "$1/api/endpoint" -- "$4" "$5" "${6:-0}" "${7:-0}" | tail -1
}
# closedrun URL SECS CONNS OFFSET IPS [MAX]: wrk when installed, else loadgen.
closedrun() {
  if [ $have_wrk = 1 ]; then wrkrun "$@"; else
    load -url "$1" -mode closed -c "$3" -d "$2s" -ip-offset "$4" -ips "$5" -n "${6:-0}"
  fi
}
wait_http() { for _ in $(seq 1 100); do curl -kfs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "bench-load: $1 did not come up" >&2; exit 1; }

UP=$(freeport) RP=$(freeport)
REDIS=${REDIS:-single}
case "$REDIS" in
  single)
    "${aux[@]}" redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
    pids+=($!)
    redis_url="redis://127.0.0.1:$RP" rc=(redis-cli -p "$RP")
    ;;
  cluster)
    nodes=() redis_url=""
    for i in 1 2 3; do
      p=$([ $i = 1 ] && echo "$RP" || freeport)
      mkdir -p "$work/redis-$i"
      (cd "$work/redis-$i" && exec "${aux[@]}" redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        --cluster-enabled yes --cluster-config-file nodes.conf --loglevel warning) >"$work/redis-$i.log" 2>&1 &
      pids+=($!)
      nodes+=("127.0.0.1:$p")
      redis_url=${redis_url:-"redis://127.0.0.1:$p"}
      [ $i = 1 ] || redis_url="$redis_url$([ $i = 2 ] && echo '?' || echo '&')addr=127.0.0.1:$p"
    done
    for n in "${nodes[@]}"; do for _ in $(seq 1 50); do redis-cli -p "${n#*:}" ping >/dev/null 2>&1 && break; sleep 0.1; done; done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$work/cluster-create.log" 2>&1
    for _ in $(seq 1 100); do redis-cli -p "$RP" cluster info | grep -q 'cluster_state:ok' && break; sleep 0.1; done
    rc=(redis-cli -c -p "$RP")
    ;;
  *) echo "bench-load: REDIS is single or cluster" >&2; exit 2 ;;
esac
echo "redis: $REDIS ($redis_url)"
"${aux[@]}" "$work/demo-upstream" -listen "127.0.0.1:$UP" >"$work/upstream.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done

printf 'detections:\n  rate_limit:\n    rate: %d\n    burst: %d\n    period: 1m\n' "$RATE_PER_MIN" "$RATE_PER_MIN" >"$work/gateway.yaml"
declare -A url pid
targets=() gateways=()
# start_gateway NAME BIN [ENV...]: a gateway on the target CPU.
start_gateway() {
  local name=$1 bin=$2 port adm; shift 2
  port=$(freeport) adm=$(freeport)
  env GATEWAY_CONFIG="$work/gateway.yaml" GATEWAY_LISTEN="127.0.0.1:$port" GATEWAY_UPSTREAM="http://127.0.0.1:$UP" \
    GATEWAY_ADMIN_LISTEN="127.0.0.1:$adm" GATEWAY_TRUSTED_PROXIES=127.0.0.1/32 GATEWAY_LOG_LEVEL=warn \
    REDIS_URL="$redis_url" GATEWAY_REPLICA="bench-$name" GATEWAY_PPROF="${GATEWAY_PPROF:-false}" "$@" \
    "${srv[@]}" "$bin" >"$work/$name.log" 2>&1 &
  pid[$name]=$! url[$name]="http://127.0.0.1:$port"
  pids+=($!)
  wait_http "http://127.0.0.1:$adm/healthz"
  echo "  $name: 127.0.0.1:$port (admin 127.0.0.1:$adm, pid ${pid[$name]})"
}
start_plain() { # NAME ARGS...
  local name=$1 port; shift
  port=$(freeport)
  "${srv[@]}" "$work/plainproxy" -listen "127.0.0.1:$port" -upstream "http://127.0.0.1:$UP" "$@" >"$work/$name.log" 2>&1 &
  pid[$name]=$! url[$name]="http://127.0.0.1:$port"
  pids+=($!)
}
echo "targets:"
start_gateway gateway "$gwbin"
targets+=(gateway) gateways+=(gateway)
baselines=${BASELINES:-}
[ -n "${BASELINE_GATEWAY:-}" ] && baselines="${BASELINE_NAME:-baseline}=$BASELINE_GATEWAY $baselines"
for b in $baselines; do
  start_gateway "${b%%=*}" "${b#*=}"
  targets+=("${b%%=*}") gateways+=("${b%%=*}")
done
start_plain plain
start_plain redis_rate -redis-rate "$redis_url" -rate "$RATE_PER_MIN"
targets+=(plain redis_rate)
if command -v nginx >/dev/null; then
  NX=$(freeport)
  mkdir -p "$work/nginx"
  # One process (master_process off), so its /proc/PID/stat is the server's.
  cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
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
  pid[nginx]=$! url[nginx]="http://127.0.0.1:$NX"
  pids+=($!)
  targets+=(nginx)
fi
for t in "${targets[@]}"; do wait_http "${url[$t]}/api/endpoint"; done

# CPU accounting: the target's utime+stime ticks, and each core's busy and
# total jiffies (steal counts as busy: it was not ours to use).
hz=$(getconf CLK_TCK)
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
core() { awk -v c="cpu$1" '$1 == c {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
tcore=${TARGET_CPUS%%[,-]*} lcore=${LOAD_CPUS%%[,-]*}
# measure TARGET CMD...: runs CMD (one JSON object on stdout) and adds
# cpu_us (target CPU per request), tgt (target's share of one core), tbusy
# and lbusy (target and load cores busy), sat (which saturated).
measure() {
  local t=$1; shift
  local p=${pid[$t]} c0 c1 tb0 tt0 tb1 tt1 lb0 lt0 lb1 lt1 w0 w1 out
  c0=$(ticks "$p"); read -r tb0 tt0 < <(core "$tcore"); read -r lb0 lt0 < <(core "$lcore"); w0=$(date +%s.%N)
  out=$("$@")
  c1=$(ticks "$p"); read -r tb1 tt1 < <(core "$tcore"); read -r lb1 lt1 < <(core "$lcore"); w1=$(date +%s.%N)
  jq -c --argjson dc "$((c1 - c0))" --argjson hz "$hz" --argjson wall "$(echo "$w1 - $w0" | bc -l)" \
    --argjson tb "$((tb1 - tb0))" --argjson tt "$((tt1 - tt0))" --argjson lb "$((lb1 - lb0))" --argjson lt "$((lt1 - lt0))" \
    --arg shared "$([ "$tcore" = "$lcore" ] && echo 1 || echo 0)" --arg tname "$([ "$AUX_CPUS" = "$TARGET_CPUS" ] && echo servers || echo target)" '
    . + {cpu_us: (if .requests > 0 then $dc / $hz * 1e6 / .requests else 0 end),
         tgt: ($dc / $hz / $wall), tbusy: ($tb / ([$tt, 1] | max)), lbusy: ($lb / ([$lt, 1] | max))}
    | . + {other: (if $tname == "target" then ([.tbusy - .tgt, 0] | max) else 0 end)}
    | . + {sat: (if $shared == "1" then (if .tbusy >= 0.9 then "one-core" else "none" end)
                 elif .tbusy >= 0.9 and .lbusy >= 0.9 then "both"
                 elif .tbusy >= 0.9 then $tname elif .lbusy >= 0.9 then "LOAD" else "none" end)}' <<<"$out"
}

offset=0
next_ips() { offset=$((offset + 4000000)); echo $offset; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A rps cpu p99 p50 ocpu
# jq helpers for the tables: right-aligned integers and two decimals.
fmt='def pad($n): tostring | (" " * $n + .)[-$n:]; def num($n): (. * 100 | round / 100) | pad($n);' 
load_sat=0 contended=0

echo "warming up" >&2
for t in "${targets[@]}"; do
  load -url "${url[$t]}" -mode open -rate "$OPEN_RATE" -c 128 -d 2s -ip-offset "$(next_ips)" -ips "$CLIENTS" >/dev/null
  closedrun "${url[$t]}" 2 "$CONNS" "$(next_ips)" "$CLIENTS" >/dev/null
done

echo
# Latency first, while Redis holds only the warm-up's keys.
echo "open loop at $OPEN_RATE req/s, ${OPEN_SECS}s per round, latency from the scheduled start (coordinated omission corrected):"
printf '%-6s %-11s %8s %8s %8s %9s %6s %8s %6s\n' round target req/s p50_ms p99_ms p99.9_ms late cpu_us tgt%
for r in $(seq 1 "$ROUNDS"); do
  for t in "${targets[@]}"; do
    out=$(measure "$t" load -url "${url[$t]}" -mode open -rate "$OPEN_RATE" -c 128 -d "${OPEN_SECS}s" -ip-offset "$(next_ips)" -ips "$CLIENTS")
    p99[$t]="${p99[$t]:-} $(jq -r .p99_ms <<<"$out")" p50[$t]="${p50[$t]:-} $(jq -r .p50_ms <<<"$out")"
    ocpu[$t]="${ocpu[$t]:-} $(jq -r .cpu_us <<<"$out")"
    jq -r --arg r "$r" --arg t "$t" "$fmt"'
      "\($r + "      " | .[0:6]) \($t + "           " | .[0:11]) \(.rps | floor | pad(8)) \(.p50_ms | num(8)) \(.p99_ms | num(8)) \(.p999_ms | num(9)) \(.late // 0 | pad(6)) \(.cpu_us | num(8)) \(.tgt * 100 | round | pad(6))"' <<<"$out"
  done
done

echo
echo "closed loop, $CONNS connections ($([ $have_wrk = 1 ] && echo wrk || echo loadgen)), X-Forwarded-For over $CLIENTS clients, ${ROUND_SECS}s per round, targets interleaved:"
printf '%-6s %-11s %8s %8s %6s %6s %6s %6s %-8s %8s %8s %6s %6s\n' round target req/s cpu_us tgt% tcore% other% lcore% saturated p50_ms p99_ms errors non2xx
for r in $(seq 1 "$ROUNDS"); do
  for t in "${targets[@]}"; do
    out=$(measure "$t" closedrun "${url[$t]}" "$ROUND_SECS" "$CONNS" "$(next_ips)" "$CLIENTS")
    rps[$t]="${rps[$t]:-} $(jq -r .rps <<<"$out")" cpu[$t]="${cpu[$t]:-} $(jq -r .cpu_us <<<"$out")"
    [ "$(jq -r .sat <<<"$out")" = LOAD ] && load_sat=$((load_sat + 1))
    # Work on the target's core that is not the target's (other jobs on
    # this machine, interrupts) inflates latency and cuts throughput.
    [ "$(jq -r '.other > 0.15' <<<"$out")" = true ] && contended=$((contended + 1))
    jq -r --arg r "$r" --arg t "$t" "$fmt"'
      "\($r + "      " | .[0:6]) \($t + "           " | .[0:11]) \(.rps | floor | pad(8)) \(.cpu_us | num(8)) \(.tgt * 100 | round | pad(6)) \(.tbusy * 100 | round | pad(6)) \(.other * 100 | round | pad(6)) \(.lbusy * 100 | round | pad(6)) \(.sat + "        " | .[0:8]) \(.p50_ms | num(9)) \(.p99_ms | num(8)) \(.errors | pad(6)) \([.status | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0 | pad(6))"' <<<"$out"
  done
done
if ((contended)); then
  echo "  WARNING: in $contended row(s) more than 15% of the target's core (CPU $TARGET_CPUS) went to other work (other%): other jobs on this machine; req/s is low there, cpu_us holds better"
fi
if ((load_sat)); then
  echo "  WARNING: in $load_sat row(s) the load generator's core (CPU $LOAD_CPUS) saturated while the target's did not: those rows measure the load side, not the target"
fi

echo
echo "attack: 50 banned + 50 over-limit addresses flooding ($CONNS connections) while legitimate clients send 500 req/s, ${ATTACK_SECS}s per round:"
fbase=900000000
rcli() { "${rc[@]}" "$@" >/dev/null; }
for i in $(seq 0 49); do
  n=$((fbase + i)); ip="$((10 + (n >> 24) % 100)).$(((n >> 16) & 255)).$(((n >> 8) & 255)).$((n & 255))"
  rcli HSET "gw:ban:{$ip}" reason bench detection admin count 1 until 0 && rcli PEXPIRE "gw:ban:{$ip}" 600000
done
# The other 50 exhaust their limit first (and get banned for hammering).
closedrun "${url[gateway]}" 60 8 $((fbase + 50)) 50 $((50 * (RATE_PER_MIN + 20))) >/dev/null
declare -A rej
printf '%-6s %-11s %10s %8s %6s %-9s %10s %10s %s\n' round target refused/s cpu_us tgt% saturated legit_p50 legit_p99 flood_status
for r in $(seq 1 "$ROUNDS"); do
  for t in "${gateways[@]}"; do
    # The legitimate open-loop stream runs beside the measured flood.
    load -url "${url[$t]}" -mode open -rate 500 -c 64 -d "${ATTACK_SECS}s" -ip-offset "$(next_ips)" -ips "$CLIENTS" >"$work/legit.json" &
    lg=$!
    out=$(measure "$t" closedrun "${url[$t]}" "$ATTACK_SECS" "$CONNS" "$fbase" 100)
    wait $lg
    legit=$(cat "$work/legit.json")
    v=$(jq -r '([.status | to_entries[] | select(.key == "403" or .key == "429") | .value] | add // 0) / .seconds' <<<"$out")
    rej[$t]="${rej[$t]:-} $v"
    printf '%-6s %-11s %10.0f %8.2f %6.0f %-9s %10.2f %10.2f %s legit %s\n' "$r" "$t" "$v" "$(jq -r .cpu_us <<<"$out")" \
      "$(jq -r '.tgt * 100' <<<"$out")" "$(jq -r .sat <<<"$out")" "$(jq -r .p50_ms <<<"$legit")" "$(jq -r .p99_ms <<<"$legit")" \
      "$(jq -c .status <<<"$out")" "$(jq -c .status <<<"$legit")"
  done
done

tls_line=""
if [ "$TLS" = 1 ]; then
  echo
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
  echo "TLS (ECDSA P-256, TLS 1.3 from wrk/OpenSSL):"
  start_gateway gateway_tls "$gwbin" GATEWAY_TLS_CERT_FILE="$work/cert.pem" GATEWAY_TLS_KEY_FILE="$work/key.pem"
  url[gateway_tls]=${url[gateway_tls]/http:/https:}
  start_plain plain_tls -tls-cert "$work/cert.pem" -tls-key "$work/key.pem"
  url[plain_tls]=${url[plain_tls]/http:/https:}
  for t in gateway_tls plain_tls; do wait_http "${url[$t]}/api/endpoint"; wrkrun "${url[$t]}" 2 "$CONNS" "$(next_ips)" "$CLIENTS" >/dev/null; done
  declare -A hs hscpu krps kcpu
  printf '%-6s %-11s %12s %8s %-9s %12s %8s %-9s %s\n' round target handshakes/s cpu_us saturated keepalive/s cpu_us saturated status
  for r in $(seq 1 "$ROUNDS"); do
    for t in gateway_tls plain_tls; do
      a=$(measure "$t" wrkrun "${url[$t]}" "$TLS_SECS" "$CONNS" "$(next_ips)" "$CLIENTS" 0 1)
      b=$(measure "$t" wrkrun "${url[$t]}" "$TLS_SECS" "$CONNS" "$(next_ips)" "$CLIENTS")
      hs[$t]="${hs[$t]:-} $(jq -r .rps <<<"$a")" hscpu[$t]="${hscpu[$t]:-} $(jq -r .cpu_us <<<"$a")"
      krps[$t]="${krps[$t]:-} $(jq -r .rps <<<"$b")" kcpu[$t]="${kcpu[$t]:-} $(jq -r .cpu_us <<<"$b")"
      printf '%-6s %-11s %12.0f %8.1f %-9s %12.0f %8.1f %-9s %s %s\n' "$r" "$t" "$(jq -r .rps <<<"$a")" "$(jq -r .cpu_us <<<"$a")" "$(jq -r .sat <<<"$a")" \
        "$(jq -r .rps <<<"$b")" "$(jq -r .cpu_us <<<"$b")" "$(jq -r .sat <<<"$b")" "$(jq -c .status <<<"$a")" "$(jq -c .status <<<"$b")"
    done
  done
  for t in gateway_tls plain_tls; do
    printf '  medians %-11s %8.0f handshakes/s (%.1f µs CPU each), %8.0f req/s kept alive (%.1f µs CPU each)\n' "$t" \
      "$(echo "${hs[$t]}" | median)" "$(echo "${hscpu[$t]}" | median)" "$(echo "${krps[$t]}" | median)" "$(echo "${kcpu[$t]}" | median)"
  done
  tls_line=$(awk -v a="$(echo "${hs[gateway_tls]}" | median)" -v b="$(echo "${hs[plain_tls]}" | median)" \
    -v c="$(echo "${krps[gateway_tls]}" | median)" -v d="$(echo "${krps[plain_tls]}" | median)" \
    'BEGIN { printf " tls_hs_ratio=%.2f tls_rps_ratio=%.2f", a/b, c/d }')
fi

echo
echo "memory: $MEM_CLIENTS distinct client addresses through $([ "${MEM_ALL:-0}" = 1 ] && echo each gateway || echo the gateway):"
declare -A hwm
memt=(gateway); [ "${MEM_ALL:-0}" = 1 ] && memt=("${gateways[@]}")
for t in "${memt[@]}"; do
  rss_start=$(awk '/VmRSS/ {print $2}' "/proc/${pid[$t]}/status")
  out=$(closedrun "${url[$t]}" 600 "$CONNS" "$(next_ips)" "$MEM_CLIENTS" "$MEM_CLIENTS")
  hwm[$t]=$(awk '/VmHWM/ {print $2}' "/proc/${pid[$t]}/status")
  rss_end=$(awk '/VmRSS/ {print $2}' "/proc/${pid[$t]}/status")
  printf '  %-11s %s requests in %.0fs (%.0f req/s), status %s; RSS %.1f MB at start, %.1f MB at the end, peak %.1f MB\n' "$t" \
    "$(jq -r .requests <<<"$out")" "$(jq -r .seconds <<<"$out")" "$(jq -r .rps <<<"$out")" "$(jq -c .status <<<"$out")" \
    "$(echo "$rss_start/1024" | bc -l)" "$(echo "$rss_end/1024" | bc -l)" "$(echo "${hwm[$t]}/1024" | bc -l)"
done
if [ "$REDIS" = cluster ]; then
  echo "  Redis keys: $(for n in "${nodes[@]}"; do redis-cli -p "${n#*:}" dbsize; done | paste -sd+ | bc) over ${#nodes[@]} masters"
else
  echo "  Redis keys: $(redis-cli -p "$RP" dbsize)"
fi

echo
echo "medians over $ROUNDS rounds (layout $LAYOUT, Redis $REDIS):"
p=$(echo "${rps[plain]}" | median) pc=$(echo "${cpu[plain]}" | median) pp99=$(echo "${p99[plain]}" | median)
printf '%-11s %9s %7s %9s %7s %9s %9s %11s %10s\n' target req/s x_plain cpu_us x_plain open_p50 open_p99 p99_added refused/s
for t in "${targets[@]}"; do
  g=$(echo "${rps[$t]}" | median) c=$(echo "${cpu[$t]}" | median) q=$(echo "${p99[$t]}" | median) m=$(echo "${p50[$t]}" | median)
  rj=$([ -n "${rej[$t]:-}" ] && echo "${rej[$t]}" | median || echo "-")
  awk -v t="$t" -v g="$g" -v p="$p" -v c="$c" -v pc="$pc" -v m="$m" -v q="$q" -v pq="$pp99" -v rj="$rj" \
    'BEGIN { printf "%-11s %9.0f %7.2f %9.1f %7.2f %9.2f %9.2f %11.2f %10s\n", t, g, g/p, c, c/pc, m, q, q-pq, (rj == "-" ? "-" : sprintf("%.0f", rj)) }'
done
g=$(echo "${rps[gateway]}" | median) gc=$(echo "${cpu[gateway]}" | median) rr=$(echo "${rps[redis_rate]}" | median)
gp99=$(echo "${p99[gateway]}" | median) rj=$(echo "${rej[gateway]}" | median)
summary=$(awk -v g="$g" -v p="$p" -v gc="$gc" -v pc="$pc" -v rr="$rr" -v r="$rj" -v gp="$gp99" -v pp="$pp99" -v h="${hwm[gateway]}" \
  'BEGIN { printf "legit_ratio=%.2f cpu_ratio=%.2f vs_redis_rate=%.2f reject_ratio=%.2f p99_added_ms=%.2f rss_mb=%.0f", g/p, gc/pc, g/rr, r/p, gp-pp, h/1024 }')
echo
awk -v s="$summary" 'BEGIN {
  n = split(s, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], f, "="); v[f[1]] = f[2] }
  printf "targets: legit_ratio %.2f >= 0.80 %s; cpu_ratio %.2f <= 1.25 %s; above redis_rate (%.2f) %s; p99_added %.2f ms <= 0.3 %s; reject_ratio %.2f >= 2 %s; rss %d MB <= 150 %s\n",
    v["legit_ratio"], (v["legit_ratio"] >= 0.8 ? "met" : "NOT met"), v["cpu_ratio"], (v["cpu_ratio"] <= 1.25 ? "met" : "NOT met"),
    v["vs_redis_rate"], (v["vs_redis_rate"] > 1 ? "met" : "NOT met"), v["p99_added_ms"], (v["p99_added_ms"] <= 0.3 ? "met" : "NOT met"),
    v["reject_ratio"], (v["reject_ratio"] >= 2 ? "met" : "NOT met"), v["rss_mb"], (v["rss_mb"] <= 150 ? "met" : "NOT met") }'
if ((load_sat)); then echo "note: the load side saturated in $load_sat closed-loop row(s); see the warning above"; fi
if ((contended)); then echo "note: other work took the target's core in $contended closed-loop row(s); see the warning above"; fi
echo "took $(($(date +%s) - t_start))s; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$summary$tls_line layout=$LAYOUT redis=$REDIS"
