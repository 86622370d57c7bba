// Package ipfeedtest holds the contract tests of ipfeed's coordination
// interfaces, written once and run against every implementation: the
// in-memory ones in ipfeed, and the Redis ones in store (against
// miniredis and a real redis-server), as miniredis's integration tests
// do.
package ipfeedtest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/rampartgw/rampart/ipfeed"
)

// unique returns a feed name no earlier run used, so the suites can run
// against a shared, persistent Redis.
func unique(t *testing.T, base string) string {
	t.Helper()
	return fmt.Sprintf("%s-%x", base, rand.Uint64())
}

// SetStore checks s against the SetStore contract.
func SetStore(t *testing.T, s ipfeed.SetStore) {
	t.Helper()
	ctx := t.Context()
	feed, other := unique(t, "contract"), unique(t, "contract-other")

	if _, err := s.Meta(ctx, feed); !errors.Is(err, ipfeed.ErrNotFound) {
		t.Fatalf("Meta of an unknown feed: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Get(ctx, feed); !errors.Is(err, ipfeed.ErrNotFound) {
		t.Fatalf("Get of an unknown feed: %v, want ErrNotFound", err)
	}

	// A failed first attempt stores meta without a set.
	at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	failed := ipfeed.Meta{Source: "https://example.test/list", Attempted: at, LastError: "unexpected status 500", Replica: "r1"}
	if err := s.PutMeta(ctx, feed, failed); err != nil {
		t.Fatalf("PutMeta before any set: %v", err)
	}
	if got, err := s.Meta(ctx, feed); err != nil || !sameMeta(got, failed) {
		t.Fatalf("Meta = %+v, %v; want %+v", got, err, failed)
	}
	if _, _, err := s.Get(ctx, feed); !errors.Is(err, ipfeed.ErrNotFound) {
		t.Fatalf("Get with meta but no set: %v, want ErrNotFound", err)
	}

	set := []byte("IPFS\x01\x00\x00\x00 any bytes \x00\xff")
	v1 := ipfeed.Meta{
		Version: 1, Digest: "00112233445566778899aabbccddeeff", Source: "https://example.test/list",
		Fetched: at, Checked: at, Attempted: at, ETag: `"abc"`, LastModified: "Mon, 01 Jan 2024 00:00:00 GMT",
		Entries: 10, Ranges: 8, Invalid: 1, Dropped: 2, Problems: []string{`line 3: not an address or CIDR: "x"`}, Replica: "r2",
	}
	if err := s.Put(ctx, feed, set, v1); err != nil {
		t.Fatalf("Put v1: %v", err)
	}
	got, meta, err := s.Get(ctx, feed)
	if err != nil || !bytes.Equal(got, set) || !sameMeta(meta, v1) {
		t.Fatalf("Get = %q, %+v, %v; want %q, %+v", got, meta, err, set, v1)
	}
	got[0] = 'X' // the caller owns what Get returns
	if again, _, _ := s.Get(ctx, feed); !bytes.Equal(again, set) {
		t.Fatal("mutating Get's result changed the store")
	}
	if m, err := s.Meta(ctx, feed); err != nil || !sameMeta(m, v1) {
		t.Fatalf("Meta after Put = %+v, %v", m, err)
	}

	// Versions only move forward.
	for _, v := range []uint64{0, 1} {
		stale := v1
		stale.Version = v
		if err := s.Put(ctx, feed, []byte("stale"), stale); !errors.Is(err, ipfeed.ErrConflict) {
			t.Fatalf("Put version %d over 1: %v, want ErrConflict", v, err)
		}
	}
	ahead := v1
	ahead.Version = 2
	if err := s.PutMeta(ctx, feed, ahead); !errors.Is(err, ipfeed.ErrConflict) {
		t.Fatalf("PutMeta version 2 over 1: %v, want ErrConflict", err)
	}

	// PutMeta of the same version keeps the set.
	checked := v1
	checked.Checked, checked.Attempted, checked.LastError, checked.Problems = at.Add(time.Hour), at.Add(time.Hour), "timeout", nil
	if err := s.PutMeta(ctx, feed, checked); err != nil {
		t.Fatalf("PutMeta v1: %v", err)
	}
	got, meta, err = s.Get(ctx, feed)
	if err != nil || !bytes.Equal(got, set) || meta.Version != 1 {
		t.Fatalf("Get after PutMeta = %q, %+v, %v", got, meta, err)
	}
	if m, _ := s.Meta(ctx, feed); !sameMeta(m, checked) {
		t.Fatalf("Meta after PutMeta = %+v, want %+v", m, checked)
	}

	v2 := v1
	v2.Version, v2.Digest = 2, "ffeeddccbbaa99887766554433221100"
	if err := s.Put(ctx, feed, []byte("second"), v2); err != nil {
		t.Fatalf("Put v2: %v", err)
	}
	if got, meta, err := s.Get(ctx, feed); err != nil || string(got) != "second" || !sameMeta(meta, v2) {
		t.Fatalf("Get v2 = %q, %+v, %v", got, meta, err)
	}

	// Feeds are independent.
	if _, err := s.Meta(ctx, other); !errors.Is(err, ipfeed.ErrNotFound) {
		t.Fatalf("Meta of another feed: %v", err)
	}
	if err := s.Put(ctx, other, []byte("other"), ipfeed.Meta{Version: 7}); err != nil {
		t.Fatalf("Put other: %v", err)
	}
	if got, _, _ := s.Get(ctx, feed); string(got) != "second" {
		t.Fatal("a Put to another feed changed this one")
	}
}

// sameMeta compares metas, times by instant (a store may drop the
// monotonic reading or the location).
func sameMeta(a, b ipfeed.Meta) bool {
	if !a.Fetched.Equal(b.Fetched) || !a.Checked.Equal(b.Checked) || !a.Attempted.Equal(b.Attempted) {
		return false
	}
	a.Fetched, a.Checked, a.Attempted = b.Fetched, b.Checked, b.Attempted
	if len(a.Problems) == 0 && len(b.Problems) == 0 {
		a.Problems = b.Problems
	}
	return reflect.DeepEqual(a, b)
}

// Lease checks l against the Lease contract. ttl is the lease time used;
// advance must make at least d pass for l (a fake clock, or a sleep for a
// real Redis, where a ttl of a few hundred milliseconds keeps it short).
func Lease(t *testing.T, l ipfeed.Lease, ttl time.Duration, advance func(d time.Duration)) {
	t.Helper()
	ctx := t.Context()
	feed, other := unique(t, "lease"), unique(t, "lease-other")
	if ok, err := l.TryAcquire(ctx, feed, ttl); err != nil || !ok {
		t.Fatalf("first TryAcquire = %v, %v; want true", ok, err)
	}
	if ok, err := l.TryAcquire(ctx, feed, ttl); err != nil || ok {
		t.Fatalf("TryAcquire of a held lease = %v, %v; want false", ok, err)
	}
	if ok, err := l.TryAcquire(ctx, other, ttl); err != nil || !ok {
		t.Fatalf("TryAcquire of another feed = %v, %v; want true", ok, err)
	}
	advance(ttl + ttl/2)
	if ok, err := l.TryAcquire(ctx, feed, ttl); err != nil || !ok {
		t.Fatalf("TryAcquire after the ttl = %v, %v; want true", ok, err)
	}
	if ok, err := l.TryAcquire(ctx, feed, ttl); err != nil || ok {
		t.Fatalf("TryAcquire of the renewed lease = %v, %v; want false", ok, err)
	}
}
