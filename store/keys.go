package store

import (
	"strconv"
	"unsafe"
)

// The Redis key schema. Key names are built only by Keys' methods: here,
// and in feeds.go, monitor.go and tickets.go for their own structures.
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
//	<prefix>bans[:{<p>}]            zset    index of active bans: member client, score
//	                                        = expiry (unix ms); pruned on every ban
//	<prefix>cidrbans[:{<p>}]        hash    operator range bans: CIDR ->
//	                                        "until_ms<TAB>created_ms<TAB>replica<TAB>reason";
//	                                        TTL = the longest range ban
//	<prefix>events[:{<p>}]          stream  security events (see the events writer)
//	<prefix>bans:events             channel pub/sub: ban and unban notifications
//
// The credential keys (the jwt and credential detections, credentials.go):
//
//	<prefix>jwt:alg:{<hash>}              string  algorithm families learnt for an issuer
//	                                              (a bitmask); TTL = alg_confusion.learn_ttl
//	<prefix>jwt:alg:{<hash>}:sight:<fam>  HLL     distinct clients that presented a family
//	                                              not learnt yet; TTL = sighting_ttl
//	<prefix>jwt:ws:{<kind>:<hash>}        string  weak-secret verdict ("1 <secret id>" or
//	                                              "0") or sweep claim; TTL as the caller says
//	<prefix>tokip:{<token id>}            HLL     distinct client keys that used one token or
//	                                              API key within the window (a hash in the
//	                                              memory store)
//
// <hash> and <token id> are hashes (the jwt package's and
// detections.Credential's): no token, secret or issuer name is stored.
//
// <client> is an IPv4 address, an IPv6 prefix ("2001:db8:1:2::/64") or a
// hashed identity ("id:" and 32 hex digits).
//
// The three global structures are partitioned (redis.partitions; 16 on a
// Cluster, 1 otherwise): partition <p> of a client or range is a hash of
// it, events go to the partitions in turn, and readers merge them, so no
// Cluster shard holds all of them. With one partition the names carry no
// suffix, as they always did.

// Keys builds key names under one prefix (default "gw:").
type Keys struct {
	prefix     string
	partitions int
}

// NewKeys returns the schema under prefix, with one partition.
func NewKeys(prefix string) Keys { return Keys{prefix: prefix, partitions: 1} }

// NewPartitionedKeys returns the schema with n partitions of the global
// structures.
func NewPartitionedKeys(prefix string, n int) Keys {
	return Keys{prefix: prefix, partitions: max(n, 1)}
}

// Partitions returns how many partitions the global structures have.
func (k Keys) Partitions() int { return k.partitions }

// partitionOf returns the partition of a client or range (FNV-1a).
func (k Keys) partitionOf(s string) int {
	if k.partitions == 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % uint32(k.partitions))
}

func (k Keys) part(name string, p int) string {
	if k.partitions == 1 {
		return k.prefix + name
	}
	return k.prefix + name + ":{" + strconv.Itoa(p) + "}"
}

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

// JWTAlg is the bitmask of algorithm families learnt for an issuer (hash).
func (k Keys) JWTAlg(hash string) string { return k.tagged("jwt:alg", hash) }

// JWTAlgSighting is the HyperLogLog of clients that presented algorithm
// family fam, not learnt yet, for an issuer (hash).
func (k Keys) JWTAlgSighting(hash string, fam int) string {
	return k.JWTAlg(hash) + ":sight:" + strconv.Itoa(fam)
}

// JWTSecret is the weak-secret verdict (or sweep claim) of key
// ("<kind>:<hash>").
func (k Keys) JWTSecret(key string) string { return k.tagged("jwt:ws", key) }

// TokenSpread is the set of distinct clients that used one token or API
// key (token: its hashed id).
func (k Keys) TokenSpread(token string) string { return k.tagged("tokip", token) }

// BanIndex is the sorted set of active bans of partition p.
func (k Keys) BanIndex(p int) string { return k.part("bans", p) }

// BanIndexOf is the ban index partition that holds client.
func (k Keys) BanIndexOf(client string) string { return k.BanIndex(k.partitionOf(client)) }

// CIDRBans is the hash of range bans of partition p.
func (k Keys) CIDRBans(p int) string { return k.part("cidrbans", p) }

// CIDRBansOf is the range-ban partition that holds prefix.
func (k Keys) CIDRBansOf(prefix string) string { return k.CIDRBans(k.partitionOf(prefix)) }

// BanChannel is the pub/sub channel for ban and unban notifications.
func (k Keys) BanChannel() string { return k.prefix + "bans:events" }

// Events is partition 0 of the security-event stream (the whole stream
// with one partition).
func (k Keys) Events() string { return k.EventsPart(0) }

// EventsPart is partition p of the security-event stream.
func (k Keys) EventsPart(p int) string { return k.part("events", p) }

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
