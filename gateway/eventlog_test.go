package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/gateway"
)

// TestStreamEntryMatchesLogLine: the stream entry and the log line of one
// event carry the same fields with the same values.
func TestStreamEntryMatchesLogLine(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	m := gateway.NewMetrics()
	w := gateway.NewEventWriter(rdb, "gw:events", gateway.EventWriterConfig{}, m, slog.New(slog.DiscardHandler))
	ev := gateway.Event{Time: time.Date(2026, 11, 24, 12, 0, 0, 123, time.UTC), Type: gateway.EventRequestBlocked,
		RequestID: "rid-1", Client: "2001:db8:1:2::/64", ClientIP: "2001:db8:1:2::5", Detection: "payload",
		Reason: "malicious_payload", Rule: "sqli", Location: "query:id", Mode: "enforce", Method: "GET",
		Route: "/api/search", Status: 403, Score: 5, Replica: "r1"}
	w.Emit(ev)
	w.Flush(context.Background())

	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).LogAttrs(context.Background(), slog.LevelInfo, ev.Type, ev.Attrs()...)
	var line map[string]any
	if err := json.Unmarshal(logBuf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	msgs, err := rdb.XRange(context.Background(), "gw:events", "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("stream: %v %v", msgs, err)
	}
	entry := msgs[0].Values
	if entry["type"] != line["msg"] {
		t.Errorf("type %v vs msg %v", entry["type"], line["msg"])
	}
	for k, v := range line {
		if k == "time" || k == "level" || k == "msg" {
			continue
		}
		got, ok := entry[k].(string)
		if !ok || strings.TrimSuffix(got, ".0") != strings.TrimSuffix(jsonString(v), ".0") {
			t.Errorf("field %s: log %v, stream %v", k, v, entry[k])
		}
	}
	if len(entry) != len(line)-3+2 { // minus time, level, msg; plus time, type
		t.Errorf("stream has %d fields, log line %d: %v vs %v", len(entry), len(line), entry, line)
	}
	if m := testutilCounter(t, m, "rampart_events_written_total"); m != 1 {
		t.Errorf("events written = %v", m)
	}
}

func jsonString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		b, _ := json.Marshal(t)
		return string(b)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestEventBufferFullDropsAndCounts: a full buffer drops events and counts
// them; Emit never blocks.
func TestEventBufferFullDropsAndCounts(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	m := gateway.NewMetrics()
	w := gateway.NewEventWriter(rdb, "gw:events", gateway.EventWriterConfig{Buffer: 10}, m, slog.New(slog.DiscardHandler))
	start := time.Now()
	for i := 0; i < 25; i++ { // nobody drains: Run is not started
		w.Emit(gateway.Event{Type: gateway.EventRequestBlocked})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Emit blocked for %v", d)
	}
	if got := testutilCounter(t, m, `rampart_events_dropped_total{reason="buffer_full"}`); got != 15 {
		t.Errorf("dropped = %v, want 15", got)
	}
	w.Flush(context.Background())
	if n := mr.Exists("gw:events"); !n {
		t.Error("buffered events not written")
	}
	if got, _ := rdb.XLen(context.Background(), "gw:events").Result(); got != 10 {
		t.Errorf("stream length %d, want 10", got)
	}
}

// testutilCounter reads one sample from the metrics registry by its
// exposition name (with labels).
func testutilCounter(t *testing.T, m *gateway.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			full := mf.GetName()
			if len(mt.GetLabel()) > 0 {
				var parts []string
				for _, l := range mt.GetLabel() {
					parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
				}
				full += "{" + strings.Join(parts, ",") + "}"
			}
			if full == name && mt.GetCounter() != nil {
				return mt.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
