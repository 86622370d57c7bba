package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

// echoed is what the test upstream saw.
type echoed struct {
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	RawQuery string              `json:"raw_query"`
	Header   map[string][]string `json:"header"`
	Body     []byte              `json:"body"` // base64 in JSON: exact bytes
	Host     string              `json:"host"`
	URI      string              `json:"uri"` // the request target as received
}

// newUpstream answers /status/N with N, /slow with a delay, and echoes the
// rest.
func newUpstream(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/status/"):
			var code int
			_, _ = fmtSscan(r.URL.Path[strings.Index(r.URL.Path, "/status/")+len("/status/"):], &code)
			w.WriteHeader(code)
			return
		case r.URL.Path == "/early-hints":
			// 103 Early Hints ahead of the real answer (201).
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("X-Upstream", "yes")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "created")
			return
		case r.URL.Path == "/hangup":
			// The upstream drops the connection without an answer: 502.
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		case r.URL.Path == "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header, Body: body, Host: r.Host, URI: r.RequestURI})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fmtSscan(s string, n *int) (int, error) {
	v := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int(c-'0')
	}
	*n = v
	return 1, nil
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the decoded log records whose msg is msg.
func (l *logBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// setup is a gateway under test with its upstream and store.
type setup struct {
	g        *gateway.Gateway
	srv      *httptest.Server
	upstream *httptest.Server
	logs     *logBuffer
	store    gateway.Store
}

// setupOptions are what options change.
type setupOptions struct {
	cfg     gateway.Config
	entries []detections.Entry // nil: the prototype's chain
	extra   []detections.Entry // appended to the chain
	exempt  *detections.IPSet
	shadow  *gateway.Shadow
	// transport replaces the upstream transport (nil: the gateway's own).
	transport http.RoundTripper
}

type option func(*setupOptions)

func withShadow(sh *gateway.Shadow) option { return func(o *setupOptions) { o.shadow = sh } }

func withTransport(rt http.RoundTripper) option { return func(o *setupOptions) { o.transport = rt } }

func withConfig(f func(*gateway.Config)) option {
	return func(o *setupOptions) { f(&o.cfg) }
}

func withEntries(e ...detections.Entry) option {
	return func(o *setupOptions) { o.entries = append([]detections.Entry{}, e...) }
}

// withExtraEntry appends a detection to the chain.
func withExtraEntry(e detections.Entry) option {
	return func(o *setupOptions) { o.extra = append(o.extra, e) }
}

// withExempt sets the policy's exempt list.
func withExempt(cidrs ...string) option {
	return func(o *setupOptions) {
		s, err := detections.ParseIPSet(cidrs)
		if err != nil {
			panic(err)
		}
		o.exempt = s
	}
}

// prototypeEntries is the prototype's chain: allowed IPs, user agents,
// payload list, rate limit, enumeration.
func prototypeEntries(t testing.TB, st interface {
	detections.Counter
}, allow []string) []detections.Entry {
	t.Helper()
	ip, err := detections.NewIP(detections.IPConfig{Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	ua, _ := detections.NewUserAgent(detections.DefaultUserAgentConfig())
	rl, err := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(5), BanAfter: 10, BanFor: 10 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ecfg := detections.DefaultEnumerationConfig()
	ecfg.KnownRoutes = []string{"/api/endpoint", "/favicon.ico", "/echo", "/echo/*"}
	en, err := detections.NewEnumeration(ecfg, st)
	if err != nil {
		t.Fatal(err)
	}
	pcfg := payload.DefaultConfig()
	pcfg.Patterns = []string{"malicious"}
	pl, err := payload.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	return []detections.Entry{{Detection: ip}, {Detection: ua}, {Detection: rl}, {Detection: en}, {Detection: pl}}
}

// newSetup starts a gateway in front of a fresh upstream. Without entries
// the chain is the prototype's with an open allow list, on a memory store.
func newSetup(t testing.TB, st gateway.Store, opts ...option) *setup {
	t.Helper()
	return newSetupWithEvents(t, st, nil, opts...)
}

// newSetupWithEvents is newSetup with an event sink.
func newSetupWithEvents(t testing.TB, st gateway.Store, events gateway.EventSink, opts ...option) *setup {
	t.Helper()
	if st == nil {
		st = store.NewMemory(store.DefaultMemoryConfig())
	}
	up := newUpstream(t)
	o := setupOptions{cfg: gateway.DefaultConfig()}
	o.cfg.Upstream.Instances = []string{up.URL}
	o.cfg.Replica = "test"
	o.cfg.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, entries, exempt := o.cfg, o.entries, o.exempt
	if entries == nil {
		entries = prototypeEntries(t, st.(detections.Counter), nil)
	}
	entries = append(entries, o.extra...)
	chain, err := detections.NewChain(entries...)
	if err != nil {
		t.Fatal(err)
	}
	pol := &gateway.Policy{Chain: chain, Exempt: exempt, Shadow: o.shadow}
	for _, e := range entries {
		if ip, ok := e.Detection.(*detections.IP); ok {
			pol.AllowListed = ip.AllowListed
		}
	}
	logs := &logBuffer{}
	level := slog.LevelDebug // tests read every line
	if _, bench := t.(*testing.B); bench {
		level = slog.LevelInfo // as in production: allowed requests are not logged
	}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	g, err := gateway.New(cfg, pol, gateway.Options{Store: st, Logger: log, Events: events, Transport: o.transport})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(func() {
		srv.Close()
		g.CloseIdleConnections()
	})
	return &setup{g: g, srv: srv, upstream: up, logs: logs, store: st}
}

// do sends a request from client (via a trusted X-Forwarded-For).
func (s *setup) do(t testing.TB, method, path, client string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// status sends a request and returns its status, draining the body.
func (s *setup) status(t testing.TB, method, path, client string) int {
	t.Helper()
	resp := s.do(t, method, path, client, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decodeEcho(t testing.TB, resp *http.Response) echoed {
	t.Helper()
	var e echoed
	body := readBody(t, resp)
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("upstream reply %q: %v", body, err)
	}
	return e
}

const denied = `{"error":"Access Denied"}` + "\n"
