package jwt

import (
	"context"
	"sync"
	"time"
)

// SecretVerdict is the outcome of the HMAC secret audit for a token family
// or for one token.
type SecretVerdict struct {
	// Weak reports that a listed secret verifies the signature.
	Weak bool
	// SecretID is Identity of the guessed secret when Weak: enough for
	// every replica to find it in its own list, never the secret.
	SecretID string
}

// SecretCache shares audit verdicts across the fleet, so that each token
// family is swept once. Keys are opaque, bounded strings built by this
// package ("wsf:<hex>" for a family, "wst:<hex>" for a token, "wsc:<hex>"
// for a sweep claim); a Redis implementation adds its namespace.
// Implementations must be safe for concurrent use and expire every key.
type SecretCache interface {
	// Load returns the verdict stored under key.
	Load(ctx context.Context, key string) (SecretVerdict, bool, error)
	// Store keeps v under key for ttl.
	Store(ctx context.Context, key string, v SecretVerdict, ttl time.Duration) error
	// Claim reports whether the caller is the first to claim key within
	// ttl (SET NX semantics): one replica sweeps a family, the others
	// skip it.
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// MemorySecretCache is a SecretCache for one process.
type MemorySecretCache struct {
	mu     sync.Mutex
	max    int
	now    func() time.Time
	m      map[string]secretEntry
	claims map[string]time.Time
}

type secretEntry struct {
	v     SecretVerdict
	until time.Time
}

// NewMemorySecretCache returns a cache of at most maxEntries verdicts and
// as many claims; now nil means time.Now.
func NewMemorySecretCache(maxEntries int, now func() time.Time) *MemorySecretCache {
	if now == nil {
		now = time.Now
	}
	return &MemorySecretCache{
		max: max(maxEntries, 1), now: now,
		m: make(map[string]secretEntry), claims: make(map[string]time.Time),
	}
}

// Load implements SecretCache.
func (c *MemorySecretCache) Load(_ context.Context, key string) (SecretVerdict, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !c.now().Before(e.until) {
		return SecretVerdict{}, false, nil
	}
	return e.v, true, nil
}

// Store implements SecretCache.
func (c *MemorySecretCache) Store(_ context.Context, key string, v SecretVerdict, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		evict(c.m, now, func(e secretEntry) time.Time { return e.until })
	}
	c.m[key] = secretEntry{v: v, until: now.Add(ttl)}
	return nil
}

// Claim implements SecretCache.
func (c *MemorySecretCache) Claim(_ context.Context, key string, ttl time.Duration) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if until, ok := c.claims[key]; ok && now.Before(until) {
		return false, nil
	}
	if _, ok := c.claims[key]; !ok && len(c.claims) >= c.max {
		evict(c.claims, now, func(t time.Time) time.Time { return t })
	}
	c.claims[key] = now.Add(ttl)
	return true, nil
}

var _ SecretCache = (*MemorySecretCache)(nil)
