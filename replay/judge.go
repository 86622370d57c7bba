package replay

import (
	"context"
	"strconv"
	"time"
)

// Judge decides one request under one gateway configuration.
//
// Run calls Judge once per record, in record order, from one goroutine, and
// never calls two judges concurrently, so an implementation keeps its
// simulated state (rate-limit buckets, counters, bans) without locks and
// reads the simulated time from r.At. It must not modify r. A non-nil error
// means "could not decide": Run counts it in the report (judge_errors) and
// leaves that record out of the comparison; a context error stops the run.
type Judge interface {
	Judge(ctx context.Context, r *Record) (Outcome, error)
}

// JudgeFunc adapts a function to Judge.
type JudgeFunc func(ctx context.Context, r *Record) (Outcome, error)

// Judge calls f.
func (f JudgeFunc) Judge(ctx context.Context, r *Record) (Outcome, error) { return f(ctx, r) }

// Outcome is what a configuration does with one request. The zero Outcome
// allows.
type Outcome struct {
	// Blocked reports that the gateway refuses the request.
	Blocked bool
	// Status is the status the gateway answers (403, 413, 429, 503 …) when
	// blocked; for an allowed request it is ignored by the comparison.
	Status int
	// Detection is the stable name of the detection that decided
	// ("payload", "rate_limit", …); "" for an allowed request.
	Detection string
	// Reason is the low-cardinality reason ("malicious_payload").
	Reason string
	// RuleID is the rule that fired ("sqli", "942100"), if any.
	RuleID string
	// Location is where the finding is ("query:q", "cookie:session"):
	// a parameter name, never a value.
	Location string
	// Banned reports a refusal because the client is already banned (the
	// blocklist stage), not a decision about this request's content.
	Banned bool
	// RateLimited reports a rate-limit refusal.
	RateLimited bool
	// BanFor > 0 reports that this decision also bans the client.
	BanFor time.Duration
}

// Refusal kinds in a Decision.
const (
	RefusalBan       = "ban"
	RefusalRateLimit = "rate_limit"
)

// detectionBlocklist names a ban refusal whose Outcome names no detection.
const detectionBlocklist = "blocklist"

// Decision is the part of an Outcome the comparison groups by. Two outcomes
// are "unchanged" when their decisions are equal; Reason, Location and
// BanFor are shown in examples but do not make a change on their own.
type Decision struct {
	Blocked   bool   `json:"blocked"`
	Status    int    `json:"status,omitempty"`
	Detection string `json:"detection,omitempty"`
	RuleID    string `json:"rule_id,omitempty"`
	Refusal   string `json:"refusal,omitempty"` // "ban", "rate_limit" or ""
}

// Decision returns the comparable part of o (the zero Decision allows).
func (o Outcome) Decision() Decision {
	if !o.Blocked {
		return Decision{}
	}
	d := Decision{Blocked: true, Status: o.Status, Detection: clip(o.Detection, 64), RuleID: clip(o.RuleID, 64)}
	switch {
	case o.Banned:
		d.Refusal = RefusalBan
		if d.Detection == "" {
			d.Detection = detectionBlocklist
		}
	case o.RateLimited:
		d.Refusal = RefusalRateLimit
	}
	if d.Detection == "" {
		d.Detection = "unknown"
	}
	return d
}

// String renders d compactly: "allow", "payload/sqli 403",
// "rate_limit 429 (ban)".
func (d Decision) String() string {
	if !d.Blocked {
		return "allow"
	}
	s := d.Detection
	if d.RuleID != "" {
		s += "/" + d.RuleID
	}
	if d.Status != 0 {
		s += " " + strconv.Itoa(d.Status)
	}
	if d.Refusal == RefusalBan {
		s += " (ban)"
	}
	return s
}
