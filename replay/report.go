package replay

import (
	"encoding/json"
	"io"
	"time"
)

// SchemaVersion identifies the JSON report layout. Fields are only ever
// added within a version; a rename or removal bumps it.
const SchemaVersion = "rampart.replay/v1"

// Change kinds.
const (
	ChangeNewlyBlocked = "newly_blocked" // current allowed, candidate blocks
	ChangeNewlyAllowed = "newly_allowed" // current blocked, candidate allows
	ChangeCauseChanged = "cause_changed" // both block, for a different detection, rule, status or refusal
)

// Report is the result of a Run. Its JSON form (WriteJSON) is documented in
// README.md; every list is sorted deterministically, so two runs over the
// same input give byte-identical reports.
type Report struct {
	Schema       string         `json:"schema"`
	Config       ReportConfig   `json:"config"`
	Inputs       []InputSummary `json:"inputs"`
	Capabilities []Capability   `json:"capabilities"`
	Totals       Totals         `json:"totals"`
	Clock        Clock          `json:"clock"`
	Changes      []Change       `json:"changes"`
	ByDetection  []DetectionRow `json:"by_detection"`
	ByRoute      []Row          `json:"by_route"`
	ByClient     []Row          `json:"by_client"`
	ByLabel      []Row          `json:"by_label"`
	Invalid      Problems       `json:"invalid"`
	JudgeErrors  Problems       `json:"judge_errors"`
	Notes        []NoteCount    `json:"notes"`
	Cardinality  Cardinality    `json:"cardinality"`
}

// ReportConfig echoes the settings that shaped the numbers.
type ReportConfig struct {
	Start             time.Time      `json:"start"`
	IntervalSeconds   float64        `json:"interval_seconds"`
	ClientIPs         ClientIPPolicy `json:"client_ips"`
	RouteDepth        int            `json:"route_depth"`
	CustomRoutes      bool           `json:"custom_routes"`
	HashedClients     bool           `json:"hashed_clients"`
	ExamplesPerChange int            `json:"examples_per_change"`
}

// InputSummary counts the records of one source.
type InputSummary struct {
	Source  string `json:"source"`
	Format  Format `json:"format"`
	Records int    `json:"records"` // valid records
	Invalid int    `json:"invalid"`
}

// Totals are the headline numbers. Requests = NewlyBlocked + NewlyAllowed +
// CauseChanged + Unchanged.
type Totals struct {
	Records          int `json:"records"`  // valid records read
	Requests         int `json:"requests"` // records both judges decided
	BlockedCurrent   int `json:"blocked_current"`
	BlockedCandidate int `json:"blocked_candidate"`
	NewlyBlocked     int `json:"newly_blocked"`
	NewlyAllowed     int `json:"newly_allowed"`
	CauseChanged     int `json:"cause_changed"`
	Unchanged        int `json:"unchanged"`
	// NewlyBlockedBans counts newly blocked requests refused because the
	// candidate had already banned the client; NewlyBlockedRateLimited those
	// refused by a rate limit.
	NewlyBlockedBans        int `json:"newly_blocked_bans"`
	NewlyBlockedRateLimited int `json:"newly_blocked_rate_limited"`
	// BansCurrent and BansCandidate count decisions that ban a client.
	BansCurrent   int `json:"bans_current"`
	BansCandidate int `json:"bans_candidate"`
	Invalid       int `json:"invalid"`
	JudgeErrors   int `json:"judge_errors"`
}

// Clock summarises the simulated timeline.
type Clock struct {
	First              *time.Time     `json:"first"`                // At of the first request; null without requests
	Last               *time.Time     `json:"last"`                 // At of the last request
	Recorded           int            `json:"recorded"`             // records with a recorded time
	Synthetic          int            `json:"synthetic"`            // records placed Interval after the previous one
	OutOfOrder         int            `json:"out_of_order"`         // recorded earlier than the previous record
	MaxBackwardSeconds float64        `json:"max_backward_seconds"` // largest such step back
	Examples           []ClockExample `json:"examples"`             // the first out-of-order records
	Shifted            []Shift        `json:"shifted"`              // inputs moved forward to follow the previous one
}

// Shift is an input whose recorded times were all moved forward by Seconds.
type Shift struct {
	Source  string  `json:"source"`
	Seconds float64 `json:"seconds"`
}

// ClockExample is one record whose recorded time went backwards; it was
// judged at Previous.
type ClockExample struct {
	Where    string    `json:"where"`
	Time     time.Time `json:"time"`
	Previous time.Time `json:"previous"`
}

// Change is one cell of the transition table: every request whose current
// decision was Current and candidate decision Candidate.
type Change struct {
	Kind      string    `json:"kind"`
	Current   Decision  `json:"current"`
	Candidate Decision  `json:"candidate"`
	Count     int       `json:"count"`
	Examples  []Example `json:"examples"` // the first ones, in record order
}

// Example is one changed request, masked (see MaskHeader and MaskTarget):
// never a body, a cookie value or a sensitive header or parameter value.
type Example struct {
	Where       string     `json:"where"`
	ID          string     `json:"id,omitempty"`
	Label       string     `json:"label,omitempty"`
	At          time.Time  `json:"at"`   // simulated arrival
	Time        *time.Time `json:"time"` // recorded time; null when the recording had none
	Client      string     `json:"client"`
	Route       string     `json:"route"`
	RequestLine string     `json:"request_line"`
	Host        string     `json:"host,omitempty"`
	Headers     []Header   `json:"headers"`
	BodyBytes   int        `json:"body_bytes"`
	Current     Side       `json:"current"`
	Candidate   Side       `json:"candidate"`
}

// Side is one configuration's outcome in an example.
type Side struct {
	Decision
	Reason        string  `json:"reason,omitempty"`
	Location      string  `json:"location,omitempty"`
	BanForSeconds float64 `json:"ban_for_seconds,omitempty"`
}

// DetectionRow counts the blocks of one detection, rule and refusal kind.
type DetectionRow struct {
	Detection    string `json:"detection"`
	RuleID       string `json:"rule_id,omitempty"`
	Refusal      string `json:"refusal,omitempty"`
	Current      int    `json:"current"`       // requests it blocks under the current configuration
	Candidate    int    `json:"candidate"`     // … under the candidate
	NewlyBlocked int    `json:"newly_blocked"` // candidate blocks with it, current allowed
	NewlyAllowed int    `json:"newly_allowed"` // current blocked with it, candidate allows
}

// Row counts requests of one route, client or label.
type Row struct {
	Key              string `json:"key"`
	Requests         int    `json:"requests"`
	BlockedCurrent   int    `json:"blocked_current"`
	BlockedCandidate int    `json:"blocked_candidate"`
	NewlyBlocked     int    `json:"newly_blocked"`
	NewlyAllowed     int    `json:"newly_allowed"`
	CauseChanged     int    `json:"cause_changed"`
}

// Problems counts invalid records or judge errors.
type Problems struct {
	Count    int         `json:"count"`
	ByCode   []CodeCount `json:"by_code"`
	Examples []Problem   `json:"examples"` // the first ones, up to RunConfig.ProblemExamples
}

// CodeCount is one code's count.
type CodeCount struct {
	Code  string `json:"code"`
	Count int    `json:"count"`
}

// Problem is one invalid record or judge error. For judge errors Code is
// "current" or "candidate".
type Problem struct {
	Where  string `json:"where"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// NoteCount counts one note code over all records.
type NoteCount struct {
	Code  string `json:"code"`
	Count int    `json:"count"`
	Text  string `json:"text"`
}

// Cardinality tells how much the bounded tables left out.
type Cardinality struct {
	Routes          int `json:"routes"`           // distinct routes tracked
	RoutesOverflow  int `json:"routes_overflow"`  // requests counted under "(other)" once MaxRoutes was reached
	Clients         int `json:"clients"`          // distinct clients tracked
	ClientsOverflow int `json:"clients_overflow"` // requests counted under "(other)" once MaxClients was reached
	CellsOverflow   int `json:"cells_overflow"`   // changed requests in no Change cell once MaxCells was reached
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // payloads stay readable: <script>, not \u003cscript\u003e
	return enc.Encode(r)
}
