package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-redis/redis_rate/v10"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

// replicas starts n gateways sharing one Redis at addr, each with its own
// client (as separate processes would), and keeps their ban caches in sync
// through pub/sub.
func replicas(t *testing.T, addr string, n int, opts ...option) []*setup {
	t.Helper()
	var out []*setup
	for i := 0; i < n; i++ {
		st := storetest.NewOn(t, addr)
		s := newSetup(t, st, opts...)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.g.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		out = append(out, s)
	}
	time.Sleep(50 * time.Millisecond) // subscriptions established
	return out
}

func TestReplicasShareRateLimit(t *testing.T) {
	mr := miniredis.RunT(t)
	gws := replicas(t, mr.Addr(), 3)
	// Sequential, alternating replicas: exactly 5 in total.
	allowed := 0
	for i := 0; i < 12; i++ {
		if gws[i%3].status(t, "GET", "/api/endpoint", "203.0.113.1") == 200 {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("allowed %d across 3 replicas, want 5", allowed)
	}
}

func TestReplicasShareRateLimitUnderRace(t *testing.T) {
	mr := miniredis.RunT(t)
	gws := replicas(t, mr.Addr(), 3)
	const clients, perClient = 20, 15
	var wg sync.WaitGroup
	counts := make([]atomic.Int64, clients)
	for c := 0; c < clients; c++ {
		for i := 0; i < perClient; i++ {
			wg.Go(func() {
				ip := fmt.Sprintf("198.18.1.%d", c+1)
				if gws[(c+i)%3].status(t, "GET", "/echo", ip) == 200 {
					counts[c].Add(1)
				}
			})
		}
	}
	wg.Wait()
	for c := range counts {
		if got := counts[c].Load(); got != 5 {
			t.Errorf("client %d: %d allowed, want exactly 5", c, got)
		}
	}
	if t.Failed() {
		for i, g := range gws {
			t.Logf("replica %d: %d detection_failed lines (fail-open)", i, len(g.logs.lines("detection_failed")))
		}
	}
}

func TestReplicasShareEnumerationAndBans(t *testing.T) {
	mr := miniredis.RunT(t)
	gws := replicas(t, mr.Addr(), 2)
	const ip = "203.0.113.20"
	// Five invalid requests (upstream 404s) spread over both replicas; each
	// is its own client IP's first requests, below the rate limit of 5.
	for i := 0; i < 5; i++ {
		if got := gws[i%2].status(t, "GET", "/echo/../status/404", ip); got != 404 {
			t.Fatalf("invalid request %d: %d", i+1, got)
		}
	}
	// The fifth invalid answer banned the client: refused on both replicas
	// at their very next request, with Retry-After.
	for i, g := range gws {
		resp := g.do(t, "GET", "/echo", ip, nil)
		b := readBody(t, resp)
		if resp.StatusCode != 403 || b != denied {
			t.Errorf("replica %d after the limit: %d %q", i, resp.StatusCode, b)
		}
		if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("replica %d: Retry-After %q", i, ra)
		}
	}
	// The ban is visible in Redis under a readable key.
	if !mr.Exists("gw:ban:{203.0.113.20}") {
		t.Errorf("no ban key; keys: %v", mr.Keys())
	}
	if got := mr.HGet("gw:ban:{203.0.113.20}", "detection"); got != "enumeration" {
		t.Errorf("ban detection = %q", got)
	}
	if ttl := mr.TTL("gw:ban:{203.0.113.20}"); ttl <= 0 || ttl > 10*time.Minute {
		t.Errorf("ban TTL %v", ttl)
	}
}

func TestBanBitesOnOtherReplicaAtNextRequest(t *testing.T) {
	mr := miniredis.RunT(t)
	gws := replicas(t, mr.Addr(), 2)
	const ip = "203.0.113.30"
	if got := gws[1].status(t, "GET", "/echo", ip); got != 200 {
		t.Fatalf("before: %d", got)
	}
	// A payload block with a ban duration on A...
	s := gws[0]
	ban := detections.Verdict{Action: detections.ActionBlock, Reason: "test", BlockFor: time.Minute}
	_ = ban
	st := storetest.NewOn(t, mr.Addr())
	if _, err := st.Ban(t.Context(), detections.BanRequest{Client: ip, Reason: "test", Detection: "payload", Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	_ = s
	// ...bites on B at its very next request, with no waiting.
	if got := gws[1].status(t, "GET", "/echo", ip); got != 403 {
		t.Errorf("B after ban on A: %d", got)
	}
}

func TestHammeringClientIsBanned(t *testing.T) {
	mr := miniredis.RunT(t)
	gws := replicas(t, mr.Addr(), 2)
	const ip = "203.0.113.40"
	codes := map[int]int{}
	for i := 0; i < 30; i++ {
		codes[gws[i%2].status(t, "GET", "/echo", ip)]++
	}
	if codes[200] != 5 || codes[403] != 25 {
		t.Errorf("codes = %v", codes)
	}
	if got := mr.HGet("gw:ban:{203.0.113.40}", "detection"); got != "rate_limit" {
		t.Errorf("hammering client not banned by rate_limit; keys %v", mr.Keys())
	}
}

func TestRedisOutage(t *testing.T) {
	mr := miniredis.RunT(t)
	gws := replicas(t, mr.Addr(), 2)
	const banned, fresh = "203.0.113.50", "203.0.113.51"
	st := storetest.NewOn(t, mr.Addr())
	if _, err := st.Ban(t.Context(), detections.BanRequest{Client: banned, Reason: "known", Detection: "payload", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // ban notification delivered
	mr.Close()

	start := time.Now()
	for i := 0; i < 40; i++ {
		if got := gws[i%2].status(t, "GET", "/echo", fresh); got != 200 {
			t.Fatalf("fail-open request %d: %d", i, got)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("40 requests with Redis down took %v", d)
	}
	for i, g := range gws {
		if got := g.status(t, "GET", "/echo", banned); got != 403 {
			t.Errorf("replica %d: known ban not enforced during outage: %d", i, got)
		}
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	// State resumes: the limit counts again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		codes := map[int]int{}
		for i := 0; i < 8; i++ {
			codes[gws[i%2].status(t, "GET", "/echo", fmt.Sprintf("203.0.113.%d", 60+int(time.Since(start)/time.Second)))]++
		}
		if codes[403] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("limits not enforced after Redis came back: %v", codes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStoreErrorFailClosed(t *testing.T) {
	mr := miniredis.RunT(t)
	st := storetest.NewOn(t, mr.Addr())
	rl, _ := detections.NewRateLimit(detections.RateLimitConfig{Limit: redis_rate.PerMinute(100)}, nil)
	s := newSetup(t, st, withEntries(detections.Entry{Detection: rl, OnStoreError: detections.StoreBlock}))
	if got := s.status(t, "GET", "/echo", "192.0.2.1"); got != 200 {
		t.Fatalf("before outage: %d", got)
	}
	mr.Close()
	for i := 0; i < 10; i++ {
		start := time.Now()
		resp := s.do(t, "GET", "/echo", "192.0.2.1", nil)
		b := readBody(t, resp)
		if resp.StatusCode != 503 || !strings.Contains(b, "Service Unavailable") {
			t.Fatalf("fail-closed: %d %q", resp.StatusCode, b)
		}
		if d := time.Since(start); i > 5 && d > 50*time.Millisecond {
			t.Errorf("503 took %v with the circuit open", d)
		}
	}
}

func TestBlocklistFailClosed(t *testing.T) {
	mr := miniredis.RunT(t)
	st := storetest.NewOn(t, mr.Addr())
	s := newSetup(t, st, withEntries(), withConfig(func(c *gateway.Config) { c.BlocklistOnStoreError = detections.StoreBlock }))
	mr.Close()
	if got := s.status(t, "GET", "/echo", "192.0.2.1"); got != 503 {
		t.Errorf("blocklist fail-closed: %d", got)
	}
}

// TestRoundTrips counts Redis commands on a real server: one per allowed
// request, none for a client this replica already knows is banned or over
// the limit.
func TestRoundTrips(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	srv := storetest.Real(t)
	st := storetest.NewOn(t, srv.Addr)
	s := newSetup(t, st)
	rdb := srv.Client()
	// Top-level commands: every command in INFO commandstats, minus the
	// ones the check script runs inside Redis (they are not round trips)
	// and the INFO used to read the stats.
	inner := map[string]bool{"pttl": true, "hmget": true, "time": true, "get": true, "set": true, "incr": true, "pexpire": true, "info": true}
	snap := func() map[string]int64 { return storetest.CommandStats(t, rdb) }
	topLevel := func(before map[string]int64) (total int64, detail map[string]int64) {
		detail = map[string]int64{}
		for name, n := range snap() {
			if d := n - before[name]; d > 0 && !inner[name] {
				detail[name], total = d, total+d
			}
		}
		return total, detail
	}
	// Warm up: load the script (EVALSHA, NOSCRIPT, EVAL happens once).
	s.status(t, "GET", "/echo", "192.0.2.200")
	before := snap()
	const n = 4
	for i := 0; i < n; i++ {
		if got := s.status(t, "GET", "/echo", fmt.Sprintf("192.0.2.%d", i+1)); got != 200 {
			t.Fatalf("request %d: %d", i, got)
		}
	}
	if got, detail := topLevel(before); got != n || detail["evalsha"] != n {
		t.Errorf("%d top-level commands for %d allowed requests, want %d EVALSHA: %v", got, n, n, detail)
	}
	// Ban a client; the replica learns it from its first refused request.
	if _, err := st.Ban(t.Context(), detections.BanRequest{Client: "192.0.2.99", Reason: "x", Detection: "payload", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	s.status(t, "GET", "/echo", "192.0.2.99")
	before = snap()
	for i := 0; i < 20; i++ {
		if got := s.status(t, "GET", "/echo", "192.0.2.99"); got != 403 {
			t.Fatalf("banned: %d", got)
		}
	}
	if got, detail := topLevel(before); got != 0 {
		t.Errorf("%d commands for 20 requests of a known-banned client, want 0: %v", got, detail)
	}
	// Hammering: each refusal up to ban_after (10) is counted in Redis,
	// then the client is banned and refused locally.
	ip := "192.0.2.150"
	for i := 0; i < 15; i++ {
		s.status(t, "GET", "/echo", ip)
	}
	before = snap()
	for i := 0; i < 3; i++ {
		if got := s.status(t, "GET", "/echo", ip); got != 403 {
			t.Fatalf("over limit: %d", got)
		}
	}
	if got, detail := topLevel(before); got != 0 {
		t.Errorf("%d commands for 3 requests of a client banned for hammering, want 0: %v", got, detail)
	}
	// Without a hammering ban, a client over its limit is refused from the
	// cache after its first refusal, until Retry-After.
	rl, _ := detections.NewRateLimit(detections.RateLimitConfig{Limit: redis_rate.PerMinute(2)}, nil)
	s2 := newSetup(t, st, withEntries(detections.Entry{Detection: rl}))
	for i := 0; i < 3; i++ {
		s2.status(t, "GET", "/echo", "192.0.2.151")
	}
	before = snap()
	for i := 0; i < 5; i++ {
		if got := s2.status(t, "GET", "/echo", "192.0.2.151"); got != 403 {
			t.Fatalf("over limit: %d", got)
		}
	}
	if got, detail := topLevel(before); got != 0 {
		t.Errorf("%d commands for 5 requests of a client known over the limit, want 0: %v", got, detail)
	}
	_ = http.StatusOK
	_ = store.DefaultConfig
}

// TestRedisErrorRepliesFailOpen: Redis answers, but with errors (miniredis
// SetError): the stateful detections are bypassed, the request goes through.
func TestRedisErrorRepliesFailOpen(t *testing.T) {
	mr := miniredis.RunT(t)
	gws := replicas(t, mr.Addr(), 1)
	mr.SetError("LOADING Redis is loading the dataset in memory")
	for i := 0; i < 8; i++ {
		if got := gws[0].status(t, "GET", "/echo", "192.0.2.66"); got != 200 {
			t.Fatalf("request %d with Redis erroring: %d", i, got)
		}
	}
	if len(gws[0].logs.lines("detection_failed")) == 0 {
		t.Error("no detection_failed logged")
	}
	mr.SetError("")
	// LOADING means "not serving": it opened the circuit; the first request
	// after the cooldown probes and closes it.
	time.Sleep(200 * time.Millisecond)
	gws[0].status(t, "GET", "/echo", "192.0.2.99")
	codes := map[int]int{}
	for i := 0; i < 7; i++ {
		codes[gws[0].status(t, "GET", "/echo", "192.0.2.67")]++
	}
	if codes[200] != 5 || codes[403] != 2 {
		t.Errorf("after recovery: %v", codes)
	}
}

// TestFallbackLimitWhileRedisDown: with a fallback limit, the per-replica
// limiter takes over during the outage.
func TestFallbackLimitWhileRedisDown(t *testing.T) {
	mr := miniredis.RunT(t)
	st := storetest.NewOn(t, mr.Addr())
	mem := store.NewMemory(store.DefaultMemoryConfig())
	rl, err := detections.NewRateLimit(detections.RateLimitConfig{Limit: redis_rate.PerMinute(100), Fallback: redis_rate.PerMinute(3)}, mem)
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, st, withEntries(detections.Entry{Detection: rl}))
	mr.Close()
	codes := map[int]int{}
	for i := 0; i < 6; i++ {
		codes[s.status(t, "GET", "/echo", "192.0.2.68")]++
	}
	if codes[200] != 3 || codes[403] != 3 {
		t.Errorf("fallback limit: %v", codes)
	}
}
