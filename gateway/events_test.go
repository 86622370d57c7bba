package gateway_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

// TestStreamEntryMatchesLogLine: the stream entry and the log line of one
// event carry the same fields with the same values.
func TestStreamEntryMatchesLogLine(t *testing.T) {
	mr := miniredis.RunT(t)
	st := storetest.NewOn(t, mr.Addr())
	m := gateway.NewMetrics()
	stream := st.Events(storeEventsConfig(), m, slog.New(slog.DiscardHandler))
	s := newSetupWithEvents(t, st, stream)
	if got := s.status(t, "GET", "/echo?id=1%27%20OR%201=1--", "2001:db8:1:2::5"); got != 403 {
		t.Fatalf("sqli: %d", got)
	}
	stream.Flush(context.Background())
	lines := s.logs.lines("request_blocked")
	if len(lines) != 1 {
		t.Fatalf("request_blocked lines: %v", lines)
	}
	line := lines[0]
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	msgs, err := rdb.XRange(context.Background(), "gw:events", "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("stream: %v %v", msgs, err)
	}
	entry := msgs[0].Values
	if entry["type"] != line["msg"] {
		t.Errorf("type %v vs msg %v", entry["type"], line["msg"])
	}
	for k, v := range line {
		if k == "time" || k == "level" || k == "msg" || k == "component" {
			continue
		}
		got, ok := entry[k].(string)
		if !ok || strings.TrimSuffix(got, ".0") != strings.TrimSuffix(jsonString(v), ".0") {
			t.Errorf("field %s: log %v, stream %v", k, v, entry[k])
		}
	}
	if len(entry) != len(line)-4+2 { // minus time, level, msg, component; plus time, type
		t.Errorf("stream has %d fields, log line %d: %v vs %v", len(entry), len(line), entry, line)
	}
	if entry["client"] != "2001:db8:1:2::/64" || entry["detection"] != "payload" || entry["location"] == "" {
		t.Errorf("entry %v", entry)
	}
}

func jsonString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func storeEventsConfig() storeEvents {
	return storeEvents{Enabled: true, MaxLen: 1000, Buffer: 100, Batch: 10, FlushInterval: time.Hour}
}

type storeEvents = store.EventsConfig
