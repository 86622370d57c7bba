package gateway

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/ipfeed"
)

// poolSet owns the routes' upstream pools across policy swaps: a route
// whose upstream settings did not change keeps its pool (and its health
// state) through a reload; a pool no policy uses any more stops its health
// checks and, once its requests are done, closes its idle connections.
type poolSet struct {
	g   *Gateway
	mu  sync.Mutex
	gen int
	m   map[string]*poolEntry
	ctx context.Context // set by run: health checks run under it
}

type poolEntry struct {
	route  string
	pool   *Pool
	tr     http.RoundTripper
	gen    int
	cancel context.CancelFunc
}

func newPoolSet(g *Gateway) *poolSet { return &poolSet{g: g, m: map[string]*poolEntry{}} }

// begin starts a compilation: pools get marks as used from now on are
// kept by the next sweep.
func (s *poolSet) begin() {
	s.mu.Lock()
	s.gen++
	s.mu.Unlock()
}

// get returns the pool for a route's upstream settings, reusing the one
// built for the same route and settings.
func (s *poolSet) get(route string, up UpstreamConfig, t RouteTimeouts) (*Pool, error) {
	key := fmt.Sprintf("%s\x00%#v\x00%#v", route, up, t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		e.gen = s.gen
		return e.pool, nil
	}
	tr := s.g.upstreamTransport(t)
	p, err := NewPool(route, up, tr, s.g.metrics, s.g.log)
	if err != nil {
		return nil, err
	}
	e := &poolEntry{route: route, pool: p, tr: tr, gen: s.gen}
	s.m[key] = e
	if s.ctx != nil {
		s.start(e)
	}
	return p, nil
}

// start runs e's health checks. s.mu is held.
func (s *poolSet) start(e *poolEntry) {
	ctx, cancel := context.WithCancel(s.ctx)
	e.cancel = cancel
	go e.pool.Run(ctx)
}

// sweep retires the pools the last compilation did not use.
func (s *poolSet) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.m {
		if e.gen == s.gen {
			continue
		}
		delete(s.m, k)
		if e.cancel != nil {
			e.cancel()
		}
		if own, ok := e.tr.(*http.Transport); ok && own != s.g.transport {
			// Requests that took the old policy finish first.
			time.AfterFunc(s.g.cfg.Timeouts.RequestBound(), own.CloseIdleConnections)
		}
	}
}

// run starts every pool's health checks under ctx, and those of pools
// built later.
func (s *poolSet) run(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = ctx
	for _, e := range s.m {
		if e.cancel == nil {
			s.start(e)
		}
	}
}

// closeIdle closes the idle connections of the pools' own transports.
func (s *poolSet) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.m {
		if own, ok := e.tr.(*http.Transport); ok && own != s.g.transport {
			own.CloseIdleConnections()
		}
	}
}

// UpstreamStatus is one route's upstream pool as the admin API shows it.
type UpstreamStatus struct {
	Route     string           `json:"route"`
	Instances []InstanceStatus `json:"instances"`
}

// Upstreams returns the health of every route's upstream instances, by
// route name.
func (g *Gateway) Upstreams() []UpstreamStatus {
	g.pools.mu.Lock()
	defer g.pools.mu.Unlock()
	out := make([]UpstreamStatus, 0, len(g.pools.m))
	for _, e := range g.pools.m {
		out = append(out, UpstreamStatus{Route: e.route, Instances: e.pool.Status()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out
}

// feedReporter is a detection with IP feeds (the ip detection).
type feedReporter interface {
	Feeds() []ipfeed.Status
}

// Feeds returns the state of the policy's IP feeds on this replica, once
// per feed name (the top-level chain's first, then routes' own).
func (g *Gateway) Feeds() []ipfeed.Status {
	p := g.Policy()
	chains := []*detections.Chain{p.Chain}
	for _, r := range p.Routes {
		if r.Chain != nil {
			chains = append(chains, r.Chain)
		}
	}
	seen := map[string]bool{}
	out := []ipfeed.Status{}
	for _, c := range chains {
		for _, e := range c.Entries() {
			fr, ok := e.Detection.(feedReporter)
			if !ok {
				continue
			}
			for _, st := range fr.Feeds() {
				if !seen[st.Feed] {
					seen[st.Feed] = true
					out = append(out, st)
				}
			}
		}
	}
	return out
}
