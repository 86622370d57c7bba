package store

import "github.com/redis/go-redis/v9"

// lua is a script with its source kept for the EVAL fallback of pipelined
// calls (go-redis' Script.Run falls back by itself only outside pipelines).
type lua struct {
	*redis.Script
	src string
	// hash is the script's SHA1, boxed once for the hot path's command
	// lines (see hotArgs).
	hash any
}

// scripts lists every script, for the Cluster test that checks each one
// runs on keys of one hash slot.
var scripts []*lua

func newLua(src string) *lua {
	l := &lua{Script: redis.NewScript(src), src: src}
	l.hash = l.Hash()
	scripts = append(scripts, l)
	return l
}

// gcraLua is the GCRA of github.com/go-redis/redis_rate/v10 (allowN), itself
// from rwz/redis-gcra (MIT, Copyright (c) 2017 Pavel Pravosud), kept line for
// line so decisions are identical to redis_rate's (TestCheckMatchesRedisRate
// compares them). It reads the Redis server clock, never a replica's.
const gcraLua = `
local emission_interval = period / rate
local increment = emission_interval * cost
local burst_offset = emission_interval * burst

local jan_1_2017 = 1483228800
local now = redis.call("TIME")
now = (now[1] - jan_1_2017) + (now[2] / 1000000)

local tat = redis.call("GET", rate_limit_key)

if not tat then
  tat = now
else
  tat = tonumber(tat)
end

tat = math.max(tat, now)

local new_tat = tat + increment
local allow_at = new_tat - burst_offset

local diff = now - allow_at
local remaining = diff / emission_interval

if remaining < 0 then
  local reset_after = tat - now
  local retry_after = diff * -1
  rl = {0, 0, tostring(retry_after), tostring(reset_after)}
else
  local reset_after = new_tat - now
  if reset_after > 0 then
    redis.call("SET", rate_limit_key, new_tat, "EX", math.ceil(reset_after))
  end
  rl = {cost, remaining, tostring(-1), tostring(reset_after)}
end
`

// checkScript is the hot path: one round trip per request answers "is this
// client banned?" and, if not, runs the rate limit and reads (or bumps) the
// enumeration counter. A banned client consumes no tokens.
//
// KEYS: ban, rl, rlx, enum (one hash tag: same Cluster slot).
// ARGV: burst, rate, period (s), do_rl (0|1), count_refused (0|1),
// enum_window_ms (0: skip), count_invalid (0|1).
//
// Reply: one string of name=value fields separated by newlines, parsed by
// name into a checkReply (check.go), which the memory store fills too:
//
//	banned=1  ttl=<ms, -1 without expiry>  reason=  detection=  count=
//	          first_seen=<unix ms>  replica=
//	banned=0  allowed=<0|1>  remaining=  retry_after=<s, -1 when allowed>
//	          reset_after=<s>  refused=  invalid=
//
// One string is one allocation for the client to read, where a list of
// fields would be one per field. Values never hold a newline: reasons are
// printable one-line text and replica names are checked at start.
var checkScript = newLua(`
local ttl = redis.call("PTTL", KEYS[1])
if ttl > 0 or ttl == -1 then
  local f = redis.call("HMGET", KEYS[1], "reason", "detection", "count", "first_seen", "replica")
  return "banned=1\nttl=" .. ttl .. "\nreason=" .. (f[1] or "") .. "\ndetection=" .. (f[2] or "") ..
    "\ncount=" .. (f[3] or "0") .. "\nfirst_seen=" .. (f[4] or "0") .. "\nreplica=" .. (f[5] or "")
end

local rl = {1, 0, "-1", "0"}
local refused = 0
if ARGV[4] == "1" then
  local rate_limit_key = KEYS[2]
  local burst = tonumber(ARGV[1])
  local rate = tonumber(ARGV[2])
  local period = tonumber(ARGV[3])
  local cost = 1
` + gcraLua + `
  if rl[1] == 0 and ARGV[5] == "1" then
    refused = redis.call("INCR", KEYS[3])
    if refused == 1 then
      redis.call("PEXPIRE", KEYS[3], math.ceil(period * 1000))
    end
  end
end

local invalid = 0
local window = tonumber(ARGV[6])
if window > 0 then
  if ARGV[7] == "1" then
    invalid = redis.call("INCR", KEYS[4])
    if invalid == 1 then
      redis.call("PEXPIRE", KEYS[4], window)
    end
  else
    invalid = tonumber(redis.call("GET", KEYS[4]) or "0")
  end
end

return "banned=0\nallowed=" .. rl[1] .. "\nremaining=" .. string.format("%d", rl[2]) .. "\nretry_after=" .. rl[3] ..
  "\nreset_after=" .. rl[4] .. "\nrefused=" .. refused .. "\ninvalid=" .. invalid
`)

// incrScript counts in a fixed window: the TTL is set by the increment that
// creates the key, in the same round trip.
//
// KEYS: counter. ARGV: window_ms.
var incrScript = newLua(`
local n = redis.call("INCR", KEYS[1])
if n == 1 or redis.call("PTTL", KEYS[1]) < 0 then
  redis.call("PEXPIRE", KEYS[1], ARGV[1])
end
return n
`)

// banScript records a ban. A client already banned keeps its ban (only
// last_seen moves), so two replicas banning at once do not escalate twice;
// with replace (an operator's ban) the ban is rewritten with the new
// reason and duration instead, keeping its history.
//
// KEYS: ban, offender. ARGV: reason, detection, replica, base_ms,
// escalate (0|1), factor, max_ms, memory_ms, replace (0|1).
// Returns: {new (0|1), ttl_ms, first_seen_ms, count, until_ms, reason,
// detection, replica, now_ms}.
var banScript = newLua(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = redis.call("PTTL", KEYS[1])
if ttl > 0 and ARGV[9] == "1" then
  local dur = math.floor(tonumber(ARGV[4]))
  local expires = now + dur
  redis.call("HSET", KEYS[1], "reason", ARGV[1], "detection", ARGV[2], "replica", ARGV[3],
    "last_seen", now, "until", expires)
  redis.call("PEXPIRE", KEYS[1], dur)
  local f = redis.call("HMGET", KEYS[1], "first_seen", "count")
  return {1, dur, f[1] or now, f[2] or "1", expires, ARGV[1], ARGV[2], ARGV[3], now}
end
if ttl > 0 then
  redis.call("HSET", KEYS[1], "last_seen", now)
  local f = redis.call("HMGET", KEYS[1], "first_seen", "count", "until", "reason", "detection", "replica")
  return {0, ttl, f[1] or "0", f[2] or "0", f[3] or "0", f[4] or "", f[5] or "", f[6] or "", now}
end
local strikes = redis.call("HINCRBY", KEYS[2], "strikes", 1)
redis.call("HSETNX", KEYS[2], "first_seen", now)
redis.call("PEXPIRE", KEYS[2], ARGV[8])
local first = redis.call("HGET", KEYS[2], "first_seen")
local dur = tonumber(ARGV[4])
if ARGV[5] == "1" then
  dur = dur * math.pow(tonumber(ARGV[6]), strikes - 1)
  dur = math.min(dur, tonumber(ARGV[7]))
end
dur = math.floor(dur)
local expires = now + dur
redis.call("HSET", KEYS[1], "reason", ARGV[1], "detection", ARGV[2], "replica", ARGV[3],
  "first_seen", first, "last_seen", now, "count", strikes, "until", expires)
redis.call("PEXPIRE", KEYS[1], dur)
return {1, dur, first, strikes, expires, ARGV[1], ARGV[2], ARGV[3], now}
`)

// indexScript adds a ban to the index, prunes expired entries and keeps the
// index's TTL at least as long as its longest ban.
//
// KEYS: index. ARGV: client, until_ms.
var indexScript = newLua(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("ZADD", KEYS[1], ARGV[2], ARGV[1])
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
local left = tonumber(ARGV[2]) - now
if redis.call("PTTL", KEYS[1]) < left then
  redis.call("PEXPIRE", KEYS[1], left)
end
return 1
`)

// cidrBanScript records a range ban in the one hash of range bans, prunes
// expired ranges and keeps the hash alive as long as its longest ban.
//
// KEYS: cidrbans. ARGV: cidr, duration_ms, reason, replica.
// Returns {now_ms, until_ms}.
var cidrBanScript = newLua(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[2])
local longest = expires
local all = redis.call("HGETALL", KEYS[1])
for i = 1, #all, 2 do
  local u = tonumber(string.match(all[i + 1], "^(%d+)"))
  if u == nil or u <= now then
    redis.call("HDEL", KEYS[1], all[i])
  elseif u > longest then
    longest = u
  end
end
redis.call("HSET", KEYS[1], ARGV[1], string.format("%d\t%d\t%s\t%s", expires, now, ARGV[4], ARGV[3]))
redis.call("PEXPIRE", KEYS[1], longest - now)
return {now, expires}
`)
