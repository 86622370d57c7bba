package main

// usageText is `gatewayctl help`. TestHelpListsEveryCommand keeps the
// command lines in step with the commands table, and the golden file
// testdata/help.golden with what operators see.
const usageText = `gatewayctl controls a Rampart gateway through its admin API.

Usage:
  gatewayctl [global flags] <command> [arguments] [flags]

Commands:
  status                       replica, store, circuit breaker, detection chain
  bans list [-limit N]         active bans, CIDR ranges first
  bans get CLIENT              one client's ban
  bans add CLIENT [-for 1h|7d] [-reason TEXT]
                               ban an IP address (IPv6: its /64) or a CIDR range
  bans rm CLIENT [-forget]     lift a ban (-forget: and the ban history, resetting escalation)
  events tail [-client IP] [-detection NAME] [-type TYPE] [-since 15m] [-n 50] [-f]
                               recent security events, oldest first; -f follows
  tls fingerprints [-top 20]   the TLS fingerprints this replica's listener saw most often
  summary [-window 1h] [-top 10]
                               event counts, top blocked clients and detections
  counters CLIENT              a client's live counters in the store
  check URL                    GET URL with no token: exit 0 on 2xx, 1 otherwise
                               (a health probe for images without a shell)
  help [COMMAND]               this text, or a command's flags

Global flags (also accepted after the command):
  -url URL       admin API base URL (env GATEWAY_ADMIN_URL; default http://127.0.0.1:9090)
  -token TOKEN   admin bearer token; prefer the env GATEWAY_ADMIN_TOKEN, since
                 flags are visible to other users in the process list
  -o FORMAT      table (default) or json: the API's JSON, indented, for scripts
  -timeout D     per-request timeout (default 5s)

Exit status:
  0  success
  1  error talking to the gateway, or a server error (5xx)
  2  usage error: bad flags or arguments (also when the API answers 400)
  3  not found (404), e.g. bans rm of a client that is not banned
  4  authentication or authorisation failure (401 wrong or missing token,
     403 admin API disabled on the gateway)

Examples:
  export GATEWAY_ADMIN_TOKEN=...
  gatewayctl bans add 203.0.113.7 -for 1h -reason "credential stuffing"
  gatewayctl events tail -client 203.0.113.7 -since 1h
  gatewayctl -o json bans list | jq -r '.bans[].client'
  gatewayctl bans rm 203.0.113.7 || [ $? -eq 3 ]   # not banned is fine
`
