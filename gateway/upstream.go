package gateway

// Upstream pools: one route's instances, the balancing between them, the
// active health checks and the passive ejection, and the retry rule.
//
// Retry rule. A failed attempt is tried again on another instance only when
// all three hold:
//
//  1. The request is idempotent: GET, HEAD, OPTIONS, TRACE, PUT or DELETE
//     (RFC 9110 §9.2.2), or any method with an Idempotency-Key (or
//     X-Idempotency-Key) header, the client's statement that repeating it
//     is safe (draft-ietf-httpapi-idempotency-key-header; net/http's
//     Transport honours the same two headers). A POST or PATCH without one
//     is never retried, not even after a connect error: the gateway does not
//     bet a duplicate payment on its reading of a transport error, and
//     passive ejection takes a dead instance out of the rotation after a few
//     such 502s anyway.
//  2. Nothing was sent upstream: the transport never reported writing the
//     request headers (httptrace WroteHeaders). A refused or timed-out
//     connection, a failed TLS handshake or a DNS failure qualify; a reset
//     after the request was written, or a timeout waiting for the response
//     headers, do not (the instance may be acting on it).
//  3. The body can be sent again: no body, or GetBody set.
//
// A response, whatever its status, is never retried: a 5xx is returned as
// it is (and counts toward passive ejection). The client's cancellation
// ends the loop at once.
//
// Panic mode. When every instance is ejected or failing its health checks,
// the pool still picks one, the one out of rotation the longest, rather
// than refusing everything (Envoy's panic threshold does the same): health
// checks can be wrong, and an upstream that is really down answers with
// its own error quickly (connection refused: 502), never a hang.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// Balancing policies (the balance key).
const (
	// BalanceRoundRobin takes the instances in turn.
	BalanceRoundRobin = "round_robin"
	// BalanceLeastInflight takes the instance with the fewest requests in
	// flight (ties in turn).
	BalanceLeastInflight = "least_inflight"
)

// MaxInstances bounds one upstream's instances.
const MaxInstances = 64

// Codes a PoolObserver sees besides HTTP statuses.
const (
	// UpstreamCodeError is an attempt that got no response (connection
	// refused or reset, timeout, TLS failure).
	UpstreamCodeError = "error"
	// UpstreamCodeCanceled is an attempt the client gave up on.
	UpstreamCodeCanceled = "canceled"
)

// UpstreamConfig is one upstream: a URL, a list of URLs, or a mapping.
//
// In YAML, `upstream: http://a:5000` and `upstream: [http://a:5000,
// http://b:5000]` set Instances and keep every other setting; a mapping is
// decoded key by key. An empty string or an empty list clears the upstream
// (IsZero). A zero value decoded from the file (a route's upstream) starts
// from DefaultUpstreamConfig, so a route states only what differs.
type UpstreamConfig struct {
	// Instances are the base URLs (http or https, a host, the same path for
	// all, no query, fragment or credentials).
	Instances []string `yaml:"instances"`
	// Balance is round_robin (default, also when empty) or least_inflight.
	Balance string `yaml:"balance"`
	// Health configures the active health checks.
	Health HealthCheckConfig `yaml:"health"`
	// Eject configures the passive ejection of failing instances.
	Eject EjectConfig `yaml:"eject"`
	// Retries is how many further instances a retryable failure is tried on
	// (0: none).
	Retries int `yaml:"retries"`
}

// HealthCheckConfig configures the active health checks: a GET of Path on
// every instance every Interval.
type HealthCheckConfig struct {
	// Path is requested on each instance's host, from its root (the
	// instances' own path is not prepended); "" turns active checks off.
	Path string `yaml:"path"`
	// Interval is the time between two checks of one instance.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one check.
	Timeout time.Duration `yaml:"timeout"`
	// HealthyThreshold consecutive successes mark an unhealthy instance
	// healthy again (and end an ejection early).
	HealthyThreshold int `yaml:"healthy_threshold"`
	// UnhealthyThreshold consecutive failures mark an instance unhealthy.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// ExpectStatus lists the statuses that pass, each "NNN" or "NNN-NNN".
	ExpectStatus []string `yaml:"expect_status"`
}

// EjectConfig configures passive ejection: an instance that fails real
// requests is taken out of rotation for a while.
type EjectConfig struct {
	// ConnectErrors consecutive attempts that could not be sent (refused,
	// unreachable, TLS failure) eject the instance; 0: never for this.
	ConnectErrors int `yaml:"connect_errors"`
	// ServerErrors failures within Window eject the instance: 5xx
	// responses, and errors after the request was sent (reset, timeout
	// awaiting the response); 0: never for this.
	ServerErrors int `yaml:"server_errors"`
	// Window is the time ServerErrors failures must fall within.
	Window time.Duration `yaml:"window"`
	// Duration is the first ejection's length; each repeat doubles it, up
	// to MaxDuration. The count starts over once the instance has stayed in
	// rotation for MaxDuration.
	Duration time.Duration `yaml:"duration"`
	// MaxDuration caps an ejection.
	MaxDuration time.Duration `yaml:"max_duration"`
	// MaxPercent caps the share of instances ejected at once; one instance
	// can always be ejected.
	MaxPercent int `yaml:"max_percent"`
}

// DefaultUpstreamConfig returns the defaults documented in the README:
// round robin, one retry, active checks off (their settings ready for a
// path), ejection after 3 connect errors or 5 failures in 10s for 30s
// doubling up to 5m, at most half the instances out. It has no instances.
func DefaultUpstreamConfig() UpstreamConfig {
	return UpstreamConfig{
		Balance: BalanceRoundRobin,
		Health: HealthCheckConfig{
			Interval:           10 * time.Second,
			Timeout:            2 * time.Second,
			HealthyThreshold:   2,
			UnhealthyThreshold: 3,
			ExpectStatus:       []string{"200-399"},
		},
		Eject: EjectConfig{
			ConnectErrors: 3,
			ServerErrors:  5,
			Window:        10 * time.Second,
			Duration:      30 * time.Second,
			MaxDuration:   5 * time.Minute,
			MaxPercent:    50,
		},
		Retries: 1,
	}
}

// IsZero reports whether u is the zero value: no upstream at all (a route
// without one uses the top-level upstream).
func (u UpstreamConfig) IsZero() bool {
	h := u.Health
	return len(u.Instances) == 0 && u.Balance == "" && u.Retries == 0 && u.Eject == EjectConfig{} &&
		h.Path == "" && h.Interval == 0 && h.Timeout == 0 && h.HealthyThreshold == 0 &&
		h.UnhealthyThreshold == 0 && len(h.ExpectStatus) == 0
}

// Redacted returns the instances, comma-separated, without credentials.
func (u UpstreamConfig) Redacted() string {
	out := make([]string, len(u.Instances))
	for i, s := range u.Instances {
		if p, err := url.Parse(s); err == nil {
			out[i] = p.Redacted()
		} else {
			out[i] = "(invalid URL)"
		}
	}
	return strings.Join(out, ",")
}

// DecodeShorthand implements config.Shorthand: a URL or a list of URLs set
// Instances; a zero value (a route's upstream) first gets the defaults.
func (u *UpstreamConfig) DecodeShorthand(n *yaml.Node) (bool, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return false, nil
		}
		if n.Tag != "!!str" {
			return true, fmt.Errorf("want a URL, a list of URLs or a mapping, not %q", n.Value)
		}
		if n.Value == "" {
			*u = UpstreamConfig{}
			return true, nil
		}
		u.fillZero()
		u.Instances = []string{n.Value}
		return true, nil
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			*u = UpstreamConfig{}
			return true, nil
		}
		list := make([]string, 0, len(n.Content))
		var errs []error
		for i, e := range n.Content {
			if e.Kind != yaml.ScalarNode || e.Tag != "!!str" || e.Value == "" {
				errs = append(errs, fmt.Errorf("instances[%d]: want a URL", i))
				continue
			}
			list = append(list, e.Value)
		}
		if len(errs) > 0 {
			return true, errors.Join(errs...)
		}
		u.fillZero()
		u.Instances = list
		return true, nil
	case yaml.MappingNode:
		u.fillZero()
	}
	return false, nil
}

// fillZero gives a zero value the defaults.
func (u *UpstreamConfig) fillZero() {
	if u.IsZero() {
		*u = DefaultUpstreamConfig()
	}
}

// Validate reports every problem in u, under its keys (instances[1],
// health.interval...).
func (u UpstreamConfig) Validate() error {
	var errs []error
	switch {
	case len(u.Instances) == 0:
		errs = append(errs, errors.New("instances: at least one instance URL is needed"))
	case len(u.Instances) > MaxInstances:
		errs = append(errs, fmt.Errorf("instances: %d instances, at most %d", len(u.Instances), MaxInstances))
	}
	seen := map[string]int{}
	first := -1
	var firstPath string
	for i, s := range u.Instances {
		in, path, err := parseInstance(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("instances[%d]: %w", i, err))
			continue
		}
		if j, dup := seen[in.label]; dup {
			errs = append(errs, fmt.Errorf("instances[%d]: %s is instances[%d] again", i, in.label, j))
			continue
		}
		seen[in.label] = i
		if first < 0 {
			first, firstPath = i, path
		} else if path != firstPath {
			errs = append(errs, fmt.Errorf("instances[%d]: path %q differs from instances[%d]'s %q: the instances of one upstream serve the same paths", i, path, first, firstPath))
		}
	}
	switch u.Balance {
	case "", BalanceRoundRobin, BalanceLeastInflight:
	default:
		errs = append(errs, fmt.Errorf("balance: %q must be %s or %s", u.Balance, BalanceRoundRobin, BalanceLeastInflight))
	}
	if u.Retries < 0 {
		errs = append(errs, fmt.Errorf("retries: %d must be >= 0", u.Retries))
	}
	errs = append(errs, u.Health.validate()...)
	errs = append(errs, u.Eject.validate()...)
	return errors.Join(errs...)
}

func (h HealthCheckConfig) validate() []error {
	if h.Path == "" {
		return nil
	}
	var errs []error
	if r, err := url.ParseRequestURI(h.Path); err != nil || !strings.HasPrefix(h.Path, "/") || r.Host != "" || r.Fragment != "" {
		errs = append(errs, fmt.Errorf("health.path: %q must be an absolute path such as /healthz", h.Path))
	}
	if h.Interval <= 0 {
		errs = append(errs, fmt.Errorf("health.interval: %v must be > 0", h.Interval))
	}
	if h.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("health.timeout: %v must be > 0", h.Timeout))
	}
	if h.HealthyThreshold < 1 {
		errs = append(errs, fmt.Errorf("health.healthy_threshold: %d must be >= 1", h.HealthyThreshold))
	}
	if h.UnhealthyThreshold < 1 {
		errs = append(errs, fmt.Errorf("health.unhealthy_threshold: %d must be >= 1", h.UnhealthyThreshold))
	}
	if len(h.ExpectStatus) == 0 {
		errs = append(errs, errors.New("health.expect_status: at least one status or range, such as 200-399"))
	}
	for i, s := range h.ExpectStatus {
		if _, err := parseStatusRange(s); err != nil {
			errs = append(errs, fmt.Errorf("health.expect_status[%d]: %w", i, err))
		}
	}
	return errs
}

// maxServerErrors bounds eject.server_errors (one timestamp each is kept).
const maxServerErrors = 1000

func (e EjectConfig) validate() []error {
	var errs []error
	if e.ConnectErrors < 0 {
		errs = append(errs, fmt.Errorf("eject.connect_errors: %d must be >= 0 (0: off)", e.ConnectErrors))
	}
	if e.ServerErrors < 0 || e.ServerErrors > maxServerErrors {
		errs = append(errs, fmt.Errorf("eject.server_errors: %d must be within 0..%d (0: off)", e.ServerErrors, maxServerErrors))
	}
	if e.ServerErrors > 0 && e.Window <= 0 {
		errs = append(errs, fmt.Errorf("eject.window: %v must be > 0", e.Window))
	}
	if e.ConnectErrors <= 0 && e.ServerErrors <= 0 {
		return errs
	}
	if e.Duration <= 0 {
		errs = append(errs, fmt.Errorf("eject.duration: %v must be > 0", e.Duration))
	}
	if e.MaxDuration < e.Duration {
		errs = append(errs, fmt.Errorf("eject.max_duration: %v must be >= eject.duration (%v)", e.MaxDuration, e.Duration))
	}
	if e.MaxPercent < 1 || e.MaxPercent > 100 {
		errs = append(errs, fmt.Errorf("eject.max_percent: %d must be within 1..100", e.MaxPercent))
	}
	return errs
}

// parseInstance checks one instance URL; path is its path ("/" as "").
func parseInstance(s string) (in *instance, path string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message would repeat the URL, credentials included
		}
		return nil, "", fmt.Errorf("not a URL: %v", err)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "", fmt.Errorf("%q must be an http:// or https:// URL", shown)
	case u.Opaque != "" || u.Hostname() == "":
		return nil, "", fmt.Errorf("%q has no host", shown)
	case u.User != nil:
		return nil, "", fmt.Errorf("%q holds credentials, which are never sent upstream: remove them", shown)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, "", fmt.Errorf("%q has a query: an instance is a base URL", shown)
	case u.Fragment != "":
		return nil, "", fmt.Errorf("%q has a fragment: an instance is a base URL", shown)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, "", fmt.Errorf("%q: port %s is not within 1..65535", shown, port)
	}
	path = u.EscapedPath()
	if path == "/" {
		path = ""
	}
	return &instance{
		scheme:   u.Scheme,
		host:     u.Host,
		label:    net.JoinHostPort(strings.ToLower(u.Hostname()), port),
		redacted: shown,
	}, path, nil
}

// parseStatusRange parses "NNN" or "NNN-NNN".
func parseStatusRange(s string) ([2]int, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if !isRange {
		hi = lo
	}
	a, errA := strconv.Atoi(strings.TrimSpace(lo))
	b, errB := strconv.Atoi(strings.TrimSpace(hi))
	if errA != nil || errB != nil || a < 100 || b > 599 || a > b {
		return [2]int{}, fmt.Errorf("%q must be a status or a range within 100-599, such as 200-399", s)
	}
	return [2]int{a, b}, nil
}

// PoolObserver counts upstream attempts (rampart_upstream_requests_total):
// instance is the configured host:port (a bounded set), code the status
// ("200", "502") or UpstreamCodeError or UpstreamCodeCanceled.
type PoolObserver interface {
	ObserveUpstream(route, instance, code string)
}

// InstanceStatus is one instance as the admin API shows it.
type InstanceStatus struct {
	// Instance is the host:port metrics label it by.
	Instance string `json:"instance"`
	// URL is the configured URL, without credentials.
	URL string `json:"url"`
	// State is healthy, unhealthy (failing active checks) or ejected.
	State string `json:"state"`
	// Healthy is the active checks' verdict (true without checks).
	Healthy bool `json:"healthy"`
	// EjectedUntil is when a passive ejection ends (zero: not ejected).
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	// Ejections counts the ejections in a row that set its length.
	Ejections int `json:"ejections"`
	// InFlight counts requests sent and not finished (body not closed).
	InFlight int64 `json:"in_flight"`
	// Requests and Failures count attempts since the pool was built;
	// failures are transport errors and 5xx responses.
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// LastError is the kind of the last failure, such as
	// connection_refused, status 503, or health check: timeout; never a
	// body or a header.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Instance states.
const (
	InstanceHealthy   = "healthy"
	InstanceUnhealthy = "unhealthy"
	InstanceEjected   = "ejected"
)

// Pool is one upstream's instances behind an http.RoundTripper. The hot
// path takes no lock: the choice reads atomics, and only failures lock the
// failing instance.
type Pool struct {
	route  string
	cfg    UpstreamConfig
	base   http.RoundTripper
	obs    PoolObserver
	log    *slog.Logger
	insts  []*instance
	least  bool
	tries  int // attempts at most: 1 + retries, at most one per instance
	expect [][2]int
	epoch  time.Time // the pool clock's zero

	next      atomic.Uint64 // round-robin position
	panicking atomic.Bool
	ejectMu   sync.Mutex // makes MaxPercent exact
}

// instance is one upstream instance and its state. Times are the pool
// clock's (nanoseconds since epoch, monotonic).
type instance struct {
	idx      int
	scheme   string
	host     string // as configured, for the request URL
	label    string // host:port
	redacted string

	inflight  atomic.Int64
	requests  atomic.Uint64
	failures  atomic.Uint64
	connErrs  atomic.Int32 // consecutive
	unhealthy atomic.Bool  // by active checks; instances start healthy
	until     atomic.Int64 // ejected until; 0: not ejected
	outSince  atomic.Int64 // when it last left the rotation (panic choice)

	mu        sync.Mutex
	errTimes  []int64 // ring of the last ServerErrors failure times
	errPos    int
	ejections int   // in a row, for the doubling
	lastBack  int64 // when the last ejection ended
	hcOK      int   // consecutive check successes (since the last ejection)
	hcFail    int
	lastErr   string
	lastErrAt time.Time
}

// NewPool builds the pool of one route's upstream over base (the
// gateway's transport). obs and log may be nil. Start Run for the active
// health checks.
func NewPool(route string, cfg UpstreamConfig, base http.RoundTripper, obs PoolObserver, log *slog.Logger) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("upstream of route %s: %w", route, err)
	}
	if base == nil {
		return nil, errors.New("upstream pool: no transport")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{
		route: route, cfg: cfg, base: base, obs: obs,
		log:   log.With(slog.String("route", route)),
		least: cfg.Balance == BalanceLeastInflight,
		epoch: time.Now(),
	}
	for i, s := range cfg.Instances {
		in, _, _ := parseInstance(s) // validated
		in.idx = i
		if cfg.Eject.ServerErrors > 0 {
			in.errTimes = make([]int64, cfg.Eject.ServerErrors)
		}
		p.insts = append(p.insts, in)
	}
	p.tries = min(1+cfg.Retries, len(p.insts))
	for _, s := range cfg.Health.ExpectStatus {
		r, _ := parseStatusRange(s) // validated
		p.expect = append(p.expect, r)
	}
	return p, nil
}

func (p *Pool) now() int64 { return int64(time.Since(p.epoch)) }

// RoundTrip implements http.RoundTripper: it sends req to an instance
// (setting req's URL scheme and host on a copy; the path is already the
// target's), and to another one per the retry rule. The response body
// must be closed: the instance's in-flight count lasts until then.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	retry := p.tries > 1 && retryable(req)
	var tried uint64
	for n := 0; ; n++ {
		in := p.pick(ctx, tried)
		tried |= 1 << in.idx
		body := req.Body
		if n > 0 && req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("rewinding the request body: %w", err)
			}
			body = b
		}
		a := &attempt{in: in}
		a.url = *req.URL
		a.url.Scheme, a.url.Host = in.scheme, in.host
		a.trace.WroteHeaders = func() { a.sent.Store(true) }
		out := req.WithContext(httptrace.WithClientTrace(ctx, &a.trace))
		out.URL, out.Body = &a.url, body
		in.inflight.Add(1)
		in.requests.Add(1)
		resp, err := p.base.RoundTrip(out)
		if err == nil {
			p.responded(ctx, a, resp)
			return resp, nil
		}
		a.finish()
		if ctx.Err() != nil {
			p.observe(in, UpstreamCodeCanceled)
			return nil, err
		}
		sent := a.sent.Load()
		p.failed(ctx, in, err, sent)
		if !retry || sent || n+1 >= p.tries {
			return nil, err
		}
		p.log.LogAttrs(ctx, slog.LevelDebug, "upstream_retry", slog.String("instance", in.label),
			slog.String("error", errorKind(err)))
	}
}

// retryable reports whether req may be sent again (rules 1 and 3).
func retryable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	if _, ok := req.Header["Idempotency-Key"]; ok {
		return true
	}
	_, ok := req.Header["X-Idempotency-Key"]
	return ok
}

// attempt is one try on one instance; it wraps the response body so the
// instance's in-flight count lasts until the body is closed.
type attempt struct {
	in    *instance
	body  io.ReadCloser
	sent  atomic.Bool
	done  atomic.Bool
	url   url.URL
	trace httptrace.ClientTrace
}

func (a *attempt) Read(b []byte) (int, error) { return a.body.Read(b) }

func (a *attempt) Close() error {
	err := a.body.Close()
	a.finish()
	return err
}

func (a *attempt) finish() {
	if a.done.CompareAndSwap(false, true) {
		a.in.inflight.Add(-1)
	}
}

// pick chooses an instance not in tried: the next available in turn, or
// the least loaded; with none available, the one out of rotation longest.
func (p *Pool) pick(ctx context.Context, tried uint64) *instance {
	n := uint64(len(p.insts))
	start := p.next.Add(1) - 1
	var now int64
	var best *instance
	var bestLoad int64
	for i := range n {
		in := p.insts[(start+i)%n]
		if tried&(1<<in.idx) != 0 || !p.available(ctx, in, &now) {
			continue
		}
		if !p.least {
			best = in
			break
		}
		if load := in.inflight.Load(); best == nil || load < bestLoad {
			best, bestLoad = in, load
		}
	}
	// Panic mode is a first attempt finding every instance out; a retry
	// that falls back on an ejected instance is not.
	first := tried == 0
	if best != nil {
		if first && p.panicking.Load() && p.panicking.CompareAndSwap(true, false) {
			p.log.LogAttrs(ctx, slog.LevelInfo, "upstream_panic_ended")
		}
		return best
	}
	for _, in := range p.insts {
		if tried&(1<<in.idx) == 0 && (best == nil || in.outSince.Load() < best.outSince.Load()) {
			best = in
		}
	}
	if first && p.panicking.CompareAndSwap(false, true) {
		p.log.LogAttrs(ctx, slog.LevelWarn, "upstream_panic", slog.String("instance", best.label))
	}
	return best
}

// available reports whether in is in rotation, ending an ejection that
// is over. now is read once, and only when some instance is ejected.
func (p *Pool) available(ctx context.Context, in *instance, now *int64) bool {
	if in.unhealthy.Load() {
		return false
	}
	until := in.until.Load()
	if until == 0 {
		return true
	}
	if *now == 0 {
		*now = p.now()
	}
	if *now < until {
		return false
	}
	p.endEjection(ctx, in, until, "expired")
	return true
}

// endEjection puts in back in rotation, once.
func (p *Pool) endEjection(ctx context.Context, in *instance, until int64, reason string) {
	if !in.until.CompareAndSwap(until, 0) {
		return
	}
	in.mu.Lock()
	in.lastBack = min(until, p.now())
	in.mu.Unlock()
	p.log.LogAttrs(ctx, slog.LevelInfo, "upstream_returned", slog.String("instance", in.label), slog.String("reason", reason))
}

// responded records a response and wraps its body.
func (p *Pool) responded(ctx context.Context, a *attempt, resp *http.Response) {
	in := a.in
	code := resp.StatusCode
	p.observe(in, statusCode(code))
	if in.connErrs.Load() != 0 {
		in.connErrs.Store(0)
	}
	if code >= 500 {
		in.failures.Add(1)
		p.serverError(ctx, in, "status "+statusCode(code))
	}
	if code == http.StatusSwitchingProtocols || resp.Body == nil {
		// The ReverseProxy needs the upgraded connection's own body (an
		// io.ReadWriteCloser); the upgrade is no longer a request in flight.
		a.finish()
		return
	}
	a.body = resp.Body
	resp.Body = a
}

// failed records a transport error: a connect error when nothing was
// sent, else a failure like a 5xx.
func (p *Pool) failed(ctx context.Context, in *instance, err error, sent bool) {
	in.failures.Add(1)
	p.observe(in, UpstreamCodeError)
	kind := errorKind(err)
	if sent {
		p.serverError(ctx, in, kind)
		return
	}
	in.setLastError(kind)
	if n := p.cfg.Eject.ConnectErrors; n > 0 && int(in.connErrs.Add(1)) >= n {
		p.eject(ctx, in, "connect_errors")
	}
}

func (p *Pool) observe(in *instance, code string) {
	if p.obs != nil {
		p.obs.ObserveUpstream(p.route, in.label, code)
	}
}

func (in *instance) setLastError(kind string) {
	in.mu.Lock()
	in.lastErr, in.lastErrAt = kind, time.Now()
	in.mu.Unlock()
}

// serverError records a failure after the request was sent; ServerErrors
// of them within Window eject the instance.
func (p *Pool) serverError(ctx context.Context, in *instance, kind string) {
	m := p.cfg.Eject.ServerErrors
	if m <= 0 {
		in.setLastError(kind)
		return
	}
	now := p.now()
	in.mu.Lock()
	in.lastErr, in.lastErrAt = kind, time.Now()
	in.errTimes[in.errPos] = now
	in.errPos = (in.errPos + 1) % m
	oldest := in.errTimes[in.errPos] // the failure m failures ago
	burst := oldest != 0 && now-oldest <= int64(p.cfg.Eject.Window)
	in.mu.Unlock()
	if burst {
		p.eject(ctx, in, "server_errors")
	}
}

// eject takes in out of rotation, unless MaxPercent of the instances are
// out already (one can always be).
func (p *Pool) eject(ctx context.Context, in *instance, reason string) {
	p.ejectMu.Lock()
	defer p.ejectMu.Unlock()
	now := p.now()
	prev := in.until.Load()
	if prev > now {
		return
	}
	out := 0
	for _, o := range p.insts {
		if o != in && o.until.Load() > now {
			out++
		}
	}
	e := p.cfg.Eject
	in.mu.Lock()
	clear(in.errTimes)
	in.connErrs.Store(0)
	if out > 0 && (out+1)*100 > e.MaxPercent*len(p.insts) {
		in.mu.Unlock()
		p.log.LogAttrs(ctx, slog.LevelDebug, "upstream_ejection_skipped", slog.String("instance", in.label),
			slog.String("reason", reason), slog.Int("ejected", out))
		return
	}
	if prev != 0 { // expired, not yet noticed
		in.lastBack = prev
	}
	if in.lastBack != 0 && now-in.lastBack > int64(e.MaxDuration) {
		in.ejections = 0
	}
	d := e.Duration
	for i := 0; i < in.ejections && d < e.MaxDuration; i++ {
		d *= 2
	}
	d = min(d, e.MaxDuration)
	in.ejections++
	in.hcOK = 0
	n := in.ejections
	in.mu.Unlock()
	in.outSince.Store(now)
	in.until.Store(now + int64(d))
	p.log.LogAttrs(ctx, slog.LevelWarn, "upstream_ejected", slog.String("instance", in.label),
		slog.String("reason", reason), slog.Duration("for", d), slog.Int("ejections", n))
}

// healthUserAgent names the checks in the instances' access logs.
const healthUserAgent = "rampart-health-check"

// Run runs the active health checks until ctx ends; it returns at once
// when they are off. Call it once.
func (p *Pool) Run(ctx context.Context) {
	if p.cfg.Health.Path == "" {
		return
	}
	var wg sync.WaitGroup
	for _, in := range p.insts {
		wg.Go(func() { p.checkLoop(ctx, in) })
	}
	wg.Wait()
}

// checkLoop checks one instance every interval; the first checks are
// spread over a tenth of the interval so a large pool is not probed all at
// once.
func (p *Pool) checkLoop(ctx context.Context, in *instance) {
	iv := p.cfg.Health.Interval
	t := time.NewTimer(rand.N(iv/10 + 1))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.check(ctx, in)
		t.Reset(iv)
	}
}

// check runs one health check of in and applies its result.
func (p *Pool) check(ctx context.Context, in *instance) {
	h := p.cfg.Health
	cctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, in.scheme+"://"+in.host+h.Path, nil)
	if err != nil {
		return // validated; cannot happen
	}
	req.Header.Set("User-Agent", healthUserAgent)
	ok, kind := false, ""
	resp, err := p.base.RoundTrip(req)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return // shutting down, not a failure
		}
		kind = "health check: " + errorKind(err)
	default:
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10) // lets the connection be reused
		resp.Body.Close()
		ok = p.expected(resp.StatusCode)
		if !ok {
			kind = "health check: status " + statusCode(resp.StatusCode)
		}
	}
	p.recordCheck(ctx, in, ok, kind)
}

func (p *Pool) expected(code int) bool {
	for _, r := range p.expect {
		if r[0] <= code && code <= r[1] {
			return true
		}
	}
	return false
}

// recordCheck applies one check result, logging each state change once.
func (p *Pool) recordCheck(ctx context.Context, in *instance, ok bool, kind string) {
	h := p.cfg.Health
	in.mu.Lock()
	if ok {
		in.hcOK++
		in.hcFail = 0
	} else {
		in.hcFail++
		in.hcOK = 0
		in.lastErr, in.lastErrAt = kind, time.Now()
	}
	toHealthy := ok && in.hcOK >= h.HealthyThreshold && in.unhealthy.Load()
	toUnhealthy := !ok && in.hcFail >= h.UnhealthyThreshold && !in.unhealthy.Load()
	if toHealthy {
		in.unhealthy.Store(false)
	}
	if toUnhealthy {
		in.unhealthy.Store(true)
		in.outSince.Store(p.now())
	}
	uneject := ok && in.hcOK >= h.HealthyThreshold
	in.mu.Unlock()
	switch {
	case toHealthy:
		p.log.LogAttrs(ctx, slog.LevelInfo, "upstream_healthy", slog.String("instance", in.label))
	case toUnhealthy:
		p.log.LogAttrs(ctx, slog.LevelWarn, "upstream_unhealthy", slog.String("instance", in.label), slog.String("reason", kind))
	}
	if until := in.until.Load(); uneject && until != 0 {
		p.endEjection(ctx, in, until, "health_check")
	}
}

// Status returns every instance's state, in configuration order.
func (p *Pool) Status() []InstanceStatus {
	now := p.now()
	out := make([]InstanceStatus, len(p.insts))
	for i, in := range p.insts {
		s := InstanceStatus{
			Instance: in.label, URL: in.redacted, State: InstanceHealthy, Healthy: !in.unhealthy.Load(),
			InFlight: in.inflight.Load(), Requests: in.requests.Load(), Failures: in.failures.Load(),
		}
		if !s.Healthy {
			s.State = InstanceUnhealthy
		}
		if until := in.until.Load(); until > now {
			s.State = InstanceEjected
			s.EjectedUntil = p.epoch.Add(time.Duration(until)).Round(0)
		}
		in.mu.Lock()
		s.Ejections, s.LastError, s.LastErrorAt = in.ejections, in.lastErr, in.lastErrAt
		in.mu.Unlock()
		out[i] = s
	}
	return out
}

// errorKind names a transport error without its text (which can quote a
// malformed response, or the URL).
func errorKind(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	var recErr tls.RecordHeaderError
	var alertErr tls.AlertError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &recErr), errors.As(err, &alertErr), errors.As(err, &certErr),
		errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return "tls"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_closed"
	}
	return "transport_error"
}

// statusCodes holds the status codes as strings, so observing one does not
// allocate.
var statusCodes = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusCode(c int) string {
	if c >= 100 && c < len(statusCodes) {
		return statusCodes[c]
	}
	return strconv.Itoa(c)
}

var _ http.RoundTripper = (*Pool)(nil)
