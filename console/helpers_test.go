package console_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/admin"
	"github.com/rampartgw/rampart/console"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

const testToken = "console-test-token-0123456789"

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventLog is what both event logs are to the tests.
type eventLog interface {
	Emit(record.Event)
	Run(ctx context.Context)
	Query(ctx context.Context, q record.EventQuery) ([]record.Event, error)
}

// harness is a gateway (a payload detection that blocks "malicious") in
// front of a test upstream, with its admin listener serving the console,
// the monitor running, on a memory store or on Redis.
type harness struct {
	g       *gateway.Gateway
	st      console.Store
	events  eventLog
	mon     *console.Monitor
	con     *console.Console
	proxy   *httptest.Server
	admin   *httptest.Server
	logs    *logBuffer
	cfg     console.Config
	running any
}

type harnessOpts struct {
	redisAddr string // "": memory store; else a Redis at this address
	token     string
	replica   string
	cfg       *console.Config
	now       func() time.Time
	running   any
	noMonitor bool // do not run the monitor (the console off, for benchmarks)
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	if o.replica == "" {
		o.replica = "replica-a"
	}
	h := &harness{logs: &logBuffer{}}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	m := gateway.NewMetrics()
	var gst gateway.Store
	if o.redisAddr == "" {
		mem := store.NewMemory(store.DefaultMemoryConfig())
		gst, h.st = mem, mem
		h.events = store.NewMemoryEvents(10_000, m)
	} else {
		cfg := storetest.Config("redis://" + o.redisAddr)
		cfg.Replica = o.replica
		r, err := store.NewRedis(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		gst, h.st = r, r
		h.events = r.Events(store.EventsConfig{Enabled: true, FlushInterval: 20 * time.Millisecond}, m, log)
	}
	pcfg := payload.DefaultConfig()
	pcfg.Patterns = []string{"malicious"}
	pl, err := payload.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := detections.NewChain(detections.Entry{Detection: pl})
	if err != nil {
		t.Fatal(err)
	}
	gcfg := gateway.DefaultConfig()
	gcfg.Upstream.Instances = []string{up.URL}
	gcfg.Replica, gcfg.TrustedProxies = o.replica, []string{"127.0.0.1/32"}
	g, err := gateway.New(gcfg, &gateway.Policy{Chain: chain}, gateway.Options{Store: gst, Metrics: m, Events: h.events, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	h.cfg = console.DefaultConfig()
	h.cfg.Heartbeat, h.cfg.FleetRetention = 200*time.Millisecond, time.Minute
	if o.cfg != nil {
		h.cfg = *o.cfg
	}
	h.running = o.running
	h.mon, err = console.NewMonitor(console.MonitorOptions{Gateway: g, Store: h.st, Events: h.events, Version: "test-1.0",
		ConfigHash: func() string { return "abc123" }, Config: h.cfg, Logger: log, Now: o.now})
	if err != nil {
		t.Fatal(err)
	}
	var running func() any
	if o.running != nil {
		running = func() any { return o.running }
	}
	h.con, err = console.New(console.Options{Gateway: g, Token: o.token, Store: h.st, Events: h.events, Monitor: h.mon,
		Config: h.cfg, Running: running, Logger: log, Now: o.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.events.Run(ctx) })
	if !o.noMonitor {
		wg.Go(func() { h.mon.Run(ctx) })
	}
	wg.Go(func() { g.Run(ctx) })
	h.proxy = httptest.NewServer(g.Handler())
	mux := http.NewServeMux()
	health := admin.NewHealth(g)
	health.Register(mux)
	var el admin.EventLog = h.events
	admin.New(g, health, h.st.(admin.Store), el, o.token, log).Register(mux)
	h.con.Register(mux)
	h.admin = httptest.NewServer(mux)
	t.Cleanup(func() {
		h.admin.Close()
		h.proxy.Close()
		g.CloseIdleConnections()
		cancel()
		wg.Wait()
	})
	return h
}

// request sends a request through the gateway from client (a trusted
// X-Forwarded-For) and returns the status.
func (h *harness) request(t testing.TB, path, client string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", h.proxy.URL+path, nil)
	req.Header.Set("X-Forwarded-For", client)
	req.Header.Set("User-Agent", "console-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects (the tests look at them).
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type page struct {
	code   int
	body   string
	header http.Header
}

func get(t *testing.T, c *http.Client, u string) page {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, string(b), resp.Header}
}

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr ...string) page {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, string(b), resp.Header}
}

// login logs c in with token and reports the response.
func login(t *testing.T, c *http.Client, h *harness, token string) page {
	t.Helper()
	return post(t, c, h.admin.URL+"/console/login", url.Values{"token": {token}, "next": {"/console/bans"}})
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf reads the CSRF token from a page.
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page")
	}
	return m[1]
}

type gatewayTarget = gateway.Target
