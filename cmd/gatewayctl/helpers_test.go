package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/admin"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

const testToken = "test-token-s3cret"

// clock is the store's time in golden tests. Ban times come from the store's
// clock and TIME LEFT from the ttl_seconds the API computes with it, so
// freezing it makes every ban column exact. Events carry their own times,
// which the tests choose.
var clock = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is the real admin API (gateway.Admin on a gateway with the
// in-memory store and event log) served by httptest.
type fixture struct {
	url    string
	store  *store.Memory
	events *store.MemoryEvents
	gw     *gateway.Gateway
}

type fixtureOptions struct {
	token    string // "" → testToken; "-" → none: the API is disabled
	now      func() time.Time
	chain    []detections.Entry
	noEvents bool // the event log is disabled (events.enabled: false)
	// adminStore wraps the store the admin API sees (outage tests).
	adminStore func(admin.Store) admin.Store
	// wrap wraps the admin listener's handler (outage tests).
	wrap func(http.Handler) http.Handler
}

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	mcfg := store.DefaultMemoryConfig()
	mcfg.Now = o.now
	st := store.NewMemory(mcfg)
	chain, err := detections.NewChain(o.chain...)
	if err != nil {
		t.Fatal(err)
	}
	metrics := gateway.NewMetrics()
	evlog := store.NewMemoryEvents(1000, metrics)
	cfg := gateway.DefaultConfig()
	cfg.Replica = "replica-a"
	opts := gateway.Options{Store: st, Metrics: metrics, Clock: o.now}
	var adminEvents admin.EventLog
	if !o.noEvents {
		opts.Events, adminEvents = evlog, evlog
	}
	g, err := gateway.New(cfg, &gateway.Policy{Chain: chain}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var ast admin.Store = st
	if o.adminStore != nil {
		ast = o.adminStore(st)
	}
	token := o.token
	switch token {
	case "":
		token = testToken
	case "-":
		token = ""
	}
	mux := http.NewServeMux()
	health := admin.NewHealth(g)
	health.Register(mux)
	admin.New(g, health, ast, adminEvents, token, slog.New(slog.DiscardHandler)).Register(mux)
	var h http.Handler = mux
	if o.wrap != nil {
		h = o.wrap(mux)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{url: srv.URL, store: st, events: evlog, gw: g}
}

// result is what one gatewayctl run did.
type result struct {
	code           int
	stdout, stderr string
}

// run runs gatewayctl against f with the test token in the environment.
func (f *fixture) run(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, map[string]string{envURL: f.url, envToken: testToken}, args...)
}

func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := run(t.Context(), args, getenv, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// request sends one request through the gateway's request path (not the
// admin API) from ip.
func (f *fixture) request(t *testing.T, ip, method, target string) int {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = ip + ":40000"
	rec := httptest.NewRecorder()
	f.gw.Handler().ServeHTTP(rec, req)
	return rec.Code
}

// blockPath is a detection that blocks one path, naming a rule and a
// location: enough to make the gateway record real request_blocked events.
type blockPath struct{ name, path string }

func (d blockPath) Name() string { return d.name }

func (d blockPath) Inspect(_ context.Context, r *detections.Request) (detections.Verdict, error) {
	if r.Path != d.path {
		return detections.Allow, nil
	}
	v := detections.Block("test_block")
	v.Rule, v.Location = "rule_1", "path"
	return v, nil
}

// failingStore is the admin API's store during a Redis outage.
type failingStore struct{ admin.Store }

var errOutage = errors.New("dial tcp 10.0.0.9:6379: connect: connection refused")

func (failingStore) ListBans(context.Context, int) ([]record.Ban, error) {
	return nil, errOutage
}

func (failingStore) GetBan(context.Context, string) (record.Ban, bool, error) {
	return record.Ban{}, false, errOutage
}

// golden compares got with testdata/name.golden byte for byte; with
// -update it rewrites the file instead.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got:\n%s--- want:\n%s", path, got, want)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, cond, "%s", what)
}

func countLines(s, substr string) int {
	n := 0
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
