package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

// setup is a gateway with the prototype's chain in front of a test
// upstream (which answers /status/N with N), on a memory store.
type setup struct {
	g      *gateway.Gateway
	srv    *httptest.Server
	events *store.MemoryEvents
}

func newSetup(t *testing.T, st *store.Memory) *setup {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code int
		if n, _ := fmtStatus(r.URL.Path); n > 0 {
			code = n
		}
		if code != 0 {
			w.WriteHeader(code)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	ip, _ := detections.NewIP(detections.IPConfig{})
	ua, _ := detections.NewUserAgent(detections.DefaultUserAgentConfig())
	rl, _ := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(5), BanAfter: 10, BanFor: 10 * time.Minute}, nil)
	en, _ := detections.NewEnumeration(detections.DefaultEnumerationConfig(), st)
	pcfg := payload.DefaultConfig()
	pcfg.Patterns = []string{"malicious"}
	pl, err := payload.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := detections.NewChain(detections.Entry{Detection: ip}, detections.Entry{Detection: ua},
		detections.Entry{Detection: rl}, detections.Entry{Detection: en}, detections.Entry{Detection: pl})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.DefaultConfig()
	cfg.Upstream.Instances, cfg.Replica, cfg.TrustedProxies = []string{up.URL}, "test", []string{"127.0.0.1/32"}
	m := gateway.NewMetrics()
	events := store.NewMemoryEvents(1000, m)
	g, err := gateway.New(cfg, &gateway.Policy{Chain: chain}, gateway.Options{Store: st, Metrics: m, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(func() { srv.Close(); g.CloseIdleConnections() })
	return &setup{g: g, srv: srv, events: events}
}

// fmtStatus reads N from a path containing /status/N.
func fmtStatus(p string) (int, bool) {
	const marker = "/status/"
	for i := 0; i+len(marker) <= len(p); i++ {
		if p[i:i+len(marker)] == marker {
			n := 0
			for _, c := range p[i+len(marker):] {
				if c < '0' || c > '9' {
					break
				}
				n = n*10 + int(c-'0')
			}
			return n, true
		}
	}
	return 0, false
}

// status sends a request from client (via a trusted X-Forwarded-For).
func (s *setup) status(t *testing.T, method, path, client string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
