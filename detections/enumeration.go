package detections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

const enumerationName = "enumeration"

// ReasonEnumeration is the reason of an enumeration block.
const ReasonEnumeration = "enumeration"

// Counter counts per key in a fixed window shared by every replica.
// *store.Redis and *store.Memory satisfy it.
type Counter interface {
	// Incr adds one to client's invalid-request counter and returns the new
	// count; the window starts at the first increment and lasts window.
	Incr(ctx context.Context, client string, window time.Duration) (int64, error)
}

// EnumerationConfig configures the enumeration detection.
type EnumerationConfig struct {
	// Limit is how many invalid requests a client may make per Window; the
	// next one is refused and the client banned.
	Limit int `yaml:"limit"`
	// Window is the counting window, shared by all replicas.
	Window time.Duration `yaml:"window"`
	// Statuses are the upstream statuses that count as invalid.
	Statuses []int `yaml:"statuses"`
	// KnownRoutes, when non-empty, also counts requests to any other path as
	// invalid, before they reach the upstream. "/api/endpoint" matches that
	// path (case-insensitively, ignoring a trailing slash and repeated
	// slashes, so one typo costs one count, not a block); "/static/*"
	// matches a prefix.
	KnownRoutes []string `yaml:"known_routes"`
	// BanFor is the ban duration once the limit is passed.
	BanFor time.Duration `yaml:"ban_for"`
	// Key is what the counter counts: the client IP (default) or another
	// identity (see KeySpec).
	Key []string `yaml:"key"`
}

// DefaultEnumerationConfig is the prototype's 5 invalid requests, counted
// over 10 minutes, with a 10-minute ban.
func DefaultEnumerationConfig() EnumerationConfig {
	return EnumerationConfig{
		Limit:    5,
		Window:   10 * time.Minute,
		Statuses: []int{401, 403, 404, 405},
		BanFor:   10 * time.Minute,
	}
}

// Enumeration counts each client's invalid requests (upstream 401/403/404/
// 405 answers, and requests to unknown routes) in a window shared by every
// replica, and blocks and bans past the limit.
type Enumeration struct {
	cfg      EnumerationConfig
	counter  Counter
	statuses [600]bool
	exact    map[string]bool
	prefixes []string
	key      KeySpec
}

// NewEnumeration validates cfg.
func NewEnumeration(cfg EnumerationConfig, counter Counter) (*Enumeration, error) {
	var errs []error
	if cfg.Limit <= 0 {
		errs = append(errs, fmt.Errorf("limit: %d must be > 0", cfg.Limit))
	}
	if cfg.Window <= 0 {
		errs = append(errs, fmt.Errorf("window: %v must be > 0", cfg.Window))
	}
	if cfg.BanFor < 0 {
		errs = append(errs, errors.New("ban_for: must be >= 0"))
	}
	if counter == nil {
		errs = append(errs, errors.New("enumeration: no counter"))
	}
	d := &Enumeration{cfg: cfg, counter: counter, exact: map[string]bool{}}
	for _, s := range cfg.Statuses {
		if s < 100 || s > 599 {
			errs = append(errs, fmt.Errorf("statuses: %d is not an HTTP status", s))
			continue
		}
		d.statuses[s] = true
	}
	for _, r := range cfg.KnownRoutes {
		if !strings.HasPrefix(r, "/") {
			errs = append(errs, fmt.Errorf("known_routes: %q must start with /", r))
			continue
		}
		if p, ok := strings.CutSuffix(r, "*"); ok {
			d.prefixes = append(d.prefixes, strings.ToLower(p))
			continue
		}
		d.exact[canonicalRoute(r)] = true
	}
	key, err := ParseKeySpec(cfg.Key)
	if err != nil {
		errs = append(errs, fmt.Errorf("key%w", err))
	}
	d.key = key
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// canonicalRoute folds case, repeated slashes and a trailing slash.
func canonicalRoute(p string) string {
	p = strings.ToLower(p)
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

// Name returns "enumeration".
func (d *Enumeration) Name() string { return enumerationName }

// unknownRoute reports whether r's path is outside the known routes.
func (d *Enumeration) unknownRoute(r *Request) bool {
	if len(d.exact) == 0 && len(d.prefixes) == 0 {
		return false
	}
	if d.exact[r.Path] {
		return false
	}
	lp := strings.ToLower(r.Path)
	for _, p := range d.prefixes {
		if strings.HasPrefix(lp, p) {
			return false
		}
	}
	return !d.exact[canonicalRoute(r.Path)]
}

// Query reads the client's counter, and counts this request when its route
// is unknown, in the gateway's one round trip.
func (d *Enumeration) Query(r *Request, q *StateQuery) {
	if subject, ok := d.key.Subject(r); ok {
		sq := q.Subject(subject)
		sq.InvalidWindow, sq.CountInvalid = d.cfg.Window, d.unknownRoute(r)
		return
	}
	q.InvalidWindow = d.cfg.Window
	if d.unknownRoute(r) {
		q.CountInvalid = true
	}
}

func (d *Enumeration) block(subject string, byIdentity bool) Verdict {
	v := Block(ReasonEnumeration)
	v.BlockFor = d.cfg.BanFor
	if byIdentity {
		v.Subject = subject
	}
	return v
}

// Inspect blocks a client that already made Limit invalid requests in the
// window. The store's count includes this request when it goes to an unknown
// route, so that one is subtracted: the request after the Limit-th invalid
// one is the first refused.
func (d *Enumeration) Inspect(_ context.Context, r *Request) (Verdict, error) {
	st := r.State
	if st == nil {
		return Allow, fmt.Errorf("enumeration: no shared state fetched: %w", ErrStore)
	}
	if st.Err != nil {
		return Allow, fmt.Errorf("reading enumeration counter: %w", st.Err)
	}
	subject, byIdentity := d.key.Subject(r)
	before := st.Invalid
	if byIdentity {
		ss := st.Of(subject)
		if ss == nil {
			return Allow, fmt.Errorf("enumeration: no state for the identity: %w", ErrStore)
		}
		before = ss.Invalid
	}
	if d.unknownRoute(r) {
		before--
	}
	if before >= int64(d.cfg.Limit) {
		return d.block(subject, byIdentity), nil
	}
	return Allow, nil
}

// ObservesStatus reports whether status counts as invalid.
func (d *Enumeration) ObservesStatus(status int) bool {
	return status >= 0 && status < len(d.statuses) && d.statuses[status]
}

// ObserveResponse counts an invalid upstream answer. Requests to unknown
// routes were already counted before they were proxied.
func (d *Enumeration) ObserveResponse(ctx context.Context, r *Request, resp Response) (Verdict, error) {
	if !d.ObservesStatus(resp.Status) || d.unknownRoute(r) {
		return Allow, nil
	}
	subject, byIdentity := d.key.Subject(r)
	n, err := d.counter.Incr(ctx, subject, d.cfg.Window)
	if err != nil {
		return Allow, fmt.Errorf("counting invalid request: %w", err)
	}
	if n >= int64(d.cfg.Limit) && d.cfg.BanFor > 0 {
		// Ban now, so the next request is refused on every replica
		// without waiting for its own round trip. (Without a ban duration
		// Inspect refuses it from the counter.)
		return d.block(subject, byIdentity), nil
	}
	return Allow, nil
}

var (
	_ Detection        = (*Enumeration)(nil)
	_ Querier          = (*Enumeration)(nil)
	_ ResponseObserver = (*Enumeration)(nil)
	_ StatusFilter     = (*Enumeration)(nil)
)
