package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
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
	// Subscribed: each replica has had its Reset and loaded the ban index.
	for i, s := range out {
		eventually(t, 5*time.Second, func() bool { return len(s.logs.lines("ban_index_loaded")) > 0 }, "replica %d never subscribed", i)
	}
	return out
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
	// Both replicas run the prototype's chain plus a detection that bans
	// for a minute whoever asks for /ban.
	banner := banOn{name: "test_ban", path: "/ban", blockFor: time.Minute}
	gws := replicas(t, mr.Addr(), 2, withExtraEntry(detections.Entry{Detection: banner}))
	a, b := gws[0], gws[1]
	const ip = "203.0.113.30"
	if got := b.status(t, "GET", "/echo", ip); got != 200 {
		t.Fatalf("before: %d", got)
	}
	// A's detection blocks and bans...
	if got := a.status(t, "GET", "/ban", ip); got != 403 {
		t.Fatalf("A: %d", got)
	}
	if got := mr.HGet("gw:ban:{203.0.113.30}", "detection"); got != "test_ban" {
		t.Fatalf("ban detection %q", got)
	}
	// ...and B refuses the client at its very next request, with no waiting.
	resp := b.do(t, "GET", "/echo", ip, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 403 || body != denied || resp.Header.Get("Retry-After") == "" {
		t.Errorf("B after ban on A: %d %q %v", resp.StatusCode, body, resp.Header)
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
	if _, err := st.Ban(t.Context(), record.BanRequest{Client: banned, Reason: "known", Detection: "payload", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i, g := range gws {
		eventually(t, 5*time.Second, func() bool { return g.g.Caches().Bans > 0 }, "replica %d never heard of the ban", i)
	}
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
	rl, _ := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(100)}, nil)
	s := newSetup(t, st, withEntries(detections.Entry{Detection: rl, OnStoreError: detections.StoreBlock}),
		withConfig(func(c *gateway.Config) { c.Bans.StoreErrorGrace = 0 }))
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
	s := newSetup(t, st, withEntries(), withConfig(func(c *gateway.Config) { c.Bans.OnStoreError, c.Bans.StoreErrorGrace = detections.StoreBlock, 0 }))
	mr.Close()
	if got := s.status(t, "GET", "/echo", "192.0.2.1"); got != 503 {
		t.Errorf("blocklist fail-closed: %d", got)
	}
}

// monitor records the commands a real redis-server executes (MONITOR),
// telling those a client sent (round trips) from those a Lua script ran
// inside Redis.
type monitor struct {
	mu       sync.Mutex
	top, lua map[string]int
	marker   *redis.Client // sends the markers (connected once: no HELLO later)
}

func startMonitor(t *testing.T, srv *storetest.Server) *monitor {
	t.Helper()
	m := &monitor{top: map[string]int{}, lua: map[string]int{}, marker: srv.Client()}
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "MONITOR\r\n"); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	go func() {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			// +1700000000.123456 [0 lua] "PTTL" "gw:ban:{...}"
			// +1700000000.123456 [0 127.0.0.1:50000] "evalsha" ...
			_, rest, ok := strings.Cut(line, "[")
			src, rest, ok2 := strings.Cut(rest, "]")
			if !ok || !ok2 {
				continue // +OK
			}
			name, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
			name = strings.ToLower(strings.Trim(name, `"`))
			m.mu.Lock()
			if strings.HasSuffix(src, " lua") {
				m.lua[name]++
			} else {
				m.top[name]++
			}
			m.mu.Unlock()
		}
	}()
	// MONITOR is live once it reports a command sent after it.
	c := m.marker
	eventually(t, 5*time.Second, func() bool {
		_ = c.Echo(t.Context(), "monitor-ready").Err()
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.top["echo"] > 0
	}, "MONITOR never started")
	return m
}

// take returns the commands seen since the last take, after letting
// MONITOR's stream catch up with a marker command.
func (m *monitor) take(t *testing.T, srv *storetest.Server) (top, lua map[string]int) {
	t.Helper()
	c := m.marker
	m.mu.Lock()
	marks := m.top["echo"]
	m.mu.Unlock()
	_ = c.Echo(t.Context(), "mark").Err()
	eventually(t, 5*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.top["echo"] > marks
	}, "MONITOR did not catch up")
	m.mu.Lock()
	defer m.mu.Unlock()
	top, lua = m.top, m.lua
	delete(top, "echo")
	m.top, m.lua = map[string]int{"echo": marks + 1}, map[string]int{}
	return top, lua
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestRoundTrips counts, on a real redis-server, the commands the gateway
// sends (round trips) apart from those its script runs inside Redis: one
// EVALSHA per allowed request, none for a client this replica already
// knows is banned or over the limit.
func TestRoundTrips(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	srv := storetest.RealOwned(t) // reads or acts on the whole server
	st := storetest.NewOn(t, srv.Addr)
	s := newSetup(t, st)
	m := startMonitor(t, srv)
	// Warm up: load the script (EVALSHA, NOSCRIPT, EVAL happens once).
	s.status(t, "GET", "/echo", "192.0.2.200")
	m.take(t, srv)
	const n = 4
	for i := 0; i < n; i++ {
		if got := s.status(t, "GET", "/echo", fmt.Sprintf("192.0.2.%d", i+1)); got != 200 {
			t.Fatalf("request %d: %d", i, got)
		}
	}
	top, lua := m.take(t, srv)
	if sum(top) != n || top["evalsha"] != n {
		t.Errorf("%d round trips for %d allowed requests, want %d EVALSHA: %v", sum(top), n, n, top)
	}
	if lua["pttl"] != n || lua["time"] != n {
		t.Errorf("inside the script, per allowed request: want one PTTL (ban) and one TIME (GCRA): %v", lua)
	}
	t.Logf("per allowed request: %d round trip, %d commands inside the script (%v)", sum(top)/n, sum(lua)/n, lua)
	// An upstream 404 on a known route adds one script call (the counter's
	// INCR + PEXPIRE), before the response completes.
	s.status(t, "GET", "/echo/status/404", "192.0.2.61") // loads the counter script
	m.take(t, srv)
	if got := s.status(t, "GET", "/echo/status/404", "192.0.2.60"); got != 404 {
		t.Fatalf("upstream 404: %d", got)
	}
	if top, lua := m.take(t, srv); sum(top) != 2 || top["evalsha"] != 2 || lua["incr"] != 1 {
		t.Errorf("an upstream 404: %v round trips (%v inside scripts), want 2 EVALSHA: the check and one INCR", top, lua)
	}
	// Ban a client; the replica learns it from its first refused request.
	if _, err := st.Ban(t.Context(), record.BanRequest{Client: "192.0.2.99", Reason: "x", Detection: "payload", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s.status(t, "GET", "/echo", "192.0.2.99") // the replica learns the ban from the store
	m.take(t, srv)
	for i := 0; i < 20; i++ {
		if got := s.status(t, "GET", "/echo", "192.0.2.99"); got != 403 {
			t.Fatalf("banned: %d", got)
		}
	}
	if top, _ := m.take(t, srv); sum(top) != 0 {
		t.Errorf("%d commands for 20 requests of a known-banned client, want 0: %v", sum(top), top)
	}
	// Hammering: each refusal up to ban_after (10) is counted in Redis,
	// then the client is banned and refused locally.
	ip := "192.0.2.150"
	for i := 0; i < 15; i++ {
		s.status(t, "GET", "/echo", ip)
	}
	m.take(t, srv)
	for i := 0; i < 3; i++ {
		if got := s.status(t, "GET", "/echo", ip); got != 403 {
			t.Fatalf("over limit: %d", got)
		}
	}
	if top, _ := m.take(t, srv); sum(top) != 0 {
		t.Errorf("%d commands for 3 requests of a client banned for hammering, want 0: %v", sum(top), top)
	}
	// Without a hammering ban, a client over its limit is refused from the
	// cache after its first refusal, until Retry-After.
	rl, _ := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(2)}, nil)
	s2 := newSetup(t, st, withEntries(detections.Entry{Detection: rl}))
	for i := 0; i < 3; i++ {
		s2.status(t, "GET", "/echo", "192.0.2.151")
	}
	m.take(t, srv)
	for i := 0; i < 5; i++ {
		if got := s2.status(t, "GET", "/echo", "192.0.2.151"); got != 403 {
			t.Fatalf("over limit: %d", got)
		}
	}
	if top, _ := m.take(t, srv); sum(top) != 0 {
		t.Errorf("%d commands for 5 requests of a client known over the limit, want 0: %v", sum(top), top)
	}
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
	// An outage fails every request's stateful detections: the lines are
	// throttled to one per detection per second, the metric counts all.
	perDetection := map[string]int{}
	for _, l := range gws[0].logs.lines("detection_failed") {
		perDetection[fmt.Sprint(l["detection"])]++
	}
	if len(perDetection) == 0 {
		t.Error("no detection_failed logged")
	}
	storeFailures := map[string]float64{}
	mfs, err := gws[0].g.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rampart_detection_errors_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == "store" {
				storeFailures[labels["detection"]] += mt.GetCounter().GetValue()
			}
		}
	}
	for det, n := range perDetection {
		// 8 requests take well under a second; allow one second boundary.
		if n > 2 {
			t.Errorf("%s: %d detection_failed lines for 8 requests in an outage, want at most one per second", det, n)
		}
		if storeFailures[det] != 8 {
			t.Errorf("%s: rampart_detection_errors_total{kind=store} = %v, want 8 (every failure counted)", det, storeFailures[det])
		}
	}
	mr.SetError("")
	// LOADING means "not serving": it opened the circuit; the first request
	// after the cooldown probes and closes it.
	eventually(t, 5*time.Second, func() bool {
		gws[0].status(t, "GET", "/echo", "192.0.2.99")
		return gws[0].g.Store().Healthy()
	}, "the circuit never closed")
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
	rl, err := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(100), Fallback: detections.Fallback{Limit: detections.PerMinute(3)}}, mem)
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

// banOn blocks requests for path and bans their client for blockFor.
type banOn struct {
	name, path string
	blockFor   time.Duration
}

func (b banOn) Name() string { return b.name }

func (b banOn) Inspect(_ context.Context, r *detections.Request) (detections.Verdict, error) {
	if r.Path != b.path {
		return detections.Allow, nil
	}
	v := detections.Block("test")
	v.BlockFor = b.blockFor
	return v, nil
}
