package store_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

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
