package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rampartgw/rampart/config"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

// RouteSection is one entry of routes: the gateway's route settings
// (match, upstream, prefix stripping, body limit, timeouts) and what the
// route changes in the detections for its traffic only.
//
//	routes:
//	  - name: login
//	    path_prefix: /login
//	    upstream: http://auth:5000
//	    detections:
//	      rate_limit: {rate: 5, burst: 5, period: 1m}   # the route's own bucket
//	      payload: {exclusions: [{rules: [xss], fields: [json:comment]}]}
//	  - name: static
//	    path_prefix: /static
//	    upstream: [http://cdn-a:80, http://cdn-b:80]
//	    chain: [ip, rate_limit]                         # no payload inspection here
type RouteSection struct {
	gateway.RouteConfig `yaml:",inline"`
	// Chain, when set, replaces the chain for the route's requests.
	Chain []string `yaml:"chain"`
	// Detections are decoded over the top-level detection sections: a
	// route states only what differs. A rate_limit override gives the
	// route its own bucket (named after the route).
	Detections config.Raw `yaml:"detections"`
}

// overrides reports whether the route changes the detections.
func (s *RouteSection) overrides() bool { return len(s.Chain) > 0 || !s.Detections.IsZero() }

// buildRoutes builds the routes, with a chain of their own for those that
// change the detections.
func (l *loaded) buildRoutes(dp deps) ([]gateway.Route, []error) {
	var out []gateway.Route
	var errs []error
	for i := range l.Routes {
		rs := &l.Routes[i]
		at := fmt.Sprintf("routes[%d]", i)
		r := gateway.Route{RouteConfig: rs.RouteConfig}
		if err := rs.RouteConfig.Validate(); err != nil {
			errs = append(errs, l.doc.Annotate(at, err))
		}
		if rs.overrides() {
			dets, err := l.routeDetections(rs, at)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			names := l.Chain
			if len(rs.Chain) > 0 {
				names = rs.Chain
			}
			chain, cerrs := l.buildChain(dets, names, dp, at+".")
			errs = append(errs, cerrs...)
			r.Chain = chain
		}
		out = append(out, r)
	}
	seen := map[string]int{}
	for i, r := range l.Routes {
		if j, ok := seen[r.Name]; ok && r.Name != "" {
			key := fmt.Sprintf("routes[%d].name", i)
			errs = append(errs, l.doc.Annotate(key, fmt.Errorf("%s: %q is also routes[%d].name", key, r.Name, j)))
		}
		seen[r.Name] = i
		if r.Upstream.IsZero() && l.Upstream.IsZero() {
			key := fmt.Sprintf("routes[%d].upstream", i)
			errs = append(errs, l.doc.Annotate(key, fmt.Errorf("%s: none, and no top-level upstream to fall back on", key)))
		}
	}
	return out, errs
}

// routeDetections decodes the route's detection overrides over a fresh
// copy of the top-level sections (the file decoded again: no list or map
// is shared with the top level's).
func (l *loaded) routeDetections(rs *RouteSection, at string) (*Detections, error) {
	fresh := defaultFile()
	if _, err := config.Decode(l.name, l.data, fresh); err != nil {
		return nil, err // reported already, at load
	}
	if !fresh.IP.IsZero() {
		_ = l.doc.DecodeAt(fresh.IP, &fresh.Detections.IP, "ip")
	}
	dets := fresh.Detections
	if err := l.doc.DecodeAt(rs.Detections, &dets, at+".detections"); err != nil {
		return nil, err
	}
	if n := child(rs.Detections.Node, "rate_limit"); n != nil {
		// The route's own limit counts in its own bucket (and so do its
		// own path buckets), never in the shared default one; a route that
		// changes only the mode keeps sharing it.
		rl := &dets.RateLimit.Config
		if hasKey(n, "rate") || hasKey(n, "burst") || hasKey(n, "period") || hasKey(n, "key") {
			rl.Bucket = rs.Name
		}
		if hasKey(n, "routes") {
			for j := range rl.Routes {
				rl.Routes[j].Name = rs.Name + "-" + rl.Routes[j].Name
			}
		}
	}
	return &dets, nil
}

// child returns the value of key in mapping n (nil when absent).
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.EqualFold(n.Content[i].Value, key) {
			return n.Content[i+1]
		}
	}
	return nil
}

func hasKey(n *yaml.Node, key string) bool { return child(n, key) != nil }

// buildShadow loads the shadow section's candidate file and builds its
// policy on the shadow store (state of this process only).
func (l *loaded) buildShadow(dp deps) (*gateway.Shadow, error) {
	path := l.Shadow.File
	if !filepath.IsAbs(path) && l.path != "" {
		path = filepath.Join(filepath.Dir(l.path), path)
	}
	cand, err := load(path, nil)
	if err != nil {
		return nil, l.doc.Annotate("shadow.file", fmt.Errorf("shadow.file: %w", err))
	}
	if cand.Shadow.File != "" {
		return nil, l.doc.Annotate("shadow.file", fmt.Errorf("shadow.file: %s has a shadow of its own", path))
	}
	st := dp.shadow
	if st == nil {
		st = store.NewMemory(store.DefaultMemoryConfig())
	}
	sdp := dp
	sdp.counter, sdp.fallback = st, st
	sdp.jwt.Spread, sdp.jwt.AlgStore, sdp.jwt.SecretCache = st, nil, nil
	sdp.ip.Lease, sdp.ip.Store = nil, nil
	sp, err := cand.buildPolicy(sdp)
	if err != nil {
		return nil, l.doc.Annotate("shadow.file", fmt.Errorf("shadow.file %s: %w", path, err))
	}
	s := l.Shadow
	return gateway.NewShadow(sp, st, gateway.ShadowOptions{Sample: s.Sample, Queue: s.Queue, Workers: s.Workers, Timeout: s.Timeout}), nil
}
