package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Keys of the console and the alerts (the fleet, the rate chart, the top
// offenders, the reload log and the alert leases). Everything here is
// written by background goroutines, never on the request path. Each key has
// a TTL; keys that one script or pipeline reads together share a hash tag,
// so the schema works on Redis Cluster:
//
//	<prefix>{fleet}:info                hash    replica -> heartbeat (JSON); TTL = the fleet
//	                                            retention (1 h), refreshed by every heartbeat
//	<prefix>{fleet}:seen                zset    replica -> last heartbeat (unix ms, Redis TIME);
//	                                            entries older than the retention are pruned
//	                                            by every heartbeat; same TTL
//	<prefix>{rate}:<unix minute>        hash    "<second of minute>:<kind>" -> requests in that
//	                                            second, summed over the fleet (kind: allowed,
//	                                            blocked, banned); TTL 16 min
//	<prefix>{top}:m:<dim>:<unix minute> zset    offender -> hits in that minute, trimmed to
//	                                            the TopKeep highest; TTL 62 min
//	<prefix>{top}:h:<dim>:<unix hour>   zset    offender -> hits in that hour, trimmed to the
//	                                            TopKeep highest; TTL 26 h
//	<prefix>{top}:tmp:<nonce>           zset    scratch union made and deleted inside one
//	                                            script (never visible)
//	<prefix>reloads                     list    the last 50 configuration reloads of every
//	                                            replica (JSON), newest first; TTL 30 days
//	<prefix>alert:{<group hash>}        string  the replica that sends an alert group's
//	                                            notifications (a lease); TTL = the lease
//	<prefix>events, group rampart-top   consumer group on the event stream: each event
//	                                    reaches the top-offender counters once, through
//	                                    one replica (no key of its own)
//
// <dim> is client, route, rule, user_agent or ja4 (the TLS fingerprint). <unix minute> and <unix hour>
// are the Unix time divided by 60 and 3600.

// FleetInfo is the hash of the replicas' heartbeats.
func (k Keys) FleetInfo() string { return k.prefix + "{fleet}:info" }

// FleetSeen is the sorted set of the replicas' last heartbeats.
func (k Keys) FleetSeen() string { return k.prefix + "{fleet}:seen" }

// RateMinute is the per-second request counters of the minute that starts at
// minute×60 (Unix seconds).
func (k Keys) RateMinute(minute int64) string {
	return k.prefix + "{rate}:" + strconv.FormatInt(minute, 10)
}

// TopMinute is the offenders of dimension dim in one minute.
func (k Keys) TopMinute(dim string, minute int64) string {
	return k.prefix + "{top}:m:" + dim + ":" + strconv.FormatInt(minute, 10)
}

// TopHour is the offenders of dimension dim in one hour.
func (k Keys) TopHour(dim string, hour int64) string {
	return k.prefix + "{top}:h:" + dim + ":" + strconv.FormatInt(hour, 10)
}

// TopScratch is the scratch key of one Top read.
func (k Keys) TopScratch(nonce string) string { return k.prefix + "{top}:tmp:" + nonce }

// Reloads is the list of recent configuration reloads.
func (k Keys) Reloads() string { return k.prefix + "reloads" }

// AlertLease is the lease of an alert group (the group's name is hashed:
// it holds label values).
func (k Keys) AlertLease(group string) string {
	sum := sha256.Sum256([]byte(group))
	return k.prefix + "alert:{" + hex.EncodeToString(sum[:8]) + "}"
}

// TopGroup is the consumer group that feeds the top-offender counters.
const TopGroup = "rampart-top"

// Retention of the monitoring keys (see the schema above).
const (
	rateTTL    = 16 * time.Minute
	topMinTTL  = 62 * time.Minute
	topHourTTL = 26 * time.Hour
	reloadTTL  = 30 * 24 * time.Hour
	// reloadsKept is how many reloads the list keeps.
	reloadsKept = 50
)

// withHash runs fn on the hash at key in the memory store, creating it
// when create is set (fn gets nil otherwise when the key is absent), and,
// when ttl > 0, sets the key's expiry to now+ttl. The shard's lock is held
// during fn.
func (s *Memory) withHash(key string, create bool, ttl time.Duration, fn func(h map[string]string)) {
	now := s.cfg.Now()
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.get(key, now)
	if e == nil {
		if !create {
			fn(nil)
			return
		}
		e = &memEntry{hash: map[string]string{}}
		sh.put(key, e, now, s.perShard)
	}
	if e.hash == nil {
		e.hash = map[string]string{}
	}
	fn(e.hash)
	if ttl > 0 {
		e.expires = now.Add(ttl)
	}
}
