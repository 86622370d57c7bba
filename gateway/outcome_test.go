package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
)

// faultyStore is a memory store that fails or panics for chosen clients,
// standing in for Redis being down (fail-closed: 503) and for a bug in a
// store client (a panic: 500).
type faultyStore struct {
	*store.Memory
	down, panics string
}

func (f faultyStore) Check(ctx context.Context, client string, q *detections.StateQuery) (detections.Check, error) {
	switch client {
	case f.down:
		return detections.Check{}, fmt.Errorf("test: %w", detections.ErrStore)
	case f.panics:
		panic("store bug")
	}
	return f.Memory.Check(ctx, client, q)
}

// TestEveryRequestCountedOnce sends one request of every outcome through a
// gateway on a real listener and checks that rampart_requests_total grew by
// exactly the number of requests, each under its result.
func TestEveryRequestCountedOnce(t *testing.T) {
	mem := store.NewMemory(store.DefaultMemoryConfig())
	st := faultyStore{Memory: mem, down: "192.0.2.50", panics: "192.0.2.60"}
	s := newSetup(t, st, withConfig(func(c *gateway.Config) {
		c.Timeouts.Upstream = 300 * time.Millisecond
		c.Timeouts.Read = 500 * time.Millisecond
		c.MaxBodyBytes = 1 << 10
		c.MaxHeaderBytes = 8 << 10
		c.Bans.OnStoreError, c.Bans.StoreErrorGrace = detections.StoreBlock, 0
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.g.Serve(ln) }()
	t.Cleanup(func() { _ = s.g.Shutdown(context.Background()) })
	base := "http://" + ln.Addr().String()
	if _, err := mem.Ban(t.Context(), record.BanRequest{Client: "192.0.2.40", Reason: "test", Detection: "payload", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}

	send := func(method, path, client string, body io.Reader, hdr ...string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		req.Header.Set("X-Forwarded-For", client)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	raw := func(data string) int {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, data); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("raw request: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	type sent struct {
		name    string
		status  int
		results map[string]float64 // what the case's requests count as
		do      func() int         // sends them, returns the last status
	}
	one := func(result string) map[string]float64 { return map[string]float64{result: 1} }
	cases := []sent{
		{"allowed", 200, one("proxied"), func() int { return send("GET", "/echo", "192.0.2.10", nil) }},
		{"blocked", 403, one("blocked"), func() int { return send("GET", "/echo?q=malicious", "192.0.2.11", nil) }},
		{"banned", 403, one("banned"), func() int { return send("GET", "/echo", "192.0.2.40", nil) }},
		{"rate-limited", 403, map[string]float64{"proxied": 5, "blocked": 1}, func() int {
			for range 5 {
				send("GET", "/echo", "192.0.2.12", nil)
			}
			return send("GET", "/echo", "192.0.2.12", nil)
		}},
		{"400 malformed header", 400, one("bad_request"), func() int { return raw("GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n") }},
		{"408 slow body", 408, one("timeout"), func() int {
			return raw("POST /echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.13\r\nContent-Length: 100\r\n\r\nabc")
		}},
		{"413 body too large", 413, one("too_large"), func() int {
			return send("POST", "/echo", "192.0.2.14", strings.NewReader(strings.Repeat("a", 2<<10)))
		}},
		{"431 headers too large", 431, one("header_too_large"), func() int {
			return raw("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n")
		}},
		{"502 upstream broke", 502, one("upstream_error"), func() int { return send("GET", "/hangup", "192.0.2.15", nil) }},
		{"503 store down, fail-closed", 503, one("unavailable"), func() int { return send("GET", "/echo", "192.0.2.50", nil) }},
		{"504 upstream too slow", 504, one("upstream_error"), func() int { return send("GET", "/slow", "192.0.2.16", nil) }},
		{"500 recovered panic", 500, one("internal_error"), func() int { return send("GET", "/echo", "192.0.2.60", nil) }},
	}
	before := resultCounts(t, s.g.Metrics())
	sentN := 0.0
	want := map[string]float64{}
	for _, c := range cases {
		if got := c.do(); got != c.status {
			t.Errorf("%s: status %d, want %d", c.name, got, c.status)
		}
		for k, v := range c.results {
			want[k] += v
			sentN += v
		}
	}
	after := resultCounts(t, s.g.Metrics())
	var total float64
	got := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			got[k] = d
			total += d
		}
	}
	if total != sentN {
		t.Errorf("rampart_requests_total grew by %v for %v requests: %v", total, sentN, got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("result %s: +%v, want +%v (all: %v)", k, got[k], v, got)
		}
	}
}

// resultCounts reads rampart_requests_total by result.
func resultCounts(t *testing.T, m *gateway.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "rampart_requests_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = mt.GetCounter().GetValue()
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no rampart_requests_total")
	}
	return out
}
