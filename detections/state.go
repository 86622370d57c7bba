package detections

import (
	"fmt"
	"time"

	"github.com/rampartgw/rampart/record"
)

// Limit is a GCRA rate limit: Burst requests at once, then Rate requests
// per Period. It has redis_rate's three fields (and its YAML keys rate,
// burst, period) without importing it, so no Redis client reaches
// detections.
type Limit struct {
	// Rate requests are allowed per Period once the burst is spent.
	Rate int `yaml:"rate"`
	// Burst requests are allowed at once.
	Burst int `yaml:"burst"`
	// Period is the time Rate requests are spread over.
	Period time.Duration `yaml:"period"`
}

// PerSecond, PerMinute and PerHour return a limit of rate requests per
// period with a burst of rate, like redis_rate's constructors.
func PerSecond(rate int) Limit { return Limit{Rate: rate, Burst: rate, Period: time.Second} }

// PerMinute returns rate requests a minute with a burst of rate.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Burst: rate, Period: time.Minute} }

// PerHour returns rate requests an hour with a burst of rate.
func PerHour(rate int) Limit { return Limit{Rate: rate, Burst: rate, Period: time.Hour} }

// IsZero reports whether l is the zero (unset) limit.
func (l Limit) IsZero() bool { return l == Limit{} }

// Valid reports whether every field is positive.
func (l Limit) Valid() bool { return l.Rate > 0 && l.Burst > 0 && l.Period > 0 }

// String renders "5 per 1m0s (burst 5)".
func (l Limit) String() string {
	return fmt.Sprintf("%d per %v (burst %d)", l.Rate, l.Period, l.Burst)
}

// RateResult is the outcome of consuming one request from a GCRA bucket.
type RateResult struct {
	Limit Limit
	// Allowed is 1 when the request was admitted, 0 when refused.
	Allowed int
	// Remaining is how many more requests the bucket admits now.
	Remaining int
	// RetryAfter is how long until a refused request would be admitted
	// (-1 when admitted).
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
}

// Querier is implemented by detections whose decision needs shared
// per-client state (rate-limit windows, enumeration counters). Instead of
// each such detection calling the store, the gateway asks all of them what
// they need, fetches it together with the blocklist entry in one store round
// trip before the chain runs, and puts the answer in Request.State.
type Querier interface {
	// Query adds what the detection needs for r to q. It must not do I/O.
	Query(r *Request, q *StateQuery)
}

// StateQuery is the shared state the gateway fetches for one request.
type StateQuery struct {
	// RateLimit, when not zero, consumes one request from the client's GCRA
	// bucket RateKey under this limit.
	RateLimit Limit
	// RateKey names the bucket: "" for the client's default bucket, or a
	// route name for a per-route override.
	RateKey string
	// BanAfter, when > 0, counts refusals of RateKey's bucket within one
	// period (returned as ClientState.Refused).
	BanAfter int
	// InvalidWindow, when > 0, reads the client's enumeration counter, whose
	// window is this long.
	InvalidWindow time.Duration
	// CountInvalid also increments that counter for this request (a request
	// to an unknown route), in the same round trip.
	CountInvalid bool
	// RateEnforced is set by Chain.Query when the detection that asked for
	// RateLimit enforces: only then may a refusal be answered from a local
	// cache (a monitor-mode limit proxies the request, so its state must
	// stay exact).
	RateEnforced bool
	// Subjects is state keyed by other identities than the client IP (a
	// token's subject, an API key, a TLS fingerprint: see KeySpec), each
	// with its own ban; fetched in the same round trip.
	Subjects []SubjectQuery
}

// SubjectQuery is the state of one subject (a hashed identity): its ban,
// and optionally a rate-limit bucket and an enumeration counter.
type SubjectQuery struct {
	Subject       string
	RateLimit     Limit
	RateKey       string
	BanAfter      int
	InvalidWindow time.Duration
	CountInvalid  bool
}

// IsZero reports whether nothing needs to be fetched besides the blocklist.
func (q *StateQuery) IsZero() bool {
	return q.RateLimit.IsZero() && q.InvalidWindow == 0 && len(q.Subjects) == 0
}

// Subject returns the query of subject, adding it when new, so that the
// detections keyed by one identity share one store script.
func (q *StateQuery) Subject(subject string) *SubjectQuery {
	for i := range q.Subjects {
		if q.Subjects[i].Subject == subject {
			return &q.Subjects[i]
		}
	}
	q.Subjects = append(q.Subjects, SubjectQuery{Subject: subject})
	return &q.Subjects[len(q.Subjects)-1]
}

// ClientState is the answer to a StateQuery.
type ClientState struct {
	// Err is set when the store could not answer; it wraps ErrStore.
	// Detections that needed the state return it (fail-open or 503 by their
	// on_store_error).
	Err error
	// StoreGrace is set with Err while the store has been failing for less
	// than the grace period (bans.store_error_grace): fail-closed detections
	// then bridge with their local fallback instead of answering 503.
	StoreGrace bool
	// Rate is the rate-limit result; valid when the query had a RateLimit.
	Rate RateResult
	// Refused counts the client's refused requests in the current period,
	// including this one; valid when the query had BanAfter > 0.
	Refused int64
	// Invalid is the client's enumeration count in the current window,
	// including this request when CountInvalid was set.
	Invalid int64
	// Subjects answers StateQuery.Subjects, in the same order.
	Subjects []SubjectState
}

// SubjectState is the answer for one subject.
type SubjectState struct {
	Subject string
	Rate    RateResult
	Refused int64
	Invalid int64
}

// Of returns the state of subject (nil when it was not queried).
func (s *ClientState) Of(subject string) *SubjectState {
	for i := range s.Subjects {
		if s.Subjects[i].Subject == subject {
			return &s.Subjects[i]
		}
	}
	return nil
}

// Check is the answer to the gateway's one store round trip for a request:
// the client's blocklist entry, or else the shared state the chain asked for.
type Check struct {
	// Ban is non-nil when the client is on the blocklist; State is then not
	// computed (a banned client consumes no rate-limit tokens).
	Ban   *record.Ban
	State ClientState
}
