#!/usr/bin/env bash
# make run: the demo upstream and the gateway on this machine, in the
# foreground. Ctrl-C or SIGTERM (also `timeout 6 make run`) stops both.
#
# Knobs (env): GATEWAY_LISTEN (:8080), UPSTREAM_LISTEN (127.0.0.1:5000),
# GATEWAY_ADMIN_LISTEN (127.0.0.1:9090), GATEWAY_ADMIN_TOKEN (generated and
# printed when unset), CONFIG (a YAML file), REDIS_URL, BIN (bin).
set -euo pipefail
BIN=${BIN:-bin}
listen=${GATEWAY_LISTEN:-:8080}
up=${UPSTREAM_LISTEN:-127.0.0.1:5000}
admin=${GATEWAY_ADMIN_LISTEN:-127.0.0.1:9090}

# A port already taken (the Docker Compose stack's load balancer publishes
# 8080 too) would make one of the two fail: say so before starting.
busy() { (exec 3<>"/dev/tcp/127.0.0.1/${1##*:}") 2>/dev/null; }
for pair in "gateway:GATEWAY_LISTEN:$listen" "upstream:UPSTREAM_LISTEN:$up" "admin:GATEWAY_ADMIN_LISTEN:$admin"; do
  IFS=: read -r what var addr port <<<"$pair"
  port=${port:-$addr}
  if busy "$port"; then
    hint=""
    [ "$port" = 8080 ] && hint=" (is 'docker compose up' running? its load balancer publishes 8080)"
    echo "make run: port $port ($what) is already in use$hint." >&2
    echo "          Stop it, or choose another port: $var=127.0.0.1:$((port + 1)) make run" >&2
    exit 1
  fi
done

if [ -z "${GATEWAY_ADMIN_TOKEN:-}" ]; then
  GATEWAY_ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  echo "make run: admin API token for this run: $GATEWAY_ADMIN_TOKEN" >&2
  echo "          export GATEWAY_ADMIN_TOKEN=$GATEWAY_ADMIN_TOKEN  # then: $BIN/gatewayctl bans list, bans rm IP" >&2
fi
export GATEWAY_ADMIN_TOKEN GATEWAY_ADMIN_LISTEN=$admin
# A CONFIG file's own listen address stays unless GATEWAY_LISTEN is set
# (examples/prototype.yaml listens on 127.0.0.1 and allows only it).
if [ -z "${CONFIG:-}" ] || [ -n "${GATEWAY_LISTEN:-}" ]; then export GATEWAY_LISTEN=$listen; fi
export GATEWAY_UPSTREAM=${GATEWAY_UPSTREAM:-http://$up}
export GATEWAY_TRUSTED_PROXIES=${GATEWAY_TRUSTED_PROXIES:-}

pids=()
stop() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
"$BIN/demo-upstream" -listen "$up" &
pids+=($!)
args=()
[ -n "${CONFIG:-}" ] && args+=(-config "$CONFIG")
"$BIN/gateway" "${args[@]}" &
pids+=($!)
# Either process ending ends the run (and stops the other).
wait -n "${pids[@]}"
