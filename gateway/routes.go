package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/rampartgw/rampart/detections"
)

// RouteConfig is one entry of the routes list: what it matches, where it
// goes, and what of the request handling differs for its traffic. The
// first route that matches a request wins; a request no route matches
// goes to the top-level upstream, or gets 404 when that is unset.
type RouteConfig struct {
	// Name names the route in logs, events and metric labels.
	Name string `yaml:"name"`
	// Host matches the request's host (port ignored, case-insensitive):
	// exact ("api.example.com") or a wildcard for subdomains
	// ("*.example.com" matches a.example.com, not example.com). Empty:
	// any host.
	Host string `yaml:"host"`
	// PathPrefix matches whole path segments of the normalised path
	// ("/echo/a" matches /echo/a and /echo/a/x, not /echo/ab). Empty: any
	// path.
	PathPrefix string `yaml:"path_prefix"`
	// Methods lists the methods matched; empty: every method.
	Methods []string `yaml:"methods"`
	// Upstream is where the route's requests go; empty: the top-level
	// upstream (a route can exist only to change the policy).
	Upstream UpstreamConfig `yaml:"upstream"`
	// StripPrefix removes PathPrefix from the forwarded path and sends it
	// in X-Forwarded-Prefix.
	StripPrefix bool `yaml:"strip_prefix"`
	// MaxBodyBytes caps the route's request bodies; 0: the top-level
	// max_body_bytes.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Timeouts are the route's upstream timeouts; 0: the top-level ones.
	Timeouts RouteTimeouts `yaml:"timeouts"`
}

// RouteTimeouts are the timeouts a route can change.
type RouteTimeouts struct {
	// Upstream bounds the wait for the response headers (504 after it).
	Upstream time.Duration `yaml:"upstream"`
	// UpstreamDial bounds connecting to an instance.
	UpstreamDial time.Duration `yaml:"upstream_dial"`
}

var routeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// methodRE is an RFC 9110 token.
var methodRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// DefaultRouteName names the top-level upstream in logs, events and
// metrics.
const DefaultRouteName = "default"

// Validate reports every problem of the route (keys relative to it).
func (r RouteConfig) Validate() error {
	var errs []error
	if !routeNameRE.MatchString(r.Name) {
		errs = append(errs, fmt.Errorf("name: %q must match [a-z0-9][a-z0-9_-]{0,63}", r.Name))
	} else if r.Name == DefaultRouteName {
		errs = append(errs, fmt.Errorf("name: %q names the top-level upstream", r.Name))
	}
	if h := r.Host; h != "" {
		bare := strings.TrimPrefix(h, "*.")
		if strings.ContainsAny(bare, "*/:@ ") || bare == "" || strings.HasPrefix(bare, ".") {
			errs = append(errs, fmt.Errorf("host: %q must be a host name or *.domain (no port, scheme or path)", h))
		}
	}
	if p := r.PathPrefix; p != "" {
		switch {
		case !strings.HasPrefix(p, "/"):
			errs = append(errs, fmt.Errorf("path_prefix: %q must start with /", p))
		case cleanPath(p) != strings.TrimSuffix(p, "/") && p != "/":
			errs = append(errs, fmt.Errorf("path_prefix: %q is not a clean path (no //, . or .. segments, no ;)", p))
		}
	}
	for i, m := range r.Methods {
		if !methodRE.MatchString(m) {
			errs = append(errs, fmt.Errorf("methods[%d]: %q is not a method", i, m))
		}
	}
	if r.StripPrefix && strings.Trim(r.PathPrefix, "/") == "" {
		errs = append(errs, errors.New("strip_prefix: needs a path_prefix other than /"))
	}
	if r.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max_body_bytes: %d must be >= 0 (0: the top-level value)", r.MaxBodyBytes))
	}
	if r.Timeouts.Upstream < 0 || r.Timeouts.UpstreamDial < 0 {
		errs = append(errs, errors.New("timeouts: must be >= 0 (0: the top-level value)"))
	}
	if !r.Upstream.IsZero() {
		if err := r.Upstream.Validate(); err != nil {
			errs = append(errs, prefixErrors("upstream", err))
		}
	}
	return errors.Join(errs...)
}

// ValidateRoutes checks every route and what they need together: unique
// names, and an upstream for each (its own or the top-level one).
func ValidateRoutes(rs []RouteConfig, topUpstream UpstreamConfig) error {
	var errs []error
	seen := map[string]bool{}
	for i, r := range rs {
		key := fmt.Sprintf("routes[%d]", i)
		if err := r.Validate(); err != nil {
			errs = append(errs, prefixErrors(key, err))
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", key, r.Name))
		}
		seen[r.Name] = true
		if r.Upstream.IsZero() && topUpstream.IsZero() {
			errs = append(errs, fmt.Errorf("%s.upstream: none, and no top-level upstream to fall back on", key))
		}
	}
	return errors.Join(errs...)
}

// prefixErrors puts key in front of every joined error.
func prefixErrors(key string, err error) error {
	var out []error
	for _, e := range flattenErrors(err) {
		out = append(out, fmt.Errorf("%s.%w", key, e))
	}
	return errors.Join(out...)
}

func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// Route is a route as the policy holds it: its configuration and, when it
// changes the detections, its own chain.
type Route struct {
	RouteConfig
	// Chain runs for the route's requests; nil: the policy's chain.
	Chain *detections.Chain
}

// route is a compiled route: matcher, limits and proxy.
type route struct {
	name       string
	host       string // exact host, lower case ("" any)
	hostSuffix string // ".example.com" for *.example.com
	prefix     string // without a trailing slash ("" any)
	methods    []string
	strip      bool
	maxBody    int64
	chain      *detections.Chain
	target     *url.URL
	proxy      *httputil.ReverseProxy
	pool       *Pool
}

// newMatcher compiles a route's match (name, host, prefix, methods).
func newMatcher(rc *RouteConfig) *route {
	rt := &route{name: rc.Name, prefix: strings.TrimSuffix(rc.PathPrefix, "/"), methods: rc.Methods}
	if h := strings.ToLower(strings.TrimSuffix(rc.Host, ".")); strings.HasPrefix(h, "*.") {
		rt.hostSuffix = h[1:]
	} else {
		rt.host = h
	}
	return rt
}

// matches reports whether the request (host without port, lower case;
// normalised path) is the route's.
func (rt *route) matches(host, method, clean string) bool {
	if rt.host != "" && host != rt.host {
		return false
	}
	if rt.hostSuffix != "" && (len(host) <= len(rt.hostSuffix) || !strings.HasSuffix(host, rt.hostSuffix)) {
		return false
	}
	if rt.prefix != "" && !hasSegmentPrefix(clean, rt.prefix) {
		return false
	}
	if len(rt.methods) > 0 {
		for _, m := range rt.methods {
			if m == method {
				return true
			}
		}
		return false
	}
	return true
}

// hasSegmentPrefix reports whether p starts with the whole segments of
// prefix (which has no trailing slash).
func hasSegmentPrefix(p, prefix string) bool {
	return strings.HasPrefix(p, prefix) && (len(p) == len(prefix) || p[len(prefix)] == '/')
}

// matchRoute returns the request's route: the first that matches, else
// the top-level one (nil when there is no top-level upstream). clean is
// the normalised path it matched on.
func (p *Policy) matchRoute(req *http.Request) (rt *route, clean string) {
	if len(p.routes) == 0 {
		return p.fallback, ""
	}
	clean = cleanPath(req.URL.Path)
	host := requestHost(req.Host)
	for _, rt := range p.routes {
		if rt.matches(host, req.Method, clean) {
			return rt, clean
		}
	}
	return p.fallback, clean
}

// requestHost is the Host without its port, in lower case.
func requestHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(h, "]"), "["), ".")
	return strings.ToLower(h)
}

// cleanPath normalises a decoded path the way upstreams resolve it, so a
// route's policy cannot be side-stepped by spelling its path differently:
// backslashes as slashes, ;parameters dropped from every segment (Tomcat,
// Jetty), dot segments resolved, repeated slashes collapsed, no trailing
// slash. The forwarded path is never changed by this.
func cleanPath(p string) string {
	if strings.IndexByte(p, '\\') >= 0 {
		p = strings.ReplaceAll(p, "\\", "/")
	}
	if strings.IndexByte(p, ';') >= 0 {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			if j := strings.IndexByte(s, ';'); j >= 0 {
				segs[i] = s[:j]
			}
		}
		p = strings.Join(segs, "/")
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return strings.TrimSuffix(path.Clean(p), "/") // no allocation when already clean
}

// compileRoutes builds the policy's routes: matchers, per-route limits, and
// a proxy per route over its upstream pool.
func (g *Gateway) compileRoutes(p *Policy) error {
	g.pools.begin()
	top := g.topUpstream(p)
	if !top.IsZero() {
		if err := top.Validate(); err != nil {
			return prefixErrors("upstream", err)
		}
	}
	p.routes = nil
	for i := range p.Routes {
		rc := &p.Routes[i]
		rt := newMatcher(&rc.RouteConfig)
		rt.strip, rt.maxBody, rt.chain = rc.StripPrefix, rc.MaxBodyBytes, rc.Chain
		up := rc.Upstream
		if up.IsZero() {
			up = top
		}
		if err := g.attachUpstream(rt, up, rc.Timeouts); err != nil {
			return fmt.Errorf("routes[%d] (%s): %w", i, rc.Name, err)
		}
		p.routes = append(p.routes, rt)
	}
	p.fallback = nil
	if !top.IsZero() {
		p.fallback = &route{name: DefaultRouteName}
		if err := g.attachUpstream(p.fallback, top, RouteTimeouts{}); err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
	}
	return nil
}

// attachUpstream gives rt its pool, target and proxy.
func (g *Gateway) attachUpstream(rt *route, up UpstreamConfig, t RouteTimeouts) error {
	pool, err := g.pools.get(rt.name, up, t)
	if err != nil {
		return err
	}
	rt.pool = pool
	rt.target, _ = url.Parse(up.Instances[0]) // validated; instances share the path
	rt.proxy = g.newProxy(pool)
	return nil
}

// upstreamTransport returns the transport for a route's timeouts: the
// gateway's own unless they differ.
func (g *Gateway) upstreamTransport(t RouteTimeouts) http.RoundTripper {
	if g.transport == nil || (t.Upstream == 0 && t.UpstreamDial == 0) {
		return g.baseTransport()
	}
	tr := g.transport.Clone()
	if t.Upstream > 0 {
		tr.ResponseHeaderTimeout = t.Upstream
	}
	if t.UpstreamDial > 0 {
		tr.DialContext = (&net.Dialer{Timeout: t.UpstreamDial, KeepAlive: dialKeepAlive}).DialContext
	}
	return tr
}

// forwardPath returns the path to send upstream for a route that strips
// its prefix: the raw path without the prefix when it is spelt literally,
// else the normalised path without it.
func forwardPath(rawPath, clean, prefix string) (p, raw string) {
	if hasSegmentPrefix(rawPath, prefix) {
		rest := rawPath[len(prefix):]
		if rest == "" {
			rest = "/"
		}
		if u, err := url.PathUnescape(rest); err == nil {
			return u, rest
		}
	}
	rest := strings.TrimPrefix(clean, prefix)
	if rest == "" {
		rest = "/"
	}
	return rest, ""
}
