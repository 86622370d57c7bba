package gateway

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
)

// A shadow policy is a candidate configuration judged on live traffic
// beside the enforcing one: after each request is answered, a copy of its
// request view goes to a bounded queue, and workers run the candidate's
// chain on it with state of their own (a store in this process: shadow
// limits and bans are per replica, and never touch the fleet's counters).
// Its verdicts are only counted and, where they differ from what the
// gateway did, recorded as shadow_diff events. Nothing of it is on the
// response path; when the queue is full a request is not judged (counted
// as dropped).

// Shadow outcomes (rampart_shadow_decisions_total{outcome}).
const (
	ShadowSameAllow    = "same_allow"
	ShadowSameBlock    = "same_block"
	ShadowNewlyBlocked = "newly_blocked"
	ShadowNewlyAllowed = "newly_allowed"
	ShadowChanged      = "changed" // both block, by another detection or rule
	ShadowDropped      = "dropped" // the queue was full: not judged
)

// ShadowOptions bound the shadow's work.
type ShadowOptions struct {
	// Sample is the share of requests judged (0 < Sample <= 1).
	Sample float64
	// Queue bounds the requests waiting to be judged.
	Queue int
	// Workers judge in parallel.
	Workers int
	// Timeout bounds one judgement.
	Timeout time.Duration
}

// Shadow is a candidate policy and its own state.
type Shadow struct {
	pol   *Policy
	store Store
	opts  ShadowOptions
	q     chan shadowJob
	g     *Gateway // set by SetPolicy
	// routes are the candidate's route matchers, in order (pol.Routes).
	routes []*route
}

type shadowJob struct {
	r      detections.Request
	status int // the upstream's status, 0 if none
	live   detections.Decision
}

// NewShadow returns the shadow of policy p on its own store (a memory
// store, normally).
func NewShadow(p *Policy, st Store, opts ShadowOptions) *Shadow {
	if opts.Sample <= 0 || opts.Sample > 1 {
		opts.Sample = 1
	}
	opts.Queue = max(opts.Queue, 1)
	opts.Workers = max(opts.Workers, 1)
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if p.Exempt == nil {
		p.Exempt = &detections.IPSet{}
	}
	sh := &Shadow{pol: p, store: st, opts: opts, q: make(chan shadowJob, opts.Queue)}
	for i := range p.Routes {
		sh.routes = append(sh.routes, newMatcher(&p.Routes[i].RouteConfig))
	}
	return sh
}

// Policy returns the candidate policy.
func (s *Shadow) Policy() *Policy { return s.pol }

// offer queues a copy of the request for judgement, or counts it dropped.
// It runs in finish, after the answer was written.
func (s *Shadow) offer(ex *exchange) {
	if s.opts.Sample < 1 && rand.Float64() >= s.opts.Sample {
		return
	}
	r := &ex.r
	job := shadowJob{status: ex.status, live: ex.decision}
	job.r = detections.Request{ID: r.ID, ClientIP: r.ClientIP, ClientKey: r.ClientKey, Method: r.Method, Host: r.Host,
		Path: r.Path, RawPath: r.RawPath, RawQuery: r.RawQuery, Proto: r.Proto, Route: r.Route, Received: r.Received,
		Header: r.Header.Clone()}
	if len(r.Body) > 0 {
		job.r.Body = append([]byte(nil), r.Body...)
	}
	if r.TLS != nil {
		t := *r.TLS
		job.r.TLS = &t
	}
	select {
	case s.q <- job:
	default:
		s.g.metrics.shadow(detectionLabel(""), ShadowDropped).Inc()
	}
}

// Run judges queued requests until ctx ends (a detections.Runner: it
// starts and stops with its policy).
func (s *Shadow) Run(ctx context.Context) error {
	done := make(chan struct{})
	for range s.opts.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-s.q:
					s.judge(ctx, &job)
				}
			}
		}()
	}
	for range s.opts.Workers {
		<-done
	}
	return nil
}

// chainFor is the candidate's chain for r, chosen as live routing chooses
// (Policy.matchRoute): the first route that matches, its own chain if it
// has one, else the top-level chain.
func (s *Shadow) chainFor(r *detections.Request) *detections.Chain {
	if len(s.routes) == 0 {
		return s.pol.Chain
	}
	host, clean := requestHost(r.Host), cleanPath(r.Path)
	for i, m := range s.routes {
		if m.matches(host, r.Method, clean) {
			if c := s.pol.Routes[i].Chain; c != nil {
				return c
			}
			break
		}
	}
	return s.pol.Chain
}

// judge runs the candidate on one request and records the comparison.
func (s *Shadow) judge(ctx context.Context, job *shadowJob) {
	defer func() {
		if p := recover(); p != nil {
			s.g.log.LogAttrs(ctx, slog.LevelWarn, "shadow_panic", slog.Any("panic", p))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	r := &job.r
	var d detections.Decision
	if s.pol.exempt(r.ClientIP) {
		d = detections.Decision{}
	} else {
		chain := s.chainFor(r)
		chain.Identify(ctx, r, nil)
		q := detections.StateQuery{}
		chain.Query(r, &q)
		if c, err := s.store.Check(ctx, r.ClientKey, &q); err == nil {
			if c.Ban != nil {
				d = detections.Decision{Detection: c.Ban.Detection, Status: http.StatusForbidden,
					Verdict: detections.Verdict{Action: detections.ActionBlock, Reason: "banned"}}
			} else {
				r.State = &c.State
			}
		} else {
			r.State = &detections.ClientState{Err: err}
		}
		if d.Detection == "" {
			d = chain.Run(ctx, r, nil)
			if d.Verdict.Action != detections.ActionBlock && job.status != 0 && chain.Observes(job.status) {
				od := chain.Observe(ctx, r, detections.Response{Status: job.status}, nil)
				if od.Verdict.Action == detections.ActionBlock && od.Verdict.BlockFor > 0 {
					s.ban(ctx, r, od)
				}
			}
			if d.Verdict.Action == detections.ActionBlock && d.Verdict.BlockFor > 0 {
				s.ban(ctx, r, d)
			}
		}
	}
	s.record(ctx, job, d)
}

func (s *Shadow) ban(ctx context.Context, r *detections.Request, d detections.Decision) {
	who := r.ClientKey
	if d.Verdict.Subject != "" {
		who = d.Verdict.Subject
	}
	_, _ = s.store.Ban(ctx, record.BanRequest{Client: who, Reason: d.Verdict.Reason, Detection: d.Detection,
		Duration: d.Verdict.BlockFor, Escalate: true, Replica: "shadow"})
}

// record counts the comparison and writes a shadow_diff event when the
// candidate would have answered otherwise.
func (s *Shadow) record(ctx context.Context, job *shadowJob, d detections.Decision) {
	live, shadow := job.live, d
	liveBlock := live.Verdict.Action == detections.ActionBlock
	shadowBlock := shadow.Verdict.Action == detections.ActionBlock
	var outcome, det string
	switch {
	case !liveBlock && !shadowBlock:
		outcome, det = ShadowSameAllow, ""
	case liveBlock && shadowBlock && live.Detection == shadow.Detection && live.Verdict.Rule == shadow.Verdict.Rule:
		outcome, det = ShadowSameBlock, shadow.Detection
	case liveBlock && shadowBlock:
		outcome, det = ShadowChanged, shadow.Detection
	case shadowBlock:
		outcome, det = ShadowNewlyBlocked, shadow.Detection
	default:
		outcome, det = ShadowNewlyAllowed, live.Detection
	}
	s.g.metrics.shadow(detectionLabel(det), outcome).Inc()
	if outcome == ShadowSameAllow || outcome == ShadowSameBlock {
		return
	}
	ev := s.g.rec.newEvent(record.EventShadowDiff, &job.r)
	ev.Reason, ev.Mode = outcome, "shadow"
	if shadowBlock {
		ev.Detection, ev.Rule, ev.Location, ev.Score, ev.Status = shadow.Detection, shadow.Verdict.Rule, shadow.Verdict.Location, shadow.Verdict.Score, shadow.Status
	}
	ev.Live = "allowed"
	if liveBlock {
		ev.Live = live.Detection
		if live.Verdict.Rule != "" {
			ev.Live += "/" + live.Verdict.Rule
		}
	}
	s.g.rec.emit(ctx, slog.LevelInfo, ev)
}

// detectionLabel is a detection name as a metric label ("none" for none).
func detectionLabel(d string) string {
	if d == "" {
		return "none"
	}
	return d
}

// ShadowDecisions is rampart_shadow_decisions_total (for tests).
func (m *Metrics) ShadowDecisions() *prometheus.CounterVec { return m.shadowDecisions }

// shadow returns the rampart_shadow_decisions_total child.
func (m *Metrics) shadow(detection, outcome string) prometheus.Counter {
	return m.shadowDecisions.WithLabelValues(detection, outcome)
}
