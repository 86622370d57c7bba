package jwt

import (
	"sync"
	"time"
)

// ttlCache is a bounded map with per-entry expiry: the local copy a
// replica keeps of what the shared store already decided, so that the
// common request needs no round trip.
type ttlCache[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]ttlEntry[V]
	max int
	ttl time.Duration
	now func() time.Time
}

type ttlEntry[V any] struct {
	v     V
	until time.Time
}

func newTTLCache[K comparable, V any](max int, ttl time.Duration, now func() time.Time) *ttlCache[K, V] {
	return &ttlCache[K, V]{m: make(map[K]ttlEntry[V]), max: max, ttl: ttl, now: now}
}

func (c *ttlCache[K, V]) get(key K) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	if ok && !c.now().Before(e.until) {
		delete(c.m, key)
		ok = false
	}
	c.mu.Unlock()
	return e.v, ok
}

func (c *ttlCache[K, V]) put(key K, v V) { c.putFor(key, v, c.ttl) }

func (c *ttlCache[K, V]) putFor(key K, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		evict(c.m, now, func(e ttlEntry[V]) time.Time { return e.until })
	}
	c.m[key] = ttlEntry[V]{v: v, until: now.Add(ttl)}
}

// evictProbe bounds the entries looked at to make room: Go's map
// iteration order is random, so this evicts an expired entry when one is
// near, else an arbitrary one, in constant time.
const evictProbe = 16

func evict[K comparable, V any](m map[K]V, now time.Time, until func(V) time.Time) {
	var victim K
	n := 0
	for k, v := range m {
		if !now.Before(until(v)) {
			delete(m, k)
			return
		}
		if n == 0 {
			victim = k
		}
		if n++; n == evictProbe {
			break
		}
	}
	delete(m, victim)
}
