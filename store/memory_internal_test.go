package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
)

// TestMemoryEvictionSparesBans: a full shard evicts counters and buckets
// before an active ban (a ban evicted by rate-limit traffic would let the
// client back in).
func TestMemoryEvictionSparesBans(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s := NewMemory(MemoryConfig{MaxEntries: 4 * memShards, Now: func() time.Time { return now }})
	ctx := context.Background()
	banned := "192.0.2.1"
	if _, err := s.Ban(ctx, record.BanRequest{Client: banned, Reason: "r", Detection: "d", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	sh := s.shard(banned)
	q := &detections.StateQuery{RateLimit: detections.Limit{Rate: 10, Burst: 10, Period: time.Minute}, InvalidWindow: time.Minute, CountInvalid: true}
	filled := 0
	for i := 0; filled < 200; i++ {
		c := fmt.Sprintf("198.51.%d.%d", i/256, i%256)
		if s.shard(c) != sh {
			continue
		}
		filled++
		if _, err := s.Check(ctx, c, q); err != nil { // two entries: bucket and counter
			t.Fatal(err)
		}
	}
	if n := len(sh.m); n > s.perShard {
		t.Errorf("shard holds %d entries, cap %d", n, s.perShard)
	}
	if _, found, _ := s.GetBan(ctx, banned); !found {
		t.Error("the ban was evicted by other clients' counters")
	}
	// With nothing but bans, a ban still makes room.
	for i := 0; ; i++ {
		c := fmt.Sprintf("203.0.%d.%d", i/256, i%256)
		if s.shard(c) != sh {
			continue
		}
		if _, err := s.Ban(ctx, record.BanRequest{Client: c, Reason: "r", Detection: "d", Duration: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if len(sh.m) > s.perShard {
			t.Fatalf("shard holds %d entries, cap %d", len(sh.m), s.perShard)
		}
		all := true
		for _, e := range sh.m {
			all = all && e.ban
		}
		if all {
			break
		}
	}
	last := "203.0.255.255"
	for i := 0; s.shard(last) != sh; i++ {
		last = fmt.Sprintf("203.1.%d.%d", i/256, i%256)
	}
	if _, err := s.Ban(ctx, record.BanRequest{Client: last, Reason: "r", Detection: "d", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if len(sh.m) > s.perShard {
		t.Errorf("shard holds %d entries, cap %d", len(sh.m), s.perShard)
	}
	if _, found, _ := s.GetBan(ctx, last); !found {
		t.Error("a full shard of bans did not make room for a new one")
	}
}

// TestMemorySpreadIsCapped: one token's set of clients stays small (it is
// one entry of MaxEntries), its count saturating at the cap, far above
// credential_shared's default max_clients.
func TestMemorySpreadIsCapped(t *testing.T) {
	s := NewMemory(DefaultMemoryConfig())
	ctx := context.Background()
	var n int64
	for i := range 3000 {
		var err error
		if n, err = s.Spread(ctx, "id:tok", fmt.Sprintf("192.0.%d.%d", i/256, i%256), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n != spreadCap {
		t.Errorf("spread of 3000 clients = %d, want %d (the cap)", n, spreadCap)
	}
	e := s.shard("id:tok").m[s.keys.TokenSpread("id:tok")]
	if e == nil || len(e.hash) != spreadCap {
		t.Errorf("entry holds %d members, want %d", len(e.hash), spreadCap)
	}
	if spreadCap < 10*20 {
		t.Errorf("cap %d too close to credential_shared's default max_clients (20)", spreadCap)
	}
}
