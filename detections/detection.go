// Package detections holds the detection contract, the chain that runs
// detections in order, and one file per detection.
//
// Detections decide; the gateway enforces. A detection never writes a
// response, a blocklist entry, a log event or a metric: it returns a Verdict
// and the gateway does the rest, so monitor mode, fail-open and "never tell the
// client which detection fired" live in one place.
package detections

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Detection analyses one request. It is built once at start-up, is safe for
// concurrent use, and keeps per-client state in the shared store, never in
// process memory.
type Detection interface {
	// Name is a stable snake_case id: log attribute, metric label and config key.
	Name() string
	// Inspect returns the verdict for r. A non-nil error means "could not
	// decide": the chain logs and counts it, ignores the verdict and moves on
	// (fail-open), unless the detection is configured with on_store_error:
	// block and the error wraps ErrStore.
	Inspect(ctx context.Context, r *Request) (Verdict, error)
}

// ResponseObserver is optionally implemented by detections that learn from
// upstream responses. It sees upstream responses only, never the gateway's own
// 403, 413 or 502 answers. A Block returned here cannot change the response
// already sent; it feeds the shared blocklist, so its BlockFor must be > 0 to
// have an effect.
type ResponseObserver interface {
	ObserveResponse(ctx context.Context, r *Request, resp Response) (Verdict, error)
}

// StatusFilter is optionally implemented by a ResponseObserver that only
// cares about some upstream statuses. The gateway skips the observers (and
// the early flush of the response they need) for every other status, so a
// clean 200 costs nothing.
type StatusFilter interface {
	ObservesStatus(status int) bool
}

// Response is what a ResponseObserver learns about an upstream answer.
type Response struct {
	Status  int
	Header  http.Header
	Latency time.Duration
}

// Action is what a verdict asks the gateway to do.
type Action uint8

const (
	// ActionAllow lets the request continue. The zero Verdict allows.
	ActionAllow Action = iota
	// ActionBlock refuses the request.
	ActionBlock
	// ActionMonitor lets the request through but records "would block": a
	// detection returns it when a rule of its own runs in monitor mode while
	// the detection as a whole enforces.
	ActionMonitor
)

// String returns "allow", "block" or "monitor".
func (a Action) String() string {
	switch a {
	case ActionBlock:
		return "block"
	case ActionMonitor:
		return "monitor"
	}
	return "allow"
}

// Verdict is the outcome of one detection for one request.
type Verdict struct {
	Action Action
	// Reason is a low-cardinality, stable snake_case id such as
	// "rate_limited". It is logged and counted, never sent to the client.
	Reason string
	// BlockFor > 0 also adds the client to the shared blocklist for this long
	// (the gateway may escalate it for repeat offenders).
	BlockFor time.Duration
	// Subject, when set, is whom BlockFor bans: a hashed identity (see
	// KeySpec) instead of the client IP.
	Subject string
	// RetryAfter, when > 0, is sent to the client as Retry-After.
	RetryAfter time.Duration
	// Header is added to the refusal (e.g. RateLimit headers). Optional.
	Header http.Header
	// Rule and Location name the rule that matched and where (a parameter
	// name, never its value). Optional; logged only.
	Rule     string
	Location string
	// Score is the anomaly score of payload analysis. Optional; logged only.
	Score int
}

// Allow is the verdict that lets a request through.
var Allow = Verdict{}

// Block returns a blocking verdict with the given reason.
func Block(reason string) Verdict { return Verdict{Action: ActionBlock, Reason: reason} }

// ErrStore marks errors caused by the shared store (Redis) being slow or
// unavailable. Detections wrap it so that on_store_error can tell a store
// outage from a bug in the detection.
var ErrStore = errors.New("store unavailable")
