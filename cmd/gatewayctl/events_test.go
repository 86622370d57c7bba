package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartgw/rampart/record"
)

// follower runs `events tail -f` on f in the background, polling fast.
type follower struct {
	stdout, stderr syncBuffer
	cancel         context.CancelFunc
	done           chan int
}

func startFollow(t *testing.T, f *fixture, args ...string) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	fl := &follower{cancel: cancel, done: make(chan int, 1)}
	c := &cli{
		getenv: func(k string) (string, bool) {
			v, ok := map[string]string{envURL: f.url, envToken: testToken}[k]
			return v, ok
		},
		stdout: &fl.stdout, stderr: &fl.stderr, poll: 10 * time.Millisecond,
	}
	go func() { fl.done <- c.run(ctx, append([]string{"events", "tail", "-f"}, args...)) }()
	t.Cleanup(cancel)
	return fl
}

// stop interrupts the tail, as Ctrl-C does, and returns its exit code.
func (fl *follower) stop(t *testing.T) int {
	t.Helper()
	fl.cancel()
	select {
	case code := <-fl.done:
		return code
	case <-time.After(5 * time.Second):
		t.Fatal("events tail -f did not stop")
		return -1
	}
}

func blocked(id string, at time.Time) record.Event {
	return record.Event{Time: at, Type: record.EventRequestBlocked, RequestID: id, Client: "203.0.113.7",
		Detection: "rate_limit", Reason: "rate_limited", Method: "GET", Route: "/api/" + id}
}

func TestEventsFollow(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	now := time.Now().UTC()
	for i, id := range []string{"old-1", "old-2", "old-3"} {
		f.events.Emit(blocked(id, now.Add(time.Duration(i-10)*time.Second)))
	}
	fl := startFollow(t, f, "-n", "2")
	waitFor(t, "the latest events", func() bool { return strings.Contains(fl.stdout.String(), "old-3") })

	// New events, including one stamped at the same time as one already
	// shown (another replica) and one stamped a little before the newest
	// shown (a replica whose batch arrived late).
	f.events.Emit(blocked("new-1", now))
	f.events.Emit(blocked("new-2", now))
	waitFor(t, "the new events", func() bool { return strings.Contains(fl.stdout.String(), "new-2") })
	f.events.Emit(blocked("late", now.Add(-time.Second)))
	waitFor(t, "the late event", func() bool { return strings.Contains(fl.stdout.String(), "late") })
	f.events.Emit(blocked("new-3", now.Add(time.Second)))
	waitFor(t, "the last event", func() bool { return strings.Contains(fl.stdout.String(), "new-3") })
	time.Sleep(50 * time.Millisecond) // several more polls: nothing may repeat

	if code := fl.stop(t); code != exitOK {
		t.Errorf("exit %d after interrupt, stderr %q", code, fl.stderr.String())
	}
	out := fl.stdout.String()
	if n := countLines(out, "TIME "); n != 1 {
		t.Errorf("%d headers", n)
	}
	if strings.Contains(out, "old-1") {
		t.Errorf("-n 2 showed a third event:\n%s", out)
	}
	var order []string
	for line := range strings.Lines(out) {
		if i := strings.Index(line, "/api/"); i >= 0 {
			order = append(order, strings.Fields(line[i+len("/api/"):])[0])
		}
	}
	// "late" is older than new-1 and new-2 but arrived after them: it is
	// printed once, in the batch that brought it.
	if got, want := strings.Join(order, " "), "old-2 old-3 new-1 new-2 late new-3"; got != want {
		t.Errorf("events printed %q, want %q (each once, oldest first per poll)\n%s", got, want, out)
	}
	if fl.stderr.String() != "" {
		t.Errorf("stderr %q", fl.stderr.String())
	}
}

func TestEventsFollowJSON(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	now := time.Now().UTC()
	f.events.Emit(blocked("a", now.Add(-time.Second)))
	fl := startFollow(t, f, "-o", "json")
	waitFor(t, "the first event", func() bool { return strings.Contains(fl.stdout.String(), `"a"`) })
	f.events.Emit(blocked("b", now))
	waitFor(t, "the second event", func() bool { return strings.Contains(fl.stdout.String(), `"b"`) })
	if code := fl.stop(t); code != exitOK {
		t.Errorf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(fl.stdout.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines:\n%s", fl.stdout.String())
	}
	for i, id := range []string{"a", "b"} {
		var e record.Event
		if err := json.Unmarshal([]byte(lines[i]), &e); err != nil || e.RequestID != id {
			t.Errorf("line %d: %q (%v)", i, lines[i], err)
		}
	}
}

// TestEventsFollowOutage: a failing poll is reported once and retried, and
// what happened meanwhile is printed after; a refused one ends the tail.
func TestEventsFollowOutage(t *testing.T) {
	var down atomic.Bool
	f := newFixture(t, fixtureOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":"events: redis: connection pool timeout"}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	now := time.Now().UTC()
	f.events.Emit(blocked("before", now.Add(-time.Second)))
	fl := startFollow(t, f)
	waitFor(t, "the first event", func() bool { return strings.Contains(fl.stdout.String(), "before") })
	down.Store(true)
	waitFor(t, "the outage report", func() bool { return strings.Contains(fl.stderr.String(), "retrying") })
	f.events.Emit(blocked("during", now))
	time.Sleep(50 * time.Millisecond)
	down.Store(false)
	waitFor(t, "the event of the outage", func() bool { return strings.Contains(fl.stdout.String(), "during") })
	if code := fl.stop(t); code != exitOK {
		t.Errorf("exit %d", code)
	}
	want := "gatewayctl: events: redis: connection pool timeout (retrying every 10ms)\ngatewayctl: reconnected\n"
	if got := fl.stderr.String(); got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}

	// A wrong token is not an outage.
	r := runCLI(t, map[string]string{envURL: f.url, envToken: "wrong"}, "events", "tail", "-f")
	if r.code != exitAuth {
		t.Errorf("wrong token: exit %d", r.code)
	}
}
