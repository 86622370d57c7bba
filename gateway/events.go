package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rampartgw/rampart/detections"
)

// Event types: stable names, shared by log lines, the event stream and the
// admin API.
const (
	EventRequestBlocked    = "request_blocked"
	EventWouldBlock        = "would_block"
	EventClientBlocklisted = "client_blocklisted"
	EventClientUnbanned    = "client_unbanned"
	EventDetectionFailed   = "detection_failed"
)

// Event is one security event. The same fields make the log line and the
// stream entry.
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
	Status    int       `json:"status,omitempty"`
	BanFor    string    `json:"ban_for,omitempty"`
	Score     int       `json:"score,omitempty"`
	Error     string    `json:"error,omitempty"`
	Replica   string    `json:"replica,omitempty"`
}

// EventSink receives events; Emit must never block (the stream writer
// buffers and drops, counting drops, when full).
type EventSink interface {
	Emit(Event)
}

// visit calls str or num for every non-empty field, in a stable order,
// under its JSON name: the log line and the stream entry are both built
// from this one list, so they always carry the same fields.
func (e *Event) visit(str func(k, v string), num func(k string, v int)) {
	for _, f := range [...]struct{ k, v string }{
		{"request_id", e.RequestID}, {"client", e.Client}, {"client_ip", e.ClientIP},
		{"detection", e.Detection}, {"reason", e.Reason}, {"rule", e.Rule}, {"location", e.Location},
		{"mode", e.Mode}, {"method", e.Method}, {"route", e.Route},
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
}

// Attrs returns the event as log attributes (time and type are the log
// record's own).
func (e *Event) Attrs() []slog.Attr {
	a := make([]slog.Attr, 0, 16)
	e.visit(func(k, v string) { a = append(a, slog.String(k, v)) },
		func(k string, v int) { a = append(a, slog.Int(k, v)) })
	return a
}

// route returns a loggable route: the path without the query, capped, with
// control characters (C0, C1, separators, bidi controls) and invalid UTF-8
// replaced, so a hostile path cannot forge log lines or terminal output.
func route(p string) string {
	const max = 256
	if len(p) > max {
		p = p[:max]
	}
	if strings.IndexFunc(p, unsafeRune) >= 0 || !utf8.ValidString(p) {
		p = strings.Map(func(r rune) rune {
			if unsafeRune(r) || r == utf8.RuneError {
				return '?'
			}
			return r
		}, p)
	}
	return p
}

func unsafeRune(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}

// recorder turns decisions into log lines, events and metrics. It is the
// chain's detections.Recorder.
type recorder struct {
	log     *slog.Logger
	m       *Metrics
	sink    EventSink
	replica string
	// storeErrs throttles detection_failed lines caused by a store outage
	// (every request would log one): one per detection per second, with the
	// number suppressed since. The metric still counts every failure.
	storeErrs sync.Map // detection name -> *throttle
}

type throttle struct {
	next       atomic.Int64 // unix nanos before which lines are suppressed
	suppressed atomic.Int64
}

// allow reports whether a line may be written now, and how many were
// suppressed before it.
func (th *throttle) allow(now time.Time) (bool, int64) {
	n := th.next.Load()
	if now.UnixNano() < n || !th.next.CompareAndSwap(n, now.Add(time.Second).UnixNano()) {
		th.suppressed.Add(1)
		return false, 0
	}
	return true, th.suppressed.Swap(0)
}

func (rc *recorder) newEvent(typ string, r *detections.Request) Event {
	ev := Event{Time: time.Now().UTC(), Type: typ, Replica: rc.replica}
	if r != nil {
		ev.RequestID, ev.Client, ev.Method, ev.Route = r.ID, r.ClientKey, r.Method, route(r.Path)
		if r.ClientIP.IsValid() {
			ev.ClientIP = r.ClientIP.String()
		}
	}
	return ev
}

func (rc *recorder) emit(ctx context.Context, level slog.Level, ev Event) {
	rc.log.LogAttrs(ctx, level, ev.Type, ev.Attrs()...)
	if rc.sink != nil {
		rc.sink.Emit(ev)
	}
}

// DetectionFailed implements detections.Recorder.
func (rc *recorder) DetectionFailed(ctx context.Context, r *detections.Request, name string, err error, stack []byte) {
	kind, level := "error", slog.LevelWarn
	switch {
	case stack != nil:
		kind, level = "panic", slog.LevelError
	case isStoreErr(err):
		kind = "store"
	}
	rc.m.detectionErrors.WithLabelValues(name, kind).Inc()
	var suppressed int64
	if kind == "store" {
		v, _ := rc.storeErrs.LoadOrStore(name, new(throttle))
		ok, n := v.(*throttle).allow(time.Now())
		if !ok {
			return
		}
		suppressed = n
	}
	ev := rc.newEvent(EventDetectionFailed, r)
	ev.Detection, ev.Error, ev.Reason = name, err.Error(), kind
	if suppressed > 0 {
		ev.Error += " (" + strconv.FormatInt(suppressed, 10) + " similar failures not logged in the last second)"
	}
	if stack != nil {
		rc.log.LogAttrs(ctx, level, ev.Type, append(ev.Attrs(), slog.String("stack", string(stack)))...)
		if rc.sink != nil {
			rc.sink.Emit(ev)
		}
		return
	}
	rc.emit(ctx, level, ev)
}

// WouldBlock implements detections.Recorder.
func (rc *recorder) WouldBlock(ctx context.Context, r *detections.Request, name string, v detections.Verdict) {
	rc.m.decisions.WithLabelValues(name, detections.ModeMonitor.String(), "would_block").Inc()
	ev := rc.newEvent(EventWouldBlock, r)
	ev.Detection, ev.Reason, ev.Rule, ev.Location, ev.Score = name, v.Reason, v.Rule, v.Location, v.Score
	ev.Mode = detections.ModeMonitor.String()
	if v.BlockFor > 0 {
		ev.BanFor = v.BlockFor.String()
	}
	rc.emit(ctx, slog.LevelInfo, ev)
}

// blocked records an enforced block by a detection.
func (rc *recorder) blocked(ctx context.Context, r *detections.Request, d detections.Decision) {
	rc.m.decisions.WithLabelValues(d.Detection, detections.ModeEnforce.String(), "block").Inc()
	ev := rc.newEvent(EventRequestBlocked, r)
	v := d.Verdict
	ev.Detection, ev.Reason, ev.Rule, ev.Location, ev.Score = d.Detection, v.Reason, v.Rule, v.Location, v.Score
	ev.Mode, ev.Status = detections.ModeEnforce.String(), d.Status
	rc.emit(ctx, slog.LevelInfo, ev)
}

// banned records a client added to the blocklist.
func (rc *recorder) banned(ctx context.Context, r *detections.Request, b detections.Ban) {
	rc.m.bans.WithLabelValues(b.Detection).Inc()
	ev := rc.newEvent(EventClientBlocklisted, r)
	ev.Client, ev.Detection, ev.Reason = b.Client, b.Detection, b.Reason
	ev.BanFor = b.TTL.Round(time.Second).String()
	rc.emit(ctx, slog.LevelInfo, ev)
}

// unbanned records an operator lifting a ban.
func (rc *recorder) unbanned(ctx context.Context, client, by string) {
	ev := rc.newEvent(EventClientUnbanned, nil)
	ev.Client, ev.Detection, ev.Reason = client, "admin", by
	rc.emit(ctx, slog.LevelInfo, ev)
}

func isStoreErr(err error) bool { return err != nil && errors.Is(err, detections.ErrStore) }
