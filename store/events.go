package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/record"
)

// EventsConfig configures the security-event log (the events section of
// the YAML file): a Redis stream every replica writes to, or a ring in
// memory without Redis.
type EventsConfig struct {
	// Enabled writes events; off, they are still logged.
	Enabled bool `yaml:"enabled"`
	// MaxLen is the approximate cap on the stream's length (and the ring's
	// size in memory).
	MaxLen int64 `yaml:"max_len"`
	// MaxAge trims older entries.
	MaxAge time.Duration `yaml:"max_age"`
	// Buffer is how many events wait in memory for a write.
	Buffer int `yaml:"buffer"`
	// Batch is how many events one pipelined write carries.
	Batch int `yaml:"batch"`
	// FlushInterval is the longest an event waits in the buffer.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// DefaultEventsConfig returns the defaults documented in the README.
func DefaultEventsConfig() EventsConfig {
	return EventsConfig{Enabled: true, MaxLen: 100_000, MaxAge: 7 * 24 * time.Hour, Buffer: 10_000, Batch: 256, FlushInterval: 100 * time.Millisecond}
}

// Validate reports every problem in c.
func (c EventsConfig) Validate() error {
	var errs []error
	if c.MaxLen <= 0 || c.MaxLen > 100_000_000 {
		errs = append(errs, fmt.Errorf("max_len: %d must be in 1..100000000", c.MaxLen))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %v must be >= 0", c.MaxAge))
	}
	if c.Buffer <= 0 {
		errs = append(errs, fmt.Errorf("buffer: %d must be > 0", c.Buffer))
	}
	if c.Batch <= 0 {
		errs = append(errs, fmt.Errorf("batch: %d must be > 0", c.Batch))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("flush_interval: %v must be > 0", c.FlushInterval))
	}
	return errors.Join(errs...)
}

// EventCounter is told what became of events (the gateway's metrics).
type EventCounter interface {
	EventsWritten(n int)
	EventsDropped(reason string, n int)
}

// EventStream buffers events and appends them to the Redis stream in
// pipelined batches (XADD with approximate MAXLEN, plus an XTRIM by age),
// and reads them back for the admin API. Every replica writes to the same
// stream. When the buffer is full, events are dropped and counted, never
// silently, and Emit never blocks the request path.
type EventStream struct {
	s   *Redis
	cfg EventsConfig
	ch  chan record.Event
	m   EventCounter
	log *slog.Logger
	mu  sync.Mutex // serialises writes (Run and Flush)
	// next is the partition the next batch goes to: batches go to the
	// partitions in turn, so no Cluster shard holds every event.
	next int
}

// Events returns the event stream of s. Zero fields of cfg take their
// defaults.
func (s *Redis) Events(cfg EventsConfig, m EventCounter, log *slog.Logger) *EventStream {
	def := DefaultEventsConfig()
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
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &EventStream{s: s, cfg: cfg, ch: make(chan record.Event, cfg.Buffer), m: m, log: log}
}

// Emit queues ev; when the buffer is full it is dropped and counted.
func (w *EventStream) Emit(ev record.Event) {
	select {
	case w.ch <- ev:
	default:
		w.m.EventsDropped("buffer_full", 1)
	}
}

// Run writes batches until ctx ends.
func (w *EventStream) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.FlushInterval)
	defer t.Stop()
	batch := make([]record.Event, 0, w.cfg.Batch)
	lastTrim := time.Time{}
	for {
		select {
		case <-ctx.Done():
			if len(batch) > 0 {
				w.write(context.WithoutCancel(ctx), batch)
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
			for p := range w.s.keys.Partitions() {
				_ = w.s.rdb.XTrimMinIDApprox(ctx, w.s.keys.EventsPart(p), minID, 0).Err()
			}
		}
	}
}

// Flush writes everything still queued (shutdown).
func (w *EventStream) Flush(ctx context.Context) {
	var batch []record.Event
	for drained := false; !drained; {
		select {
		case ev := <-w.ch:
			batch = append(batch, ev)
		default:
			drained = true
		}
	}
	for len(batch) > 0 {
		n := min(len(batch), w.cfg.Batch)
		w.write(ctx, batch[:n])
		batch = batch[n:]
	}
}

func (w *EventStream) write(ctx context.Context, batch []record.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stream := w.s.keys.EventsPart(w.next)
	w.next = (w.next + 1) % w.s.keys.Partitions()
	// Each partition keeps its share of max_len.
	maxLen := max(w.cfg.MaxLen/int64(w.s.keys.Partitions()), 1)
	pipe := w.s.rdb.Pipeline()
	for i := range batch {
		pipe.XAdd(wctx, &redis.XAddArgs{Stream: stream, MaxLen: maxLen, Approx: true, Values: eventFields(&batch[i])})
	}
	if _, err := pipe.Exec(wctx); err != nil {
		w.m.EventsDropped("store_error", len(batch))
		w.log.LogAttrs(ctx, slog.LevelWarn, "events_write_failed", slog.Int("events", len(batch)), slog.String("error", err.Error()))
		return
	}
	w.m.EventsWritten(len(batch))
}

// eventFields flattens an event into stream fields, the same names as the
// log line.
func eventFields(e *record.Event) []string {
	f := make([]string, 0, 32)
	f = append(f, "time", e.Time.UTC().Format(time.RFC3339Nano), "type", e.Type)
	e.Each(func(k, v string) { f = append(f, k, v) },
		func(k string, v int) { f = append(f, k, strconv.Itoa(v)) })
	return f
}

func eventFromFields(id string, v map[string]any) record.Event {
	var e record.Event
	for k, x := range v {
		if s, ok := x.(string); ok {
			e.Set(k, s)
		}
	}
	if e.Time.IsZero() {
		if ms, err := strconv.ParseInt(strings.SplitN(id, "-", 2)[0], 10, 64); err == nil {
			e.Time = time.UnixMilli(ms).UTC()
		}
	}
	return e
}

// Query reads the stream newest first, filtering, within q.Scan entries.
// The partitions are merged by event time (then entry id): each is in
// write order, and every shard's entry ids come from its own clock. Each
// read of the partitions is one pipeline: the first reads all of them in
// one round trip (one per node on a Cluster), a later one the partitions
// whose page ran out.
func (w *EventStream) Query(ctx context.Context, q record.EventQuery) ([]record.Event, error) {
	if err := w.s.begin(); err != nil {
		return nil, err
	}
	limit, scan := q.Bounds()
	start := "-"
	if !q.Since.IsZero() {
		start = strconv.FormatInt(q.Since.UnixMilli(), 10)
	}
	n := w.s.keys.Partitions()
	type entry struct {
		id string
		e  record.Event
	}
	type cursor struct {
		end  string
		buf  []entry
		done bool
	}
	cur := make([]cursor, n)
	for p := range cur {
		cur[p].end = "+"
	}
	page := int64(max(min(500, scan/n), 50))
	cmds := make([]*redis.XMessageSliceCmd, n)
	// fill reads the next page of every partition that has run out.
	fill := func() error {
		var pipe redis.Pipeliner
		for p := range cur {
			cmds[p] = nil
			if c := &cur[p]; !c.done && len(c.buf) == 0 {
				if pipe == nil {
					pipe = w.s.rdb.Pipeline()
				}
				cmds[p] = pipe.XRevRangeN(ctx, w.s.keys.EventsPart(p), c.end, start, page)
			}
		}
		if pipe == nil {
			return nil
		}
		_, err := pipe.Exec(ctx)
		if err = w.s.end("events query", err); err != nil {
			return err
		}
		for p, cmd := range cmds {
			if cmd == nil {
				continue
			}
			c, msgs := &cur[p], cmd.Val()
			c.buf = c.buf[:0]
			for _, m := range msgs {
				c.buf = append(c.buf, entry{id: m.ID, e: eventFromFields(m.ID, m.Values)})
			}
			if int64(len(msgs)) < page {
				c.done = true
			}
			if len(msgs) > 0 {
				c.end = "(" + msgs[len(msgs)-1].ID
			}
		}
		return nil
	}
	newer := func(a, b *entry) bool {
		if !a.e.Time.Equal(b.e.Time) {
			return a.e.Time.After(b.e.Time)
		}
		return idAfter(a.id, b.id)
	}
	var out []record.Event
	for scanned := 0; scanned < scan && len(out) < limit; scanned++ {
		if err := fill(); err != nil {
			return nil, err
		}
		best := -1
		for p := range cur {
			if len(cur[p].buf) > 0 && (best < 0 || newer(&cur[p].buf[0], &cur[best].buf[0])) {
				best = p
			}
		}
		if best < 0 {
			break
		}
		e := cur[best].buf[0].e
		cur[best].buf = cur[best].buf[1:]
		if q.Match(&e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// idAfter reports whether stream entry id a is newer than b ("ms-seq").
func idAfter(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if len(am) != len(bm) {
		return len(am) > len(bm)
	}
	if am != bm {
		return am > bm
	}
	an, _ := strconv.ParseInt(as, 10, 64)
	bn, _ := strconv.ParseInt(bs, 10, 64)
	return an > bn
}

// Len returns the stream's length (all partitions), in one pipeline: one
// round trip (one per node on a Cluster).
func (w *EventStream) Len(ctx context.Context) (int64, error) {
	if err := w.s.begin(); err != nil {
		return 0, err
	}
	pipe := w.s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, w.s.keys.Partitions())
	for p := range cmds {
		cmds[p] = pipe.XLen(ctx, w.s.keys.EventsPart(p))
	}
	_, err := pipe.Exec(ctx)
	if err = w.s.end("events len", err); err != nil {
		return 0, err
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// MemoryEvents keeps the last events in process (no Redis configured).
type MemoryEvents struct {
	mu   sync.Mutex
	size int
	ring []record.Event
	next int
	m    EventCounter
}

// NewMemoryEvents keeps up to size events. The ring grows as events
// arrive, so an idle gateway does not hold size events' worth of memory.
func NewMemoryEvents(size int64, m EventCounter) *MemoryEvents {
	if size <= 0 || size > 1_000_000 {
		size = 10_000
	}
	return &MemoryEvents{size: int(size), m: m}
}

// Emit stores ev, overwriting the oldest once the ring is full.
func (l *MemoryEvents) Emit(ev record.Event) {
	l.mu.Lock()
	if len(l.ring) < l.size {
		l.ring = append(l.ring, ev)
	} else {
		l.ring[l.next] = ev
	}
	l.next = (l.next + 1) % l.size
	l.mu.Unlock()
	l.m.EventsWritten(1)
}

// Run does nothing but wait: events are stored on Emit.
func (l *MemoryEvents) Run(ctx context.Context) { <-ctx.Done() }

// Flush does nothing.
func (l *MemoryEvents) Flush(context.Context) {}

// Query returns matching events, newest first.
func (l *MemoryEvents) Query(_ context.Context, q record.EventQuery) ([]record.Event, error) {
	limit, scan := q.Bounds()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.ring)
	var out []record.Event
	for i := 0; i < n && i < scan && len(out) < limit; i++ {
		e := &l.ring[(l.next-1-i+2*l.size)%l.size]
		if q.Match(e) {
			out = append(out, *e)
		}
	}
	return out, nil
}
