// Package record holds the records that the gateway, the store and the
// tools exchange: bans and their changes, and security events. It is a
// leaf: it imports nothing of Rampart, so every package can share these
// types without depending on each other.
package record

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

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

// BanRequest asks the store to put a client on the blocklist.
type BanRequest struct {
	Client    string
	Reason    string
	Detection string
	// Duration is the base duration; the store escalates it for repeat
	// offenders when Escalate is set.
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
	// Reset asks the receiver to drop its caches and reload what it can
	// (sent after every (re)subscription, because notifications sent while
	// disconnected are lost).
	Reset bool `json:"-"`
}

// Event types: stable snake_case names, shared by log lines, the event
// stream and the admin API.
const (
	EventRequestBlocked    = "request_blocked"
	EventWouldBlock        = "would_block"
	EventClientBlocklisted = "client_blocklisted"
	EventClientUnbanned    = "client_unbanned"
	EventDetectionFailed   = "detection_failed"
	// EventShadowDiff: the shadow policy would have answered a request
	// otherwise than the gateway did (reason: newly_blocked,
	// newly_allowed or changed; live: what the gateway did).
	EventShadowDiff = "shadow_diff"
)

// Event is one security event. The same fields make the log line and the
// stream entry (see Each).
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	RequestID string    `json:"request_id,omitempty"`
	Client    string    `json:"client,omitempty"`
	ClientIP  string    `json:"client_ip,omitempty"`
	Detection string    `json:"detection,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Location  string    `json:"location,omitempty"`
	Mode      string    `json:"mode,omitempty"`
	Method    string    `json:"method,omitempty"`
	Route     string    `json:"route,omitempty"`
	Path      string    `json:"path,omitempty"`
	Status    int       `json:"status,omitempty"`
	BanFor    string    `json:"ban_for,omitempty"`
	Score     int       `json:"score,omitempty"`
	Error     string    `json:"error,omitempty"`
	Replica   string    `json:"replica,omitempty"`
	// Live is, in a shadow_diff, what the enforcing policy did: "allowed"
	// or "<detection>/<rule>".
	Live string `json:"live,omitempty"`
	// TLS facts of the request's connection, when it had any.
	JA4        string `json:"ja4,omitempty"`
	JA3        string `json:"ja3,omitempty"`
	TLSVersion string `json:"tls_version,omitempty"`
	TLSCipher  string `json:"tls_cipher,omitempty"`
}

// Each calls str or num for every non-empty field but time and type, in a
// stable order, under its JSON name. The log line and the stream entry are
// both built from this one list, so they always carry the same fields.
func (e *Event) Each(str func(k, v string), num func(k string, v int)) {
	for _, f := range [...]struct{ k, v string }{
		{"request_id", e.RequestID}, {"client", e.Client}, {"client_ip", e.ClientIP},
		{"detection", e.Detection}, {"reason", e.Reason}, {"rule", e.Rule}, {"location", e.Location},
		{"mode", e.Mode}, {"method", e.Method}, {"route", e.Route}, {"path", e.Path},
	} {
		if f.v != "" {
			str(f.k, f.v)
		}
	}
	if e.Status != 0 {
		num("status", e.Status)
	}
	if e.BanFor != "" {
		str("ban_for", e.BanFor)
	}
	if e.Score != 0 {
		num("score", e.Score)
	}
	if e.Error != "" {
		str("error", e.Error)
	}
	if e.Replica != "" {
		str("replica", e.Replica)
	}
	if e.Live != "" {
		str("live", e.Live)
	}
	for _, f := range [...]struct{ k, v string }{
		{"ja4", e.JA4}, {"ja3", e.JA3}, {"tls_version", e.TLSVersion}, {"tls_cipher", e.TLSCipher},
	} {
		if f.v != "" {
			str(f.k, f.v)
		}
	}
}

// Set assigns the field named k (a name Each uses, or time or type) from
// its text form; unknown names are ignored, so readers of an older or newer
// stream keep working.
func (e *Event) Set(k, v string) {
	switch k {
	case "time":
		e.Time, _ = time.Parse(time.RFC3339Nano, v)
	case "type":
		e.Type = v
	case "request_id":
		e.RequestID = v
	case "client":
		e.Client = v
	case "client_ip":
		e.ClientIP = v
	case "detection":
		e.Detection = v
	case "reason":
		e.Reason = v
	case "rule":
		e.Rule = v
	case "location":
		e.Location = v
	case "mode":
		e.Mode = v
	case "method":
		e.Method = v
	case "route":
		e.Route = v
	case "path":
		e.Path = v
	case "status":
		e.Status, _ = strconv.Atoi(v)
	case "ban_for":
		e.BanFor = v
	case "score":
		e.Score, _ = strconv.Atoi(v)
	case "error":
		e.Error = v
	case "live":
		e.Live = v
	case "replica":
		e.Replica = v
	case "ja4":
		e.JA4 = v
	case "ja3":
		e.JA3 = v
	case "tls_version":
		e.TLSVersion = v
	case "tls_cipher":
		e.TLSCipher = v
	}
}

// EventQuery filters events.
type EventQuery struct {
	Client    string
	Detection string
	Type      string
	Since     time.Time
	Limit     int
	// Scan bounds how many stored events are examined (newest first).
	Scan int
}

// Match reports whether e passes the filter.
func (q *EventQuery) Match(e *Event) bool {
	return (q.Client == "" || e.Client == q.Client || e.ClientIP == q.Client) &&
		(q.Detection == "" || e.Detection == q.Detection) &&
		(q.Type == "" || e.Type == q.Type) &&
		(q.Since.IsZero() || !e.Time.Before(q.Since))
}

// Bounds returns the query's result limit and scan bound with their
// defaults applied (100 results, 100,000 events examined).
func (q *EventQuery) Bounds() (limit, scan int) {
	limit, scan = q.Limit, q.Scan
	if limit <= 0 || limit > 10_000 {
		limit = 100
	}
	if scan <= 0 {
		scan = 100_000
	}
	return limit, scan
}

// ParseDuration is time.ParseDuration plus whole days ("7d", "1d12h"),
// the unit long bans are shown in, so what the tools print they accept.
func ParseDuration(s string) (time.Duration, error) {
	days := time.Duration(0)
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return days + d, nil
}

// MaxReasonBytes bounds an operator's ban reason.
const MaxReasonBytes = 200

// CleanReason returns an operator's ban reason trimmed ("manual" when
// empty), and whether it is acceptable: printable UTF-8 on one line (no
// control, line-separator or bidi characters: it ends up in terminals and
// logs) of at most MaxReasonBytes.
func CleanReason(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "manual", true
	}
	if len(s) > MaxReasonBytes || !utf8.ValidString(s) {
		return s, false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			return s, false
		}
	}
	return s, true
}
