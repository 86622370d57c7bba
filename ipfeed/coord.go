package ipfeed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Coordination errors.
var (
	// ErrNotFound: the store holds nothing for the feed yet.
	ErrNotFound = errors.New("ipfeed: feed not in store")
	// ErrConflict: a Put or PutMeta lost a race with a newer version (two
	// replicas fetched at once because a lease expired mid-fetch). The
	// loser's work is dropped; the newer version stands.
	ErrConflict = errors.New("ipfeed: feed version changed in store")
)

// Lease lets one replica of a fleet fetch a feed while the others wait for
// its result. *store.Redis implements it with SET key owner NX PX ttl.
type Lease interface {
	// TryAcquire reports whether this replica now holds the lease on feed
	// for ttl. It does not block; false means another replica holds it.
	// The Manager never releases a lease: it lets it expire, and checks the
	// store again after acquiring, so a fetch that just finished elsewhere
	// is not repeated.
	TryAcquire(ctx context.Context, feed string, ttl time.Duration) (bool, error)
}

// SetStore holds each feed's newest parsed set and its Meta, shared by
// the fleet. Implementations must make Put and PutMeta atomic and
// check versions as documented, so that a slow replica cannot overwrite
// a newer set with an older one.
type SetStore interface {
	// Put stores a new version of feed's set with its meta. meta.Version
	// must be greater than the stored version (any version when nothing
	// is stored), else ErrConflict.
	Put(ctx context.Context, feed string, set []byte, meta Meta) error
	// PutMeta replaces feed's meta and keeps its set: a 304, an unchanged
	// download or a failed attempt. meta.Version must equal the stored
	// version (0 when no set is stored), else ErrConflict.
	PutMeta(ctx context.Context, feed string, meta Meta) error
	// Meta returns feed's meta, or ErrNotFound. Every replica calls it on
	// every poll, so it must be cheap (it does not return the set).
	Meta(ctx context.Context, feed string) (Meta, error)
	// Get returns feed's set and the meta stored with it, or ErrNotFound
	// when no set is stored.
	Get(ctx context.Context, feed string) ([]byte, Meta, error)
}

// Meta describes a feed's stored set and the fleet's latest attempt to
// refresh it. It is JSON-tagged so a store can keep it as one JSON value.
type Meta struct {
	// Version increases with every Put; 0 means no set is stored.
	Version uint64 `json:"version"`
	// Digest identifies the stored set's encoding (hex SHA-256, 128 bits);
	// an unchanged download is not stored again and not decoded again.
	Digest string `json:"digest,omitempty"`
	// Source is the file or the redacted URL.
	Source string `json:"source"`
	// Fetched is when the stored set was downloaded.
	Fetched time.Time `json:"fetched,omitzero"`
	// Checked is the last successful check: a download or a 304.
	Checked time.Time `json:"checked,omitzero"`
	// Attempted is the last attempt, successful or not.
	Attempted time.Time `json:"attempted,omitzero"`
	// LastError is the error of the last attempt; "" when it succeeded.
	LastError string `json:"last_error,omitempty"`
	// ETag and LastModified are the validators of the stored download,
	// sent back as If-None-Match and If-Modified-Since.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// Counts of the stored set (see ParseResult).
	Entries int `json:"entries"`
	Ranges  int `json:"ranges"`
	Invalid int `json:"invalid"`
	Dropped int `json:"dropped"`
	// Problems are the first few invalid lines ("line N: reason: text").
	Problems []string `json:"problems,omitempty"`
	// Replica names who made the last attempt.
	Replica string `json:"replica,omitempty"`
}

// MemoryLease is a Lease for one process: several Managers in one process
// (tests, or a single instance) share it.
type MemoryLease struct {
	now func() time.Time
	mu  sync.Mutex
	exp map[string]time.Time
}

// NewMemoryLease returns a MemoryLease on the clock now (nil: time.Now).
func NewMemoryLease(now func() time.Time) *MemoryLease {
	if now == nil {
		now = time.Now
	}
	return &MemoryLease{now: now, exp: map[string]time.Time{}}
}

// TryAcquire takes the lease when it is free or expired.
func (l *MemoryLease) TryAcquire(ctx context.Context, feed string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if e, ok := l.exp[feed]; ok && now.Before(e) {
		return false, nil
	}
	l.exp[feed] = now.Add(ttl)
	return true, nil
}

// MemoryStore is a SetStore for one process.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]memEntry
}

type memEntry struct {
	set  []byte
	meta Meta
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]memEntry{}} }

// Put stores a new version.
func (s *MemoryStore) Put(ctx context.Context, feed string, set []byte, meta Meta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[feed]; ok && meta.Version <= e.meta.Version {
		return fmt.Errorf("putting %s version %d over %d: %w", feed, meta.Version, e.meta.Version, ErrConflict)
	}
	s.m[feed] = memEntry{set: slices.Clone(set), meta: cloneMeta(meta)}
	return nil
}

// PutMeta replaces the meta of the stored version.
func (s *MemoryStore) PutMeta(ctx context.Context, feed string, meta Meta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[feed]
	if meta.Version != e.meta.Version {
		return fmt.Errorf("updating %s version %d, stored %d: %w", feed, meta.Version, e.meta.Version, ErrConflict)
	}
	e.meta = cloneMeta(meta)
	s.m[feed] = e
	return nil
}

// Meta returns the stored meta.
func (s *MemoryStore) Meta(ctx context.Context, feed string) (Meta, error) {
	if err := ctx.Err(); err != nil {
		return Meta{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[feed]
	if !ok {
		return Meta{}, ErrNotFound
	}
	return cloneMeta(e.meta), nil
}

// Get returns the stored set and its meta.
func (s *MemoryStore) Get(ctx context.Context, feed string) ([]byte, Meta, error) {
	if err := ctx.Err(); err != nil {
		return nil, Meta{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[feed]
	if !ok || e.set == nil {
		return nil, Meta{}, ErrNotFound
	}
	return slices.Clone(e.set), cloneMeta(e.meta), nil
}

func cloneMeta(m Meta) Meta {
	m.Problems = slices.Clone(m.Problems)
	return m
}

var (
	_ Lease    = (*MemoryLease)(nil)
	_ SetStore = (*MemoryStore)(nil)
)
