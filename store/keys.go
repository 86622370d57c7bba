package store

import "unsafe"

// The Redis key schema. This file is the only place key names are built.
//
// Per-client keys put the client key in a hash tag ({...}) so every key that
// one Lua script touches for a client lands in the same Cluster slot. Names
// stay readable for operators using redis-cli:
//
//	<prefix>ban:{<client>}          hash    active ban: reason, detection, first_seen,
//	                                        last_seen, count, replica, until; TTL = ban left
//	<prefix>offender:{<client>}     hash    ban history for escalation: strikes, first_seen;
//	                                        TTL = escalation memory
//	<prefix>rl:{<client>}           string  GCRA theoretical arrival time (default bucket)
//	<prefix>rl:{<client>}:<route>   string  same, per-route bucket
//	<prefix>rlx:{<client>}[:route]  string  refusals in the current period (hammering)
//	<prefix>enum:{<client>}         string  invalid requests in the current window
//	<prefix>bans                    zset    index of active bans: member client, score
//	                                        = expiry (unix ms); pruned on every ban
//	<prefix>cidrbans                hash    operator range bans: CIDR ->
//	                                        "until_ms<TAB>created_ms<TAB>replica<TAB>reason";
//	                                        TTL = the longest range ban
//	<prefix>events                  stream  security events (see the events writer)
//	<prefix>bans:events             channel pub/sub: ban and unban notifications
//
// <client> is an IPv4 address or an IPv6 prefix ("2001:db8:1:2::/64").

// Keys builds key names under one prefix (default "gw:").
type Keys struct {
	prefix string
}

// NewKeys returns the schema under prefix.
func NewKeys(prefix string) Keys { return Keys{prefix: prefix} }

// Prefix returns the namespace prefix.
func (k Keys) Prefix() string { return k.prefix }

func (k Keys) tagged(kind, client string) string {
	return k.prefix + kind + ":{" + client + "}"
}

// Ban is the active-ban hash of client.
func (k Keys) Ban(client string) string { return k.tagged("ban", client) }

// Offender is the ban-history hash of client.
func (k Keys) Offender(client string) string { return k.tagged("offender", client) }

// Rate is the GCRA key of client's bucket ("" for the default bucket).
func (k Keys) Rate(client, bucket string) string {
	if bucket == "" {
		return k.tagged("rl", client)
	}
	return k.tagged("rl", client) + ":" + bucket
}

// Refused is the refusal counter of client's bucket.
func (k Keys) Refused(client, bucket string) string {
	if bucket == "" {
		return k.tagged("rlx", client)
	}
	return k.tagged("rlx", client) + ":" + bucket
}

// Invalid is the enumeration counter of client.
func (k Keys) Invalid(client string) string { return k.tagged("enum", client) }

// BanIndex is the sorted set of active bans.
func (k Keys) BanIndex() string { return k.prefix + "bans" }

// CIDRBans is the hash of range bans.
func (k Keys) CIDRBans() string { return k.prefix + "cidrbans" }

// BanChannel is the pub/sub channel for ban and unban notifications.
func (k Keys) BanChannel() string { return k.prefix + "bans:events" }

// Events is the security-event stream.
func (k Keys) Events() string { return k.prefix + "events" }

// check returns the four keys of the check script (ban, rl, rlx, enum)
// built in one allocation: this runs on every request.
func (k Keys) check(client, bucket string) [4]string {
	n := 4*(len(k.prefix)+len(client)+2) + len("ban:rl:rlx:enum:")
	if bucket != "" {
		n += 2 * (len(bucket) + 1)
	}
	buf := make([]byte, 0, n)
	var out [4]string
	start := 0
	add := func(kind string, withBucket bool) string {
		buf = append(buf, k.prefix...)
		buf = append(buf, kind...)
		buf = append(buf, ":{"...)
		buf = append(buf, client...)
		buf = append(buf, '}')
		if withBucket && bucket != "" {
			buf = append(buf, ':')
			buf = append(buf, bucket...)
		}
		s := unsafe.String(unsafe.SliceData(buf[start:]), len(buf)-start)
		start = len(buf)
		return s
	}
	out[0] = add("ban", false)
	out[1] = add("rl", true)
	out[2] = add("rlx", true)
	out[3] = add("enum", false)
	return out
}

// clientFromTagged extracts the client from a tagged key.
func clientFromTagged(key string) string {
	i := -1
	for j := 0; j < len(key); j++ {
		if key[j] == '{' {
			i = j
			break
		}
	}
	if i < 0 {
		return ""
	}
	for j := i + 1; j < len(key); j++ {
		if key[j] == '}' {
			return key[i+1 : j]
		}
	}
	return ""
}
