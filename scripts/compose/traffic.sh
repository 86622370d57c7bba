#!/usr/bin/env bash
# Steady traffic for scripts/compose-e2e.sh: one worker that, until the stop
# file appears (or its bounds are reached), takes a fresh client address and
# sends it 6 requests on one connection (5 within the limit, 1 over it).
#
#   traffic.sh URL WORKER STOPFILE OUTFILE [many|single]
#
# Each request is one line in OUTFILE: "<unix-ms> <client> <status>", status
# 000 when curl got no answer. In "many" mode the client addresses are
# 198.18.<40*WORKER+10 ..>.<1..254>, usable when scripts/compose-e2e.sh
# routed 198.18.0.0/16 to this host; in "single" mode every request comes
# from the host's own address.

set -uo pipefail

url=$1 worker=$2 stop=$3 out=$4 mode=${5:-many}
per_client=6
max_batches=3000     # bound: at most 18,000 requests per worker
deadline=$(($(date +%s) + 600))

batch=0
while [ ! -e "$stop" ] && [ "$batch" -lt "$max_batches" ] && [ "$(date +%s)" -lt "$deadline" ]; do
	third=$((10 + 40 * worker + batch / 254))
	fourth=$((1 + batch % 254))
	ip=198.18.$third.$fourth
	args=()
	for _ in $(seq "$per_client"); do
		args+=(-o /dev/null "$url")
	done
	iface=()
	[ "$mode" = many ] && iface=(--interface "$ip") || ip=host
	now=$(date +%s%3N)
	codes=$(curl -s -m 10 "${iface[@]}" -w '%{http_code}\n' "${args[@]}" 2>/dev/null)
	# curl prints nothing for transfers it never started: pad with 000.
	n=0
	while read -r code; do
		[ -n "$code" ] || continue
		echo "$now $ip $code"
		n=$((n + 1))
	done <<<"$codes" >>"$out"
	while [ "$n" -lt "$per_client" ]; do
		echo "$now $ip 000" >>"$out"
		n=$((n + 1))
	done
	batch=$((batch + 1))
	sleep 0.02
done
