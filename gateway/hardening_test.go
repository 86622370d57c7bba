package gateway_test

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
	"github.com/rampartgw/rampart/testutil/redistest"
)

// TestRequestTargetForwardedAsReceived: the upstream gets the query string
// exactly as the client sent it, including pairs Go's parser rejects, and
// the payload detection reads every pair the upstream may read.
func TestRequestTargetForwardedAsReceived(t *testing.T) {
	s := newSetup(t, nil)
	for i, q := range []string{"a=1;b=2", "a=1&q=%zz", "x=%ZZ%2", "a=1&&b=;c", "=v&k=", "a=%E2%82%AC"} {
		e := decodeEcho(t, s.do(t, "GET", "/echo?"+q, "192.0.2."+strconv.Itoa(100+i), nil))
		if e.RawQuery != q {
			t.Errorf("query %q reached the upstream as %q", q, e.RawQuery)
		}
	}
	// What a lenient upstream reads is what is inspected: a pair after ';'
	// and a value after an undecodable escape.
	for i, q := range []string{"a=1;q=malicious", "a=%zz&q=malicious", "q=%zzmalicious"} {
		if got := s.status(t, "GET", "/echo?"+q, "192.0.2."+strconv.Itoa(120+i)); got != 403 {
			t.Errorf("query %q: %d, want 403", q, got)
		}
	}
	// An empty query is kept: "/echo?" stays "/echo?".
	if e := decodeEcho(t, s.do(t, "GET", "/echo?", "192.0.2.82", nil)); e.URI != "/echo?" {
		t.Errorf("/echo? reached the upstream as %q", e.URI)
	}
}

// TestIdentityHeadersNeverPassThrough: headers that name the client reach
// the upstream only as the gateway sets them, whatever spelling the client
// uses; a trusted proxy's configured single-valued header is the one kept.
func TestIdentityHeadersNeverPassThrough(t *testing.T) {
	spoofed := []string{"True-Client-IP", "CF-Connecting-IP", "X-Client-IP", "X-Cluster-Client-IP", "X-Originating-IP",
		"Client-IP", "Forwarded", "X_Forwarded_For", "X-Forwarded_For", "X_Real_IP", "X-Forwarded-Port", "X-Forwarded-Server",
		"Fastly-Client-IP", "X-Real-Ip", "X-Forwarded-Host", "x_forwarded_host"}
	hdr := func() []string {
		var h []string
		for _, n := range spoofed {
			h = append(h, n, "6.6.6.6")
		}
		return h
	}
	t.Run("untrusted peer", func(t *testing.T) {
		s := newSetup(t, nil, withConfig(func(c *gateway.Config) { c.TrustedProxies = nil }))
		e := decodeEcho(t, s.do(t, "GET", "/echo", "", nil, hdr()...))
		for name, vs := range e.Header {
			for _, v := range vs {
				if strings.Contains(v, "6.6.6.6") {
					t.Errorf("%s: %q reached the upstream", name, v)
				}
			}
		}
		if got := e.Header["X-Forwarded-For"]; len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("X-Forwarded-For %v", got)
		}
	})
	t.Run("trusted proxy with CF-Connecting-IP", func(t *testing.T) {
		s := newSetup(t, nil, withConfig(func(c *gateway.Config) { c.ClientIPHeader = "CF-Connecting-IP" }))
		h := append(hdr(), "Cf-Connecting-Ip", "203.0.113.5")
		e := decodeEcho(t, s.do(t, "GET", "/echo", "", nil, h...))
		if got := e.Header["Cf-Connecting-Ip"]; len(got) != 1 || got[0] != "203.0.113.5" {
			t.Errorf("configured header from a trusted proxy: %v", got)
		}
		if got := e.Header["X-Forwarded-For"]; len(got) != 1 || got[0] != "203.0.113.5" {
			t.Errorf("X-Forwarded-For %v", got)
		}
		for name, vs := range e.Header {
			if name != "Cf-Connecting-Ip" && strings.Contains(strings.Join(vs, ","), "6.6.6.6") {
				t.Errorf("%s: %v reached the upstream", name, vs)
			}
		}
	})
}

// TestStoreWaitBoundedUnderStall: with redis-server stopped (SIGSTOP) and
// many requests in flight, no request waits on the store longer than
// redis.timeout plus a small margin: calls do not queue behind the ones
// already waiting.
func TestStoreWaitBoundedUnderStall(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	r := redistest.StartRedis(t, redistest.Options{})
	cfg := storetest.Config(r.URL())
	cfg.Timeout = 200 * time.Millisecond
	cfg.BreakerFailures = 1 << 20 // keep calling: the bound must hold per call, not thanks to the breaker
	st, err := store.NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	q := &detections.StateQuery{RateLimit: detections.PerMinute(1000)}
	if _, err := st.Check(t.Context(), "192.0.2.1", q); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	defer r.Resume()
	var (
		mu    sync.Mutex
		worst time.Duration
		fails int
	)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for range 5 {
				start := time.Now()
				_, err := st.Check(t.Context(), "192.0.2."+strconv.Itoa(g%250+1), q)
				d := time.Since(start)
				mu.Lock()
				worst = max(worst, d)
				if err != nil {
					fails++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("64 concurrent callers x 5 calls with Redis stopped: worst wait %v (timeout %v), %d failed", worst, cfg.Timeout, fails)
	if fails != 64*5 {
		t.Errorf("%d of %d calls failed with Redis stopped", fails, 64*5)
	}
	// The margin is for a loaded 2-core CI box (64 goroutines waking at
	// once under -race); before the per-call bound, calls queued behind the
	// stalled ones waited five timeouts and more.
	if worst > 2*cfg.Timeout+100*time.Millisecond {
		t.Errorf("a call waited %v on a stalled store, timeout %v", worst, cfg.Timeout)
	}
}

// TestFailClosedGrace: with fail-closed policies, a store hiccup shorter
// than bans.store_error_grace is bridged by the local fallback limiter and
// the ban cache (no 503); a longer outage answers 503.
func TestFailClosedGrace(t *testing.T) {
	mr := miniredis.RunT(t)
	st := storetest.NewOn(t, mr.Addr())
	mem := store.NewMemory(store.DefaultMemoryConfig())
	rl, err := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(1000)}, mem)
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, st, withEntries(detections.Entry{Detection: rl, OnStoreError: detections.StoreBlock}),
		withConfig(func(c *gateway.Config) {
			c.Bans.OnStoreError, c.Bans.StoreErrorGrace = detections.StoreBlock, 400*time.Millisecond
		}))
	if got := s.status(t, "GET", "/echo", "192.0.2.90"); got != 200 {
		t.Fatalf("before: %d", got)
	}
	mr.SetError("LOADING hiccup")
	hiccup := time.Now()
	codes := map[int]int{}
	for time.Since(hiccup) < 200*time.Millisecond {
		codes[s.status(t, "GET", "/echo", "192.0.2.90")]++
	}
	mr.SetError("")
	if codes[503] != 0 || codes[200] == 0 {
		t.Errorf("a 200 ms hiccup under a 400 ms grace: %v", codes)
	}
	// Recovered: the first calls close the breaker again.
	eventually(t, 5*time.Second, func() bool { return s.status(t, "GET", "/echo", "192.0.2.90") == 200 && s.g.Store().Healthy() }, "no recovery")
	mr.SetError("LOADING outage")
	outage := time.Now()
	for time.Since(outage) < 500*time.Millisecond {
		s.status(t, "GET", "/echo", "192.0.2.91")
	}
	if got := s.status(t, "GET", "/echo", "192.0.2.91"); got != 503 {
		t.Errorf("after the grace period: %d, want 503", got)
	}
	mr.SetError("")
}
