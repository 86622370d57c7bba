package detections

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const rateLimitName = "rate_limit"

// ReasonRateLimited is the reason of a rate-limit refusal.
const ReasonRateLimited = "rate_limited"

// Limiter is a per-key GCRA limiter. The rate_limit detection uses one only
// as its local fallback while the shared store is down (the shared limit is
// fetched by the gateway, see Querier); *store.Memory satisfies it.
type Limiter interface {
	Allow(ctx context.Context, key string, limit Limit) (RateResult, error)
}

// RouteLimit overrides the limit for requests matching a method and a path
// prefix. Each route has its own bucket per client.
type RouteLimit struct {
	Name   string `yaml:"name"`   // [a-z0-9_-]+, part of the Redis key
	Method string `yaml:"method"` // "" matches every method
	// Path is a path prefix of whole segments, matched like a gateway
	// route's path_prefix on the normalised path (dot segments resolved, repeated slashes and ;parameters dropped):
	// "/api/login" matches /api/login, /api//login and /api/login/x, not
	// /api/loginx.
	Path  string `yaml:"path"`
	Limit Limit  `yaml:",inline"` // rate, burst, period > 0
	// Key is what the bucket counts (see KeySpec): default the client IP.
	Key []string `yaml:"key"`
}

// RateLimitConfig configures the rate_limit detection.
type RateLimitConfig struct {
	// Limit is the default per-client limit. GCRA with this limit admits
	// Burst requests at once, then one request every Period/Rate.
	Limit Limit `yaml:",inline"`
	// Key is what the default bucket counts: the client IP (default), or
	// another identity (jwt:sub, header:X-Api-Key, ja4, or a combination;
	// see KeySpec). A request without that identity counts against its IP.
	Key []string `yaml:"key"`
	// Routes override Limit for matching requests; the first match wins.
	Routes []RouteLimit `yaml:"routes"`
	// Also are buckets consumed in addition, by every matching request
	// (method and path optional): e.g. a limit per TLS fingerprint
	// (key: [ja4]) on top of the per-IP one, so a botnet rotating IPs
	// behind one client stack is limited as one. Any refusing bucket
	// refuses the request.
	Also []RouteLimit `yaml:"also"`
	// BanAfter bans a client whose requests were refused this many times
	// within one Period (it keeps hammering past the limit); 0 never bans.
	BanAfter int `yaml:"ban_after"`
	// BanFor is the ban duration (before escalation).
	BanFor time.Duration `yaml:"ban_for"`
	// Fallback is the per-replica limit applied while the shared store is
	// unavailable. Unset, each bucket's own limit applies per replica (so
	// during an outage a client gets at most N replicas × the limit);
	// "off" fails open (or closed, by on_store_error); a limit mapping sets
	// another one.
	Fallback Fallback `yaml:"fallback"`
	// Bucket names the default bucket, for a route's own limit (its Redis
	// key and RateLimit-Policy name); empty: the shared default bucket.
	Bucket string `yaml:"-"`
}

// Fallback is the rate_limit detection's limit while the store is down.
type Fallback struct {
	Limit `yaml:",inline"`
	// Off disables the fallback ("fallback: off" in YAML).
	Off bool `yaml:"-"`
}

// UnmarshalText accepts "off" (the mapping form sets a limit).
func (f *Fallback) UnmarshalText(b []byte) error {
	switch string(b) {
	case "off":
		*f = Fallback{Off: true}
	case "", "default":
		*f = Fallback{}
	default:
		return fmt.Errorf("fallback: %q is not off, default or a {rate, burst, period} limit", b)
	}
	return nil
}

// MarshalText writes "off" or "default"; a set limit marshals as a mapping
// through its fields instead (see IsZero).
func (f Fallback) MarshalText() ([]byte, error) {
	if f.Off {
		return []byte("off"), nil
	}
	return []byte("default"), nil
}

// DefaultRateLimitConfig is the prototype's MAX_REQUEST_PER_MINUTE = 5:
// a burst of 5, then one request every 12 s; 10 refusals within a minute ban
// the client for 10 minutes.
func DefaultRateLimitConfig() RateLimitConfig {
	return RateLimitConfig{Limit: PerMinute(5), BanAfter: 10, BanFor: 10 * time.Minute}
}

var routeNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// Validate reports every problem in cfg.
func (c RateLimitConfig) Validate() error {
	var errs []error
	if !c.Limit.Valid() {
		errs = append(errs, fmt.Errorf("rate: rate, burst and period must be > 0 (got %v)", c.Limit))
	}
	if !c.Fallback.Limit.IsZero() && !c.Fallback.Limit.Valid() {
		errs = append(errs, fmt.Errorf("fallback: rate, burst and period must be > 0 (got %v)", c.Fallback.Limit))
	}
	if c.BanAfter < 0 || c.BanFor < 0 {
		errs = append(errs, errors.New("ban_after: ban_after and ban_for must be >= 0"))
	}
	if c.BanAfter > 0 && c.BanFor == 0 {
		errs = append(errs, errors.New("ban_for: ban_after is set but ban_for is 0"))
	}
	names := map[string]bool{}
	for i, r := range c.Routes {
		if !routeNameRE.MatchString(r.Name) {
			errs = append(errs, fmt.Errorf("routes[%d].name: %q must match [a-z0-9_-]{1,64}", i, r.Name))
		}
		if names[r.Name] {
			errs = append(errs, fmt.Errorf("routes[%d].name: %q is used twice", i, r.Name))
		}
		names[r.Name] = true
		if !strings.HasPrefix(r.Path, "/") {
			errs = append(errs, fmt.Errorf("routes[%d].path: %q must start with /", i, r.Path))
		} else if !isCleanPrefix(r.Path) {
			errs = append(errs, fmt.Errorf("routes[%d].path: %q is not a clean path (no //, . or .. segments, no ;)", i, r.Path))
		}
		if !r.Limit.Valid() {
			errs = append(errs, fmt.Errorf("routes[%d]: rate, burst and period must be > 0", i))
		}
	}
	return errors.Join(errs...)
}

// isCleanPrefix reports whether a configured path prefix is already
// normalised (a trailing slash aside): any other could never match a
// request's normalised path.
func isCleanPrefix(p string) bool {
	return p == "/" || cleanPath(p) == strings.TrimSuffix(p, "/")
}

// RateLimit is the prototype's DDoS detection: a per-client GCRA limit
// shared by every replica (the gateway fetches the decision from the store
// in its one round trip; the GCRA runs in Redis on the Redis clock).
type RateLimit struct {
	cfg      RateLimitConfig
	fallback Limiter
	buckets  []bucket // the routes in order, the default last
	also     []bucket
}

// bucket is one limit: a route's or the default.
type bucket struct {
	name, method string // name "" is the default bucket
	path         string // a clean prefix without a trailing slash ("" any)
	limit        Limit
	key          KeySpec
	policy       string // RateLimit-Policy value
}

// NewRateLimit validates cfg. fallback is the per-replica limiter used
// while the store is down; nil (or cfg.Fallback.Off) means no fallback.
func NewRateLimit(cfg RateLimitConfig, fallback Limiter) (*RateLimit, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Fallback.Off {
		fallback = nil // fail open (or closed) as configured
	}
	d := &RateLimit{cfg: cfg, fallback: fallback}
	var errs []error
	for i, r := range cfg.Routes {
		key, err := ParseKeySpec(r.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d].key%w", i, err))
		}
		d.buckets = append(d.buckets, bucket{name: r.Name, method: r.Method, path: strings.TrimSuffix(r.Path, "/"), limit: r.Limit, key: key, policy: policyValue(r.Name, r.Limit)})
	}
	key, err := ParseKeySpec(cfg.Key)
	if err != nil {
		errs = append(errs, fmt.Errorf("key%w", err))
	}
	def := bucket{name: cfg.Bucket, limit: cfg.Limit, key: key, policy: policyValue("default", cfg.Limit)}
	if cfg.Bucket != "" {
		def.policy = policyValue(cfg.Bucket, cfg.Limit)
	}
	d.buckets = append(d.buckets, def)
	for i, r := range cfg.Also {
		key, err := ParseKeySpec(r.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("also[%d].key%w", i, err))
		}
		if !routeNameRE.MatchString(r.Name) || !r.Limit.Valid() || (r.Path != "" && (!strings.HasPrefix(r.Path, "/") || !isCleanPrefix(r.Path))) {
			errs = append(errs, fmt.Errorf("also[%d]: want a name [a-z0-9_-]{1,64}, rate, burst and period > 0, and a clean path starting with / (or none)", i))
		}
		d.also = append(d.also, bucket{name: r.Name, method: r.Method, path: strings.TrimSuffix(r.Path, "/"), limit: r.Limit, key: key, policy: policyValue(r.Name, r.Limit)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// policyValue renders a RateLimit-Policy item
// (draft-ietf-httpapi-ratelimit-headers): quota q over window w seconds.
// GCRA's quota over one period is its burst.
func policyValue(name string, l Limit) string {
	return `"` + name + `";q=` + strconv.Itoa(l.Burst) + ";w=" + strconv.Itoa(int(l.Period.Seconds()))
}

// Name returns "rate_limit".
func (d *RateLimit) Name() string { return rateLimitName }

// Limit returns the configured default limit.
func (d *RateLimit) Limit() Limit { return d.cfg.Limit }

// matches reports whether a request with this method and normalised path
// (Request.RoutePath) is the bucket's.
func (b *bucket) matches(method, clean string) bool {
	return (b.method == "" || b.method == method) && hasSegmentPrefix(clean, b.path)
}

// route returns the bucket of a request with this normalised path: the
// first matching route's, else the default.
func (d *RateLimit) route(r *Request, clean string) *bucket {
	last := len(d.buckets) - 1
	for i := range d.buckets[:last] {
		if b := &d.buckets[i]; b.matches(r.Method, clean) {
			return b
		}
	}
	return &d.buckets[last]
}

// Query asks for one request from the bucket of r's client (or identity),
// and from every additional bucket r matches.
func (d *RateLimit) Query(r *Request, q *StateQuery) {
	clean := r.RoutePath()
	b := d.route(r, clean)
	if subject, ok := b.key.Subject(r); ok {
		sq := q.Subject(subject)
		sq.RateKey, sq.RateLimit, sq.BanAfter = b.name, b.limit, d.cfg.BanAfter
	} else {
		q.RateKey, q.RateLimit = b.name, b.limit
		q.BanAfter = d.cfg.BanAfter
	}
	// The additional buckets are consumed whatever the main one is keyed
	// by: an identity the client makes up (a random X-Api-Key) must not
	// take it out of the per-fingerprint limit.
	for i := range d.also {
		a := &d.also[i]
		if a.matches(r.Method, clean) {
			subject, _ := a.key.Subject(r) // the client key when the identity is missing
			sq := q.Subject(subject)
			if sq.RateLimit.IsZero() {
				sq.RateKey, sq.RateLimit = a.name, a.limit
			}
		}
	}
}

// Inspect refuses the request when the shared bucket is empty, and bans a
// client (or identity) that keeps hammering.
func (d *RateLimit) Inspect(ctx context.Context, r *Request) (Verdict, error) {
	st := r.State
	if st == nil {
		return Allow, fmt.Errorf("rate_limit: no shared state fetched: %w", ErrStore)
	}
	clean := r.RoutePath()
	b := d.route(r, clean)
	subject, byIdentity := b.key.Subject(r)
	res, refused := st.Rate, st.Refused
	if byIdentity && st.Err == nil {
		ss := st.Of(subject)
		if ss == nil {
			return Allow, fmt.Errorf("rate_limit: no state for the identity: %w", ErrStore)
		}
		res, refused = ss.Rate, ss.Refused
	}
	if st.Err != nil {
		if d.fallback == nil {
			return Allow, fmt.Errorf("checking rate limit: %w", st.Err)
		}
		limit := b.limit
		if !d.cfg.Fallback.Limit.IsZero() {
			limit = d.cfg.Fallback.Limit
		}
		fr, err := d.fallback.Allow(ctx, "fallback:"+b.name+":"+subject, limit)
		if err != nil {
			return Allow, fmt.Errorf("checking local fallback limit: %w", err)
		}
		res = fr
	}
	if res.Allowed > 0 {
		if st.Err != nil {
			return Allow, nil
		}
		return d.inspectAlso(r, clean, st), nil
	}
	v := Block(ReasonRateLimited)
	v.RetryAfter = res.RetryAfter
	v.Header = http.Header{
		"Ratelimit-Policy": {b.policy},
		"Ratelimit":        {rateLimitValue(b.name, res)},
	}
	if st.Err == nil && d.cfg.BanAfter > 0 && refused >= int64(d.cfg.BanAfter) {
		v.BlockFor = d.cfg.BanFor
		if byIdentity {
			v.Subject = subject
		}
	}
	return v, nil
}

// inspectAlso refuses a request that one of the additional buckets
// refused (their refusals never ban: the main bucket's hammering does).
func (d *RateLimit) inspectAlso(r *Request, clean string, st *ClientState) Verdict {
	for i := range d.also {
		a := &d.also[i]
		if !a.matches(r.Method, clean) {
			continue
		}
		subject, _ := a.key.Subject(r)
		ss := st.Of(subject)
		if ss == nil || ss.Rate.Allowed > 0 || ss.Rate.Limit != a.limit {
			continue
		}
		v := Block(ReasonRateLimited)
		v.RetryAfter = ss.Rate.RetryAfter
		v.Header = http.Header{"Ratelimit-Policy": {a.policy}, "Ratelimit": {rateLimitValue(a.name, ss.Rate)}}
		return v
	}
	return Allow
}

// rateLimitValue renders the RateLimit field: remaining quota r and seconds
// t until the quota is available again, rounded up like Retry-After (see
// CeilSeconds) so the two never disagree.
func rateLimitValue(name string, res RateResult) string {
	if name == "" {
		name = "default"
	}
	return `"` + name + `";r=` + strconv.Itoa(res.Remaining) + ";t=" + strconv.Itoa(CeilSeconds(res.RetryAfter))
}

// CeilSeconds is d in whole seconds, rounded up: a client told to retry
// after that many seconds is never early. Zero and negative durations give 0.
func CeilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

var (
	_ Detection = (*RateLimit)(nil)
	_ Querier   = (*RateLimit)(nil)
)
