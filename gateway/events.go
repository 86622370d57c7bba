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
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/tlsfp"
)

// EventSink receives security events; Emit must never block (the stream
// writer buffers and drops, counting drops, when full).
type EventSink interface {
	Emit(record.Event)
}

// eventAttrs returns the event as log attributes (time and type are the
// log record's own).
func eventAttrs(e *record.Event) []slog.Attr {
	a := make([]slog.Attr, 0, 16)
	e.Each(func(k, v string) { a = append(a, slog.String(k, v)) },
		func(k string, v int) { a = append(a, slog.Int(k, v)) })
	return a
}

// safePath returns a loggable path: the path without the query, capped, with
// control characters (C0, C1, separators, bidi controls) and invalid UTF-8
// replaced, so a hostile path cannot forge log lines or terminal output.
func safePath(p string) string {
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

// recorder turns decisions into log lines, events and metrics: one log line
// and one stream entry with the same fields, plus one counter increment. It
// is the chain's detections.Recorder.
type recorder struct {
	log     *slog.Logger
	m       *Metrics
	sink    EventSink
	replica string
	now     func() time.Time
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

func (rc *recorder) newEvent(typ string, r *detections.Request) record.Event {
	ev := record.Event{Time: rc.now().UTC(), Type: typ, Replica: rc.replica}
	if r != nil {
		ev.RequestID, ev.Client, ev.Method, ev.Route, ev.Path = r.ID, r.ClientKey, r.Method, r.Route, safePath(r.Path)
		if r.ClientIP.IsValid() {
			ev.ClientIP = r.ClientIP.String()
		}
		if t := r.TLS; t != nil {
			ev.JA4, ev.JA3, ev.TLSCipher = t.Fingerprint.JA4, t.Fingerprint.JA3Hash, t.CipherName
			if t.Version != 0 {
				ev.TLSVersion = tlsfp.VersionLabel(t.Version)
			}
		}
	}
	return ev
}

func (rc *recorder) emit(ctx context.Context, level slog.Level, ev record.Event, extra ...slog.Attr) {
	rc.log.LogAttrs(ctx, level, ev.Type, append(eventAttrs(&ev), extra...)...)
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
	case errors.Is(err, detections.ErrStore):
		kind = "store"
	}
	rc.m.detectionErrors.WithLabelValues(name, kind).Inc()
	var suppressed int64
	if kind == "store" {
		v, _ := rc.storeErrs.LoadOrStore(name, new(throttle))
		ok, n := v.(*throttle).allow(rc.now())
		if !ok {
			return
		}
		suppressed = n
	}
	ev := rc.newEvent(record.EventDetectionFailed, r)
	ev.Detection, ev.Error, ev.Reason = name, err.Error(), kind
	if suppressed > 0 {
		ev.Error += " (" + strconv.FormatInt(suppressed, 10) + " similar failures not logged in the last second)"
	}
	if stack != nil {
		rc.emit(ctx, level, ev, slog.String("stack", string(stack)))
		return
	}
	rc.emit(ctx, level, ev)
}

// WouldBlock implements detections.Recorder.
func (rc *recorder) WouldBlock(ctx context.Context, r *detections.Request, name string, v detections.Verdict) {
	rc.m.decisions.WithLabelValues(name, detections.ModeMonitor.String(), "would_block").Inc()
	rc.countLimit(name, v)
	ev := rc.newEvent(record.EventWouldBlock, r)
	ev.Detection, ev.Reason, ev.Rule, ev.Location, ev.Score = name, v.Reason, v.Rule, v.Location, v.Score
	ev.Mode = detections.ModeMonitor.String()
	if v.BlockFor > 0 {
		ev.BanFor = v.BlockFor.String()
	}
	rc.emit(ctx, slog.LevelInfo, ev)
}

// countLimit counts a finding that a limit stopped the inspection: by
// convention its location is "limit:<name>" (limit:max_fields).
func (rc *recorder) countLimit(detection string, v detections.Verdict) {
	if name, ok := strings.CutPrefix(v.Location, "limit:"); ok {
		rc.m.limits.WithLabelValues(detection, name).Inc()
	}
}

// blocked records an enforced block by a detection.
func (rc *recorder) blocked(ctx context.Context, r *detections.Request, d *detections.Decision) {
	rc.m.decisions.WithLabelValues(d.Detection, detections.ModeEnforce.String(), "block").Inc()
	rc.countLimit(d.Detection, d.Verdict)
	ev := rc.newEvent(record.EventRequestBlocked, r)
	v := d.Verdict
	ev.Detection, ev.Reason, ev.Rule, ev.Location, ev.Score = d.Detection, v.Reason, v.Rule, v.Location, v.Score
	ev.Mode, ev.Status = detections.ModeEnforce.String(), d.Status
	rc.emit(ctx, slog.LevelInfo, ev)
}

// banned records a client added to the blocklist (r is nil for an
// operator's ban).
func (rc *recorder) banned(ctx context.Context, r *detections.Request, b record.Ban) {
	ev := rc.newEvent(record.EventClientBlocklisted, r)
	ev.Client, ev.Detection, ev.Reason = b.Client, b.Detection, b.Reason
	ev.BanFor = b.TTL.Round(time.Second).String()
	rc.emit(ctx, slog.LevelInfo, ev)
}

// unbanned records an operator lifting a ban.
func (rc *recorder) unbanned(ctx context.Context, client, by string) {
	ev := rc.newEvent(record.EventClientUnbanned, nil)
	ev.Client, ev.Detection, ev.Reason = client, "admin", by
	rc.emit(ctx, slog.LevelInfo, ev)
}
