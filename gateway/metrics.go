package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric and label names are an API for dashboards: changing one is a
// breaking change. No label ever carries a client IP or a raw path.
const metricNamespace = "rampart"

// Results of a request, the label of rampart_requests_total.
const (
	resultProxied       = "proxied"
	resultBlocked       = "blocked"
	resultBanned        = "banned"
	resultTooLarge      = "too_large"
	resultBadRequest    = "bad_request"
	resultUnavailable   = "unavailable"
	resultUpstreamError = "upstream_error"
)

// Metrics holds the gateway's Prometheus collectors on their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	requests        *prometheus.CounterVec
	decisions       *prometheus.CounterVec
	bans            *prometheus.CounterVec
	blocklistHits   *prometheus.CounterVec
	detectionErrors *prometheus.CounterVec
	storeErrors     *prometheus.CounterVec
	storeLatency    prometheus.Histogram
	circuitOpen     prometheus.Gauge
	upstreamErrors  *prometheus.CounterVec
	upstreamLatency prometheus.Histogram
	requestDuration prometheus.Histogram
	eventsWritten   prometheus.Counter
	eventsDropped   *prometheus.CounterVec
	reloads         *prometheus.CounterVec

	// Pre-resolved children for the per-request path (no map lookups).
	reqProxied, reqBlocked, reqBanned prometheus.Counter
}

// NewMetrics registers every collector, plus the Go runtime and process
// collectors, on a new registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{Registry: r}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "requests_total",
		Help: "Requests handled, by result: proxied, blocked (by a detection), banned (client on the blocklist), too_large, bad_request, unavailable (store down, fail-closed), upstream_error.",
	}, []string{"result"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "decisions_total",
		Help: "Non-allow decisions of detections, by detection, mode (enforce|monitor) and action (block|would_block).",
	}, []string{"detection", "mode", "action"})
	m.bans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "bans_total",
		Help: "Clients added to the blocklist by this replica, by detection (admin for operator bans).",
	}, []string{"detection"})
	m.blocklistHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "blocklist_hits_total",
		Help: "Requests refused because the client is banned or known over a limit, by source: local (cache, no store round trip) or store.",
	}, []string{"source"})
	m.detectionErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "detection_errors_total",
		Help: "Detections that failed and were bypassed, by detection and kind (error|panic|store).",
	}, []string{"detection", "kind"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "store_errors_total",
		Help: "Failed calls to the shared store, by operation.",
	}, []string{"op"})
	m.storeLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricNamespace, Name: "store_check_duration_seconds",
		Help:    "Latency of the per-request store round trip (blocklist + shared state).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
	})
	m.circuitOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricNamespace, Name: "store_circuit_open",
		Help: "1 while the store circuit breaker is open (Redis considered down).",
	})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "upstream_errors_total",
		Help: "Upstream failures, by kind: unreachable (502) or timeout (504).",
	}, []string{"kind"})
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
		Help: "Security events written to the event stream.",
	})
	m.eventsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "events_dropped_total",
		Help: "Security events not written, by reason: buffer_full or store_error.",
	}, []string{"reason"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricNamespace, Name: "config_reloads_total",
		Help: "Configuration reloads, by result (success|failure).",
	}, []string{"result"})
	for _, c := range []prometheus.Collector{m.requests, m.decisions, m.bans, m.blocklistHits, m.detectionErrors,
		m.storeErrors, m.storeLatency, m.circuitOpen, m.upstreamErrors, m.upstreamLatency, m.requestDuration,
		m.eventsWritten, m.eventsDropped, m.reloads} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reqProxied = m.requests.WithLabelValues(resultProxied)
	m.reqBlocked = m.requests.WithLabelValues(resultBlocked)
	m.reqBanned = m.requests.WithLabelValues(resultBanned)
	for _, r := range []string{resultTooLarge, resultBadRequest, resultUnavailable, resultUpstreamError} {
		m.requests.WithLabelValues(r)
	}
	for _, s := range []string{"local", "store"} {
		m.blocklistHits.WithLabelValues(s)
	}
	m.eventsDropped.WithLabelValues("buffer_full")
	m.eventsDropped.WithLabelValues("store_error")
	return m
}

// ObserveReload counts a configuration reload.
func (m *Metrics) ObserveReload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
	} else {
		m.reloads.WithLabelValues("failure").Inc()
	}
}

// EventWritten and EventDropped are called by the events writer.
func (m *Metrics) EventWritten(n int) { m.eventsWritten.Add(float64(n)) }

// EventDropped counts events lost, by reason.
func (m *Metrics) EventDropped(reason string, n int) {
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
