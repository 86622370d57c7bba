package gateway_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store/storetest"
)

// setBanByHand writes a ban into Redis the way redis-cli would: no pub/sub
// notification reaches the replicas.
func setBanByHand(t *testing.T, mr *miniredis.Miniredis, client string, ttl time.Duration) {
	t.Helper()
	key := "gw:ban:{" + client + "}"
	mr.HSet(key, "reason", "by_hand", "detection", "admin", "count", "1", "first_seen", "1", "replica", "cli")
	mr.SetTTL(key, ttl)
}

// TestCachedBanNotTrustedPastMaxStale: a ban the replica cached is refused
// locally for at most bans.cache_max_stale; after that the replica asks the
// store again, and a ban lifted by hand (no notification) stops biting.
func TestCachedBanNotTrustedPastMaxStale(t *testing.T) {
	mr := miniredis.RunT(t)
	const maxStale = 300 * time.Millisecond
	s := replicas(t, mr.Addr(), 1, withConfig(func(c *gateway.Config) { c.Bans.CacheMaxStale = maxStale }))[0]
	const ip = "203.0.113.70"
	setBanByHand(t, mr, ip, time.Hour)
	if got := s.status(t, "GET", "/echo", ip); got != 403 {
		t.Fatalf("banned by hand: %d", got) // learnt from the store, cached
	}
	learnt := time.Now()
	mr.Del("gw:ban:{" + ip + "}") // lifted by hand: the replica is not told
	// Within cache_max_stale the cached ban is trusted: refused without asking.
	if got := s.status(t, "GET", "/echo", ip); got != 403 && time.Since(learnt) < maxStale {
		t.Fatalf("cached ban not used within cache_max_stale: %d", got)
	}
	// Past it, never: the replica asks the store, which no longer has it.
	time.Sleep(time.Until(learnt.Add(maxStale)))
	if got := s.status(t, "GET", "/echo", ip); got != 200 {
		t.Errorf("cached ban trusted past cache_max_stale: %d", got)
	}
}

// TestResubscribeClearsCaches: after the pub/sub connection is cut and
// re-established, notifications may have been missed, so the replica drops
// its caches (and reloads the ban index): a ban lifted by hand while the
// replica was deaf stops biting at once, long before cache_max_stale.
func TestResubscribeClearsCaches(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	srv := storetest.RealOwned(t) // reads or acts on the whole server
	s := replicas(t, srv.Addr, 1, withConfig(func(c *gateway.Config) { c.Bans.CacheMaxStale = time.Hour }))[0]
	rdb := srv.Client()
	ctx := t.Context()
	const ip = "203.0.113.71"
	if err := rdb.HSet(ctx, "gw:ban:{"+ip+"}", "reason", "by_hand", "detection", "admin").Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Expire(ctx, "gw:ban:{"+ip+"}", time.Hour)
	if got := s.status(t, "GET", "/echo", ip); got != 403 {
		t.Fatalf("banned by hand: %d", got)
	}
	rdb.Del(ctx, "gw:ban:{"+ip+"}")
	if got := s.status(t, "GET", "/echo", ip); got != 403 {
		t.Fatalf("the cached ban (fresh for an hour) should still bite: %d", got)
	}
	loads := len(s.logs.lines("ban_index_loaded"))
	// Cut the subscription; go-redis reconnects and resubscribes.
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return len(s.logs.lines("ban_index_loaded")) > loads }, "no resubscription")
	if got := s.status(t, "GET", "/echo", ip); got != 200 {
		t.Errorf("cache kept across a resubscription: %d", got)
	}
}

// TestKnownBanBitesDuringOutage: while Redis cannot answer, a ban this
// replica knows keeps biting until its own expiry — even one not refreshed
// for longer than cache_max_stale — and a fresh replica learns the active
// bans from the index at start.
func TestKnownBanBitesDuringOutage(t *testing.T) {
	mr := miniredis.RunT(t)
	old := replicas(t, mr.Addr(), 1, withConfig(func(c *gateway.Config) { c.Bans.CacheMaxStale = 50 * time.Millisecond }))[0]
	st := storetest.NewOn(t, mr.Addr())
	const ip = "203.0.113.72"
	if _, err := st.Ban(t.Context(), record.BanRequest{Client: ip, Reason: "x", Detection: "payload", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// A replica started after the ban knows it from the ban index.
	fresh := replicas(t, mr.Addr(), 1)[0]
	eventually(t, 5*time.Second, func() bool { return fresh.g.Caches().Bans > 0 && old.g.Caches().Bans > 0 }, "ban not known")
	time.Sleep(60 * time.Millisecond) // past cache_max_stale on the old replica
	mr.Close()
	for i := 0; i < 20; i++ {
		for name, g := range map[string]*setup{"old": old, "fresh": fresh} {
			if got := g.status(t, "GET", "/echo", ip); got != 403 {
				t.Fatalf("%s replica, request %d during the outage: %d", name, i, got)
			}
		}
	}
}

// TestSnapshotKeepsBansAcrossRestartWithRedisDown: a replica restarted
// while Redis is down refuses the bans it knew, from its snapshot file.
func TestSnapshotKeepsBansAcrossRestartWithRedisDown(t *testing.T) {
	mr := miniredis.RunT(t)
	file := t.TempDir() + "/bans.snapshot"
	snap := withConfig(func(c *gateway.Config) { c.Bans.SnapshotFile = file })
	st := storetest.NewOn(t, mr.Addr())
	const ip = "203.0.113.73"
	if _, err := st.Ban(t.Context(), record.BanRequest{Client: ip, Reason: "x", Detection: "payload", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	first := newSetup(t, storetest.NewOn(t, mr.Addr()), snap)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { first.g.Run(ctx); close(done) }()
	eventually(t, 5*time.Second, func() bool { return first.g.Caches().Bans > 0 }, "ban not loaded")
	cancel() // shutdown writes the snapshot
	<-done
	addr := mr.Addr()
	mr.Close()

	second := newSetup(t, storetest.NewOn(t, addr), snap)
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { second.g.Run(ctx2); close(done2) }()
	t.Cleanup(func() { cancel2(); <-done2 })
	eventually(t, 5*time.Second, func() bool { return len(second.logs.lines("ban_snapshot_loaded")) > 0 }, "snapshot not loaded")
	if got := second.status(t, "GET", "/echo", ip); got != 403 {
		t.Errorf("restarted replica with Redis down: %d", got)
	}
	if got := second.status(t, "GET", "/echo", "203.0.113.74"); got != 200 {
		t.Errorf("an unbanned client: %d", got)
	}
}

// TestOperatorBanOfExemptClientRefused: an exempt client is never banned,
// by a detection or by an operator.
func TestOperatorBanOfExemptClientRefused(t *testing.T) {
	s := newSetup(t, nil, withExempt("198.51.100.0/24"))
	tg, err := s.g.ParseTarget("198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.g.Ban(t.Context(), tg, time.Hour, "x"); err != gateway.ErrExempt {
		t.Errorf("ban of an exempt client: %v", err)
	}
	if tg.Prefix != netip.MustParsePrefix("198.51.100.7/32") {
		t.Errorf("target %+v", tg)
	}
}
