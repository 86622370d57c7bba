package detections

import (
	"time"

	"github.com/go-redis/redis_rate/v10"
)

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
	RateLimit redis_rate.Limit
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
}

// IsZero reports whether nothing needs to be fetched besides the blocklist.
func (q *StateQuery) IsZero() bool {
	return q.RateLimit.IsZero() && q.InvalidWindow == 0
}

// ClientState is the answer to a StateQuery.
type ClientState struct {
	// Err is set when the store could not answer; it wraps ErrStore.
	// Detections that needed the state return it (fail-open or 503 by their
	// on_store_error).
	Err error
	// Rate is the rate-limit result; valid when the query had a RateLimit.
	Rate redis_rate.Result
	// Refused counts the client's refused requests in the current period,
	// including this one; valid when the query had BanAfter > 0.
	Refused int64
	// Invalid is the client's enumeration count in the current window,
	// including this request when CountInvalid was set.
	Invalid int64
}

// Ban is a blocklist entry as stored: why, by whom, when, how often.
type Ban struct {
	Client    string        `json:"client"`
	Reason    string        `json:"reason"`
	Detection string        `json:"detection"`
	FirstSeen time.Time     `json:"first_seen"`
	LastSeen  time.Time     `json:"last_seen"`
	Count     int64         `json:"count"`
	Replica   string        `json:"replica"`
	Until     time.Time     `json:"until"`
	TTL       time.Duration `json:"-"`
	// CIDR is true for an operator's range ban (Client holds the prefix).
	CIDR bool `json:"cidr,omitempty"`
	// New is true when this call created the ban (false: the client was
	// already banned and keeps that ban).
	New bool `json:"-"`
}

// Check is the answer to the gateway's one store round trip for a request:
// the client's blocklist entry, or else the shared state the chain asked for.
type Check struct {
	// Ban is non-nil when the client is on the blocklist; State is then not
	// computed (a banned client consumes no rate-limit tokens).
	Ban   *Ban
	State ClientState
}

// BanRequest asks the store to put a client on the blocklist.
type BanRequest struct {
	Client    string
	Reason    string
	Detection string
	// Duration is the base duration; the store escalates it for repeat
	// offenders (see store.Escalation). 0 uses the store's default.
	Duration time.Duration
	// Replica names the gateway instance that made the ban.
	Replica string
	// Escalate applies repeat-offender escalation (automatic bans); a ban
	// made by an operator uses Duration as given.
	Escalate bool
	// Replace rewrites an active ban with this reason and duration (an
	// operator's decision); otherwise an active ban is kept as it is.
	Replace bool
}

// BanEvent tells replicas that the blocklist changed, so they can update
// their local ban caches.
type BanEvent struct {
	Client string    `json:"client"`
	Until  time.Time `json:"until,omitzero"`
	Unban  bool      `json:"unban,omitempty"`
	// CIDR says the range bans changed; receivers reload them.
	CIDR bool `json:"cidr,omitempty"`
	// Reset asks the receiver to drop its whole cache (sent when the
	// subscription was interrupted and events may have been missed).
	Reset bool `json:"-"`
}
