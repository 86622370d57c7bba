package gateway

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampartgw/rampart/detections"
)

// Metric and label names are an API for dashboards: changing one is a
// breaking change. No label ever carries a client IP or a raw path.
const metricNamespace = "rampart"

// Metrics holds the gateway's Prometheus collectors on their own registry.
// Every label set known at start exists from the start (at zero), so a
// dashboard or an alert never waits for a first occurrence.
type Metrics struct {
	Registry *prometheus.Registry

	requests         *prometheus.CounterVec
	decisions        *prometheus.CounterVec
	bans             *prometheus.CounterVec
	blocklistHits    *prometheus.CounterVec
	detectionErrors  *prometheus.CounterVec
	storeErrors      *prometheus.CounterVec
	storeLatency     prometheus.Histogram
	circuitOpen      prometheus.Gauge
	upstreamErrors   *prometheus.CounterVec
	upstreamRequests *prometheus.CounterVec
	limits           *prometheus.CounterVec
	shadowDecisions  *prometheus.CounterVec
	// upstreamBound caches upstreamRequests' children: one label lookup
	// per new (route, instance, code), none per request.
	upstreamMu      sync.RWMutex
	upstreamBound   map[upstreamLabels]prometheus.Counter
	upstreamLatency prometheus.Histogram
	requestDuration prometheus.Histogram
	eventsWritten   prometheus.Counter
	eventsDropped   *prometheus.CounterVec
	reloads         *prometheus.CounterVec
	tlsHandshakes   *prometheus.CounterVec

	// Pre-bound children for the per-request path (no label lookups).
	byResult              [nResults]prometheus.Counter
	hitsLocal, hitsStored prometheus.Counter
}

// NewMetrics registers every collector, plus the Go runtime and process
// collectors, on a new registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricNamespace, Name: name, Help: help}, labels)
	}
	m.requests = counter("requests_total", "Requests handled, by result: proxied, blocked (by a detection), banned (client on the blocklist or known over its limit), too_large (413), header_too_large (431), bad_request (400), timeout (408), unavailable (503: store down, fail-closed), upstream_error (502/504), aborted (the response broke off mid-stream), internal_error (500: a recovered panic), no_route (404: no route matches and there is no top-level upstream).", "result")
	m.decisions = counter("decisions_total", "Non-allow decisions of detections, by detection, mode (enforce|monitor) and action (block|would_block).", "detection", "mode", "action")
	m.bans = counter("bans_total", "Clients added to the blocklist by this replica, by detection (admin for operator bans).", "detection")
	m.blocklistHits = counter("blocklist_hits_total", "Requests refused because the client is banned or known over a limit, by source: local (cache, no store round trip) or store.", "source")
	m.detectionErrors = counter("detection_errors_total", "Detections that failed and were bypassed, by detection and kind (error|panic|store).", "detection", "kind")
	m.storeErrors = counter("store_errors_total", "Failed calls to the shared store, by operation.", "op")
	m.storeLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricNamespace, Name: "store_check_duration_seconds",
		Help:    "Latency of the per-request store round trip (blocklist + shared state).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
	})
	m.circuitOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricNamespace, Name: "store_circuit_open",
		Help: "1 while the store circuit breaker is open (Redis considered down).",
	})
	m.upstreamRequests = counter("upstream_requests_total", "Requests sent to upstream instances (a retried request counts once per attempt), by route name, instance (host:port from the config) and code: the response status, error (no response) or canceled (the client went away).", "route", "instance", "code")
	m.upstreamErrors = counter("upstream_errors_total", "Upstream failures, by kind: unreachable (502) or timeout (504).", "kind")
	m.upstreamLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricNamespace, Name: "upstream_duration_seconds",
		Help:    "Time from sending a request upstream to the end of its response.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
	})
	m.requestDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricNamespace, Name: "request_duration_seconds",
		Help:    "Whole request time in the gateway, upstream included.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2.5, 13),
	})
	m.eventsWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "events_written_total",
		Help: "Security events written to the event log.",
	})
	m.eventsDropped = counter("events_dropped_total", "Security events not written, by reason: buffer_full or store_error.", "reason")
	m.reloads = counter("config_reloads_total", "Configuration reloads, by result (success|failure).", "result")
	m.limits = counter("inspection_limits_total", "Requests a detection could not inspect whole because a limit was reached (too many fields, too deep, a value too long...), by detection and limit; each is also a finding, blocked or monitored by the detection's mode.", "detection", "limit")
	m.shadowDecisions = counter("shadow_decisions_total", "Requests judged by the shadow policy (the shadow section), by the detection that decided (the shadow's; the live one's for newly_allowed; none) and outcome: same_allow, same_block, newly_blocked, newly_allowed, changed (another detection or rule blocks) or dropped (the queue was full: not judged).", "detection", "outcome")
	m.tlsHandshakes = counter("tls_handshakes_total", "TLS handshakes on the gateway's listener, by result (ok, or why it was refused: legacy_version, no_shared_cipher, ...) and version (negotiated, else the highest the client offered).", "result", "version")
	for _, c := range []prometheus.Collector{m.requests, m.decisions, m.bans, m.blocklistHits, m.detectionErrors,
		m.storeErrors, m.storeLatency, m.circuitOpen, m.upstreamErrors, m.upstreamLatency, m.requestDuration,
		m.eventsWritten, m.eventsDropped, m.reloads, m.tlsHandshakes, m.upstreamRequests, m.limits, m.shadowDecisions} {
		r.MustRegister(c)
	}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for i := range m.byResult {
		m.byResult[i] = m.requests.WithLabelValues(result(i).String())
	}
	m.hitsLocal, m.hitsStored = m.blocklistHits.WithLabelValues("local"), m.blocklistHits.WithLabelValues("store")
	m.upstreamBound = map[upstreamLabels]prometheus.Counter{}
	for _, l := range []struct {
		v      *prometheus.CounterVec
		labels []string
	}{
		{m.eventsDropped, []string{"buffer_full", "store_error"}},
		{m.reloads, []string{"success", "failure"}},
		{m.upstreamErrors, []string{"unreachable", "timeout"}},
		{m.storeErrors, []string{"check", "ban", "incr"}},
		{m.bans, []string{"admin"}},
	} {
		for _, v := range l.labels {
			l.v.WithLabelValues(v)
		}
	}
	return m
}

// initChain creates the label sets of a chain's detections, so each
// detection's series exist at zero from the start (and after a reload
// that adds one).
func (m *Metrics) initChain(c *detections.Chain) {
	for _, e := range c.Entries() {
		name := e.Detection.Name()
		for _, kind := range []string{"error", "panic", "store"} {
			m.detectionErrors.WithLabelValues(name, kind)
		}
		m.decisions.WithLabelValues(name, detections.ModeEnforce.String(), "block")
		m.decisions.WithLabelValues(name, detections.ModeMonitor.String(), "would_block")
		if _, ok := e.Detection.(detections.ResponseObserver); ok || hasBans(e.Detection) {
			m.bans.WithLabelValues(name)
		}
	}
}

// hasBans reports detections that may ban (their verdicts carry BlockFor).
func hasBans(d detections.Detection) bool {
	_, ok := d.(detections.Querier)
	return ok
}

// ObserveReload counts a configuration reload.
func (m *Metrics) ObserveReload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
	} else {
		m.reloads.WithLabelValues("failure").Inc()
	}
}

// EventsWritten counts events written to the event log.
func (m *Metrics) EventsWritten(n int) { m.eventsWritten.Add(float64(n)) }

// EventsDropped counts events lost, by reason.
func (m *Metrics) EventsDropped(reason string, n int) {
	m.eventsDropped.WithLabelValues(reason).Add(float64(n))
}

// SetCircuitOpen reports the breaker state.
func (m *Metrics) SetCircuitOpen(open bool) {
	if open {
		m.circuitOpen.Set(1)
	} else {
		m.circuitOpen.Set(0)
	}
}

type upstreamLabels struct{ route, instance, code string }

// ObserveUpstream counts one attempt at an upstream instance
// (rampart_upstream_requests_total); it implements PoolObserver.
func (m *Metrics) ObserveUpstream(route, instance, code string) {
	k := upstreamLabels{route, instance, code}
	m.upstreamMu.RLock()
	c, ok := m.upstreamBound[k]
	m.upstreamMu.RUnlock()
	if !ok {
		c = m.upstreamRequests.WithLabelValues(route, instance, code)
		m.upstreamMu.Lock()
		m.upstreamBound[k] = c
		m.upstreamMu.Unlock()
	}
	c.Inc()
}
