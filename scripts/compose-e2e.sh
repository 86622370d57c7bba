#!/usr/bin/env bash
# compose-e2e: the Docker Compose deployment and its variants, for real.
#
#   make compose-e2e        (bash scripts/compose-e2e.sh)
#
# 1. Makes sure every image the Dockerfile, docker-compose.yml and the
#    variants (deploy/compose/*.yml) name is there; without a registry,
#    builds local stand-ins under the same names (scripts/compose/standins.sh).
#    Grafana has none (not packaged in Debian): without a registry the
#    monitoring phase runs Prometheus only, and says so.
# 2. Phases, each on a stack of its own (unique project name), brought up,
#    checked and torn down (down -v: no container, volume or network left):
#    base        docker compose up -d --scale gateway=3: traffic through the
#                load balancer's published port (allowed, malicious, over the
#                limit, racing, with a forged X-Forwarded-For); bans with
#                redis-cli inside the redis container and with gatewayctl;
#                Redis restarted; deploy/rampart.yaml edited as an editor
#                saves it (a new file renamed over it) and every replica
#                reloading it; scaling to 5 and back to 2 and a restarted
#                replica under steady traffic, counting failed requests.
#    cluster     -f deploy/compose/cluster.yml: a 3-master/3-replica Redis
#                Cluster; the limit exact across replicas, an admin-API ban
#                on one replica refusing the client on every replica, the
#                ban key found with redis-cli -c.
#    tls         -f deploy/compose/tls.yml: the gateways terminate TLS behind
#                HAProxy in TCP mode (PROXY v2): HTTPS with the dev CA, the
#                real client address, TLS 1.0/1.1 refused.
#    monitoring  -f deploy/compose/monitoring.yml --profile monitoring:
#                Prometheus scrapes every replica (up == 1, rampart_* series)
#                and has the alert rules loaded.
# 3. Everything is torn down at the end, also on failure or Ctrl-C, and the
#    edited deploy/rampart.yaml is put back byte for byte.
#
# Clients: to give each simulated client its own address through the
# published port, the script routes 198.18.0.0/16 (RFC 2544 benchmarking
# range) to this host (ip route add local ... dev lo; removed at the end) and
# sends requests from those addresses to a non-loopback address of the host,
# where Docker's DNAT keeps the source address. Without root or iproute2 it
# falls back to one client (the host) and skips the per-client checks.
#
# Environment: COMPOSE="docker compose" or "docker-compose" to choose;
# RAMPART_E2E_PHASES="base cluster tls monitoring" (the default) to choose
# and order the phases; RAMPART_E2E_SINGLE_CLIENT=1 forces the one-client
# mode; KEEP=1 leaves the last phase's stack running (no teardown; the
# earlier phases are torn down all the same: they share the networks).
# Needs docker, curl, awk, openssl (tls phase) and, for many clients, root
# and iproute2. Exits non-zero when any check fails.

set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SCRIPT_START=$(date +%s)

# ---------------------------------------------------------------- output
FAILS=0
CHECKS=0
section() { printf '\n=== %s  [+%ss]\n' "$*" "$(($(date +%s) - SCRIPT_START))"; }
info() { printf '    %s\n' "$*"; }
pass() { CHECKS=$((CHECKS + 1)); printf '  ok    %s\n' "$*"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); printf '  FAIL  %s\n' "$*"; }
# expect WHAT GOT WANT
expect() { if [ "$2" = "$3" ]; then pass "$1: $2"; else fail "$1: got $2, want $3"; fi; }
die() { printf 'compose-e2e: %s\n' "$*" >&2; exit 2; }
# cmd LINE: shows a command as an operator would type it.
cmd() { printf '    $ %s\n' "$*"; }
indent() { sed 's/^/      /'; }
# matches ERE: a line of stdin matches. It reads all of stdin: with
# pipefail, grep -q would fail the pipeline when it stops reading early and
# the writer gets SIGPIPE.
matches() { [ "$(grep -Ec -- "$1" || true)" -gt 0 ]; }

PHASES=${RAMPART_E2E_PHASES:-base cluster tls monitoring}
for p in $PHASES; do
	case "$p" in base | cluster | tls | monitoring) ;; *) die "unknown phase $p (RAMPART_E2E_PHASES: base cluster tls monitoring)" ;; esac
done
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

for tool in docker curl awk; do
	command -v "$tool" >/dev/null || die "$tool is required"
done
if has_phase tls; then
	command -v openssl >/dev/null || die "openssl is required for the tls phase (apt-get install openssl)"
fi
docker info >/dev/null 2>&1 || die "no Docker engine (docker info failed)"

# ---------------------------------------------------------------- compose
if [ -n "${COMPOSE:-}" ]; then
	read -r -a COMPOSE_CMD <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
	COMPOSE_CMD=(docker compose)
elif command -v docker-compose >/dev/null; then
	COMPOSE_CMD=(docker-compose)
else
	die "neither 'docker compose' (v2 plugin) nor docker-compose is installed"
fi
COMPOSE_VERSION=$("${COMPOSE_CMD[@]}" version 2>/dev/null | sed -n 1p)

RUN_ID=rampart-e2e-$(date +%s)-$$
# The current phase's project and compose arguments (-f files, profiles).
PROJECT=$RUN_ID
COMPOSE_ARGS=(-f docker-compose.yml)
STACK_UP=""
compose() { "${COMPOSE_CMD[@]}" -p "$PROJECT" "${COMPOSE_ARGS[@]}" "$@"; }
# containers SERVICE: the project's running containers of SERVICE.
containers() {
	docker ps -q --filter "label=com.docker.compose.project=$PROJECT" \
		--filter "label=com.docker.compose.service=$1"
}
# cname CID: a container's name.
cname() { docker inspect -f '{{.Name}}' "$1" | tr -d /; }
# frontend_ip CID: a container's address on the frontend network.
frontend_ip() {
	docker inspect -f '{{range $n, $e := .NetworkSettings.Networks}}{{$n}} {{$e.IPAddress}}{{"\n"}}{{end}}' "$1" |
		awk '$1 ~ /_frontend$/ { print $2 }'
}
REDIS_CID=""
redis_cli() { docker exec "$REDIS_CID" redis-cli "$@"; }

# ---------------------------------------------------------------- addresses
# RAMPART_NET: two /24s (x.y.0.0 and x.y.1.0) no network on this host uses.
net_taken() {
	ip -4 route 2>/dev/null | matches "^$1\." && return 0
	docker network ls -q | xargs -r docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null |
		tr ' ' '\n' | matches "^$1\."
}
if [ -z "${RAMPART_NET:-}" ]; then
	for cand in 172.28 172.29 172.30 172.31 172.27 172.26 172.25 172.24; do
		if ! net_taken "$cand"; then RAMPART_NET=$cand; break; fi
	done
fi
[ -n "${RAMPART_NET:-}" ] || die "no free 172.x range for the compose networks: set RAMPART_NET"
port_free() { ! (ss -ltnH 2>/dev/null || true) | awk '{print $4}' | matches ":$1\$"; }
# free_port FROM TO [EXCEPT...]: the first free port in FROM..TO.
free_port() {
	local from=$1 to=$2 p
	shift 2
	for p in $(seq "$from" "$to"); do
		[[ " $* " == *" $p "* ]] && continue
		if port_free "$p"; then echo "$p"; return 0; fi
	done
	return 1
}
RAMPART_HTTP_PORT=${RAMPART_HTTP_PORT:-$(free_port 21080 21999)}
RAMPART_HTTPS_PORT=${RAMPART_HTTPS_PORT:-$(free_port 22443 22999 "$RAMPART_HTTP_PORT")}
RAMPART_PROMETHEUS_PORT=${RAMPART_PROMETHEUS_PORT:-$(free_port 23090 23999 "$RAMPART_HTTP_PORT" "$RAMPART_HTTPS_PORT")}
RAMPART_GRAFANA_PORT=${RAMPART_GRAFANA_PORT:-$(free_port 23000 23089 "$RAMPART_HTTP_PORT" "$RAMPART_HTTPS_PORT")}
GATEWAY_ADMIN_TOKEN=${GATEWAY_ADMIN_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export RAMPART_NET RAMPART_HTTP_PORT RAMPART_HTTPS_PORT RAMPART_PROMETHEUS_PORT RAMPART_GRAFANA_PORT GATEWAY_ADMIN_TOKEN
LB_ADDR=$RAMPART_NET.0.10
STATS_URL="http://$LB_ADDR:8404/stats;csv"

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d)
ROUTE_ADDED=""
TRAFFIC_PIDS=()
CFG=$ROOT/deploy/rampart.yaml
CFG_SAVED=""   # the original deploy/rampart.yaml while the edit is in force
# restore_config puts the original deploy/rampart.yaml back (a new file
# renamed over the edited one: the replicas see the change, as for the edit).
restore_config() {
	[ -n "$CFG_SAVED" ] || return 0
	cp -p "$CFG_SAVED" "$ROOT/deploy/.rampart.yaml.compose-e2e-restore.$$"
	mv -f "$ROOT/deploy/.rampart.yaml.compose-e2e-restore.$$" "$CFG"
	CFG_SAVED=""
}
# stack_down: down -v the current phase's stack; fails the phase if
# anything of it is left.
stack_down() {
	[ -n "$STACK_UP" ] || return 0
	[ "${KEEP:-}" = 1 ] && [ "$PROJECT" = "$RUN_ID-${PHASES##* }" ] && return 0
	local t0 left vols nets
	t0=$(date +%s)
	timeout 120 "${COMPOSE_CMD[@]}" -p "$PROJECT" "${COMPOSE_ARGS[@]}" down -v --remove-orphans >"$WORK/down.log" 2>&1 || cat "$WORK/down.log"
	STACK_UP=""
	left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" | wc -l)
	vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l)
	nets=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l)
	if [ "$((left + vols + nets))" = 0 ]; then
		pass "down -v in $(($(date +%s) - t0))s: 0 containers, 0 volumes, 0 networks left"
	else
		fail "down -v left $left containers, $vols volumes, $nets networks of $PROJECT"
	fi
}
cleanup() {
	local rc=$?
	set +e
	touch "$WORK/stop" 2>/dev/null
	for p in "${TRAFFIC_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	restore_config
	if [ -n "$STACK_UP" ] && [ "${KEEP:-}" = 1 ]; then
		section "KEEP=1: stack left running (project $PROJECT, port $RAMPART_HTTP_PORT); remove with: ${COMPOSE_CMD[*]} -p $PROJECT ${COMPOSE_ARGS[*]} down -v"
	elif [ -n "$STACK_UP" ]; then
		section "teardown: ${COMPOSE_CMD[*]} -p $PROJECT ${COMPOSE_ARGS[*]} down -v"
		stack_down
	fi
	if [ -n "$ROUTE_ADDED" ]; then
		ip route del local 198.18.0.0/16 dev lo 2>/dev/null && info "removed the route for 198.18.0.0/16"
	fi
	rm -rf "$WORK"
	[ "$rc" != 0 ] || [ "$FAILS" = 0 ] || rc=1
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section "compose-e2e: $(date -u +%FT%TZ)"
info "compose:  ${COMPOSE_CMD[*]} ($COMPOSE_VERSION)"
info "engine:   Docker $(docker version -f '{{.Server.Version}}' 2>/dev/null)"
info "phases:   $PHASES"
info "projects: $RUN_ID-<phase>; networks $RAMPART_NET.0.0/24 (frontend, lb $LB_ADDR) and $RAMPART_NET.1.0/24 (backend)"
info "ports:    lb :$RAMPART_HTTP_PORT (HTTP), :$RAMPART_HTTPS_PORT (tls phase); Prometheus :$RAMPART_PROMETHEUS_PORT, Grafana :$RAMPART_GRAFANA_PORT (monitoring phase)"

# ---------------------------------------------------------------- images
section "base images (no registry here: stand-ins are built where a pull fails)"
# shellcheck source=scripts/compose/standins.sh
source "$ROOT/scripts/compose/standins.sh"
IMAGE_FILES=(docker-compose.yml)
has_phase cluster && IMAGE_FILES+=(deploy/compose/cluster.yml)
has_phase tls && IMAGE_FILES+=(deploy/compose/tls.yml)
has_phase monitoring && IMAGE_FILES+=(deploy/compose/monitoring.yml)
ensure_images "${IMAGE_FILES[@]}" || true
while IFS= read -r l; do [ -n "$l" ] && info "present: $l"; done <<<"$PRESENT"
while IFS= read -r l; do [ -n "$l" ] && info "pulled:  $l"; done <<<"$PULLED"
if [ -n "$STANDINS" ]; then
	info "LOCAL STAND-INS (same name and tag, built on this host; not the registry images):"
	while IFS= read -r l; do [ -n "$l" ] && info "  $l"; done <<<"$STANDINS"
fi
GRAFANA=1
while IFS= read -r l; do
	[ -n "$l" ] || continue
	case "$l" in
		grafana/*)
			GRAFANA=""
			info "NOT AVAILABLE: $l (no registry here, and Grafana is not packaged in Debian, so no stand-in): the monitoring phase runs Prometheus only"
			;;
		*) die "image $l is missing: not present, not pullable, no stand-in" ;;
	esac
done <<<"$MISSING"

section "build: ${COMPOSE_CMD[*]} build"
t0=$(date +%s)
compose build >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; die "build failed"; }
info "built in $(($(date +%s) - t0))s"
for img in rampart/gateway:dev rampart/demo-upstream:dev; do
	size=$(docker image inspect -f '{{.Size}}' "$img")
	info "$img: $((size / 1000000)) MB ($size bytes), user $(docker image inspect -f '{{.Config.User}}' "$img")"
done

# ---------------------------------------------------------------- helpers
# phase_up NAME COMPOSE-ARGS...: the phase's project and files; no stack
# is running yet.
phase_up() {
	PROJECT=$RUN_ID-$1
	shift
	COMPOSE_ARGS=("$@")
}
# stack_start ARGS...: compose up -d ARGS (bounded), then the project's ps.
stack_start() {
	local t0
	t0=$(date +%s)
	STACK_UP=1
	if ! timeout 300 "${COMPOSE_CMD[@]}" -p "$PROJECT" "${COMPOSE_ARGS[@]}" up -d "$@" >"$WORK/up.log" 2>&1; then
		tail -30 "$WORK/up.log"
		fail "up -d $*"
		return 1
	fi
	info "up -d $* returned after $(($(date +%s) - t0))s"
	compose ps
}

# lb_up: how many gateway slots HAProxy has UP.
lb_up() {
	curl -s -m 2 "$STATS_URL" 2>/dev/null | awk -F, '$1 == "gateways" && $2 ~ /^gw/ && $18 ~ /^UP/ { n++ } END { print n + 0 }'
}
# wait_lb_up N: wait until exactly N slots are UP; prints the seconds taken.
wait_lb_up() {
	local want=$1 start now
	start=$(date +%s%3N)
	for _ in $(seq 600); do
		if [ "$(lb_up)" = "$want" ]; then
			now=$(date +%s%3N)
			awk -v ms=$((now - start)) 'BEGIN { printf "%.1f", ms / 1000 }'
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------- clients
MODE=single
TARGET=127.0.0.1
if [ "${RAMPART_E2E_SINGLE_CLIENT:-}" != 1 ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
	if ip route show table local | grep -q '^local 198.18.0.0/16 '; then
		MODE=many
	elif ip route add local 198.18.0.0/16 dev lo 2>/dev/null; then
		MODE=many
		ROUTE_ADDED=1
	fi
fi
if [ "$MODE" = many ]; then
	# A non-loopback address of this host: Docker DNATs it to the lb and
	# keeps the client's source address (loopback goes through docker-proxy,
	# which does not).
	TARGET=$RAMPART_NET.0.1
	info "clients: many addresses from 198.18.0.0/16 → http://$TARGET:$RAMPART_HTTP_PORT (the published port)"
else
	info "clients: ONE client (no root/iproute2, or RAMPART_E2E_SINGLE_CLIENT=1): per-client checks are skipped"
fi
URL=http://$TARGET:$RAMPART_HTTP_PORT
# req IP [curl args...] URLPATH: status code of one request.
req() {
	local ip=$1
	shift
	local iface=()
	[ "$MODE" = many ] && iface=(--interface "$ip")
	curl -s -m 10 -o /dev/null -w '%{http_code}' "${iface[@]}" "$@" || true
}
# codes IP N PATH: status codes of N sequential requests on one connection.
codes() {
	local ip=$1 n=$2 path=$3 args=() iface=()
	for _ in $(seq "$n"); do args+=(-o /dev/null "$URL$path"); done
	[ "$MODE" = many ] && iface=(--interface "$ip")
	{ curl -s -m 20 "${iface[@]}" -w '%{http_code} ' "${args[@]}" || true; } | sed 's/ $//'
}
has_ban() { [ "$(redis_cli EXISTS "gw:ban:{$1}")" = 1 ]; }
# race NET: 20 clients NET.1-20 x 10 concurrent requests; "IP status" lines
# in $WORK/race. Each client is one curl running its 10 requests in
# parallel (10 connections at once): 20 processes, not 200, so forking the
# load does not starve the host it measures.
race() {
	local c i args=()
	rm -f "$WORK"/race.*
	for i in $(seq 10); do args+=(-o /dev/null "$URL/api/endpoint"); done
	for c in $(seq 20); do
		(curl -s --no-progress-meter -m 20 --parallel --parallel-immediate --parallel-max 10 --interface "$1.$c" \
			-w "$1.$c %{http_code}\n" "${args[@]}" >"$WORK/race.$c" 2>/dev/null || true) &
	done
	wait
	cat "$WORK"/race.* >"$WORK/race"
}
# store_errors: rampart_store_errors_total summed over the replicas.
store_errors() {
	local cid total=0 n
	for cid in $(containers gateway); do
		n=$(curl -s -m 5 "http://$(frontend_ip "$cid"):9090/metrics" | awk '/^rampart_store_errors_total/ { s += $NF } END { printf "%d", s }')
		total=$((total + n))
	done
	echo "$total"
}
# store_evidence: why the store failed, as the replicas and Redis saw it.
store_evidence() {
	local cid
	for cid in $(containers gateway); do
		info "$(cname "$cid"): $(curl -s -m 5 "http://$(frontend_ip "$cid"):9090/metrics" | awk '/^rampart_store_errors_total|^rampart_store_circuit_open/ { printf "%s ", $0 }')"
		docker logs --since 2m "$cid" 2>&1 | grep -E '"msg":"(redis_circuit_open|redis_circuit_closed|store_unavailable)"' | tail -3 | cut -c1-300 | indent
	done
	info "redis log (last lines):"
	docker logs --tail 5 "$REDIS_CID" 2>&1 | indent
}
# ban_refused IP [BASE-URL]: the request was refused because IP is banned
# (403 with no RateLimit fields), not by the rate limit.
ban_refused() {
	local h
	h=$({ curl -s -m 10 --interface "$1" -D - -o /dev/null "${2:-$URL}/api/endpoint" || true; } | tr -d '\r')
	grep -Eq '^HTTP/[0-9.]+ 403' <<<"$h" && ! grep -qi '^ratelimit:' <<<"$h"
}
# wait_store_ok: every gateway reports its Redis connection healthy.
wait_store_ok() {
	local cid
	for cid in $(containers gateway); do
		for _ in $(seq 150); do
			docker exec "$cid" gatewayctl -o json status 2>/dev/null | matches '"store_ok": true' && break
			sleep 0.2
		done
	done
}
# store_ok_count: how many gateways report their store healthy.
store_ok_count() {
	local cid n=0
	for cid in $(containers gateway); do
		docker exec "$cid" gatewayctl -o json status 2>/dev/null | matches '"store_ok": true' && n=$((n + 1))
	done
	echo "$n"
}

# ================================================================ base
phase_base() {
phase_up base -f docker-compose.yml
section "base: ${COMPOSE_CMD[*]} -p $PROJECT up -d --scale gateway=3"
t0=$(date +%s)
stack_start --scale gateway=3 || die "up failed"
info "up (redis and upstream healthy, 3 gateways healthy, lb started) in $(($(date +%s) - t0))s"

REDIS_CID=$(containers redis)
[ -n "$REDIS_CID" ] || die "no redis container"
if took=$(wait_lb_up 3); then pass "HAProxy sees 3 gateways UP (${took}s after up returned)"; else fail "HAProxy never saw 3 gateways UP: $(lb_up)"; fi

# ---------------------------------------------------------------- traffic
section "traffic through the load balancer (:$RAMPART_HTTP_PORT)"
if [ "$MODE" = many ]; then
	A=198.18.1.1
	got=$(codes $A 7 /api/endpoint)
	expect "client $A, 7 x GET /api/endpoint (5 per minute)" "$got" "200 200 200 200 200 403 403"

	got=$(req 198.18.1.2 -G --data-urlencode "q=1' OR '1'='1" "$URL/api/endpoint")
	expect "SQL injection in the query" "$got" 403
	got=$(req 198.18.1.3 -A 'sqlmap/1.7.2#stable (https://sqlmap.org)' "$URL/api/endpoint")
	expect "scanner User-Agent (sqlmap)" "$got" 403
	got=$(req 198.18.1.4 "$URL/echo?next=%3Cscript%3Ealert(1)%3C/script%3E")
	expect "XSS in the query" "$got" 403

	E=198.18.1.5
	got=$(codes $E 5 /wp-login.php)
	expect "client $E, 5 invalid requests (enumeration)" "$got" "404 404 404 404 404"
	sleep 0.2 # the 5th answer's ban is written just after it is sent
	got=$(req $E "$URL/api/endpoint")
	expect "client $E, next request (banned)" "$got" 403

	args=()
	for _ in $(seq 7); do args+=(-o /dev/null -H "X-Forwarded-For: 203.0.113.$RANDOM" "$URL/api/endpoint"); done
	got=$({ curl -s -m 20 --interface 198.18.1.7 -w '%{http_code} ' "${args[@]}" || true; } | sed 's/ $//')
	expect "client 198.18.1.7, 7 requests each forging another X-Forwarded-For" "$got" "200 200 200 200 200 403 403"
	seen=$({ curl -s -m 5 --interface 198.18.1.8 -H 'X-Forwarded-For: 203.0.113.9' "$URL/echo" || true; } | sed -n 's/.*"X-Forwarded-For":\["\([^"]*\)"\].*/\1/p')
	expect "X-Forwarded-For the upstream sees for 198.18.1.8 forging 203.0.113.9" "$seen" 198.18.1.8
	expect "Redis keys for the forged address 203.0.113.9" "$(redis_cli --scan --pattern 'gw:*203.0.113.*' | wc -l)" 0

	# Racing: 20 clients x 10 concurrent requests, all at once. The limit
	# is exact while Redis answers; when it does not (a call over
	# redis.timeout, 50 ms, opens the circuit after 5 failures), each replica
	# limits on its own and a client gets at most replicas x 5 (README,
	# failure modes). The store's failed calls are counted around the race:
	# a race the store failed in is checked against that bound, shown with
	# its evidence, and run once more on fresh clients once every replica's
	# circuit is closed again: that run must be exact, with no failed call.
	for round in 2 3; do
		errs0=$(store_errors)
		race "198.18.$round"
		errs=$(($(store_errors) - errs0))
		allowed=$(awk '$2 == 200' "$WORK/race" | wc -l)
		bad=$(awk '$2 != 200 && $2 != 403' "$WORK/race" | wc -l)
		most=$(awk '$2 == 200 { n[$1]++ } END { m = 0; for (ip in n) if (n[ip] > m) m = n[ip]; print m }' "$WORK/race")
		perip=$(awk '$2 == 200 { n[$1]++ } END { for (ip in n) print n[ip] }' "$WORK/race" | sort -n | uniq -c | awk '{ printf "%s clients x %s allowed; ", $1, $2 }')
		if [ "$errs" = 0 ] || [ "$round" = 3 ]; then
			expect "20 clients x 10 racing requests: allowed (5 per client)" "$allowed" 100
			info "per client: ${perip% ; }"
			expect "failed store calls during the race (rampart_store_errors_total over the replicas)" "$errs" 0
			expect "racing requests failed (not 200/403)" "$bad" 0
			expect "racing requests answered" "$(wc -l <"$WORK/race")" 200
			[ "$errs" = 0 ] || store_evidence
			break
		fi
		info "the store failed $errs calls during the race: allowed $allowed (per client: ${perip% ; })"
		store_evidence
		n=$(containers gateway | wc -l)
		if [ "$most" -le $((n * 5)) ]; then
			pass "racing while the store failed: at most $most per client, within the documented bound (replicas $n x 5)"
		else
			fail "racing while the store failed: $most allowed for one client, over replicas $n x 5"
		fi
		expect "racing requests failed (not 200/403) while the store failed" "$bad" 0
		wait_store_ok
		info "racing once more, on fresh clients (198.18.3.x), with every replica's store healthy again ($(store_ok_count) of $n)"
	done
else
	got=$(codes host 7 /api/endpoint)
	expect "host client: 5 allowed, then refused" "$got" "200 200 200 200 200 403 403"
	codes host 45 /api/endpoint >/dev/null
	n=$(redis_cli --scan --pattern 'gw:ban:*' | wc -l)
	if [ "$n" -ge 1 ]; then pass "host client banned after 45 more refusals"; else fail "host client not banned after 45 more refusals"; fi
fi

# ---------------------------------------------------------------- bans
section "bans, seen with redis-cli inside the redis container"
info "\$ docker exec $(docker inspect -f '{{.Name}}' "$REDIS_CID" | tr -d /) redis-cli --scan --pattern 'gw:ban:*'"
redis_cli --scan --pattern 'gw:ban:*' | sort | sed 's/^/      /'
if [ "$MODE" = many ]; then
	if has_ban "$E"; then pass "enumerating client $E is banned (gw:ban:{$E})"; else fail "no gw:ban:{$E}"; fi
	info "\$ redis-cli HGETALL 'gw:ban:{$E}'"
	redis_cli HGETALL "gw:ban:{$E}" | paste - - | sed 's/^/      /'
	info "\$ redis-cli TTL 'gw:ban:{$E}' → $(redis_cli TTL "gw:ban:{$E}")"
	for ip in $A 198.18.1.7; do
		if has_ban "$ip"; then fail "$ip (only 2 refusals) is banned"; else pass "$ip (2 refusals, under ban_after) is not banned"; fi
	done
fi

GW1=$(containers gateway | sed -n 1p)
info "\$ docker exec $(docker inspect -f '{{.Name}}' "$GW1" | tr -d /) gatewayctl bans list"
docker exec "$GW1" gatewayctl bans list | sed 's/^/      /'

if [ "$MODE" = many ]; then
	B=198.18.1.9
	docker exec "$GW1" gatewayctl bans add $B -for 1h -reason "compose-e2e operator ban" >/dev/null
	expect "after gatewayctl bans add $B, its request" "$(req $B "$URL/api/endpoint")" 403
	docker exec "$GW1" gatewayctl bans rm $B >/dev/null
	expect "after gatewayctl bans rm $B, its request" "$(req $B "$URL/api/endpoint")" 200

	# Clearing with redis-cli alone: replicas that cached the ban keep it
	# until their cache entry goes stale (bans.cache_max_stale, 30 s).
	D=198.18.1.10
	docker exec "$GW1" gatewayctl bans add $D -for 1h -reason "compose-e2e redis-cli clear" >/dev/null
	for _ in 1 2 3; do req $D "$URL/api/endpoint" >/dev/null; done
	redis_cli DEL "gw:ban:{$D}" >/dev/null
	redis_cli ZREM gw:bans "$D" >/dev/null
	t0=$(date +%s)
	cleared=""
	for _ in $(seq 45); do
		# Three requests in a row: round robin asks every replica. A ban
		# refusal is a 403 without RateLimit fields.
		n=0
		for _ in 1 2 3; do ban_refused $D && n=$((n + 1)); done
		if [ "$n" = 0 ]; then cleared=$(($(date +%s) - t0)); break; fi
		sleep 1
	done
	if [ -n "$cleared" ]; then
		pass "ban cleared with redis-cli DEL: every replica let $D through after ${cleared}s (cached bans are trusted up to cache_max_stale, 30s)"
	else
		fail "ban cleared with redis-cli DEL: $D still refused after 45s"
	fi
fi

section "Redis restart keeps the bans (append-only file on the named volume)"
before=$(redis_cli --scan --pattern 'gw:ban:*' | sort)
compose restart redis >/dev/null 2>&1
for _ in $(seq 100); do [ "$(redis_cli PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
after=$(redis_cli --scan --pattern 'gw:ban:*' | sort)
expect "ban keys before → after 'restart redis'" "$(echo "$after" | grep -c . || true)" "$(echo "$before" | grep -c . || true)"
if [ "$before" = "$after" ]; then pass "same ban keys after the restart"; else fail "ban keys changed across the restart"; fi
info "appendonly: $(redis_cli CONFIG GET appendonly | tail -1); files: $(docker exec "$REDIS_CID" ls /data/appendonlydir 2>/dev/null | tr '\n' ' ')"
wait_store_ok
if [ "$MODE" = many ]; then
	if ban_refused "$E"; then pass "banned $E is refused as banned after the Redis restart"; else fail "banned $E not refused after the Redis restart"; fi
fi

# ---------------------------------------------------------------- config edit
section "config edit: a new deploy/rampart.yaml renamed over the old one (a new inode, as an editor saves)"
# wait_reloaded HASH SINCE: every replica logs config_reloaded with HASH
# after SINCE (RFC 3339); prints the seconds the slowest one took.
wait_reloaded() {
	local hash=$1 since=$2 start cid n total
	start=$(date +%s%3N)
	total=$(containers gateway | wc -l)
	while [ $(($(date +%s%3N) - start)) -lt 10000 ]; do
		n=0
		for cid in $(containers gateway); do
			docker logs --since "$since" "$cid" 2>&1 | grep -F '"msg":"config_reloaded"' | matches "\"config_hash\":\"$hash\"" && n=$((n + 1))
		done
		if [ "$n" = "$total" ]; then
			awk -v ms=$(($(date +%s%3N) - start)) 'BEGIN { printf "%.1f", ms / 1000 }'
			return 0
		fi
		sleep 0.1
	done
	echo "$n of $total"
	return 1
}
# payload_modes: the payload detection's mode on every replica.
payload_modes() {
	local cid
	for cid in $(containers gateway); do
		docker exec "$cid" gatewayctl -o json status 2>/dev/null | tr -d ' \n' |
			grep -o '{"name":"payload","mode":"[a-z]*"}' | sed 's/.*"mode":"\([a-z]*\)".*/\1/'
	done | sort | uniq -c | awk '{ printf "%s%s x %s", sep, $1, $2; sep = ", " }'
}
info "bind mount: ./deploy → /etc/rampart (the directory, so a renamed-over file is seen); replicas poll the file every 2s"
CFG_SAVED=$WORK/rampart.yaml.orig
cp -p "$CFG" "$CFG_SAVED"
old_hash=$(sha256sum "$CFG" | cut -c1-12)
grep -q '^  payload:' "$CFG" && die "deploy/rampart.yaml already configures payload; the edit would duplicate it"
new=$ROOT/deploy/.rampart.yaml.compose-e2e.$$
# The edit: the payload detection in monitor mode (visible per replica in
# gatewayctl status), first under detections:.
awk '{ print } /^detections:/ { print "  # compose-e2e: a temporary edit, put back at the end of this phase."; print "  payload:"; print "    mode: monitor" }' "$CFG" >"$new"
new_hash=$(sha256sum "$new" | cut -c1-12)
inode_before=$(stat -c %i "$CFG")
since=$(date -u +%FT%T.%NZ)
mv -f "$new" "$CFG"
info "wrote a new file, renamed it over deploy/rampart.yaml: inode $inode_before → $(stat -c %i "$CFG"), config_hash $old_hash → $new_hash"
if took=$(wait_reloaded "$new_hash" "$since"); then
	pass "every replica ($(containers gateway | wc -l)) logged config_reloaded with config_hash $new_hash, the last ${took}s after the rename"
else
	fail "config_reloaded with $new_hash: only $took replicas within 10s"
fi
expect "payload mode on the replicas after the edit" "$(payload_modes)" "3 x monitor"
cid=$(containers gateway | sed -n 1p)
docker logs --since "$since" "$cid" 2>&1 | grep '"msg":"config_reloaded"' | tail -1 | cut -c1-400 | indent
since=$(date -u +%FT%T.%NZ)
restore_config
if took=$(wait_reloaded "$old_hash" "$since"); then
	pass "original put back (renamed over again): every replica reloaded config_hash $old_hash, the last ${took}s after"
else
	fail "config_reloaded with the original $old_hash: only $took replicas within 10s"
fi
expect "payload mode on the replicas after putting the original back" "$(payload_modes)" "3 x enforce"
expect "deploy/rampart.yaml is byte for byte the original" "$(sha256sum "$CFG" | cut -c1-12)" "$old_hash"

# ---------------------------------------------------------------- scaling
section "scale 3 → 5 → 2, and restart a replica, under steady traffic"
TRAFFIC=$WORK/traffic
MARKS=$WORK/marks
: >"$TRAFFIC"
: >"$MARKS"
mark() { echo "$(date +%s%3N) $1" >>"$MARKS"; }
# The gateways' logs, replicas removed by the scale-down included: a client
# allowed past the limit must be one whose check failed open (logged).
compose logs -f --no-color gateway >"$WORK/gateway.log" 2>&1 &
TRAFFIC_PIDS+=($!)
for w in 0 1 2 3; do
	bash "$ROOT/scripts/compose/traffic.sh" "$URL/api/endpoint" "$w" "$WORK/stop" "$TRAFFIC.$w" "$MODE" &
	TRAFFIC_PIDS+=($!)
done
mark start
sleep 4

mark scale5
t0=$(date +%s)
compose up -d --no-recreate --scale gateway=5 >"$WORK/scale5.log" 2>&1 || { cat "$WORK/scale5.log"; fail "scale to 5"; }
info "up --scale gateway=5 returned after $(($(date +%s) - t0))s"
if took=$(wait_lb_up 5); then pass "HAProxy sees 5 gateways UP (${took}s after the scale command returned)"; else fail "HAProxy never saw 5 UP: $(lb_up)"; fi
mark noticed5
sleep 6

mark scale2
t0=$(date +%s)
compose up -d --no-recreate --scale gateway=2 >"$WORK/scale2.log" 2>&1 || { cat "$WORK/scale2.log"; fail "scale to 2"; }
info "up --scale gateway=2 returned after $(($(date +%s) - t0))s (3 replicas drained and removed)"
if took=$(wait_lb_up 2); then pass "HAProxy sees 2 gateways UP (${took}s after the scale command returned)"; else fail "HAProxy never settled on 2 UP: $(lb_up)"; fi
mark noticed2
sleep 5

mark restart
victim=$(containers gateway | sed -n 1p)
t0=$(date +%s)
docker restart "$victim" >/dev/null
info "docker restart of one replica (SIGTERM, drain, start) took $(($(date +%s) - t0))s"
for _ in $(seq 300); do
	[ "$(docker inspect -f '{{.State.Health.Status}}' "$victim")" = healthy ] && break
	sleep 0.1
done
if took=$(wait_lb_up 2); then pass "HAProxy has both gateways UP again (${took}s after it was healthy)"; else fail "restarted replica not back in HAProxy"; fi
mark noticedR
sleep 4
mark end
touch "$WORK/stop"
for p in "${TRAFFIC_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${TRAFFIC_PIDS[@]}" 2>/dev/null || true
TRAFFIC_PIDS=()
cat "$TRAFFIC".* >"$TRAFFIC"

# Requests per window, failures (no answer or 5xx) per window.
summary=$(awk -v marks="$MARKS" '
	BEGIN {
		while ((getline l < marks) > 0) { split(l, f, " "); t[f[2]] = f[1] }
		w[1] = "3 replicas (steady)";                 a[1] = t["start"];    b[1] = t["scale5"]
		w[2] = "scaling to 5, until the LB saw them";  a[2] = t["scale5"];   b[2] = t["noticed5"]
		w[3] = "5 replicas (steady)";                 a[3] = t["noticed5"]; b[3] = t["scale2"]
		w[4] = "scaling to 2, until the LB settled";   a[4] = t["scale2"];   b[4] = t["noticed2"]
		w[5] = "2 replicas (steady)";                 a[5] = t["noticed2"]; b[5] = t["restart"]
		w[6] = "restarting a replica, until back";    a[6] = t["restart"];  b[6] = t["noticedR"]
		w[7] = "2 replicas (steady)";                 a[7] = t["noticedR"]; b[7] = t["end"] + 60000
	}
	{
		for (i = 1; i <= 7; i++) if ($1 >= a[i] && $1 < b[i]) break
		n[i]++
		if ($3 != 200 && $3 != 403) { bad[i]++; ex[i] = ex[i] " " $2 ":" $3 }
		if ($3 == 200) allowed[$2]++
		clients[$2] = 1
	}
	END {
		for (i = 1; i <= 7; i++) printf "W %d %d %d %s|%s\n", i, n[i], bad[i] + 0, w[i], substr(ex[i], 1, 200)
		for (c in clients) { k = allowed[c] + 0; if (k > 5) over++; else if (k == 5) exact++; else under++ }
		printf "C %d %d %d %d\n", length(clients), exact, under, over
	}' "$TRAFFIC")
total=$(wc -l <"$TRAFFIC")
info "requests through the LB while scaling: $total (4 workers, each client 6 requests on one connection)"
printf '      %-40s %9s %7s\n' window requests failed
steady_bad=0
all_bad=0
while read -r tag i n bad rest; do
	[ "$tag" = W ] || continue
	name=${rest%%|*}
	printf '      %-40s %9s %7s\n' "$name" "$n" "$bad"
	all_bad=$((all_bad + bad))
	case "$name" in *steady*) steady_bad=$((steady_bad + bad)) ;; esac
	[ "$bad" -gt 0 ] && info "  e.g.${rest#*|}"
done <<<"$summary"
expect "failed requests once the LB had noticed (steady windows)" "$steady_bad" 0
expect "failed requests overall, transitions included" "$all_bad" 0
if [ "$MODE" = many ]; then
	read -r _ nclients exact under over < <(grep '^C ' <<<"$summary")
	info "clients: $nclients; allowed exactly 5: $exact; fewer: $under; more than 5: $over"
	# Fail-open (the documented policy when Redis does not answer within
	# redis.timeout, 50 ms) is the one accepted way past the limit.
	{ grep '"detection_failed"' "$WORK/gateway.log" || true; } | { grep '"detection":"rate_limit"' || true; } |
		sed -n 's/.*"client_ip":"\([^"]*\)".*/\1/p' | sort -u >"$WORK/failopen"
	info "gateway log lines captured: $(wc -l <"$WORK/gateway.log"), from $(grep -o '"replica":"[^"]*"' "$WORK/gateway.log" | sort -u | wc -l) replicas; clients whose rate-limit check failed open on a Redis error: $(wc -l <"$WORK/failopen")"
	{ grep '"detection_failed"' "$WORK/gateway.log" || true; } | { grep '"detection":"rate_limit"' || true; } |
		sed -n 's/.*"time":"\([^"]*\)".*"error":"\([^"]*\)".*/\1 \2/p' | sed -n 1,3p |
		while IFS= read -r l; do info "  e.g. $l"; done
	unexplained=$(awk '$3 == 200 { n[$2]++ } END { for (c in n) if (n[c] > 5) print c }' "$TRAFFIC" | sort | comm -23 - "$WORK/failopen" | wc -l)
	expect "clients allowed more than 5 requests without a logged fail-open" "$unexplained" 0
fi
info "HAProxy requests per slot (stot), retries and redispatches:"
curl -s -m 2 "$STATS_URL" | awk -F, '$1 == "gateways" && ($2 ~ /^gw/ || $2 == "BACKEND") && $8 > 0 { printf "      %-8s %-6s stot %-6s retries %-4s redispatches %s\n", $2, $18, $8, $16, $17 }'


section "base: teardown"
stack_down
}

# ================================================================ cluster
phase_cluster() {
phase_up cluster -f docker-compose.yml -f deploy/compose/cluster.yml
section "cluster: ${COMPOSE_CMD[*]} -p $PROJECT -f docker-compose.yml -f deploy/compose/cluster.yml up -d --scale gateway=3"
stack_start --scale gateway=3 || { stack_down; return 0; }
local init node1 rc cid slot owner other key n masters replicas ip B C got ok
init=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=redis")
rc=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$init" 2>/dev/null || echo "none")
expect "the cluster-forming job (service redis, one-shot): state and exit code" "$rc" "exited 0"
docker logs "$init" 2>&1 | grep '^cluster-init:' | indent
node1=$(containers redis-node-1)
REDIS_CID=$node1
cmd "docker exec $(cname "$node1") redis-cli --cluster check redis-node-1:6379"
redis_cli --cluster check redis-node-1:6379 >"$WORK/cluster-check" 2>&1 || true
grep -E '^(redis-node|[0-9])|^\[OK\]|^\[ERR\]' "$WORK/cluster-check" | indent
masters=$(grep -c '^M: ' "$WORK/cluster-check" || true)
replicas=$(grep -c '^S: ' "$WORK/cluster-check" || true)
expect "masters and replicas (CLUSTER NODES through --cluster check)" "$masters masters, $replicas replicas" "3 masters, 3 replicas"
if grep -q '^\[OK\] All 16384 slots covered' "$WORK/cluster-check"; then pass "all 16384 slots covered"; else fail "slots not all covered"; fi
info "cluster_state on every node: $(for i in 1 2 3 4 5 6; do docker exec "$(containers redis-node-$i)" redis-cli cluster info | tr -d '\r' | sed -n 's/^cluster_state://p'; done | sort | uniq -c | awk '{ printf "%s x %s ", $1, $2 }')"

wait_store_ok
expect "gateways reporting their store (the cluster) healthy" "$(store_ok_count)" 3
if took=$(wait_lb_up 3); then pass "HAProxy sees 3 gateways UP (${took}s after up returned)"; else fail "HAProxy never saw 3 gateways UP: $(lb_up)"; fi
cid=$(containers gateway | sed -n 1p)
info "REDIS_URL of the gateways: $(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$cid" | sed -n 's/^REDIS_URL=//p')"

if [ "$MODE" = many ]; then
	C=198.18.5.1
	got=$(codes $C 8 /api/endpoint)
	expect "client $C, 8 x GET /api/endpoint through the LB (round robin over 3 replicas, one cluster; 5 per minute)" "$got" "200 200 200 200 200 403 403 403"
	got=$(codes 198.18.5.3 8 /api/endpoint)
	expect "client 198.18.5.3, the same (its own bucket)" "$got" "200 200 200 200 200 403 403 403"

	B=198.18.5.2
	ip=$(frontend_ip "$cid")
	cmd "curl -X POST -H 'Authorization: Bearer \$GATEWAY_ADMIN_TOKEN' http://$ip:9090/v1/bans -d '{\"client\":\"$B\",\"duration\":\"1h\",...}'   # replica $(cname "$cid")"
	got=$(curl -s -m 5 -o "$WORK/ban.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $GATEWAY_ADMIN_TOKEN" \
		-H 'Content-Type: application/json' -d "{\"client\":\"$B\",\"duration\":\"1h\",\"reason\":\"compose-e2e cluster ban\"}" "http://$ip:9090/v1/bans" || true)
	case "$got" in 2??) pass "admin API ban of $B on one replica: HTTP $got" ;; *) fail "admin API ban of $B: HTTP $got $(head -c 200 "$WORK/ban.json")" ;; esac
	n=0
	for c in $(containers gateway); do
		ip=$(frontend_ip "$c")
		if ban_refused $B "http://$ip:8080"; then n=$((n + 1)); else info "replica $(cname "$c") ($ip) lets $B through"; fi
	done
	expect "replicas refusing $B as banned (each asked directly on its own address)" "$n" 3
	ok=0
	for _ in 1 2 3; do ban_refused $B && ok=$((ok + 1)); done
	expect "requests from $B through the LB refused as banned" "$ok" 3

	key="gw:ban:{$B}"
	slot=$(redis_cli CLUSTER KEYSLOT "$key")
	# A node that does not serve the slot: without -c it answers MOVED.
	other=""
	for i in 1 2 3 4 5 6; do
		if redis_cli -h redis-node-$i EXISTS "$key" 2>&1 | matches MOVED; then other=redis-node-$i; break; fi
	done
	owner=$(redis_cli -h "${other:-redis-node-1}" EXISTS "$key" 2>&1 | sed -n 's/.*MOVED [0-9]* \(.*\)/\1/p')
	info "the key $key is in slot $slot, served by ${owner:-redis-node-1}"
	cid=$(containers "${other:-redis-node-1}")
	cmd "docker exec $(cname "$cid") redis-cli EXISTS '$key'"
	docker exec "$cid" redis-cli EXISTS "$key" 2>&1 | grep . | indent
	cmd "docker exec $(cname "$cid") redis-cli -c HGETALL '$key'"
	docker exec "$cid" redis-cli -c HGETALL "$key" >"$WORK/ban.hash" 2>&1 || true
	paste - - <"$WORK/ban.hash" | indent
	if grep -qx 'compose-e2e cluster ban' "$WORK/ban.hash"; then
		pass "redis-cli -c on ${other:-redis-node-1} follows the redirect and finds the ban (reason 'compose-e2e cluster ban')"
	else
		fail "redis-cli -c did not find $key"
	fi
	cmd "docker exec $(cname "$cid") redis-cli -c TTL '$key' → $(docker exec "$cid" redis-cli -c TTL "$key")"
	cmd "docker exec $(cname "$node1") redis-cli --cluster call redis-node-1:6379 DBSIZE"
	redis_cli --cluster call redis-node-1:6379 DBSIZE 2>&1 | grep -v '^>>>' | indent
	n=$(for i in 1 2 3 4 5 6; do docker exec "$(containers redis-node-$i)" redis-cli role | sed -n 1p; done | grep -c master || true)
	expect "nodes in the master role" "$n" 3
else
	got=$(codes host 8 /api/endpoint)
	expect "host client, 8 x GET /api/endpoint through the LB (one cluster; 5 per minute)" "$got" "200 200 200 200 200 403 403 403"
	info "one client: the per-client ban checks are skipped"
fi

section "cluster: teardown"
stack_down
}

# ================================================================ tls
phase_tls() {
phase_up tls -f docker-compose.yml -f deploy/compose/tls.yml
section "tls: the dev certificate (scripts/dev-cert.sh)"
local ca=$ROOT/deploy/tls/ca.pem https got ip cid out n xff total
bash "$ROOT/scripts/dev-cert.sh" | indent
section "tls: ${COMPOSE_CMD[*]} -p $PROJECT -f docker-compose.yml -f deploy/compose/tls.yml up -d --scale gateway=3"
stack_start --scale gateway=3 || { stack_down; return 0; }
REDIS_CID=$(containers redis)
if took=$(wait_lb_up 3); then pass "HAProxy (TCP mode) sees 3 gateways UP: /readyz over plain HTTP on the admin port 9090 (${took}s)"; else fail "HAProxy never saw 3 gateways UP: $(lb_up)"; fi

cmd "curl --cacert deploy/tls/ca.pem https://localhost:$RAMPART_HTTPS_PORT/api/endpoint"
got=$(curl -s -m 10 --cacert "$ca" -o /dev/null -w '%{http_code} %{ssl_verify_result} %{http_version}' "https://localhost:$RAMPART_HTTPS_PORT/api/endpoint" || true)
expect "HTTPS through HAProxy, verified against the dev CA (status, certificate verify result)" "${got% *}" "200 0"
info "HTTP version negotiated with the gateway (ALPN): ${got##* }"
got=$(curl -s -m 10 --cacert "$ca" --tlsv1.2 --tls-max 1.2 -o /dev/null -w '%{http_code}' "https://localhost:$RAMPART_HTTPS_PORT/api/endpoint" || true)
expect "TLS 1.2 (curl --tlsv1.2 --tls-max 1.2)" "$got" 200
got=$(curl -s -m 10 -o /dev/null -w '%{http_code} %{redirect_url}' "http://localhost:$RAMPART_HTTP_PORT/api/endpoint?a=1" || true)
expect "plain HTTP on :$RAMPART_HTTP_PORT" "$got" "308 https://localhost:$RAMPART_HTTPS_PORT/api/endpoint?a=1"
got=$(curl -s -m 10 --insecure -o /dev/null -w '%{http_code}' "http://$TARGET:$RAMPART_HTTPS_PORT/" 2>/dev/null || true)
info "plain HTTP sent to the TLS port: HTTP status '$got' (the gateway's TLS listener refuses it: not_tls)"

https=https://localhost:$RAMPART_HTTPS_PORT
# tcurl IP ARGS...: curl through the published TLS port from client IP,
# with the dev CA and the name localhost.
tcurl() {
	local ip=$1
	shift
	local extra=()
	[ "$MODE" = many ] && extra=(--interface "$ip" --resolve "localhost:$RAMPART_HTTPS_PORT:$TARGET")
	curl -s -m 10 --cacert "$ca" "${extra[@]}" "$@" || true
}
if [ "$MODE" = many ]; then
	xff=$(tcurl 198.18.6.1 -H 'X-Forwarded-For: 203.0.113.9' "$https/echo" | sed -n 's/.*"X-Forwarded-For":\["\([^"]*\)"\].*/\1/p')
	expect "client address the gateway passes upstream for 198.18.6.1 (PROXY v2 from HAProxy; its own X-Forwarded-For 203.0.113.9 ignored)" "$xff" 198.18.6.1
	args=()
	for _ in $(seq 7); do args+=(-o /dev/null "$https/api/endpoint"); done
	got=$(tcurl 198.18.6.2 -w '%{http_code} ' "${args[@]}" | sed 's/ $//')
	expect "client 198.18.6.2, 7 x GET over TLS (5 per minute, per client)" "$got" "200 200 200 200 200 403 403"
	got=$(tcurl 198.18.6.3 -o /dev/null -w '%{http_code}' "$https/api/endpoint")
	expect "client 198.18.6.3 right after (its own limit, not HAProxy's address)" "$got" 200
	n=$(redis_cli --scan --pattern "gw:*198.18.6.2*" | wc -l)
	if [ "$n" -ge 1 ]; then pass "Redis keys for client 198.18.6.2: $n"; else fail "no Redis key names client 198.18.6.2"; fi
	expect "Redis keys naming HAProxy's address $LB_ADDR" "$(redis_cli --scan --pattern "gw:*$LB_ADDR*" | wc -l)" 0
fi

since=$(date -u +%FT%T.%NZ)
for v in tls1_1 tls1; do
	bind=()
	[ "$MODE" = many ] && bind=(-bind 198.18.6.4:0)
	# SECLEVEL=0: OpenSSL 3 would not even offer TLS 1.0/1.1 otherwise; the
	# refusal must come from the gateway.
	cmd "openssl s_client -connect $TARGET:$RAMPART_HTTPS_PORT ${bind[*]:+${bind[*]} }-servername localhost -$v -cipher DEFAULT:@SECLEVEL=0"
	out=$(openssl s_client -connect "$TARGET:$RAMPART_HTTPS_PORT" "${bind[@]}" -servername localhost -"$v" -cipher 'DEFAULT:@SECLEVEL=0' </dev/null 2>&1 || true)
	grep -m1 -o 'alert protocol version.*' <<<"$out" | indent || true
	if grep -q 'alert protocol version' <<<"$out" && ! grep -q '^    Cipher    : [A-Z]' <<<"$out"; then
		pass "-$v handshake refused by the gateway (alert protocol_version)"
	else
		fail "-$v handshake not refused with protocol_version: $(grep -m2 -i 'error\|cipher' <<<"$out" | tr '\n' ' ')"
	fi
done
sleep 0.3
for cid in $(containers gateway); do docker logs --since "$since" "$cid" 2>&1; done | grep '"msg":"tls_handshake_refused"' >"$WORK/refused" || true
info "gateways' log lines for them:"
cut -c1-330 "$WORK/refused" | indent
n=$(grep -c '"result":"legacy_version"' "$WORK/refused" || true)
expect "tls_handshake_refused lines with result legacy_version" "$n" 2
if [ "$MODE" = many ]; then
	expect "client_ip the gateways logged for the refused handshakes (the host's client address, not HAProxy's $LB_ADDR)" \
		"$(sed -n 's/.*"client_ip":"\([^"]*\)".*/\1/p' "$WORK/refused" | sort -u | tr '\n' ' ' | sed 's/ $//')" 198.18.6.4
fi
total=0
for cid in $(containers gateway); do
	ip=$(frontend_ip "$cid")
	n=$(curl -s -m 5 "http://$ip:9090/metrics" | awk '/^rampart_tls_handshakes_total\{.*result="legacy_version"/ { s += $NF } END { print s + 0 }')
	total=$((total + n))
done
expect "rampart_tls_handshakes_total{result=\"legacy_version\"} over the replicas (/metrics, plain HTTP on 9090)" "$total" 2

section "tls: teardown"
stack_down
}

# ================================================================ monitoring
# prom_query EXPR: the instant vector as "instance value" lines.
prom_query() {
	curl -s -m 5 -G --data-urlencode "query=$1" "http://localhost:$RAMPART_PROMETHEUS_PORT/api/v1/query" |
		grep -o '{"metric":{[^}]*},"value":\[[^]]*\]' |
		sed -n 's/.*"instance":"\([^"]*\)".*"value":\[[^,]*,"\([^"]*\)"\]/\1 \2/p' | sort || true
}
phase_monitoring() {
local services=(lb prometheus) want got n ip cid t0 rules
[ -n "$GRAFANA" ] && services+=(grafana)
phase_up monitoring -f docker-compose.yml -f deploy/compose/monitoring.yml --profile monitoring
section "monitoring: ${COMPOSE_CMD[*]} -p $PROJECT -f docker-compose.yml -f deploy/compose/monitoring.yml --profile monitoring up -d --scale gateway=3 ${services[*]}"
if [ -z "$GRAFANA" ]; then
	info "GRAFANA IS NOT RUN: grafana/grafana-oss is not on this host, cannot be pulled (no registry) and has no stand-in (not packaged in Debian)."
fi
if matches '^prom/prometheus:' <<<"$STANDINS"; then
	info "Prometheus is a LOCAL STAND-IN: $(grep '^prom/prometheus:' <<<"$STANDINS" | sed 's/  */ /g')"
fi
stack_start --scale gateway=3 "${services[@]}" || { stack_down; return 0; }
t0=$(date +%s)
for _ in $(seq 60); do curl -sf -m 2 "http://localhost:$RAMPART_PROMETHEUS_PORT/-/ready" >/dev/null && break; sleep 0.5; done
if curl -sf -m 2 "http://localhost:$RAMPART_PROMETHEUS_PORT/-/ready" >/dev/null; then pass "Prometheus ready on :$RAMPART_PROMETHEUS_PORT ($(($(date +%s) - t0))s)"; else fail "Prometheus not ready on :$RAMPART_PROMETHEUS_PORT"; fi
# Some traffic, so that the request counters have series.
for i in 1 2 3 4 5 6; do req 198.18.7.$i "$URL/api/endpoint" >/dev/null; done
want=$(for cid in $(containers gateway); do echo "$(frontend_ip "$cid"):9090 1"; done | sort)
info "gateway replicas: $(awk '{ print $1 }' <<<"$want" | tr '\n' ' ')"
cmd "curl -G --data-urlencode 'query=up{job=\"rampart\"}' http://localhost:$RAMPART_PROMETHEUS_PORT/api/v1/query"
got=""
t0=$(date +%s)
for _ in $(seq 90); do
	got=$(prom_query 'up{job="rampart"}')
	[ "$got" = "$want" ] && break
	sleep 0.5
done
indent <<<"${got:-(no series)}"
if [ "$got" = "$want" ]; then
	pass "up{job=\"rampart\"} == 1 for each of the 3 replicas, and no other target ($(($(date +%s) - t0))s; scrape interval 10s)"
else
	fail "up{job=\"rampart\"}: got [$(tr '\n' ' ' <<<"$got")], want [$(tr '\n' ' ' <<<"$want")]"
fi
want=$(awk '{ print $1 }' <<<"$want")
for _ in $(seq 40); do
	got=$(prom_query 'count by (instance) ({job="rampart",__name__=~"rampart_.+"})')
	[ "$(awk '{ print $1 }' <<<"$got")" = "$want" ] && break
	sleep 0.5
done
info "rampart_* series per replica: $(tr '\n' ' ' <<<"$got")"
expect "replicas with rampart_* series" "$(awk '$2 > 0' <<<"$got" | wc -l)" 3
got=$(prom_query 'count by (instance) (rampart_requests_total{job="rampart"})' | wc -l)
expect "replicas with rampart_requests_total series" "$got" 3
rules=$(curl -s -m 5 "http://localhost:$RAMPART_PROMETHEUS_PORT/api/v1/rules" | grep -o '"type":"alerting"' | wc -l)
if [ "$rules" -ge 1 ]; then pass "alert rules loaded from deploy/prometheus/alerts.yml: $rules"; else fail "no alert rules loaded"; fi
if [ -n "$GRAFANA" ]; then
	got=""
	for _ in $(seq 120); do
		got=$(curl -s -m 2 "http://localhost:$RAMPART_GRAFANA_PORT/api/health" || true)
		grep -q '"database": *"ok"' <<<"$got" && break
		sleep 0.5
	done
	if grep -q '"database": *"ok"' <<<"$got"; then pass "Grafana healthy on :$RAMPART_GRAFANA_PORT"; else fail "Grafana not healthy: $got"; fi
fi

section "monitoring: teardown"
stack_down
}

# ================================================================ run
for p in $PHASES; do
	"phase_$p"
done

# ---------------------------------------------------------------- result
section "result"
info "compose: ${COMPOSE_CMD[*]} ($COMPOSE_VERSION); clients: $MODE; phases: $PHASES"
[ -z "$STANDINS" ] || info "stand-in images used: $(awk '{print $1}' <<<"$STANDINS" | tr '\n' ' ')"
[ -n "$GRAFANA" ] || info "not run: Grafana (no image here)"
info "checks: $CHECKS, failed: $FAILS; took $(($(date +%s) - SCRIPT_START))s"
[ "$FAILS" -eq 0 ] || exit 1
