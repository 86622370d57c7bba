package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
	"github.com/rampartgw/rampart/testutil"
)

// monitorStore is every verb the console and the alerts use; both stores
// must behave the same.
type monitorStore interface {
	Heartbeat(ctx context.Context, hb store.Heartbeat, retention time.Duration) error
	Fleet(ctx context.Context) ([]store.Heartbeat, error)
	LeaveFleet(ctx context.Context, replica string) error
	AddRates(ctx context.Context, at time.Time, r store.RateSample) error
	Rates(ctx context.Context, from, to time.Time) ([]store.RatePoint, error)
	AddTop(ctx context.Context, hits []store.TopHit) error
	Top(ctx context.Context, dim string, window time.Duration, n int) ([]store.TopEntry, error)
	AddReload(ctx context.Context, r store.Reload) error
	Reloads(ctx context.Context, n int) ([]store.Reload, error)
	ClaimAlert(ctx context.Context, group, replica string, lease time.Duration) (bool, time.Time, error)
}

var (
	_ monitorStore = (*store.Redis)(nil)
	_ monitorStore = (*store.Memory)(nil)
)

func TestMonitorMemory(t *testing.T) {
	var mu sync.Mutex
	now := time.Now().Truncate(time.Second)
	cfg := store.DefaultMemoryConfig()
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	testMonitor(t, store.NewMemory(cfg), cfg.Now, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() })
}

func TestMonitorMiniredis(t *testing.T) {
	s, mr := storetest.New(t)
	var mu sync.Mutex
	now := time.Now().Truncate(time.Second)
	mr.SetTime(now)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	testMonitor(t, s, clock, func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
		mr.SetTime(now)
		mr.FastForward(d)
	})
}

func TestMonitorRealRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("real redis contract runs in the full suite")
	}
	srv := storetest.Real(t)
	s := storetest.NewFor(t, srv)
	testMonitor(t, s, time.Now, time.Sleep)
	t.Run("every key has a TTL", func(t *testing.T) {
		c := srv.Client()
		keys, err := c.Keys(t.Context(), srv.Prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) < 5 {
			t.Fatalf("only %d keys written: %v", len(keys), keys)
		}
		for _, k := range keys {
			if ttl := c.PTTL(t.Context(), k).Val(); ttl <= 0 {
				t.Errorf("%s has no TTL (%v)", k, ttl)
			}
		}
	})
}

// testMonitor is the contract of the monitoring verbs. now is the store's
// clock; advance moves it (a real sleep on a real Redis: short spans only).
func testMonitor(t *testing.T, s monitorStore, now func() time.Time, advance func(time.Duration)) {
	ctx := context.Background()

	t.Run("fleet", func(t *testing.T) {
		for _, r := range []string{"b", "a"} {
			hb := store.Heartbeat{Replica: r, Version: "v1", ConfigHash: "h-" + r, Store: "redis", StoreHealthy: true, RequestRate: 12.5, Interval: 100 * time.Millisecond}
			if err := s.Heartbeat(ctx, hb, 2*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		fleet, err := s.Fleet(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(fleet) != 2 || fleet[0].Replica != "a" || fleet[1].ConfigHash != "h-b" || fleet[0].RequestRate != 12.5 || !fleet[0].StoreHealthy {
			t.Fatalf("fleet %+v", fleet)
		}
		if fleet[0].Age < 0 || fleet[0].Age > time.Second || fleet[0].Missed() != 0 {
			t.Errorf("fresh heartbeat: age %v, missed %d", fleet[0].Age, fleet[0].Missed())
		}
		advance(1200 * time.Millisecond)
		if err := s.Heartbeat(ctx, store.Heartbeat{Replica: "b", Interval: 100 * time.Millisecond}, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		fleet, _ = s.Fleet(ctx)
		if len(fleet) != 2 || fleet[0].Age < time.Second || fleet[0].Missed() < 9 || fleet[1].Age > 500*time.Millisecond {
			t.Fatalf("after 1.2 s: %+v", fleet)
		}
		// a stays silent past the retention: the next heartbeat drops it.
		advance(time.Second)
		if err := s.Heartbeat(ctx, store.Heartbeat{Replica: "b", Interval: 100 * time.Millisecond}, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		fleet, _ = s.Fleet(ctx)
		if len(fleet) != 1 || fleet[0].Replica != "b" {
			t.Fatalf("after the retention: %+v", fleet)
		}
		if err := s.Heartbeat(ctx, store.Heartbeat{}, time.Second); err == nil {
			t.Error("a heartbeat without a replica name was accepted")
		}
		// A clean shutdown leaves the fleet.
		if err := s.Heartbeat(ctx, store.Heartbeat{Replica: "c", Interval: time.Second}, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.LeaveFleet(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		if fleet, _ = s.Fleet(ctx); len(fleet) != 1 || fleet[0].Replica != "b" {
			t.Fatalf("after c left: %+v", fleet)
		}
	})

	t.Run("rates", func(t *testing.T) {
		base := now().Truncate(time.Minute).Add(-2 * time.Minute).Add(58 * time.Second) // spans a minute boundary
		for _, add := range []struct {
			off time.Duration
			r   store.RateSample
		}{
			{0, store.RateSample{Allowed: 10, Blocked: 2}},
			{0, store.RateSample{Allowed: 5, Banned: 1}}, // another replica, same second
			{time.Second, store.RateSample{Blocked: 7}},
			{3 * time.Second, store.RateSample{Allowed: 1, Blocked: 1, Banned: 1}},
			{4 * time.Second, store.RateSample{}},
		} {
			if err := s.AddRates(ctx, base.Add(add.off), add.r); err != nil {
				t.Fatal(err)
			}
		}
		pts, err := s.Rates(ctx, base.Add(-time.Second), base.Add(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want := []store.RateSample{{}, {Allowed: 15, Blocked: 2, Banned: 1}, {Blocked: 7}, {}, {Allowed: 1, Blocked: 1, Banned: 1}, {}}
		if len(pts) != len(want) {
			t.Fatalf("%d points, want %d", len(pts), len(want))
		}
		for i, p := range pts {
			if p.RateSample != want[i] || !p.Time.Equal(base.Add(time.Duration(i-1)*time.Second)) {
				t.Errorf("point %d = %+v, want %+v at %v", i, p, want[i], base.Add(time.Duration(i-1)*time.Second))
			}
		}
		pts, _ = s.Rates(ctx, base.Add(-time.Hour), base.Add(time.Second))
		if len(pts) != int(store.MaxRateSpan/time.Second) || pts[len(pts)-1].Allowed != 15 {
			t.Errorf("a long span: %d points, last %+v", len(pts), pts[len(pts)-1])
		}
		if _, err := s.Rates(ctx, base, base); err == nil {
			t.Error("an empty span was accepted")
		}
	})

	t.Run("top", func(t *testing.T) {
		n := now()
		var hits []store.TopHit
		for i := range store.TopKeep + 100 {
			hits = append(hits, store.TopHit{Time: n, Dim: store.TopClients, Member: fmt.Sprintf("198.51.100.%d/%d", i%250, i), N: 1})
		}
		hits = append(hits,
			store.TopHit{Time: n, Dim: store.TopClients, Member: "192.0.2.66", N: 40},
			store.TopHit{Time: n.Add(-30 * time.Second), Dim: store.TopClients, Member: "192.0.2.66", N: 2},
			store.TopHit{Time: n, Dim: store.TopClients, Member: "192.0.2.7", N: 5},
			store.TopHit{Time: n.Add(-3 * time.Hour), Dim: store.TopClients, Member: "203.0.113.9", N: 1000},    // only in 24 h
			store.TopHit{Time: n.Add(-20 * time.Minute), Dim: store.TopClients, Member: "203.0.113.10", N: 100}, // 1 h, not 5 min
			store.TopHit{Time: n, Dim: store.TopRoutes, Member: "/login", N: 3},
			store.TopHit{Time: n, Dim: "nope", Member: "x", N: 3}, // ignored
		)
		if err := s.AddTop(ctx, hits); err != nil {
			t.Fatal(err)
		}
		// A second batch adds to the same buckets.
		if err := s.AddTop(ctx, []store.TopHit{{Time: n, Dim: store.TopClients, Member: "192.0.2.7", N: 1}}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			window time.Duration
			want   []store.TopEntry
		}{
			{5 * time.Minute, []store.TopEntry{{"192.0.2.66", 42}, {"192.0.2.7", 6}}},
			{time.Hour, []store.TopEntry{{"203.0.113.10", 100}, {"192.0.2.66", 42}, {"192.0.2.7", 6}}},
			{24 * time.Hour, []store.TopEntry{{"203.0.113.9", 1000}, {"203.0.113.10", 100}, {"192.0.2.66", 42}}},
		} {
			got, err := s.Top(ctx, store.TopClients, tc.window, len(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("top %v = %v, want %v", tc.window, got, tc.want)
			}
		}
		all, _ := s.Top(ctx, store.TopClients, time.Minute, 10*store.TopKeep)
		if len(all) > store.TopKeep || len(all) < store.TopKeep/2 {
			t.Errorf("a bucket holds %d offenders, bound %d", len(all), store.TopKeep)
		}
		if r, _ := s.Top(ctx, store.TopRoutes, 5*time.Minute, 5); len(r) != 1 || r[0] != (store.TopEntry{"/login", 3}) {
			t.Errorf("routes %v", r)
		}
		if _, err := s.Top(ctx, "nope", time.Minute, 5); err == nil {
			t.Error("an unknown dimension was accepted")
		}
		if _, err := s.Top(ctx, store.TopClients, 48*time.Hour, 5); err == nil {
			t.Error("a 48 h window was accepted")
		}
	})

	t.Run("reloads", func(t *testing.T) {
		for i := range 60 {
			if err := s.AddReload(ctx, store.Reload{Time: now(), Replica: "a", Trigger: "sighup", OK: i%2 == 0, ConfigHash: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		rs, err := s.Reloads(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 50 || rs[0].ConfigHash != "59" || rs[49].ConfigHash != "10" || rs[0].OK {
			t.Fatalf("%d reloads, first %+v", len(rs), rs[0])
		}
		if rs, _ := s.Reloads(ctx, 3); len(rs) != 3 || rs[2].ConfigHash != "57" {
			t.Errorf("3 reloads: %+v", rs)
		}
	})

	t.Run("alert lease", func(t *testing.T) {
		const g = "{}/rampart:{alertname=\"RampartClientBanned\", detection=\"payload|x\"}"
		var lastClaim time.Time
		for i, step := range []struct {
			replica string
			want    bool
		}{{"a|1", true}, {"b", false}, {"a|1", true}, {"b", false}} {
			if i == 2 {
				advance(50 * time.Millisecond)
			}
			got, at, err := s.ClaimAlert(ctx, g, step.replica, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if got != step.want || at.IsZero() {
				t.Fatalf("%s claims: %v at %v, want %v", step.replica, got, at, step.want)
			}
			switch {
			case got:
				if !at.After(lastClaim) {
					t.Errorf("claim %d: the holder's claim time %v did not move on from %v", i, at, lastClaim)
				}
				lastClaim = at
			case !at.Equal(lastClaim):
				t.Errorf("claim %d: told the holder claimed at %v, it did at %v", i, at, lastClaim)
			}
		}
		if ok, _, _ := s.ClaimAlert(ctx, "another group", "b", time.Second); !ok {
			t.Error("a free group was refused")
		}
		advance(700 * time.Millisecond)
		if ok, _, _ := s.ClaimAlert(ctx, g, "b", 500*time.Millisecond); !ok {
			t.Error("the lapsed lease was not taken over")
		}
		if ok, _, _ := s.ClaimAlert(ctx, g, "a|1", 500*time.Millisecond); ok {
			t.Error("the old holder took the lease back")
		}
	})
}

// TestTailEvents: a tail sees what every replica writes after it starts,
// once, in order; a consumer group splits the events between its
// consumers, each event to one.
func TestTailEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (a, b *store.Redis)
	}{
		{"miniredis", func(t *testing.T) (*store.Redis, *store.Redis) {
			a, mr := storetest.New(t)
			return a, storetest.NewOn(t, mr.Addr())
		}},
		{"redis", func(t *testing.T) (*store.Redis, *store.Redis) {
			if testing.Short() {
				t.Skip("real redis runs in the full suite")
			}
			srv := storetest.Real(t)
			return storetest.NewFor(t, srv), storetest.NewFor(t, srv)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tc.open(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			before := a.Events(store.EventsConfig{Enabled: true}, &countingSink{}, nil)
			before.Emit(record.Event{Type: record.EventRequestBlocked, Client: "192.0.2.99"})
			before.Flush(ctx)

			var mu sync.Mutex
			var tailed []string
			var grouped [2]atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				b.TailEvents(ctx, func(evs []record.Event) {
					mu.Lock()
					for _, e := range evs {
						tailed = append(tailed, e.Client)
					}
					mu.Unlock()
				})
			})
			for i, s := range []*store.Redis{a, b} {
				wg.Go(func() {
					s.ConsumeEvents(ctx, store.TopGroup, fmt.Sprint("c", i), func(evs []record.Event) { grouped[i].Add(int64(len(evs))) })
				})
			}
			time.Sleep(300 * time.Millisecond) // the readers are blocked in XREAD
			wa := a.Events(store.EventsConfig{Enabled: true}, &countingSink{}, nil)
			wb := b.Events(store.EventsConfig{Enabled: true}, &countingSink{}, nil)
			var want []string
			for i := range 40 {
				w := wa
				if i%2 == 1 {
					w = wb
				}
				c := fmt.Sprintf("192.0.2.%d", i)
				want = append(want, c)
				w.Emit(record.Event{Time: time.Now(), Type: record.EventRequestBlocked, Client: c, Detection: "payload"})
				w.Flush(ctx) // one at a time: the stream order is the emit order
			}
			testutil.Eventually(t, 5*time.Second, 20*time.Millisecond, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(tailed) >= len(want) && grouped[0].Load()+grouped[1].Load() >= int64(len(want))
			}, "tail and group did not catch up")
			time.Sleep(200 * time.Millisecond) // nothing more arrives
			cancel()
			wg.Wait()
			if !slices.Equal(tailed, want) {
				t.Errorf("tailed %v\nwant %v", tailed, want)
			}
			if n := grouped[0].Load() + grouped[1].Load(); n != int64(len(want)) {
				t.Errorf("the group delivered %d events (%d + %d), want %d", n, grouped[0].Load(), grouped[1].Load(), len(want))
			}
		})
	}
}

// TestMemoryEventsTail: the memory tail delivers new events once, in
// order, including identical-looking ones that arrive later.
func TestMemoryEventsTail(t *testing.T) {
	l := store.NewMemoryEvents(100, &countingSink{})
	l.Emit(record.Event{Type: record.EventRequestBlocked, Client: "old"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Tail(ctx, func(evs []record.Event) {
			mu.Lock()
			for _, e := range evs {
				got = append(got, e.Client)
			}
			mu.Unlock()
		})
	}()
	time.Sleep(50 * time.Millisecond)
	at := time.Now().UTC()
	for _, c := range []string{"a", "b", "c"} {
		l.Emit(record.Event{Time: at, Type: record.EventRequestBlocked, Client: c})
	}
	testutil.Eventually(t, 2*time.Second, 10*time.Millisecond, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 3 }, "no events")
	l.Emit(record.Event{Time: at, Type: record.EventRequestBlocked, Client: "c"}) // same as the mark, but new
	testutil.Eventually(t, 2*time.Second, 10*time.Millisecond, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 4 }, "the repeat was missed")
	cancel()
	<-done
	if want := []string{"a", "b", "c", "c"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
