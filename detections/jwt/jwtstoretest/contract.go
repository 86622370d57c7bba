// Package jwtstoretest holds the contract tests of jwt.AlgStore and
// jwt.SecretCache. Write a store once, run the contract against every
// implementation: the in-memory ones here, Redis (miniredis and a real
// server) in package store.
package jwtstoretest

import (
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections/jwt"
)

// AlgStoreContract describes an AlgStore under test.
type AlgStoreContract struct {
	// New returns an empty store whose sightings expire after
	// SightingTTL and learnt families after LearnTTL, and which counts at
	// least 3 witnesses.
	New                   func(t *testing.T) jwt.AlgStore
	LearnTTL, SightingTTL time.Duration
	// Advance moves the store's clock (miniredis FastForward, a fake
	// clock, or a real sleep for short TTLs).
	Advance func(time.Duration)
}

// TestAlgStore runs the AlgStore contract.
func TestAlgStore(t *testing.T, c AlgStoreContract) {
	t.Run("learn", func(t *testing.T) {
		s := c.New(t)
		ctx := t.Context()
		if l, err := s.Learned(ctx, "alg:k1"); err != nil || l != 0 {
			t.Fatalf("empty store: %b, %v", l, err)
		}
		for _, f := range []jwt.AlgFamily{jwt.FamilyRSA, jwt.FamilyECDSA, jwt.FamilyRSA} {
			if err := s.Learn(ctx, "alg:k1", f); err != nil {
				t.Fatal(err)
			}
		}
		l, err := s.Learned(ctx, "alg:k1")
		if err != nil || !l.Has(jwt.FamilyRSA) || !l.Has(jwt.FamilyECDSA) || l.Has(jwt.FamilyHMAC) {
			t.Fatalf("learnt %b, %v", l, err)
		}
		if l, _ := s.Learned(ctx, "alg:k2"); l != 0 {
			t.Errorf("keys are not separate: %b", l)
		}
	})
	t.Run("sightings count distinct witnesses per family", func(t *testing.T) {
		s := c.New(t)
		ctx := t.Context()
		for i, step := range []struct {
			fam     jwt.AlgFamily
			witness string
			want    int
		}{
			{jwt.FamilyRSA, "w1", 1}, {jwt.FamilyRSA, "w1", 1}, {jwt.FamilyRSA, "w2", 2},
			{jwt.FamilyHMAC, "w1", 1}, {jwt.FamilyRSA, "w3", 3},
		} {
			n, err := s.Sight(ctx, "alg:k", step.fam, step.witness)
			if err != nil || n != step.want {
				t.Fatalf("step %d: %d, %v; want %d", i, n, err, step.want)
			}
		}
		if l, _ := s.Learned(ctx, "alg:k"); l != 0 {
			t.Errorf("sightings alone learnt %b", l)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		s := c.New(t)
		ctx := t.Context()
		if _, err := s.Sight(ctx, "alg:k", jwt.FamilyRSA, "w1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Learn(ctx, "alg:k", jwt.FamilyECDSA); err != nil {
			t.Fatal(err)
		}
		c.Advance(c.SightingTTL + time.Second)
		if n, _ := s.Sight(ctx, "alg:k", jwt.FamilyRSA, "w2"); n != 1 {
			t.Errorf("sightings outlived their TTL: %d", n)
		}
		c.Advance(c.LearnTTL)
		if l, _ := s.Learned(ctx, "alg:k"); l != 0 {
			t.Errorf("learnt families outlived their TTL: %b", l)
		}
	})
}

// SecretCacheContract describes a SecretCache under test.
type SecretCacheContract struct {
	// New returns an empty cache.
	New func(t *testing.T) jwt.SecretCache
	// Advance moves the cache's clock.
	Advance func(time.Duration)
	// TTL is a short TTL the cache can honour with Advance.
	TTL time.Duration
}

// TestSecretCache runs the SecretCache contract.
func TestSecretCache(t *testing.T, c SecretCacheContract) {
	t.Run("store and load", func(t *testing.T) {
		s := c.New(t)
		ctx := t.Context()
		if _, ok, err := s.Load(ctx, "wsf:a"); ok || err != nil {
			t.Fatalf("empty cache: %v, %v", ok, err)
		}
		weak := jwt.SecretVerdict{Weak: true, SecretID: jwt.Identity("secret")}
		if err := s.Store(ctx, "wsf:a", weak, c.TTL); err != nil {
			t.Fatal(err)
		}
		if err := s.Store(ctx, "wst:b", jwt.SecretVerdict{}, c.TTL); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := s.Load(ctx, "wsf:a"); !ok || err != nil || v != weak {
			t.Errorf("load a: %+v, %v, %v", v, ok, err)
		}
		if v, ok, err := s.Load(ctx, "wst:b"); !ok || err != nil || v.Weak || v.SecretID != "" {
			t.Errorf("a clean verdict is a verdict: %+v, %v, %v", v, ok, err)
		}
		c.Advance(c.TTL + time.Second)
		if _, ok, _ := s.Load(ctx, "wsf:a"); ok {
			t.Error("verdict outlived its TTL")
		}
	})
	t.Run("claim", func(t *testing.T) {
		s := c.New(t)
		ctx := t.Context()
		for i, want := range []bool{true, false, false} {
			if ok, err := s.Claim(ctx, "wsc:a", c.TTL); err != nil || ok != want {
				t.Fatalf("claim %d: %v, %v", i, ok, err)
			}
		}
		if ok, _ := s.Claim(ctx, "wsc:b", c.TTL); !ok {
			t.Error("claims are not separate")
		}
		c.Advance(c.TTL + time.Second)
		if ok, _ := s.Claim(ctx, "wsc:a", c.TTL); !ok {
			t.Error("claim outlived its TTL")
		}
	})
}
