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

	"github.com/go-redis/redis_rate/v10"
)

const rateLimitName = "rate_limit"

// ReasonRateLimited is the reason of a rate-limit refusal.
const ReasonRateLimited = "rate_limited"

// Limiter is a per-key GCRA limiter. The rate_limit detection uses one only
// as its local fallback while the shared store is down (the shared limit is
// fetched by the gateway, see Querier); *store.Memory satisfies it.
type Limiter interface {
	Allow(ctx context.Context, key string, limit redis_rate.Limit) (*redis_rate.Result, error)
}

// RouteLimit overrides the limit for requests matching a method and a path
// prefix. Each route has its own bucket per client.
type RouteLimit struct {
	Name   string           `yaml:"name"`    // [a-z0-9_-]+, part of the Redis key
	Method string           `yaml:"method"`  // "" matches every method
	Path   string           `yaml:"path"`    // path prefix, e.g. "/api/login"
	Limit  redis_rate.Limit `yaml:",inline"` // rate, burst, period > 0
}

// RateLimitConfig configures the rate_limit detection.
type RateLimitConfig struct {
	// Limit is the default per-client limit. GCRA with this limit admits
	// Burst requests at once, then one request every Period/Rate.
	Limit redis_rate.Limit `yaml:",inline"`
	// Routes override Limit for matching requests; the first match wins.
	Routes []RouteLimit `yaml:"routes"`
	// BanAfter bans a client whose requests were refused this many times
	// within one Period (it keeps hammering past the limit); 0 never bans.
	BanAfter int `yaml:"ban_after"`
	// BanFor is the ban duration (before escalation).
	BanFor time.Duration `yaml:"ban_for"`
	// Fallback, when not zero, is a per-replica limit applied while the
	// shared store is unavailable; zero means fail open (or closed, by
	// on_store_error).
	Fallback redis_rate.Limit `yaml:"fallback"`
}

// DefaultRateLimitConfig is the prototype's MAX_REQUEST_PER_MINUTE = 5:
// a burst of 5, then one request every 12 s; 10 refusals within a minute ban
// the client for 10 minutes.
func DefaultRateLimitConfig() RateLimitConfig {
	return RateLimitConfig{Limit: redis_rate.PerMinute(5), BanAfter: 10, BanFor: 10 * time.Minute}
}

var routeNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func validLimit(l redis_rate.Limit) bool { return l.Rate > 0 && l.Burst > 0 && l.Period > 0 }

// Validate reports every problem in cfg.
func (c RateLimitConfig) Validate() error {
	var errs []error
	if !validLimit(c.Limit) {
		errs = append(errs, fmt.Errorf("rate_limit: rate, burst and period must be > 0 (got %v)", c.Limit))
	}
	if !c.Fallback.IsZero() && !validLimit(c.Fallback) {
		errs = append(errs, fmt.Errorf("rate_limit.fallback: rate, burst and period must be > 0 (got %v)", c.Fallback))
	}
	if c.BanAfter < 0 || c.BanFor < 0 {
		errs = append(errs, errors.New("rate_limit: ban_after and ban_for must be >= 0"))
	}
	if c.BanAfter > 0 && c.BanFor == 0 {
		errs = append(errs, errors.New("rate_limit: ban_after is set but ban_for is 0"))
	}
	names := map[string]bool{}
	for i, r := range c.Routes {
		if !routeNameRE.MatchString(r.Name) {
			errs = append(errs, fmt.Errorf("rate_limit.routes[%d].name: %q must match [a-z0-9_-]{1,64}", i, r.Name))
		}
		if names[r.Name] {
			errs = append(errs, fmt.Errorf("rate_limit.routes[%d].name: %q is used twice", i, r.Name))
		}
		names[r.Name] = true
		if !strings.HasPrefix(r.Path, "/") {
			errs = append(errs, fmt.Errorf("rate_limit.routes[%d].path: %q must start with /", i, r.Path))
		}
		if !validLimit(r.Limit) {
			errs = append(errs, fmt.Errorf("rate_limit.routes[%d]: rate, burst and period must be > 0", i))
		}
	}
	return errors.Join(errs...)
}

// RateLimit is the prototype's DDoS detection: a per-client GCRA limit
// shared by every replica (the gateway fetches the decision from the store
// in its one round trip; the GCRA runs in Redis on the Redis clock).
type RateLimit struct {
	cfg      RateLimitConfig
	fallback Limiter
	policy   map[string]string // bucket name -> RateLimit-Policy value
}

// NewRateLimit validates cfg. fallback may be nil when cfg.Fallback is zero.
func NewRateLimit(cfg RateLimitConfig, fallback Limiter) (*RateLimit, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Fallback.IsZero() && fallback == nil {
		return nil, errors.New("rate_limit: fallback limit configured without a local limiter")
	}
	if cfg.Fallback.IsZero() {
		fallback = nil // no fallback limit: fail open (or closed) as configured
	}
	d := &RateLimit{cfg: cfg, fallback: fallback, policy: map[string]string{}}
	d.policy[""] = policyValue("default", cfg.Limit)
	for _, r := range cfg.Routes {
		d.policy[r.Name] = policyValue(r.Name, r.Limit)
	}
	return d, nil
}

// policyValue renders a RateLimit-Policy item
// (draft-ietf-httpapi-ratelimit-headers): quota q over window w seconds.
// GCRA's quota over one period is its burst.
func policyValue(name string, l redis_rate.Limit) string {
	return `"` + name + `";q=` + strconv.Itoa(l.Burst) + ";w=" + strconv.Itoa(int(l.Period.Seconds()))
}

// Name returns "rate_limit".
func (d *RateLimit) Name() string { return rateLimitName }

// Limit returns the configured default limit.
func (d *RateLimit) Limit() redis_rate.Limit { return d.cfg.Limit }

// route returns the bucket name and limit for r.
func (d *RateLimit) route(r *Request) (string, redis_rate.Limit) {
	for i := range d.cfg.Routes {
		rt := &d.cfg.Routes[i]
		if (rt.Method == "" || rt.Method == r.Method) && strings.HasPrefix(r.Path, rt.Path) {
			return rt.Name, rt.Limit
		}
	}
	return "", d.cfg.Limit
}

// Query asks for one request from the client's bucket.
func (d *RateLimit) Query(r *Request, q *StateQuery) {
	q.RateKey, q.RateLimit = d.route(r)
	q.BanAfter = d.cfg.BanAfter
}

// Inspect refuses the request when the shared bucket is empty, and bans a
// client that keeps hammering.
func (d *RateLimit) Inspect(ctx context.Context, r *Request) (Verdict, error) {
	st := r.State
	if st == nil {
		return Allow, fmt.Errorf("rate_limit: no shared state fetched: %w", ErrStore)
	}
	res := st.Rate
	if st.Err != nil {
		if d.fallback == nil {
			return Allow, fmt.Errorf("checking rate limit: %w", st.Err)
		}
		key, _ := d.route(r)
		fr, err := d.fallback.Allow(ctx, "fallback:"+key+":"+r.ClientKey, d.cfg.Fallback)
		if err != nil {
			return Allow, fmt.Errorf("checking local fallback limit: %w", err)
		}
		res = *fr
	}
	if res.Allowed > 0 {
		return Allow, nil
	}
	v := Block(ReasonRateLimited)
	v.RetryAfter = res.RetryAfter
	key, _ := d.route(r)
	v.Header = http.Header{
		"Ratelimit-Policy": {d.policy[key]},
		"Ratelimit":        {rateLimitValue(key, res)},
	}
	if st.Err == nil && d.cfg.BanAfter > 0 && st.Refused >= int64(d.cfg.BanAfter) {
		v.BlockFor = d.cfg.BanFor
	}
	return v, nil
}

// rateLimitValue renders the RateLimit field: remaining quota r and seconds
// t until the quota is available again.
func rateLimitValue(name string, res redis_rate.Result) string {
	if name == "" {
		name = "default"
	}
	t := int(res.RetryAfter.Round(time.Second) / time.Second)
	if t < 1 && res.RetryAfter > 0 {
		t = 1
	}
	return `"` + name + `";r=` + strconv.Itoa(res.Remaining) + ";t=" + strconv.Itoa(t)
}

var (
	_ Detection = (*RateLimit)(nil)
	_ Querier   = (*RateLimit)(nil)
)
