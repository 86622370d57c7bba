package store_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

// countingSink counts what the event writer reports.
type countingSink struct {
	written, full, storeErr atomic.Int64
}

func (c *countingSink) EventsWritten(n int) { c.written.Add(int64(n)) }
func (c *countingSink) EventsDropped(reason string, n int) {
	if reason == "buffer_full" {
		c.full.Add(int64(n))
	} else {
		c.storeErr.Add(int64(n))
	}
}

// TestEventBufferFullDropsAndCounts: a full buffer drops events and counts
// them; Emit never blocks.
func TestEventBufferFullDropsAndCounts(t *testing.T) {
	s, mr := storetest.New(t)
	m := &countingSink{}
	w := s.Events(store.EventsConfig{Enabled: true, Buffer: 10}, m, slog.New(slog.DiscardHandler))
	start := time.Now()
	for i := 0; i < 25; i++ { // nobody drains: Run is not started
		w.Emit(record.Event{Type: record.EventRequestBlocked})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Emit blocked for %v", d)
	}
	if got := m.full.Load(); got != 15 {
		t.Errorf("dropped = %v, want 15", got)
	}
	w.Flush(context.Background())
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	if got, _ := rdb.XLen(context.Background(), "gw:events").Result(); got != 10 {
		t.Errorf("stream length %d, want 10", got)
	}
	if m.written.Load() != 10 {
		t.Errorf("written = %d", m.written.Load())
	}
}

// TestEventQueryRoundTrip: what is written is read back, newest first,
// filtered.
func TestEventQueryRoundTrip(t *testing.T) {
	s, _ := storetest.New(t)
	w := s.Events(store.EventsConfig{Enabled: true}, &countingSink{}, nil)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, det := range []string{"payload", "rate_limit", "payload"} {
		w.Emit(record.Event{Time: base.Add(time.Duration(i) * time.Second), Type: record.EventRequestBlocked, Detection: det, Client: "192.0.2.1", Status: 403, Score: i})
	}
	w.Flush(context.Background())
	evs, err := w.Query(context.Background(), record.EventQuery{Detection: "payload"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || !evs[0].Time.Equal(base.Add(2*time.Second)) || evs[0].Score != 2 || evs[0].Status != 403 || evs[1].Client != "192.0.2.1" {
		t.Errorf("events %+v", evs)
	}
}

// roundTrips counts what the store sends: one per command outside a
// pipeline, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" && cmd.Name() != "client" { // connection set-up
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestEventReadsPipelinePartitions: with 16 partitions, Len and a Query
// whose every partition fits one page read them all in one round trip
// each, not one per partition.
func TestEventReadsPipelinePartitions(t *testing.T) {
	mr := miniredis.RunT(t)
	cfg := storetest.Config("redis://" + mr.Addr())
	cfg.Partitions = 16
	s, err := store.NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	w := s.Events(store.EventsConfig{Enabled: true, Batch: 1}, &countingSink{}, nil)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 40 { // batches of one: the partitions in turn
		w.Emit(record.Event{Time: base.Add(time.Duration(i) * time.Second), Type: record.EventRequestBlocked, Detection: "payload", Score: i})
	}
	w.Flush(context.Background())
	rt := &roundTrips{}
	s.AddHook(rt)
	n, err := w.Len(context.Background())
	if err != nil || n != 40 {
		t.Fatalf("len = %d, %v; want 40", n, err)
	}
	if got := rt.n.Swap(0); got != 1 {
		t.Errorf("len: %d round trips, want 1", got)
	}
	evs, err := w.Query(context.Background(), record.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 40 {
		t.Fatalf("query: %d events, want 40", len(evs))
	}
	for i, e := range evs {
		if e.Score != 39-i {
			t.Fatalf("query: event %d has score %d, want %d (newest first, merged)", i, e.Score, 39-i)
		}
	}
	if got := rt.n.Swap(0); got != 1 {
		t.Errorf("query: %d round trips, want 1", got)
	}
}

// TestEventReadsUseBreaker: failing event reads count towards the circuit
// breaker and, once it is open, fail at once.
func TestEventReadsUseBreaker(t *testing.T) {
	for _, read := range []struct {
		name string
		call func(*store.EventStream) error
	}{
		{"len", func(w *store.EventStream) error { _, err := w.Len(context.Background()); return err }},
		{"query", func(w *store.EventStream) error {
			_, err := w.Query(context.Background(), record.EventQuery{})
			return err
		}},
	} {
		t.Run(read.name, func(t *testing.T) {
			s, mr := storetest.New(t)
			w := s.Events(store.EventsConfig{Enabled: true}, &countingSink{}, nil)
			if err := read.call(w); err != nil {
				t.Fatal(err)
			}
			mr.Close()
			for range 5 { // the default breaker_failures
				if err := read.call(w); err == nil {
					t.Fatal("read succeeded with redis down")
				}
			}
			if s.Healthy() {
				t.Fatal("breaker still closed after 5 failed reads")
			}
			if err := read.call(w); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("read with the breaker open: %v, want ErrUnavailable", err)
			}
		})
	}
}
