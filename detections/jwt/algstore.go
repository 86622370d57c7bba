package jwt

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// AlgStore keeps, for the whole fleet, which algorithm families each issuer
// (and each issuer's kid) signs with, so that every replica can tell an
// RS256 issuer's sudden HS256 token from its usual traffic. Keys are
// opaque, bounded strings built by this package ("alg:<hex>"); a Redis
// implementation adds its namespace. Implementations must be safe for
// concurrent use and must bound what they keep (TTLs, a cap on keys): the
// keys derive from attacker-controlled claims.
type AlgStore interface {
	// Learned returns the families learnt for key, 0 when none.
	Learned(ctx context.Context, key string) (AlgFamilies, error)
	// Sight records that witness (a hashed client key) presented a token
	// of family fam for key, and returns how many distinct witnesses have
	// done so within the sighting TTL. Implementations may stop counting
	// at the threshold the caller uses; they may return ErrStoreFull
	// instead of creating a key.
	Sight(ctx context.Context, key string, fam AlgFamily, witness string) (int, error)
	// Learn adds fam to the families learnt for key and refreshes the
	// key's TTL.
	Learn(ctx context.Context, key string, fam AlgFamily) error
}

// ErrStoreFull is returned by stores that refuse a new key because they
// hold as many as they may. It is not a failure: nothing is learnt.
var ErrStoreFull = errors.New("jwt: state store full")

// MemoryAlgStoreConfig bounds a MemoryAlgStore.
type MemoryAlgStoreConfig struct {
	// MaxKeys caps the keys held.
	MaxKeys int
	// MaxWitnesses caps the witnesses remembered per (key, family): the
	// learning threshold is enough.
	MaxWitnesses int
	// LearnTTL and SightingTTL expire learnt families and sightings.
	LearnTTL, SightingTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// MemoryAlgStore is an AlgStore for one process (tests, single instance).
type MemoryAlgStore struct {
	mu  sync.Mutex
	cfg MemoryAlgStoreConfig
	m   map[string]*algEntry
}

type algEntry struct {
	learned      AlgFamilies
	learnedUntil time.Time
	sightings    []sighting
}

type sighting struct {
	fam       AlgFamily
	witnesses []string
	until     time.Time
}

func (e *algEntry) expiry() time.Time {
	t := e.learnedUntil
	for _, s := range e.sightings {
		if s.until.After(t) {
			t = s.until
		}
	}
	return t
}

// NewMemoryAlgStore returns an empty store.
func NewMemoryAlgStore(cfg MemoryAlgStoreConfig) *MemoryAlgStore {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.MaxKeys = max(cfg.MaxKeys, 1)
	cfg.MaxWitnesses = max(cfg.MaxWitnesses, 1)
	return &MemoryAlgStore{cfg: cfg, m: make(map[string]*algEntry)}
}

// Learned implements AlgStore.
func (s *MemoryAlgStore) Learned(_ context.Context, key string) (AlgFamilies, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e == nil || !s.cfg.Now().Before(e.learnedUntil) {
		return 0, nil
	}
	return e.learned, nil
}

// Sight implements AlgStore.
func (s *MemoryAlgStore) Sight(_ context.Context, key string, fam AlgFamily, witness string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	e, err := s.entry(key, now)
	if err != nil {
		return 0, err
	}
	i := slices.IndexFunc(e.sightings, func(x sighting) bool { return x.fam == fam })
	if i < 0 || !now.Before(e.sightings[i].until) {
		if i >= 0 {
			e.sightings = slices.Delete(e.sightings, i, i+1)
		}
		e.sightings = append(e.sightings, sighting{fam: fam, until: now.Add(s.cfg.SightingTTL)})
		i = len(e.sightings) - 1
	}
	sg := &e.sightings[i]
	if !slices.Contains(sg.witnesses, witness) && len(sg.witnesses) < s.cfg.MaxWitnesses {
		sg.witnesses = append(sg.witnesses, witness)
	}
	return len(sg.witnesses), nil
}

// Learn implements AlgStore.
func (s *MemoryAlgStore) Learn(_ context.Context, key string, fam AlgFamily) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	e, err := s.entry(key, now)
	if err != nil {
		return err
	}
	if !now.Before(e.learnedUntil) {
		e.learned = 0
	}
	e.learned = e.learned.With(fam)
	e.learnedUntil = now.Add(s.cfg.LearnTTL)
	e.sightings = slices.DeleteFunc(e.sightings, func(x sighting) bool { return x.fam == fam })
	return nil
}

// Len returns the number of keys held, expired ones included until they
// are evicted.
func (s *MemoryAlgStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// entry returns the entry of key, creating it if there is room. A full
// store evicts an expired entry or one that has learnt nothing (only
// sightings, the kind an attacker can mint); learnt issuers are never
// pushed out by new ones.
func (s *MemoryAlgStore) entry(key string, now time.Time) (*algEntry, error) {
	if e := s.m[key]; e != nil {
		return e, nil
	}
	if len(s.m) >= s.cfg.MaxKeys {
		victim, n := "", 0
		for k, e := range s.m {
			if !now.Before(e.expiry()) {
				victim = k
				break
			}
			if victim == "" && (e.learned == 0 || !now.Before(e.learnedUntil)) {
				victim = k
			}
			if n++; n == evictProbe {
				break
			}
		}
		if victim == "" {
			return nil, ErrStoreFull
		}
		delete(s.m, victim)
	}
	e := &algEntry{}
	s.m[key] = e
	return e, nil
}

var _ AlgStore = (*MemoryAlgStore)(nil)
