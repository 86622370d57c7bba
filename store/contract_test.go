package store_test

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

// Store is every verb the gateway and the admin API use; both
// implementations must behave the same.
type Store interface {
	Check(ctx context.Context, client string, q *detections.StateQuery) (detections.Check, error)
	Incr(ctx context.Context, client string, window time.Duration) (int64, error)
	Allow(ctx context.Context, key string, limit detections.Limit) (detections.RateResult, error)
	Ban(ctx context.Context, req record.BanRequest) (record.Ban, error)
	Unban(ctx context.Context, client string, forget bool) (bool, error)
	GetBan(ctx context.Context, client string) (record.Ban, bool, error)
	BanCIDR(ctx context.Context, prefix netip.Prefix, dur time.Duration, reason, replica string) (record.Ban, error)
	UnbanCIDR(ctx context.Context, prefix netip.Prefix) (bool, error)
	ListCIDRBans(ctx context.Context) ([]record.Ban, error)
	ListBans(ctx context.Context, limit int) ([]record.Ban, error)
	SubscribeBans(ctx context.Context, fn func(record.BanEvent))
	Ping(ctx context.Context) error
	Shared() bool
}

var (
	_ Store = (*store.Redis)(nil)
	_ Store = (*store.Memory)(nil)
)

func TestContractMemory(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cfg := store.DefaultMemoryConfig()
	cfg.Replica = "memory"
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := store.NewMemory(cfg)
	testStore(t, s, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() })
}

func TestContractMiniredis(t *testing.T) {
	s, mr := storetest.New(t)
	now := time.Now()
	mr.SetTime(now)
	testStore(t, s, func(d time.Duration) {
		now = now.Add(d)
		mr.SetTime(now)
		mr.FastForward(d)
	})
}

func TestContractRealRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("real redis contract runs in the full suite")
	}
	srv := storetest.Real(t)
	s := storetest.NewFor(t, srv)
	testStore(t, s, func(d time.Duration) { time.Sleep(d) })
	t.Run("every key has a TTL", func(t *testing.T) {
		// The contract leaves no ban behind: make one of each kind, so
		// the ban indexes (whose TTL follows the longest ban) are there.
		if _, err := s.Ban(t.Context(), record.BanRequest{Client: "192.0.2.77", Reason: "ttl", Detection: "test", Duration: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BanCIDR(t.Context(), netip.MustParsePrefix("198.51.100.0/24"), time.Hour, "ttl", "test"); err != nil {
			t.Fatal(err)
		}
		c := srv.Client()
		keys, err := c.Keys(t.Context(), srv.Prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{s.Keys().BanIndexOf("192.0.2.77"), s.Keys().CIDRBansOf("198.51.100.0/24")} {
			if !slices.Contains(keys, want) {
				t.Errorf("%s not written (keys: %v)", want, keys)
			}
		}
		for _, k := range keys {
			if ttl := c.PTTL(t.Context(), k).Val(); ttl <= 0 {
				t.Errorf("%s has no TTL (%v)", k, ttl)
			}
		}
	})
}

// near asserts a duration within tolerance: real Redis time moves.
func near(t *testing.T, what string, got, want, tol time.Duration) {
	t.Helper()
	if got < want-tol || got > want+tol {
		t.Errorf("%s = %v, want %v ± %v", what, got, want, tol)
	}
}

func testStore(t *testing.T, s Store, advance func(time.Duration)) {
	ctx := context.Background()
	const tol = 150 * time.Millisecond
	limit := detections.Limit{Rate: 5, Burst: 5, Period: time.Second}

	t.Run("rate limit admits the burst then one per period/rate", func(t *testing.T) {
		q := &detections.StateQuery{RateLimit: limit, BanAfter: 3}
		for i := 0; i < 5; i++ {
			c, err := s.Check(ctx, "192.0.2.1", q)
			if err != nil {
				t.Fatal(err)
			}
			if c.State.Rate.Allowed != 1 {
				t.Fatalf("request %d refused", i+1)
			}
			if c.State.Rate.Remaining != 4-i {
				t.Errorf("request %d: remaining %d, want %d", i+1, c.State.Rate.Remaining, 4-i)
			}
		}
		c, err := s.Check(ctx, "192.0.2.1", q)
		if err != nil {
			t.Fatal(err)
		}
		if c.State.Rate.Allowed != 0 {
			t.Fatal("6th request allowed")
		}
		near(t, "retry after", c.State.Rate.RetryAfter, 200*time.Millisecond, tol)
		if c.State.Refused != 1 {
			t.Errorf("refused = %d, want 1", c.State.Refused)
		}
		c, _ = s.Check(ctx, "192.0.2.1", q)
		if c.State.Refused != 2 {
			t.Errorf("refused = %d, want 2", c.State.Refused)
		}
		// Another client and another bucket are independent.
		if c, _ := s.Check(ctx, "192.0.2.2", q); c.State.Rate.Allowed != 1 {
			t.Error("other client refused")
		}
		rq := &detections.StateQuery{RateLimit: limit, RateKey: "login"}
		if c, _ := s.Check(ctx, "192.0.2.1", rq); c.State.Rate.Allowed != 1 {
			t.Error("other bucket refused")
		}
		advance(250 * time.Millisecond)
		if c, _ := s.Check(ctx, "192.0.2.1", q); c.State.Rate.Allowed != 1 {
			t.Error("not allowed again after one emission interval")
		}
		if c, _ := s.Check(ctx, "192.0.2.1", q); c.State.Rate.Allowed != 0 {
			t.Error("second request after one interval allowed")
		}
	})

	t.Run("allow uses the same limiter", func(t *testing.T) {
		l := detections.Limit{Rate: 2, Burst: 2, Period: time.Second}
		for i, want := range []int{1, 1, 0} {
			res, err := s.Allow(ctx, "fallback:198.51.100.1", l)
			if err != nil {
				t.Fatal(err)
			}
			if res.Allowed != want {
				t.Errorf("call %d: allowed %d, want %d", i+1, res.Allowed, want)
			}
		}
	})

	t.Run("invalid counter counts in a window", func(t *testing.T) {
		client := "192.0.2.10"
		q := &detections.StateQuery{InvalidWindow: time.Second, CountInvalid: true}
		for i := int64(1); i <= 3; i++ {
			c, err := s.Check(ctx, client, q)
			if err != nil {
				t.Fatal(err)
			}
			if c.State.Invalid != i {
				t.Fatalf("invalid = %d, want %d", c.State.Invalid, i)
			}
		}
		n, err := s.Incr(ctx, client, time.Second)
		if err != nil || n != 4 {
			t.Fatalf("incr = %d, %v; want 4", n, err)
		}
		read := &detections.StateQuery{InvalidWindow: time.Second}
		if c, _ := s.Check(ctx, client, read); c.State.Invalid != 4 {
			t.Errorf("read invalid = %d, want 4", c.State.Invalid)
		}
		advance(1100 * time.Millisecond)
		if c, _ := s.Check(ctx, client, read); c.State.Invalid != 0 {
			t.Errorf("after window invalid = %d, want 0", c.State.Invalid)
		}
	})

	t.Run("ban blocks, expires, escalates and can be lifted", func(t *testing.T) {
		client := "2001:db8:1:2::/64"
		req := record.BanRequest{Client: client, Reason: "rate_limited", Detection: "rate_limit", Duration: 400 * time.Millisecond, Replica: "r1", Escalate: true}
		b, err := s.Ban(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		near(t, "first ban", b.TTL, 400*time.Millisecond, tol)
		if b.Count != 1 || b.Reason != "rate_limited" || b.Detection != "rate_limit" || b.Replica != "r1" {
			t.Errorf("ban = %+v", b)
		}
		// Banning again while banned keeps the ban (no double escalation).
		again, err := s.Ban(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if again.Count != 1 || again.Until.Sub(b.Until).Abs() > 5*time.Millisecond {
			t.Errorf("re-ban changed the ban: %+v vs %+v", again, b)
		}
		q := &detections.StateQuery{RateLimit: limit}
		c, err := s.Check(ctx, client, q)
		if err != nil {
			t.Fatal(err)
		}
		if c.Ban == nil || c.Ban.Reason != "rate_limited" || c.Ban.Detection != "rate_limit" {
			t.Fatalf("check while banned = %+v", c)
		}
		near(t, "ban ttl", c.Ban.TTL, 400*time.Millisecond, tol)
		got, found, err := s.GetBan(ctx, client)
		if err != nil || !found || got.Reason != "rate_limited" {
			t.Errorf("get ban = %+v, %v, %v", got, found, err)
		}
		list, err := s.ListBans(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !containsBan(list, client) {
			t.Errorf("list = %+v, want %s", list, client)
		}
		advance(500 * time.Millisecond)
		c, _ = s.Check(ctx, client, q)
		if c.Ban != nil {
			t.Fatal("still banned after expiry")
		}
		if c.State.Rate.Allowed != 1 {
			t.Error("banned period consumed tokens")
		}
		b2, err := s.Ban(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		near(t, "second ban (escalated x2)", b2.TTL, 800*time.Millisecond, tol)
		if b2.Count != 2 {
			t.Errorf("count = %d, want 2", b2.Count)
		}
		ok, err := s.Unban(ctx, client, false)
		if err != nil || !ok {
			t.Fatalf("unban = %v, %v", ok, err)
		}
		if ok, _ := s.Unban(ctx, client, false); ok {
			t.Error("second unban reported a ban")
		}
		if c, _ := s.Check(ctx, client, q); c.Ban != nil {
			t.Error("banned after unban")
		}
		if _, found, err := s.GetBan(ctx, client); found || err != nil {
			t.Errorf("get after unban: found %v, %v", found, err)
		}
	})

	t.Run("an operator's ban replaces an active ban", func(t *testing.T) {
		client := "192.0.2.88"
		if _, err := s.Ban(ctx, record.BanRequest{Client: client, Reason: "auto", Detection: "payload", Duration: time.Minute, Escalate: true}); err != nil {
			t.Fatal(err)
		}
		b, err := s.Ban(ctx, record.BanRequest{Client: client, Reason: "operator says", Detection: "admin", Duration: 2 * time.Hour, Replace: true})
		if err != nil {
			t.Fatal(err)
		}
		near(t, "replaced ban", b.TTL, 2*time.Hour, time.Second)
		got, found, err := s.GetBan(ctx, client)
		if err != nil || !found || got.Reason != "operator says" || got.Detection != "admin" || got.Count != 1 {
			t.Errorf("after replace: %+v %v %v", got, found, err)
		}
		near(t, "stored ttl", got.TTL, 2*time.Hour, time.Second)
		if _, err := s.Unban(ctx, client, false); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a replaced ban without a replica names this store's replica", func(t *testing.T) {
		// The replica a fresh ban gets when the request names none.
		own, err := s.Ban(ctx, record.BanRequest{Client: "192.0.2.89", Reason: "r", Detection: "d", Duration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Unban(ctx, "192.0.2.89", true)
		client := "192.0.2.90"
		if _, err := s.Ban(ctx, record.BanRequest{Client: client, Reason: "auto", Detection: "payload", Duration: time.Minute, Replica: "elsewhere"}); err != nil {
			t.Fatal(err)
		}
		b, err := s.Ban(ctx, record.BanRequest{Client: client, Reason: "operator says", Detection: "admin", Duration: time.Hour, Replace: true})
		if err != nil {
			t.Fatal(err)
		}
		if b.Replica != own.Replica {
			t.Errorf("replaced ban: replica %q, want %q", b.Replica, own.Replica)
		}
		got, found, err := s.GetBan(ctx, client)
		if err != nil || !found || got.Replica != own.Replica {
			t.Errorf("stored replaced ban: %+v %v %v, want replica %q", got, found, err, own.Replica)
		}
		c, err := s.Check(ctx, client, &detections.StateQuery{})
		if err != nil || c.Ban == nil || c.Ban.Replica != own.Replica {
			t.Errorf("check after replace: %+v %v, want replica %q", c.Ban, err, own.Replica)
		}
		_, _ = s.Unban(ctx, client, true)
	})

	t.Run("every subject runs even when the client or a subject is banned", func(t *testing.T) {
		// One round trip sends the client's script and every subject's
		// together (Redis), so a ban cannot spare the others: each
		// subject takes a token and counts, whoever is banned.
		client := "192.0.2.120"
		s1, s2 := "id:0123456789abcdef0123456789abcdef", "id:fedcba9876543210fedcba9876543210"
		one := detections.Limit{Rate: 1, Burst: 1, Period: time.Minute}
		sub := func(id string) detections.SubjectQuery {
			return detections.SubjectQuery{Subject: id, RateLimit: one, RateKey: "login", BanAfter: 5, InvalidWindow: time.Minute, CountInvalid: true}
		}
		q := &detections.StateQuery{Subjects: []detections.SubjectQuery{sub(s1), sub(s2)}}
		ban := func(who string) {
			t.Helper()
			if _, err := s.Ban(ctx, record.BanRequest{Client: who, Reason: "r", Detection: "d", Duration: time.Minute}); err != nil {
				t.Fatal(err)
			}
		}
		check := func(wantBan string) detections.Check {
			t.Helper()
			c, err := s.Check(ctx, client, q)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case wantBan == "" && c.Ban != nil:
				t.Fatalf("check: ban of %s, want none", c.Ban.Client)
			case wantBan != "" && (c.Ban == nil || c.Ban.Client != wantBan):
				t.Fatalf("check: %+v, want the ban of %s", c, wantBan)
			}
			return c
		}
		ban(client)
		check(client) // the client is banned: s1 and s2 still run
		if _, err := s.Unban(ctx, client, true); err != nil {
			t.Fatal(err)
		}
		ban(s1)
		check(s1) // s1 is banned: s2, after it, still runs
		if _, err := s.Unban(ctx, s1, true); err != nil {
			t.Fatal(err)
		}
		c := check("")
		for _, w := range []struct {
			id               string
			refused, invalid int64
		}{
			// s1: a token taken while the client was banned, then
			// refused now (its own ban skipped it once).
			{s1, 1, 2},
			// s2: ran all three times.
			{s2, 2, 3},
		} {
			st := c.State.Of(w.id)
			if st == nil {
				t.Fatalf("no state for %s: %+v", w.id, c.State)
			}
			if st.Rate.Allowed != 0 || st.Refused != w.refused || st.Invalid != w.invalid {
				t.Errorf("%s: allowed %d refused %d invalid %d, want 0, %d, %d", w.id, st.Rate.Allowed, st.Refused, st.Invalid, w.refused, w.invalid)
			}
		}
	})

	t.Run("escalation is capped", func(t *testing.T) {
		client := "192.0.2.77"
		req := record.BanRequest{Client: client, Reason: "x", Detection: "d", Duration: 10 * time.Hour, Escalate: true}
		var last record.Ban
		for i := 0; i < 3; i++ {
			b, err := s.Ban(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			last = b
			if _, err := s.Unban(ctx, client, false); err != nil {
				t.Fatal(err)
			}
		}
		near(t, "capped ban", last.TTL, 24*time.Hour, time.Second)
	})

	t.Run("unban with forget resets escalation", func(t *testing.T) {
		client := "192.0.2.78"
		req := record.BanRequest{Client: client, Reason: "x", Detection: "d", Duration: time.Minute, Escalate: true}
		for i, forget := range []bool{false, true} {
			if _, err := s.Ban(ctx, req); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Unban(ctx, client, forget); err != nil {
				t.Fatal(err)
			}
			_ = i
		}
		b, err := s.Ban(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if b.Count != 1 {
			t.Errorf("after forget: strike %d, want 1", b.Count)
		}
		near(t, "ban after forget", b.TTL, time.Minute, time.Second)
		_, _ = s.Unban(ctx, client, true)
	})

	t.Run("range bans", func(t *testing.T) {
		p := netip.MustParsePrefix("203.0.113.0/24")
		b, err := s.BanCIDR(ctx, p, time.Minute, "abuse", "ops")
		if err != nil {
			t.Fatal(err)
		}
		if !b.CIDR || b.Client != "203.0.113.0/24" {
			t.Errorf("ban = %+v", b)
		}
		l, err := s.ListCIDRBans(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != 1 || l[0].Client != "203.0.113.0/24" || l[0].Reason != "abuse" {
			t.Fatalf("list = %+v", l)
		}
		near(t, "range ban ttl", l[0].TTL, time.Minute, time.Second)
		if ok, err := s.UnbanCIDR(ctx, p); !ok || err != nil {
			t.Fatalf("unban = %v, %v", ok, err)
		}
		if l, _ := s.ListCIDRBans(ctx); len(l) != 0 {
			t.Errorf("after unban: %+v", l)
		}
	})

	t.Run("ban events reach subscribers", func(t *testing.T) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		events := make(chan record.BanEvent, 16)
		go s.SubscribeBans(sctx, func(ev record.BanEvent) { events <- ev })
		expect := func(want func(record.BanEvent) bool, what string) {
			t.Helper()
			timeout := time.After(3 * time.Second)
			for {
				select {
				case ev := <-events:
					if want(ev) {
						return
					}
				case <-timeout:
					t.Fatalf("no %s event", what)
				}
			}
		}
		expect(func(ev record.BanEvent) bool { return ev.Reset }, "reset")
		if _, err := s.Ban(ctx, record.BanRequest{Client: "192.0.2.99", Reason: "r", Detection: "d", Duration: time.Minute}); err != nil {
			t.Fatal(err)
		}
		expect(func(ev record.BanEvent) bool { return ev.Client == "192.0.2.99" && !ev.Unban && !ev.Until.IsZero() }, "ban")
		if _, err := s.Unban(ctx, "192.0.2.99", false); err != nil {
			t.Fatal(err)
		}
		expect(func(ev record.BanEvent) bool { return ev.Client == "192.0.2.99" && ev.Unban }, "unban")
	})
}

func containsBan(l []record.Ban, client string) bool {
	for _, b := range l {
		if b.Client == client {
			return true
		}
	}
	return false
}

// TestCheckMatchesRedisRate runs the same sequence through redis_rate's own
// limiter and through the Check script on one server clock, and requires
// identical decisions: the hot-path script is redis_rate's GCRA.
func TestCheckMatchesRedisRate(t *testing.T) {
	s, mr := storetest.New(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	rl := redis_rate.NewLimiter(rdb)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mr.SetTime(now)
	limit := detections.Limit{Rate: 3, Burst: 4, Period: time.Second}
	steps := []time.Duration{0, 0, 0, 0, 0, 100, 250, 10, 333, 0, 0, 1000, 0, 0, 0, 0, 0}
	for i, step := range steps {
		now = now.Add(step * time.Millisecond)
		mr.SetTime(now)
		mr.FastForward(step * time.Millisecond)
		want, err := rl.Allow(t.Context(), "ref", redis_rate.Limit{Rate: limit.Rate, Burst: limit.Burst, Period: limit.Period})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Check(t.Context(), "192.0.2.5", &detections.StateQuery{RateLimit: limit})
		if err != nil {
			t.Fatal(err)
		}
		g := got.State.Rate
		if g.Allowed != want.Allowed || g.Remaining != want.Remaining ||
			(g.RetryAfter-want.RetryAfter).Abs() > time.Millisecond || (g.ResetAfter-want.ResetAfter).Abs() > time.Millisecond {
			t.Errorf("step %d: check %+v, redis_rate %+v", i, g, *want)
		}
	}
}

// TestOutageFailsFastAndRecovers drives the breaker with miniredis errors.
func TestOutageFailsFastAndRecovers(t *testing.T) {
	s, mr := storetest.New(t)
	q := &detections.StateQuery{RateLimit: detections.PerMinute(100)}
	if _, err := s.Check(t.Context(), "192.0.2.1", q); err != nil {
		t.Fatal(err)
	}
	mr.Close() // Redis goes away.
	var failures int
	for i := 0; i < 20; i++ {
		_, err := s.Check(t.Context(), "192.0.2.1", q)
		if err == nil {
			t.Fatal("check succeeded with redis down")
		}
		if !errorsIsStore(err) {
			t.Fatalf("error %v does not wrap detections.ErrStore", err)
		}
		failures++
	}
	if s.Healthy() {
		t.Fatal("breaker still closed after 20 failures")
	}
	start := time.Now()
	for i := 0; i < 1000; i++ {
		_, _ = s.Check(t.Context(), "192.0.2.1", q)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("1000 checks with an open breaker took %v", d)
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.Check(t.Context(), "192.0.2.1", q); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("store did not recover after redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !s.Healthy() {
		t.Error("breaker open after recovery")
	}
}

func TestScriptErrorDoesNotOpenBreaker(t *testing.T) {
	s, mr := storetest.New(t)
	mr.SetError("ERR something odd")
	for i := 0; i < 10; i++ {
		_, _ = s.Check(t.Context(), "192.0.2.1", &detections.StateQuery{})
	}
	if !s.Healthy() {
		t.Error("a server error reply opened the breaker")
	}
	mr.SetError("")
	var _ = miniredis.Miniredis{}
}

// TestCancelledCallsDoNotOpenBreaker: a caller that gives up (the HTTP
// client hung up, so net/http cancelled the request's context) is not a
// Redis failure: it neither opens the circuit nor starts the fail-closed
// clock, and a cancelled half-open probe does not keep the circuit open.
// A deadline that expires is still a failure.
func TestCancelledCallsDoNotOpenBreaker(t *testing.T) {
	s, mr := storetest.New(t)
	q := &detections.StateQuery{RateLimit: detections.PerMinute(100)}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	threshold := store.DefaultConfig().BreakerFailures
	for i := 0; i < 4*threshold; i++ {
		if _, err := s.Check(cancelled, "192.0.2.1", q); err == nil {
			t.Fatal("check with a cancelled context succeeded")
		}
	}
	if !s.Healthy() {
		t.Fatal("cancelled calls opened the breaker")
	}
	if d := s.FailingFor(time.Now()); d != 0 {
		t.Fatalf("FailingFor = %v after cancelled calls, want 0", d)
	}
	if e := s.LastError(); e != "" {
		t.Fatalf("LastError = %q after cancelled calls, want \"\"", e)
	}

	t.Run("cancelled probe", func(t *testing.T) {
		mr.Close()
		for i := 0; i < 2*threshold; i++ {
			_, _ = s.Check(t.Context(), "192.0.2.1", q)
		}
		if s.Healthy() {
			t.Fatal("breaker still closed with redis down")
		}
		if err := mr.Restart(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(storetest.Config("").BreakerCooldown + 20*time.Millisecond)
		_, _ = s.Check(cancelled, "192.0.2.1", q) // the half-open probe, abandoned
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := s.Check(t.Context(), "192.0.2.1", q); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("circuit still open after a cancelled probe: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("expired deadline still counts", func(t *testing.T) {
		expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		for i := 0; i < threshold; i++ {
			_, _ = s.Check(expired, "192.0.2.1", q)
		}
		if s.Healthy() {
			t.Error("expired deadlines did not open the breaker")
		}
	})
}

// TestBanSurvivesIndexFailure: once the ban script has written the ban, a
// failing index step (here ZADD on a ban index of the wrong type) is logged
// and counted, not reported: the caller gets the ban, which is in force.
func TestBanSurvivesIndexFailure(t *testing.T) {
	s, mr := storetest.New(t)
	const client = "192.0.2.44"
	if err := mr.Set(s.Keys().BanIndexOf(client), "not a sorted set"); err != nil {
		t.Fatal(err)
	}
	b, err := s.Ban(t.Context(), record.BanRequest{Client: client, Reason: "r", Detection: "d", Duration: time.Minute})
	if err != nil {
		t.Fatalf("Ban with a failing index step: %v", err)
	}
	if !b.New || b.TTL <= 0 || b.TTL > time.Minute {
		t.Fatalf("Ban returned %+v", b)
	}
	got, found, err := s.GetBan(t.Context(), client)
	if err != nil || !found {
		t.Fatalf("GetBan after Ban: found=%v err=%v", found, err)
	}
	if got.Reason != "r" || got.Detection != "d" {
		t.Errorf("GetBan = %+v", got)
	}
}
