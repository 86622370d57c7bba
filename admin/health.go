// Package admin is the admin listener: health, readiness, metrics, the
// authenticated /v1 API and pprof. It drives the gateway through its
// exported methods only.
package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampartgw/rampart/gateway"
)

// Health tracks what /healthz and /readyz report.
type Health struct {
	g        *gateway.Gateway
	draining atomic.Bool
	started  time.Time
}

// NewHealth returns the health reporter of g.
func NewHealth(g *gateway.Gateway) *Health { return &Health{g: g, started: time.Now()} }

// Drain makes /readyz fail so load balancers stop sending traffic before
// shutdown.
func (h *Health) Drain() { h.draining.Store(true) }

type readiness struct {
	Status   string `json:"status"` // ready | degraded | draining
	Store    string `json:"store"`  // redis | memory
	StoreOK  bool   `json:"store_ok"`
	Error    string `json:"store_error,omitempty"`
	Replica  string `json:"replica"`
	Uptime   string `json:"uptime"`
	Shared   bool   `json:"shared_state"`
	Breaker  string `json:"circuit"`
	Strict   bool   `json:"strict,omitempty"`
	Upstream string `json:"upstream"`
}

type lastErrorer interface{ LastError() string }

// Readiness computes the current state. A gateway whose store is down is
// "degraded" but still serving (fail-open); /readyz answers 200 for it
// unless ?strict=1, so a Redis outage does not make every replica look dead
// to its load balancer at once.
func (h *Health) readiness(ctx context.Context) (readiness, int) {
	st := h.g.Store()
	r := readiness{Status: "ready", Store: "memory", StoreOK: true, Replica: h.g.Replica(),
		Uptime: time.Since(h.started).Round(time.Second).String(), Shared: st.Shared(), Breaker: "closed", Upstream: h.g.Upstream()}
	if st.Shared() {
		r.Store = "redis"
	}
	if !st.Healthy() {
		r.Breaker = "open"
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := st.Ping(pctx); err != nil {
		r.StoreOK, r.Status, r.Error = false, "degraded", err.Error()
	} else if le, ok := st.(lastErrorer); ok && !st.Healthy() {
		r.StoreOK, r.Status, r.Error = false, "degraded", le.LastError()
	}
	code := http.StatusOK
	if h.draining.Load() {
		r.Status, code = "draining", http.StatusServiceUnavailable
	}
	return r, code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Register adds /healthz, /readyz and /metrics to mux.
func (h *Health) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd, code := h.readiness(r.Context())
		if r.URL.Query().Get("strict") == "1" && rd.Status != "ready" {
			rd.Strict, code = true, http.StatusServiceUnavailable
		}
		writeJSON(w, code, rd)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.g.Metrics().Registry, promhttp.HandlerOpts{}))
}
