package gateway

import (
	"hash/maphash"
	"sync"
	"time"
)

const cacheShards = 32

// ttlCache is a bounded, sharded map whose entries expire. It only ever
// holds what the shared store already decided (active bans, clients known
// to be over a limit), so a flood is refused without a round trip; it is
// never the source of truth. When a shard is full, expired entries are
// evicted first, then arbitrary ones: memory stays bounded whatever the
// number of distinct clients.
type ttlCache[V any] struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard[V]
}

type cacheShard[V any] struct {
	mu sync.RWMutex
	m  map[string]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v     V
	until int64 // unix nanos
}

func newTTLCache[V any](size int) *ttlCache[V] {
	c := &ttlCache[V]{seed: maphash.MakeSeed(), perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry[V])
	}
	return c
}

func (c *ttlCache[V]) shard(key string) *cacheShard[V] {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

// get returns a live entry and its expiry.
func (c *ttlCache[V]) get(key string, now time.Time) (V, time.Time, bool) {
	s := c.shard(key)
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	if !ok || now.UnixNano() >= e.until {
		var zero V
		return zero, time.Time{}, false
	}
	return e.v, time.Unix(0, e.until), true
}

// set stores v until the given time; now decides which entries have
// expired when the shard is full.
func (c *ttlCache[V]) set(key string, v V, until, nowT time.Time) {
	s := c.shard(key)
	now := nowT.UnixNano()
	s.mu.Lock()
	if _, ok := s.m[key]; !ok && len(s.m) >= c.perShard {
		evicted := false
		n := 0
		for k, e := range s.m {
			if e.until <= now {
				delete(s.m, k)
				evicted = true
			}
			if n++; n >= 16 {
				break
			}
		}
		if !evicted {
			for k := range s.m {
				delete(s.m, k)
				break
			}
		}
	}
	s.m[key] = cacheEntry[V]{v: v, until: until.UnixNano()}
	s.mu.Unlock()
}

// update changes an existing live entry in place, under one lock, and
// returns it as changed with its expiry; ok is false when none is live.
func (c *ttlCache[V]) update(key string, now time.Time, fn func(V) V) (v V, until time.Time, ok bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, found := s.m[key]
	if !found || now.UnixNano() >= e.until {
		return v, time.Time{}, false
	}
	e.v = fn(e.v) // by value: a pointer into e would move it to the heap
	s.m[key] = e
	return e.v, time.Unix(0, e.until), true
}

func (c *ttlCache[V]) delete(key string) {
	s := c.shard(key)
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

// deletePrefix drops every entry whose key starts with prefix.
func (c *ttlCache[V]) deletePrefix(prefix string) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k := range s.m {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

func (c *ttlCache[V]) clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}

// each calls fn for every live entry (snapshots; not on the request path).
func (c *ttlCache[V]) each(now time.Time, fn func(key string, v V, until time.Time)) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		for k, e := range s.m {
			if now.UnixNano() < e.until {
				fn(k, e.v, time.Unix(0, e.until))
			}
		}
		s.mu.RUnlock()
	}
}

func (c *ttlCache[V]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
