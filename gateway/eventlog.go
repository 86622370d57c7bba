package gateway

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventLog stores security events durably and answers queries on them.
// Emit never blocks the request path.
type EventLog interface {
	EventSink
	// Run writes buffered events until ctx ends.
	Run(ctx context.Context)
	// Flush writes what is still buffered (shutdown).
	Flush(ctx context.Context)
	// Query returns matching events, newest first.
	Query(ctx context.Context, q EventQuery) ([]Event, error)
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

func (q *EventQuery) match(e *Event) bool {
	return (q.Client == "" || e.Client == q.Client || e.ClientIP == q.Client) &&
		(q.Detection == "" || e.Detection == q.Detection) &&
		(q.Type == "" || e.Type == q.Type) &&
		(q.Since.IsZero() || !e.Time.Before(q.Since))
}

// EventWriterConfig configures the Redis stream writer.
type EventWriterConfig struct {
	MaxLen        int64         // approximate cap on stream length
	MaxAge        time.Duration // entries older than this are trimmed
	Buffer        int           // events held in memory awaiting a write
	Batch         int           // events per pipelined write
	FlushInterval time.Duration // longest an event waits in the buffer
}

// RedisEventLog buffers events and appends them to a Redis stream in
// pipelined batches (XADD with approximate MAXLEN, plus an XTRIM by age).
// Every replica writes to the same stream. When the buffer is full, events
// are dropped and counted (rampart_events_dropped_total), never silently.
type RedisEventLog struct {
	rdb    redis.UniversalClient
	stream string
	cfg    EventWriterConfig
	ch     chan Event
	m      *Metrics
	log    *slog.Logger
	mu     sync.Mutex // serialises writes (Run and Flush)
}

// DefaultEventWriterConfig returns the defaults documented in the README.
func DefaultEventWriterConfig() EventWriterConfig {
	return EventWriterConfig{MaxLen: 100_000, MaxAge: 7 * 24 * time.Hour, Buffer: 10_000, Batch: 256, FlushInterval: 100 * time.Millisecond}
}

// NewEventWriter returns a writer on stream. Zero fields take their
// defaults.
func NewEventWriter(rdb redis.UniversalClient, stream string, cfg EventWriterConfig, m *Metrics, log *slog.Logger) *RedisEventLog {
	def := DefaultEventWriterConfig()
	if cfg.Buffer <= 0 {
		cfg.Buffer = def.Buffer
	}
	if cfg.Batch <= 0 {
		cfg.Batch = def.Batch
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = def.FlushInterval
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = def.MaxLen
	}
	return &RedisEventLog{rdb: rdb, stream: stream, cfg: cfg, ch: make(chan Event, cfg.Buffer), m: m, log: log}
}

// Emit queues ev; when the buffer is full it is dropped and counted.
func (w *RedisEventLog) Emit(ev Event) {
	select {
	case w.ch <- ev:
	default:
		w.m.EventDropped("buffer_full", 1)
	}
}

// Run writes batches until ctx ends.
func (w *RedisEventLog) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.FlushInterval)
	defer t.Stop()
	batch := make([]Event, 0, w.cfg.Batch)
	lastTrim := time.Time{}
	for {
		select {
		case <-ctx.Done():
			if len(batch) > 0 {
				w.write(context.Background(), batch)
			}
			return
		case ev := <-w.ch:
			batch = append(batch, ev)
			if len(batch) < w.cfg.Batch {
				continue
			}
		case <-t.C:
			if len(batch) == 0 {
				continue
			}
		}
		w.write(ctx, batch)
		batch = batch[:0]
		if w.cfg.MaxAge > 0 && time.Since(lastTrim) > 10*time.Second {
			lastTrim = time.Now()
			minID := strconv.FormatInt(time.Now().Add(-w.cfg.MaxAge).UnixMilli(), 10)
			_ = w.rdb.XTrimMinIDApprox(ctx, w.stream, minID, 0).Err()
		}
	}
}

// Flush writes everything still queued.
func (w *RedisEventLog) Flush(ctx context.Context) {
	var batch []Event
	for {
		select {
		case ev := <-w.ch:
			batch = append(batch, ev)
			continue
		default:
		}
		break
	}
	for len(batch) > 0 {
		n := min(len(batch), w.cfg.Batch)
		w.write(ctx, batch[:n])
		batch = batch[n:]
	}
}

func (w *RedisEventLog) write(ctx context.Context, batch []Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pipe := w.rdb.Pipeline()
	for i := range batch {
		pipe.XAdd(wctx, &redis.XAddArgs{Stream: w.stream, MaxLen: w.cfg.MaxLen, Approx: true, Values: eventFields(&batch[i])})
	}
	if _, err := pipe.Exec(wctx); err != nil {
		w.m.EventDropped("store_error", len(batch))
		w.log.LogAttrs(ctx, slog.LevelWarn, "events_write_failed", slog.Int("events", len(batch)), slog.String("error", err.Error()))
		return
	}
	w.m.EventWritten(len(batch))
}

// eventFields flattens an event into stream fields, the same names as the
// log line.
func eventFields(e *Event) []string {
	f := make([]string, 0, 32)
	f = append(f, "time", e.Time.UTC().Format(time.RFC3339Nano), "type", e.Type)
	e.visit(func(k, v string) { f = append(f, k, v) },
		func(k string, v int) { f = append(f, k, strconv.Itoa(v)) })
	return f
}

func eventFromFields(id string, v map[string]any) Event {
	s := func(k string) string { x, _ := v[k].(string); return x }
	e := Event{Type: s("type"), RequestID: s("request_id"), Client: s("client"), ClientIP: s("client_ip"),
		Detection: s("detection"), Reason: s("reason"), Rule: s("rule"), Location: s("location"), Mode: s("mode"),
		Method: s("method"), Route: s("route"), BanFor: s("ban_for"), Error: s("error"), Replica: s("replica")}
	e.Time, _ = time.Parse(time.RFC3339Nano, s("time"))
	if e.Time.IsZero() {
		if ms, err := strconv.ParseInt(strings.SplitN(id, "-", 2)[0], 10, 64); err == nil {
			e.Time = time.UnixMilli(ms).UTC()
		}
	}
	e.Status, _ = strconv.Atoi(s("status"))
	e.Score, _ = strconv.Atoi(s("score"))
	return e
}

// Query reads the stream newest first, filtering, within q.Scan entries.
func (w *RedisEventLog) Query(ctx context.Context, q EventQuery) ([]Event, error) {
	limit, scan := normQuery(&q)
	var out []Event
	end := "+"
	start := "-"
	if !q.Since.IsZero() {
		start = strconv.FormatInt(q.Since.UnixMilli(), 10)
	}
	scanned := 0
	for scanned < scan && len(out) < limit {
		page := int64(min(500, scan-scanned))
		msgs, err := w.rdb.XRevRangeN(ctx, w.stream, end, start, page).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			e := eventFromFields(m.ID, m.Values)
			if q.match(&e) {
				out = append(out, e)
				if len(out) == limit {
					break
				}
			}
		}
		scanned += len(msgs)
		if int64(len(msgs)) < page {
			break
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
	return out, nil
}

// Len returns the stream length.
func (w *RedisEventLog) Len(ctx context.Context) (int64, error) {
	return w.rdb.XLen(ctx, w.stream).Result()
}

func normQuery(q *EventQuery) (limit, scan int) {
	limit, scan = q.Limit, q.Scan
	if limit <= 0 || limit > 10_000 {
		limit = 100
	}
	if scan <= 0 {
		scan = 100_000
	}
	return limit, scan
}

// MemoryEventLog keeps the last events in process (no Redis configured).
type MemoryEventLog struct {
	mu   sync.Mutex
	size int
	ring []Event
	next int
	m    *Metrics
}

// NewMemoryEventLog keeps up to size events. The ring grows as events
// arrive, so an idle gateway does not hold size events' worth of memory.
func NewMemoryEventLog(size int64, m *Metrics) *MemoryEventLog {
	if size <= 0 || size > 1_000_000 {
		size = 10_000
	}
	return &MemoryEventLog{size: int(size), m: m}
}

// Emit stores ev, overwriting the oldest once the ring is full.
func (l *MemoryEventLog) Emit(ev Event) {
	l.mu.Lock()
	if len(l.ring) < l.size {
		l.ring = append(l.ring, ev)
	} else {
		l.ring[l.next] = ev
	}
	l.next = (l.next + 1) % l.size
	l.mu.Unlock()
	l.m.EventWritten(1)
}

// Run does nothing: events are stored on Emit.
func (l *MemoryEventLog) Run(ctx context.Context) { <-ctx.Done() }

// Flush does nothing.
func (l *MemoryEventLog) Flush(context.Context) {}

// Query returns matching events, newest first.
func (l *MemoryEventLog) Query(_ context.Context, q EventQuery) ([]Event, error) {
	limit, scan := normQuery(&q)
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.ring)
	var out []Event
	for i := 0; i < n && i < scan && len(out) < limit; i++ {
		e := &l.ring[(l.next-1-i+2*l.size)%l.size]
		if q.match(e) {
			out = append(out, *e)
		}
	}
	return out, nil
}
