package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
)

// emitSample stores one event of each type, a minute apart from base, with
// the hostile strings an attacker controls (a parameter name, a path) in
// two of them.
func emitSample(sink gateway.EventSink, base time.Time) {
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	for _, e := range []record.Event{
		{Time: at(0), Type: record.EventRequestBlocked, RequestID: "req-0001", Client: "203.0.113.7", ClientIP: "203.0.113.7",
			Detection: "rate_limit", Reason: "rate_limited", Mode: "enforce", Method: "POST", Route: "/api/login", Status: 429},
		{Time: at(1), Type: record.EventWouldBlock, RequestID: "req-0002", Client: "2001:db8:1:2::/64", ClientIP: "2001:db8:1:2::5",
			Detection: "payload", Reason: "sqli", Rule: "942100", Location: "query:id", Mode: "monitor", Method: "GET", Route: "/api/search"},
		{Time: at(2), Type: record.EventRequestBlocked, RequestID: "req-0003", Client: "198.51.100.23", ClientIP: "198.51.100.23",
			Detection: "payload", Reason: "xss", Rule: "941100", Location: "query:\x1b[31mq", Mode: "enforce", Method: "GET",
			Route: "/api/items/\u009b2J", Status: 403},
		{Time: at(3), Type: record.EventClientBlocklisted, Client: "203.0.113.7", Detection: "rate_limit", Reason: "rate_limited", BanFor: "9m58s"},
		{Time: at(4), Type: record.EventDetectionFailed, RequestID: "req-0005", Client: "192.0.2.44", ClientIP: "192.0.2.44",
			Detection: "enumeration", Reason: "store", Error: "store: i/o timeout", Method: "GET", Route: "/api/users/42"},
		{Time: at(5), Type: record.EventClientUnbanned, Client: "203.0.113.9", Detection: "admin", Reason: "admin_api"},
		{Time: at(6).Add(500 * time.Millisecond), Type: record.EventRequestBlocked, RequestID: "req-0007", Client: "203.0.113.7",
			ClientIP: "203.0.113.7", Detection: "user_agent", Reason: "bad_user_agent", Rule: "sqlmap", Location: "header:User-Agent",
			Mode: "enforce", Method: "GET", Route: "/api/" + strings.Repeat("very-long-segment/", 6), Status: 403},
	} {
		sink.Emit(e)
	}
}

// seededFixture has bans made directly in the store (so they carry
// detections other than "admin") and counters, all at the frozen clock.
func seededFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, fixtureOptions{
		now: func() time.Time { return clock },
		chain: []detections.Entry{
			{Detection: blockPath{"payload", "/x"}},
			{Detection: blockPath{"user_agent", "/y"}, Mode: detections.ModeMonitor},
		},
	})
	ctx := t.Context()
	q := &detections.StateQuery{RateLimit: detections.PerMinute(60), InvalidWindow: time.Minute, CountInvalid: true}
	for range 3 {
		if _, err := f.store.Check(ctx, "203.0.113.7", q); err != nil {
			t.Fatal(err)
		}
	}
	bans := []record.BanRequest{
		{Client: "203.0.113.7", Reason: "rate_limited", Detection: "rate_limit", Duration: 598 * time.Second, Replica: "replica-a"},
		{Client: "2001:db8:1:2::/64", Reason: "sqli", Detection: "payload", Duration: 36 * time.Hour, Replica: "replica-b"},
	}
	for _, b := range bans {
		if _, err := f.store.Ban(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.store.BanCIDR(ctx, mustPrefix(t, "198.51.100.0/24"), 24*time.Hour, "abuse from a hosting range", "replica-b"); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestGolden runs each command against the real admin API and compares
// stdout with testdata/<name>.golden. The rows are ordered: the first add
// bans that the lists then show, the last remove them.
//
// Determinism: ban times and TIME LEFT come from the store's frozen clock
// (see clock); events are emitted with fixed times and read with an
// absolute -since. Only the summary reads events stamped with the real
// time, because the API computes its window from the gateway's real clock;
// the summary does not print those times.
func TestGolden(t *testing.T) {
	seeded := seededFixture(t)
	events := newFixture(t, fixtureOptions{})
	emitSample(events.events, clock.Add(-10*time.Minute))
	live := newFixture(t, fixtureOptions{})
	emitSample(live.events, time.Now().Add(-10*time.Minute))
	since := "-since=" + clock.Add(-time.Hour).Format(time.RFC3339)

	steps := []struct {
		name string
		f    *fixture
		args []string
	}{
		{"help", seeded, []string{"help"}},
		{"help_bans_add", seeded, []string{"help", "bans", "add"}},
		// Before any ban made through the API fills the local ban cache.
		{"status", seeded, []string{"status"}},
		{"status_json", seeded, []string{"-o", "json", "status"}},
		{"bans_add", seeded, []string{"bans", "add", "192.0.2.10", "-for", "5m", "-reason", "noisy scanner"}},
		{"bans_add_json", seeded, []string{"-o", "json", "bans", "add", "2001:db8:9::1", "-for", "90m", "-reason", "credential stuffing"}},
		{"bans_list", seeded, []string{"bans", "list"}},
		{"bans_list_json", seeded, []string{"bans", "list", "-o", "json"}},
		{"bans_get", seeded, []string{"bans", "get", "203.0.113.7"}},
		{"bans_get_json", seeded, []string{"-o", "json", "bans", "get", "203.0.113.7"}},
		{"bans_get_range", seeded, []string{"bans", "get", "198.51.100.0/24"}},
		{"counters", seeded, []string{"counters", "203.0.113.7"}},
		{"counters_json", seeded, []string{"counters", "203.0.113.7", "-o", "json"}},
		{"counters_none", seeded, []string{"counters", "192.0.2.200"}},
		{"bans_rm", seeded, []string{"bans", "rm", "192.0.2.10"}},
		{"bans_rm_json", seeded, []string{"-o=json", "bans", "rm", "2001:db8:9::1"}},
		{"events_tail", events, []string{"events", "tail", since}},
		{"events_tail_json", events, []string{"events", "tail", since, "-n", "2", "-o", "json"}},
		{"events_tail_filtered", events, []string{"events", "tail", since, "-detection", "payload", "-type", "request_blocked"}},
		{"events_tail_none", events, []string{"events", "tail", "-client", "192.0.2.250"}},
		{"summary", live, []string{"summary"}},
		{"summary_json", live, []string{"summary", "-window", "30m", "-top", "2", "-o", "json"}},
		{"status_empty_chain", live, []string{"status"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := s.f.run(t, s.args...)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			golden(t, s.name, r.stdout)
		})
	}
	// The bans removed above are gone.
	if r := seeded.run(t, "bans", "get", "192.0.2.10"); r.code != exitNotFound {
		t.Errorf("bans get after rm: exit %d", r.code)
	}
}
