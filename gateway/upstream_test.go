package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampartgw/rampart/config"
	"github.com/rampartgw/rampart/gateway"
)

// poolBackend is a real upstream instance on loopback that counts what it
// received.
type poolBackend struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newPoolBackend(t testing.TB, h http.HandlerFunc) *poolBackend {
	t.Helper()
	b := &poolBackend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != "rampart-health-check" {
			b.hits.Add(1)
		}
		if h == nil {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
			return
		}
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// label is the instance's metric label (host:port).
func (b *poolBackend) label() string { return strings.TrimPrefix(b.srv.URL, "http://") }

// deadInstance returns the URL of a loopback port nothing listens on any
// more (connecting is refused).
func deadInstance(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// poolObs records what a pool observed, by "instance code".
type poolObs struct {
	mu sync.Mutex
	m  map[string]int
}

func (o *poolObs) ObserveUpstream(route, instance, code string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]int{}
	}
	o.m[route+" "+instance+" "+code]++
}

func (o *poolObs) count(route, instance, code string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[route+" "+instance+" "+code]
}

// poolLogs collects a pool's JSON log records.
type poolLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *poolLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// records returns the records whose msg is msg.
func (l *poolLogs) records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// upstreamCfg returns the defaults with these instances.
func upstreamCfg(instances ...string) gateway.UpstreamConfig {
	c := gateway.DefaultUpstreamConfig()
	c.Instances = instances
	return c
}

type testPool struct {
	*gateway.Pool
	obs  *poolObs
	logs *poolLogs
	tr   *http.Transport
}

// newTestPool builds a pool over a real transport of its own.
func newTestPool(t testing.TB, cfg gateway.UpstreamConfig) *testPool {
	t.Helper()
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		ResponseHeaderTimeout: 5 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	tp := &testPool{obs: &poolObs{}, logs: &poolLogs{}, tr: tr}
	log := slog.New(slog.NewJSONHandler(tp.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := gateway.NewPool("api", cfg, tr, tp.obs, log)
	if err != nil {
		t.Fatal(err)
	}
	tp.Pool = p
	return tp
}

// run starts the pool's health checks until the test ends.
func (tp *testPool) run(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tp.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

// send sends one request through the pool; the body is read and closed.
func (tp *testPool) send(ctx context.Context, method, body string, hdr ...string) (int, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body) // sets GetBody: replayable
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://placeholder.invalid/api/x", rd)
	if err != nil {
		return 0, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := tp.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (tp *testPool) status(t testing.TB, label string) gateway.InstanceStatus {
	t.Helper()
	for _, s := range tp.Status() {
		if s.Instance == label {
			return s
		}
	}
	t.Fatalf("no instance %s in %+v", label, tp.Status())
	return gateway.InstanceStatus{}
}

// poolEventually polls cond every 10ms for up to 5s.
func poolEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestPoolRoundRobinSpreadsEvenly(t *testing.T) {
	bs := []*poolBackend{newPoolBackend(t, nil), newPoolBackend(t, nil), newPoolBackend(t, nil)}
	tp := newTestPool(t, upstreamCfg(bs[0].srv.URL, bs[1].srv.URL, bs[2].srv.URL))
	for range 300 {
		if code, err := tp.send(t.Context(), http.MethodGet, ""); err != nil || code != 200 {
			t.Fatal(code, err)
		}
	}
	for i, b := range bs {
		if n := b.hits.Load(); n != 100 {
			t.Errorf("instance %d got %d of 300", i, n)
		}
		if n := tp.obs.count("api", b.label(), "200"); n != 100 {
			t.Errorf("instance %d observed %d times", i, n)
		}
		if s := tp.status(t, b.label()); s.Requests != 100 || s.InFlight != 0 || s.State != gateway.InstanceHealthy || s.URL != b.srv.URL {
			t.Errorf("status %+v", s)
		}
	}
}

func TestPoolLeastInflightPrefersIdle(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := newPoolBackend(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	})
	fast := newPoolBackend(t, nil)
	cfg := upstreamCfg(slow.srv.URL, fast.srv.URL)
	cfg.Balance = gateway.BalanceLeastInflight
	tp := newTestPool(t, cfg)

	var held sync.WaitGroup
	defer held.Wait()
	defer close(release)
	for i := range 20 {
		done := make(chan error, 1)
		held.Go(func() {
			_, err := tp.send(t.Context(), http.MethodGet, "")
			done <- err
		})
		select {
		case <-arrived: // the slow one holds it from now on
			if s := tp.status(t, slow.label()); s.InFlight != 1 {
				t.Errorf("slow in flight %d", s.InFlight)
			}
		case err := <-done:
			if err != nil {
				t.Fatal(i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("request lost")
		}
	}
	if s, f := slow.hits.Load(), fast.hits.Load(); s != 1 || f != 19 {
		t.Errorf("slow got %d, fast %d: the busy instance was picked again", s, f)
	}
}

func TestPoolKilledInstanceIsEjectedAndGETsRetried(t *testing.T) {
	dying := newPoolBackend(t, nil)
	alive := newPoolBackend(t, nil)
	tp := newTestPool(t, upstreamCfg(dying.srv.URL, alive.srv.URL))
	for range 10 {
		if code, err := tp.send(t.Context(), http.MethodGet, ""); err != nil || code != 200 {
			t.Fatal(code, err)
		}
	}
	dying.srv.Close()
	// Its idle keep-alive connections are gone too (a killed process's
	// kernel resets them); a request racing onto one would be written
	// before failing, and so not be retried.
	tp.tr.CloseIdleConnections()
	for i := range 50 {
		method := []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete}[i%4]
		body := ""
		if method == http.MethodPut {
			body = "replayable"
		}
		if code, err := tp.send(t.Context(), method, body); err != nil || code != 200 {
			t.Fatalf("%s after the kill: %d %v", method, code, err)
		}
	}
	s := tp.status(t, dying.label())
	if s.State != gateway.InstanceEjected || s.LastError != "connection_refused" || s.Ejections != 1 || time.Until(s.EjectedUntil) < 20*time.Second {
		t.Errorf("killed instance %+v", s)
	}
	if n := tp.obs.count("api", dying.label(), gateway.UpstreamCodeError); n != 3 {
		t.Errorf("%d connect errors observed, want 3 (then ejected)", n)
	}
	if n := alive.hits.Load(); n != 55 {
		t.Errorf("the live instance got %d, want 5 + 50", n)
	}
	if recs := tp.logs.records("upstream_ejected"); len(recs) != 1 || recs[0]["instance"] != dying.label() || recs[0]["reason"] != "connect_errors" {
		t.Errorf("ejection logs %v", recs)
	}
}

// breaker reads the request (body included), counts it, and drops the
// connection without answering.
func breaker(count *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		count.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

func TestPoolNeverRetriesWhatWasSent(t *testing.T) {
	cases := []struct {
		name, method, body string
		hdr                []string
		slow               bool
	}{
		{name: "post", method: http.MethodPost, body: `{"pay":1}`},
		{name: "post with idempotency key", method: http.MethodPost, body: `{"pay":1}`, hdr: []string{"Idempotency-Key", "k1"}},
		{name: "get", method: http.MethodGet},
		{name: "get timing out awaiting headers", method: http.MethodGet, slow: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var seen atomic.Int64
			h := breaker(&seen)
			if tc.slow {
				h = func(w http.ResponseWriter, r *http.Request) {
					seen.Add(1)
					select {
					case <-r.Context().Done():
					case <-time.After(5 * time.Second):
					}
				}
			}
			a, b := newPoolBackend(t, h), newPoolBackend(t, h)
			cfg := upstreamCfg(a.srv.URL, b.srv.URL)
			cfg.Retries = 1
			tp := newTestPool(t, cfg)
			tp.tr.ResponseHeaderTimeout = 200 * time.Millisecond
			_, err := tp.send(t.Context(), tc.method, tc.body, tc.hdr...)
			if err == nil {
				t.Fatal("no error")
			}
			if n := seen.Load(); n != 1 {
				t.Errorf("the upstreams saw it %d times, want once", n)
			}
			if n := a.hits.Load() + b.hits.Load(); n != 1 {
				t.Errorf("%d requests arrived", n)
			}
		})
	}
}

func TestPoolRetriesAConnectErrorOnlyWhenIdempotent(t *testing.T) {
	cases := []struct {
		name, method, body string
		hdr                []string
		retried            bool
	}{
		{name: "post", method: http.MethodPost, body: "x"},
		{name: "patch", method: http.MethodPatch, body: "x"},
		{name: "post with idempotency key", method: http.MethodPost, body: "x", hdr: []string{"Idempotency-Key", "k"}, retried: true},
		{name: "post with x-idempotency-key", method: http.MethodPost, body: "x", hdr: []string{"X-Idempotency-Key", "k"}, retried: true},
		{name: "put", method: http.MethodPut, body: "x", retried: true},
		{name: "get", method: http.MethodGet, retried: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			alive := newPoolBackend(t, nil)
			// The dead instance is first: a new pool's first pick.
			tp := newTestPool(t, upstreamCfg(deadInstance(t), alive.srv.URL))
			code, err := tp.send(t.Context(), tc.method, tc.body, tc.hdr...)
			if tc.retried {
				if err != nil || code != 200 || alive.hits.Load() != 1 {
					t.Errorf("not retried: %d %v, %d hits", code, err, alive.hits.Load())
				}
				return
			}
			if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || alive.hits.Load() != 0 {
				t.Errorf("retried: %d %v, %d hits", code, err, alive.hits.Load())
			}
		})
	}
}

func TestPoolUnreplayableBodyIsNotRetried(t *testing.T) {
	alive := newPoolBackend(t, nil)
	tp := newTestPool(t, upstreamCfg(deadInstance(t), alive.srv.URL))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, "http://placeholder.invalid/x", io.NopCloser(strings.NewReader("once")))
	if err != nil {
		t.Fatal(err)
	}
	if req.GetBody != nil {
		t.Fatal("GetBody set")
	}
	if _, err := tp.RoundTrip(req); err == nil || alive.hits.Load() != 0 {
		t.Errorf("a body that cannot be replayed was retried: %v", err)
	}
}

func TestPoolServerErrorBurstEjectsAndHealthChecksBringItBack(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	flaky := newPoolBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	steady := newPoolBackend(t, nil)
	cfg := upstreamCfg(flaky.srv.URL, steady.srv.URL)
	cfg.Eject.ServerErrors, cfg.Eject.Duration, cfg.Eject.MaxDuration = 3, time.Hour, time.Hour
	cfg.Health = gateway.HealthCheckConfig{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 2, ExpectStatus: []string{"200"}}
	tp := newTestPool(t, cfg)

	var got503 int
	for range 20 {
		code, err := tp.send(t.Context(), http.MethodGet, "")
		if err != nil {
			t.Fatal(err)
		}
		if code == 503 {
			got503++ // returned as it is, never retried
		}
	}
	if got503 != 3 || flaky.hits.Load() != 3 || steady.hits.Load() != 17 {
		t.Errorf("%d 503s, flaky %d, steady %d: want 3 then ejected", got503, flaky.hits.Load(), steady.hits.Load())
	}
	s := tp.status(t, flaky.label())
	if s.State != gateway.InstanceEjected || s.LastError != "status 503" || s.Failures != 3 {
		t.Errorf("flaky %+v", s)
	}
	if n := tp.obs.count("api", flaky.label(), "503"); n != 3 {
		t.Errorf("503 observed %d times", n)
	}

	failing.Store(false)
	tp.run(t) // the health checks end the hour-long ejection early
	poolEventually(t, "the health checks to return the instance", func() bool {
		return tp.status(t, flaky.label()).State == gateway.InstanceHealthy
	})
	before := flaky.hits.Load()
	for range 10 {
		if code, err := tp.send(t.Context(), http.MethodGet, ""); err != nil || code != 200 {
			t.Fatal(code, err)
		}
	}
	if n := flaky.hits.Load() - before; n != 5 {
		t.Errorf("the returned instance got %d of 10", n)
	}
	back := tp.logs.records("upstream_returned")
	if len(back) != 1 || back[0]["reason"] != "health_check" {
		t.Errorf("return logs %v", back)
	}
}

func TestPoolActiveHealthChecks(t *testing.T) {
	var sick atomic.Bool
	var checks atomic.Int64
	watched := newPoolBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			checks.Add(1)
			if r.Header.Get("User-Agent") != "rampart-health-check" || r.Method != http.MethodGet {
				t.Errorf("check %s %q", r.Method, r.Header.Get("User-Agent"))
			}
			if sick.Load() {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	other := newPoolBackend(t, nil)
	cfg := upstreamCfg(watched.srv.URL+"/api", other.srv.URL+"/api")
	cfg.Health = gateway.HealthCheckConfig{Path: "/healthz", Interval: 15 * time.Millisecond, Timeout: time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 3, ExpectStatus: []string{"200-299"}}
	tp := newTestPool(t, cfg)
	if s := tp.status(t, watched.label()); !s.Healthy || s.State != gateway.InstanceHealthy {
		t.Fatalf("does not start healthy: %+v", s)
	}
	sick.Store(true)
	tp.run(t)
	poolEventually(t, "unhealthy", func() bool { return tp.status(t, watched.label()).State == gateway.InstanceUnhealthy })
	atCheck := checks.Load()
	poolEventually(t, "more failing checks", func() bool { return checks.Load() > atCheck+5 })
	before := watched.hits.Load()
	for range 10 {
		if code, err := tp.send(t.Context(), http.MethodGet, ""); err != nil || code != 200 {
			t.Fatal(code, err)
		}
	}
	if n := watched.hits.Load() - before; n != 0 {
		t.Errorf("an unhealthy instance got %d requests", n)
	}
	if s := tp.status(t, watched.label()); s.LastError != "health check: status 500" || s.Healthy {
		t.Errorf("status %+v", s)
	}
	sick.Store(false)
	poolEventually(t, "healthy", func() bool { return tp.status(t, watched.label()).State == gateway.InstanceHealthy })
	if n, m := len(tp.logs.records("upstream_unhealthy")), len(tp.logs.records("upstream_healthy")); n != 1 || m != 1 {
		t.Errorf("state changes logged %d and %d times, want once each", n, m)
	}
}

func TestPoolRunWithoutChecksReturnsAtOnce(t *testing.T) {
	tp := newTestPool(t, upstreamCfg(newPoolBackend(t, nil).srv.URL))
	done := make(chan struct{})
	go func() { tp.Run(t.Context()); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run without a health path blocks")
	}
}

func TestPoolPanicMode(t *testing.T) {
	t.Run("all ejected: the upstream's error, fast", func(t *testing.T) {
		cfg := upstreamCfg(deadInstance(t), deadInstance(t))
		cfg.Eject.MaxPercent = 100
		tp := newTestPool(t, cfg)
		for i := range 20 {
			start := time.Now()
			_, err := tp.send(t.Context(), http.MethodGet, "")
			if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 2*time.Second {
				t.Fatalf("request %d: %v after %v", i, err, time.Since(start))
			}
		}
		for _, s := range tp.Status() {
			if s.State != gateway.InstanceEjected {
				t.Errorf("%+v", s)
			}
		}
		if n := len(tp.logs.records("upstream_panic")); n != 1 {
			t.Errorf("panic logged %d times", n)
		}
	})
	t.Run("all failing checks: still served", func(t *testing.T) {
		h := func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				w.WriteHeader(http.StatusNotFound) // a broken check, a working API
			}
		}
		a, b := newPoolBackend(t, h), newPoolBackend(t, h)
		cfg := upstreamCfg(a.srv.URL, b.srv.URL)
		cfg.Health = gateway.HealthCheckConfig{Path: "/healthz", Interval: 10 * time.Millisecond, Timeout: time.Second,
			HealthyThreshold: 1, UnhealthyThreshold: 1, ExpectStatus: []string{"200-399"}}
		tp := newTestPool(t, cfg)
		tp.run(t)
		poolEventually(t, "both unhealthy", func() bool {
			st := tp.Status()
			return st[0].State == gateway.InstanceUnhealthy && st[1].State == gateway.InstanceUnhealthy
		})
		for range 10 {
			if code, err := tp.send(t.Context(), http.MethodGet, ""); err != nil || code != 200 {
				t.Fatal(code, err)
			}
		}
		if a.hits.Load()+b.hits.Load() != 10 {
			t.Errorf("hits %d + %d", a.hits.Load(), b.hits.Load())
		}
	})
}

func TestPoolMaxEjectedPercent(t *testing.T) {
	for _, tc := range []struct{ percent, want int }{{50, 2}, {10, 1}, {100, 4}} {
		t.Run(fmt.Sprint(tc.percent), func(t *testing.T) {
			t.Parallel()
			cfg := upstreamCfg(deadInstance(t), deadInstance(t), deadInstance(t), deadInstance(t))
			cfg.Eject.MaxPercent = tc.percent
			tp := newTestPool(t, cfg)
			for range 40 {
				if _, err := tp.send(t.Context(), http.MethodGet, ""); err == nil {
					t.Fatal("a dead upstream answered")
				}
			}
			ejected := 0
			for _, s := range tp.Status() {
				if s.State == gateway.InstanceEjected {
					ejected++
				}
			}
			if ejected != tc.want {
				t.Errorf("%d of 4 ejected at max_percent %d, want %d", ejected, tc.percent, tc.want)
			}
		})
	}
}

func TestPoolHonoursCancellation(t *testing.T) {
	hung := newPoolBackend(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	spare := newPoolBackend(t, nil)
	tp := newTestPool(t, upstreamCfg(hung.srv.URL, spare.srv.URL))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := tp.send(ctx, http.MethodGet, "")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	if spare.hits.Load() != 0 {
		t.Error("a cancelled request was retried")
	}
	s := tp.status(t, hung.label())
	if s.Failures != 0 || s.InFlight != 0 || tp.obs.count("api", hung.label(), gateway.UpstreamCodeCanceled) != 1 {
		t.Errorf("a client's cancellation counted against the instance: %+v", s)
	}

	gone, stop := context.WithCancel(t.Context())
	stop()
	if _, err := tp.send(gone, http.MethodGet, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: %v", err)
	}
	if hung.hits.Load()+spare.hits.Load() != 1 {
		t.Error("a cancelled request was sent")
	}
}

func TestPoolEjectionDoublesUpToTheCap(t *testing.T) {
	alive := newPoolBackend(t, nil)
	dead := deadInstance(t)
	cfg := upstreamCfg(dead, alive.srv.URL)
	cfg.Eject.ConnectErrors, cfg.Eject.Duration, cfg.Eject.MaxDuration = 1, 40*time.Millisecond, 100*time.Millisecond
	tp := newTestPool(t, cfg)
	label := strings.TrimPrefix(dead, "http://")
	for round := range 4 {
		poolEventually(t, "the ejection to end", func() bool { return tp.status(t, label).State == gateway.InstanceHealthy })
		for tp.status(t, label).State == gateway.InstanceHealthy {
			if _, err := tp.send(t.Context(), http.MethodGet, ""); err != nil {
				t.Fatal(round, err)
			}
		}
	}
	var got []time.Duration
	for _, r := range tp.logs.records("upstream_ejected") {
		got = append(got, time.Duration(r["for"].(float64)))
	}
	want := []time.Duration{40 * time.Millisecond, 80 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ejections %v, want %v", got, want)
	}
	if n := len(tp.logs.records("upstream_returned")); n < 3 {
		t.Errorf("%d returns logged", n)
	}
}

func TestPoolConcurrentRaceClean(t *testing.T) {
	var n atomic.Int64
	flaky := newPoolBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1)%7 == 0 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	bs := []*poolBackend{flaky, newPoolBackend(t, nil), newPoolBackend(t, nil)}
	for _, balance := range []string{gateway.BalanceRoundRobin, gateway.BalanceLeastInflight} {
		t.Run(balance, func(t *testing.T) {
			cfg := upstreamCfg(bs[0].srv.URL, bs[1].srv.URL, bs[2].srv.URL)
			cfg.Balance = balance
			cfg.Eject.ServerErrors, cfg.Eject.Window, cfg.Eject.Duration = 3, 50*time.Millisecond, 20*time.Millisecond
			cfg.Health = gateway.HealthCheckConfig{Path: "/", Interval: 5 * time.Millisecond, Timeout: time.Second,
				HealthyThreshold: 1, UnhealthyThreshold: 2, ExpectStatus: []string{"200-399"}}
			tp := newTestPool(t, cfg)
			tp.run(t)
			const workers, each = 8, 150
			var sent atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						method, body := http.MethodGet, ""
						if (w+i)%3 == 0 {
							method, body = http.MethodPost, "payload"
						}
						code, err := tp.send(t.Context(), method, body)
						if err != nil || (code != 200 && code != 502) {
							t.Errorf("%d %v", code, err)
							return
						}
						sent.Add(1)
						if i%25 == 0 {
							_ = tp.Status()
						}
					}
				})
			}
			wg.Wait()
			var requests uint64
			for _, s := range tp.Status() {
				requests += s.Requests
				if s.InFlight != 0 {
					t.Errorf("in flight left: %+v", s)
				}
			}
			if requests != uint64(sent.Load()) || sent.Load() != workers*each {
				t.Errorf("%d attempts for %d requests", requests, sent.Load())
			}
		})
	}
}

func TestPoolKeepsTheTraceOfTheCaller(t *testing.T) {
	b := newPoolBackend(t, nil)
	tp := newTestPool(t, upstreamCfg(b.srv.URL))
	var got, wrote atomic.Bool
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		GotConn:      func(httptrace.GotConnInfo) { got.Store(true) },
		WroteHeaders: func() { wrote.Store(true) },
	})
	if code, err := tp.send(ctx, http.MethodGet, ""); err != nil || code != 200 {
		t.Fatal(code, err)
	}
	if !got.Load() || !wrote.Load() {
		t.Error("the caller's trace hooks (the ReverseProxy's own) were not called")
	}
}

func TestPoolSetsOnlySchemeAndHost(t *testing.T) {
	var seen atomic.Value
	b := newPoolBackend(t, func(w http.ResponseWriter, r *http.Request) { seen.Store(r.Host + " " + r.URL.RequestURI()) })
	tp := newTestPool(t, upstreamCfg(b.srv.URL+"/base"))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://placeholder.invalid/base/p?q=1", nil)
	req.Host = "" // as the ReverseProxy's SetURL leaves it
	orig := req.URL.String()
	resp, err := tp.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := seen.Load(); got != b.label()+" /base/p?q=1" {
		t.Errorf("upstream saw %v", got)
	}
	if req.URL.String() != orig {
		t.Errorf("the caller's request changed: %s", req.URL)
	}
}

func TestUpstreamConfigValidate(t *testing.T) {
	ok := upstreamCfg("http://a:5000", "https://b")
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*gateway.UpstreamConfig)
		want []string
	}{
		{"no instances", func(c *gateway.UpstreamConfig) { c.Instances = nil }, []string{"instances: at least one"}},
		{"bad urls", func(c *gateway.UpstreamConfig) {
			c.Instances = []string{"ftp://a", "http://", "http://u:secret@c", "http://d/?x=1", "http://e#f", "http://f:0", "http://a:5000/other", "http://%zz"}
		}, []string{"instances[0]: \"ftp://a\" must be an http", "instances[1]: \"http:\" has no host", "instances[2]: \"http://u:xxxxx@c\" holds credentials",
			"instances[3]: \"http://d/?x=1\" has a query", "instances[4]: \"http://e#f\" has a fragment", "instances[5]: \"http://f:0\": port 0",
			"instances[7]: not a URL"}},
		{"paths differ", func(c *gateway.UpstreamConfig) { c.Instances = []string{"http://a/v1", "http://b/v1/", "http://c/v2"} },
			[]string{`instances[2]: path "/v2" differs from instances[0]'s "/v1"`, `instances[1]: path "/v1/" differs`}},
		{"duplicates", func(c *gateway.UpstreamConfig) { c.Instances = []string{"http://A:80", "http://a"} }, []string{"instances[1]: a:80 is instances[0] again"}},
		{"balance and retries", func(c *gateway.UpstreamConfig) { c.Balance, c.Retries = "random", -1 },
			[]string{`balance: "random" must be round_robin or least_inflight`, "retries: -1 must be >= 0"}},
		{"health", func(c *gateway.UpstreamConfig) {
			c.Health = gateway.HealthCheckConfig{Path: "healthz", ExpectStatus: []string{"200-99", "abc"}}
		}, []string{"health.path", "health.interval: 0s must be > 0", "health.timeout", "health.healthy_threshold", "health.unhealthy_threshold",
			"health.expect_status[0]", "health.expect_status[1]"}},
		{"eject", func(c *gateway.UpstreamConfig) {
			c.Eject = gateway.EjectConfig{ConnectErrors: -1, ServerErrors: 2, Duration: time.Minute, MaxDuration: time.Second, MaxPercent: 101}
		}, []string{"eject.connect_errors", "eject.window", "eject.max_duration", "eject.max_percent"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := upstreamCfg("http://a:5000")
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("valid")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("a password in an error: %v", err)
			}
			if _, err := gateway.NewPool("r", c, http.DefaultTransport, nil, nil); err == nil {
				t.Error("NewPool accepted it")
			}
		})
	}
	off := upstreamCfg("http://a")
	off.Eject = gateway.EjectConfig{}
	off.Health = gateway.HealthCheckConfig{}
	if err := off.Validate(); err != nil {
		t.Errorf("everything off: %v", err)
	}
}

func TestUpstreamConfigRedactedAndZero(t *testing.T) {
	if !(gateway.UpstreamConfig{}).IsZero() || gateway.DefaultUpstreamConfig().IsZero() {
		t.Error("IsZero")
	}
	c := upstreamCfg("http://u:pw@a:1", "http://b:2")
	if got := c.Redacted(); got != "http://u:xxxxx@a:1,http://b:2" {
		t.Errorf("redacted %q", got)
	}
}

// upstreamFile is a file with a top-level upstream and routes.
type upstreamFile struct {
	Upstream gateway.UpstreamConfig `yaml:"upstream"`
	Routes   []struct {
		Name     string                 `yaml:"name"`
		Upstream gateway.UpstreamConfig `yaml:"upstream"`
	} `yaml:"routes"`
}

func defaultUpstreamFile() *upstreamFile {
	return &upstreamFile{Upstream: upstreamCfg("http://127.0.0.1:5000")}
}

func TestUpstreamYAMLForms(t *testing.T) {
	src := `upstream: [http://a:5000, http://b:5000]
routes:
  - name: one
    upstream: http://c:5000
  - name: two
    upstream:
      instances: [http://d:1, http://e:1]
      balance: least_inflight
      retries: 0
      health: {path: /healthz, interval: 5s}
  - name: three
`
	f := defaultUpstreamFile()
	f.Upstream.Retries = 3 // kept: the shorthand sets the instances only
	doc, err := config.Decode("u.yaml", []byte(src), f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.Upstream.Instances, " ") != "http://a:5000 http://b:5000" || f.Upstream.Retries != 3 {
		t.Errorf("top %+v", f.Upstream)
	}
	one, two, three := f.Routes[0].Upstream, f.Routes[1].Upstream, f.Routes[2].Upstream
	want := upstreamCfg("http://c:5000")
	if fmt.Sprintf("%#v", one) != fmt.Sprintf("%#v", want) {
		t.Errorf("a route's scalar gets the defaults: %+v", one)
	}
	if strings.Join(two.Instances, " ") != "http://d:1 http://e:1" || two.Balance != gateway.BalanceLeastInflight || two.Retries != 0 ||
		two.Health.Path != "/healthz" || two.Health.Interval != 5*time.Second || two.Health.Timeout != 2*time.Second || two.Eject.ConnectErrors != 3 {
		t.Errorf("a route's mapping over the defaults: %+v", two)
	}
	if !three.IsZero() {
		t.Errorf("absent: %+v", three)
	}
	for _, u := range []gateway.UpstreamConfig{f.Upstream, one, two} {
		if err := u.Validate(); err != nil {
			t.Error(err)
		}
	}
	if doc.Line("routes[1].upstream.balance") != 8 || doc.Line("routes[0].upstream") != 4 {
		t.Errorf("lines %v", doc.Keys())
	}

	for _, tc := range []struct{ name, src, want string }{
		{"unknown key", "upstream:\n  instances: [http://a]\n  balanse: round_robin\n", `u.yaml:3: upstream.balanse: unknown key (did you mean "upstream.balance"?)`},
		{"nested unknown key", "upstream:\n  health:\n    pth: /x\n", `u.yaml:3: upstream.health.pth: unknown key (did you mean "upstream.health.path"?)`},
		{"number", "upstream: 5000\n", `u.yaml:1: upstream: want a URL, a list of URLs or a mapping`},
		{"list of mappings", "upstream:\n  - http://a\n  - {url: http://b}\n", `u.yaml:2: upstream: instances[1]: want a URL`},
		{"bad value", "routes:\n  - upstream: {retries: many}\n", `u.yaml:2: routes[0].upstream.retries`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Decode("u.yaml", []byte(tc.src), defaultUpstreamFile())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}

	cleared := defaultUpstreamFile()
	if _, err := config.Decode("u.yaml", []byte("upstream: \"\"\n"), cleared); err != nil || !cleared.Upstream.IsZero() {
		t.Errorf("an empty upstream clears it: %+v %v", cleared.Upstream, err)
	}
	env := defaultUpstreamFile()
	if err := config.Set(env, "upstream", "http://x:1, http://y:1"); err != nil || strings.Join(env.Upstream.Instances, " ") != "http://x:1 http://y:1" {
		t.Errorf("environment list: %+v %v", env.Upstream, err)
	}
	if err := config.Set(env, "upstream", "http://z:1"); err != nil || strings.Join(env.Upstream.Instances, " ") != "http://z:1" || env.Upstream.Balance != gateway.BalanceRoundRobin {
		t.Errorf("environment URL: %+v %v", env.Upstream, err)
	}
	keys := " " + strings.Join(config.KeyPaths(upstreamFile{}), " ") + " "
	for _, k := range []string{"upstream.instances", "upstream.health.path", "upstream.eject.max_percent", "routes[].upstream.balance"} {
		if !strings.Contains(keys, " "+k+" ") {
			t.Errorf("KeyPaths lacks %s: %s", k, keys)
		}
	}
}

// fakeUpstream answers every request at once, in memory.
type fakeUpstream struct{}

func (fakeUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
}

type nopObserver struct{}

func (nopObserver) ObserveUpstream(_, _, _ string) {}

func BenchmarkPoolRoundTrip(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://placeholder.invalid/api/items?id=1", nil)
	// The ReverseProxy puts a trace of its own in the context.
	traced := req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(int, textproto.MIMEHeader) error { return nil },
	}))
	instances := []string{"http://10.0.0.1:5000", "http://10.0.0.2:5000", "http://10.0.0.3:5000"}
	pool := func(b *testing.B, balance string) *gateway.Pool {
		cfg := upstreamCfg(instances...)
		cfg.Balance = balance
		p, err := gateway.NewPool("bench", cfg, fakeUpstream{}, nopObserver{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	run := func(b *testing.B, rt http.RoundTripper, r *http.Request) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := rt.RoundTrip(r)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	b.Run("fake_alone", func(b *testing.B) { run(b, fakeUpstream{}, req) })
	b.Run("round_robin", func(b *testing.B) { run(b, pool(b, gateway.BalanceRoundRobin), req) })
	b.Run("least_inflight", func(b *testing.B) { run(b, pool(b, gateway.BalanceLeastInflight), req) })
	b.Run("round_robin_proxy_trace", func(b *testing.B) { run(b, pool(b, gateway.BalanceRoundRobin), traced) })
	b.Run("parallel_least_inflight", func(b *testing.B) {
		p := pool(b, gateway.BalanceLeastInflight)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := p.RoundTrip(traced)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	})
}
