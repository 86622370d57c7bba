package detections

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
)

// Mode says what the chain does with a detection's verdict.
type Mode uint8

const (
	// ModeEnforce blocks when the detection blocks.
	ModeEnforce Mode = iota
	// ModeMonitor records "would block" and lets the request through.
	ModeMonitor
	// ModeOff does not run the detection at all.
	ModeOff
)

var modeNames = [...]string{"enforce", "monitor", "off"}

// String returns "enforce", "monitor" or "off".
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "unknown"
}

// ParseMode maps a config value to a Mode.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if n == s {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q (want enforce, monitor or off)", s)
}

// UnmarshalText decodes "enforce", "monitor" or "off" (YAML, environment).
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText encodes the mode's name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// StorePolicy says what a detection's verdict is when the shared store is
// unavailable.
type StorePolicy uint8

const (
	// StoreAllow fails open: the detection is skipped (the default, as the
	// prototype bypassed a failing detection).
	StoreAllow StorePolicy = iota
	// StoreBlock fails closed: the request is refused with 503.
	StoreBlock
)

// ParseStorePolicy maps "allow" or "block" to a StorePolicy.
func ParseStorePolicy(s string) (StorePolicy, error) {
	switch s {
	case "allow", "":
		return StoreAllow, nil
	case "block":
		return StoreBlock, nil
	}
	return 0, fmt.Errorf("unknown on_store_error %q (want allow or block)", s)
}

// UnmarshalText decodes "allow" or "block" (YAML, environment).
func (p *StorePolicy) UnmarshalText(b []byte) error {
	v, err := ParseStorePolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText encodes the policy's name.
func (p StorePolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// String returns "allow" or "block".
func (p StorePolicy) String() string {
	if p == StoreBlock {
		return "block"
	}
	return "allow"
}

// Settings are what every detection's config section has besides the
// detection's own keys.
type Settings struct {
	// Mode is enforce (default), monitor or off.
	Mode Mode `yaml:"mode"`
	// Status is answered on an enforced block; 0 means 403.
	Status int `yaml:"status"`
	// OnStoreError applies when the detection fails because the shared
	// store is unavailable: allow (skip it, default) or block (503).
	OnStoreError StorePolicy `yaml:"on_store_error"`
}

// Validate reports a status outside 4xx and 5xx.
func (s Settings) Validate() error {
	if s.Status != 0 && (s.Status < 400 || s.Status > 599) {
		return fmt.Errorf("status: %d is not a 4xx or 5xx", s.Status)
	}
	return nil
}

// Entry returns the chain entry of d under these settings.
func (s Settings) Entry(d Detection) Entry {
	return Entry{Detection: d, Mode: s.Mode, Status: s.Status, OnStoreError: s.OnStoreError}
}

// Entry is one detection in the chain with its per-detection settings.
type Entry struct {
	Detection Detection
	Mode      Mode
	// Status answered on an enforced block; 0 means 403.
	Status int
	// OnStoreError applies when Inspect fails with an error wrapping ErrStore.
	OnStoreError StorePolicy
}

// Recorder receives what the chain cannot decide alone. The gateway
// implements it with log events and metrics. It is called only off the
// allow path, so a clean request costs no calls.
type Recorder interface {
	// DetectionFailed is called when a detection returned an error or
	// panicked; the detection is skipped. stack is non-nil for a panic.
	DetectionFailed(ctx context.Context, r *Request, detection string, err error, stack []byte)
	// WouldBlock is called when a monitor-mode detection blocks.
	WouldBlock(ctx context.Context, r *Request, detection string, v Verdict)
}

// Decision is the outcome of running the chain on one request.
type Decision struct {
	Verdict Verdict
	// Detection is the name of the detection that blocked ("" on allow).
	Detection string
	// Status is the HTTP status to answer when Verdict blocks.
	Status int
}

// Chain runs detections sequentially in configured order; the first enforced
// block wins. It is immutable after New and safe for concurrent use; a config
// reload builds a new Chain.
type Chain struct {
	entries     []Entry
	observers   []int // indexes of entries whose detection is a ResponseObserver
	queriers    []int // indexes of entries whose detection is a Querier
	identifiers []int // indexes of entries whose detection is an Identifier
}

// NewChain validates entries and builds a Chain. Detections in ModeOff are
// dropped. Names must be unique.
func NewChain(entries ...Entry) (*Chain, error) {
	c := &Chain{}
	seen := map[string]bool{}
	var errs []error
	for _, e := range entries {
		if e.Detection == nil {
			errs = append(errs, errors.New("chain: nil detection"))
			continue
		}
		name := e.Detection.Name()
		if seen[name] {
			errs = append(errs, fmt.Errorf("chain: detection %q listed twice", name))
		}
		seen[name] = true
		if e.Mode == ModeOff {
			continue
		}
		if e.Status == 0 {
			e.Status = http.StatusForbidden
		}
		if e.Status < 400 || e.Status > 599 {
			errs = append(errs, fmt.Errorf("chain: detection %q: status %d is not a 4xx or 5xx", name, e.Status))
		}
		i := len(c.entries)
		c.entries = append(c.entries, e)
		if _, ok := e.Detection.(ResponseObserver); ok {
			c.observers = append(c.observers, i)
		}
		if _, ok := e.Detection.(Querier); ok {
			c.queriers = append(c.queriers, i)
		}
		if _, ok := e.Detection.(Identifier); ok {
			c.identifiers = append(c.identifiers, i)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Entries returns the active entries in order.
func (c *Chain) Entries() []Entry { return c.entries }

// HasObservers reports whether any detection observes responses.
func (c *Chain) HasObservers() bool { return len(c.observers) > 0 }

// Observes reports whether some observer wants to see an upstream response
// with this status.
func (c *Chain) Observes(status int) bool {
	for _, i := range c.observers {
		f, ok := c.entries[i].Detection.(StatusFilter)
		if !ok || f.ObservesStatus(status) {
			return true
		}
	}
	return false
}

// Runner is implemented by detections with background work (key
// refreshes, off-path audits). The gateway runs it while the detection's
// chain is in force, and cancels ctx when a reload replaces the chain.
type Runner interface {
	Run(ctx context.Context) error
}

// Runners returns the detections of the chain that have background work.
func (c *Chain) Runners() []Runner {
	var out []Runner
	for _, e := range c.entries {
		if r, ok := e.Detection.(Runner); ok {
			out = append(out, r)
		}
	}
	return out
}

// Identify lets the detections that establish a credential (Identifier)
// fill r.Credential, before the shared state is fetched: limits may be
// keyed by it. A panic is logged like a detection's and leaves r as it was.
func (c *Chain) Identify(ctx context.Context, r *Request, rec Recorder) {
	for _, i := range c.identifiers {
		e := &c.entries[i]
		func() {
			defer func() {
				if p := recover(); p != nil && rec != nil {
					rec.DetectionFailed(ctx, r, e.Detection.Name(), fmt.Errorf("panic in Identify: %v", p), debug.Stack())
				}
			}()
			e.Detection.(Identifier).Identify(ctx, r)
		}()
	}
}

// Query asks every stateful detection what shared state it needs for r. The
// gateway fetches it all in one store round trip.
func (c *Chain) Query(r *Request, q *StateQuery) bool {
	for _, i := range c.queriers {
		asked := !q.RateLimit.IsZero()
		c.entries[i].Detection.(Querier).Query(r, q)
		if !asked && !q.RateLimit.IsZero() {
			q.RateEnforced = c.entries[i].Mode == ModeEnforce
		}
	}
	return !q.IsZero()
}

// Run inspects r with every detection in order and returns the decision.
func (c *Chain) Run(ctx context.Context, r *Request, rec Recorder) Decision {
	for i := range c.entries {
		e := &c.entries[i]
		if d, ok := failClosed(r, e); ok {
			if e.Mode == ModeEnforce {
				return d
			}
			if rec != nil {
				rec.WouldBlock(ctx, r, d.Detection, d.Verdict)
			}
			continue
		}
		v, stack, err := inspect(ctx, e.Detection, r)
		if d, stop := c.decide(ctx, r, e, v, err, stack, rec); stop {
			return d
		}
	}
	return Decision{}
}

// Observe shows an upstream response to every ResponseObserver. It returns
// the first enforced block (whose BlockFor feeds the blocklist), if any.
func (c *Chain) Observe(ctx context.Context, r *Request, resp Response, rec Recorder) Decision {
	for _, i := range c.observers {
		e := &c.entries[i]
		v, stack, err := observe(ctx, e.Detection.(ResponseObserver), r, resp)
		if d, stop := c.decide(ctx, r, e, v, err, stack, rec); stop {
			return d
		}
	}
	return Decision{}
}

// failClosed is the 503 of a stateful detection configured with
// on_store_error: block once the store has been failing for longer than
// the grace period. Within it, the detection runs on what it has (its
// local fallback, or nothing: fail open).
func failClosed(r *Request, e *Entry) (Decision, bool) {
	if e.OnStoreError != StoreBlock || r.State == nil || r.State.Err == nil || r.State.StoreGrace {
		return Decision{}, false
	}
	if _, ok := e.Detection.(Querier); !ok {
		return Decision{}, false
	}
	return Decision{Verdict: Block(ReasonStoreUnavailable), Detection: e.Detection.Name(), Status: http.StatusServiceUnavailable}, true
}

// ReasonStoreUnavailable is the reason of a fail-closed refusal.
const ReasonStoreUnavailable = "store_unavailable"

func (c *Chain) decide(ctx context.Context, r *Request, e *Entry, v Verdict, err error, stack []byte, rec Recorder) (Decision, bool) {
	name := e.Detection.Name()
	if err != nil {
		if rec != nil {
			rec.DetectionFailed(ctx, r, name, err, stack)
		}
		if stack == nil && e.OnStoreError == StoreBlock && errors.Is(err, ErrStore) && (r.State == nil || !r.State.StoreGrace) {
			v = Block(ReasonStoreUnavailable)
			if e.Mode == ModeEnforce {
				return Decision{Verdict: v, Detection: name, Status: http.StatusServiceUnavailable}, true
			}
			if rec != nil {
				rec.WouldBlock(ctx, r, name, v)
			}
		}
		return Decision{}, false
	}
	if v.Action == ActionAllow {
		return Decision{}, false
	}
	if e.Mode == ModeMonitor || v.Action == ActionMonitor {
		if rec != nil {
			rec.WouldBlock(ctx, r, name, v)
		}
		return Decision{}, false
	}
	return Decision{Verdict: v, Detection: name, Status: e.Status}, true
}

// inspect runs one detection and turns a panic into an error, so one broken
// detection never takes the request (or the process) down.
func inspect(ctx context.Context, d Detection, r *Request) (v Verdict, stack []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, stack, err = Allow, debug.Stack(), fmt.Errorf("panic: %v", p)
		}
	}()
	v, err = d.Inspect(ctx, r)
	return v, nil, err
}

func observe(ctx context.Context, o ResponseObserver, r *Request, resp Response) (v Verdict, stack []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, stack, err = Allow, debug.Stack(), fmt.Errorf("panic: %v", p)
		}
	}()
	v, err = o.ObserveResponse(ctx, r, resp)
	return v, nil, err
}
