package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

func TestEveryMethodProxiedUnchanged(t *testing.T) {
	s := newSetup(t, nil, withEntries())
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "PURGE"} {
		t.Run(m, func(t *testing.T) {
			body := ""
			if m != "GET" && m != "HEAD" {
				body = `{"k":"v","n":[1,2]}`
			}
			resp := s.do(t, m, "/echo/a%20b/c?x=1&y=%2F&y=2&empty=", "", strings.NewReader(body),
				"Content-Type", "application/json", "X-Custom", "kept", "Connection", "keep-alive, X-Hop", "X-Hop", "dropped")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("response headers %v", resp.Header)
			}
			if m == "HEAD" {
				resp.Body.Close()
				return
			}
			e := decodeEcho(t, resp)
			if e.Method != m || e.Path != "/echo/a b/c" || e.RawQuery != "x=1&y=%2F&y=2&empty=" || string(e.Body) != body {
				t.Errorf("upstream saw %+v", e)
			}
			if e.Header["X-Custom"][0] != "kept" || e.Header["X-Hop"] != nil {
				t.Errorf("headers: %v", e.Header)
			}
			if got := e.Header["X-Request-Id"]; len(got) != 1 || len(got[0]) != 32 {
				t.Errorf("request id upstream = %v", got)
			}
			if e.Header["X-Forwarded-For"][0] != "127.0.0.1" || e.Header["X-Forwarded-Proto"][0] != "http" || e.Header["X-Forwarded-Host"][0] == "" {
				t.Errorf("forwarding headers: %v", e.Header)
			}
		})
	}
}

// An upstream's informational answer (103 Early Hints) reaches the client
// and does not take the place of the final status.
func TestInformationalResponsesPassThrough(t *testing.T) {
	s := newSetup(t, nil, withEntries())
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
		got = append(got, code)
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", s.srv.URL+"/early-hints", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusCreated || body != "created" || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("final answer %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if len(got) != 1 || got[0] != http.StatusEarlyHints {
		t.Errorf("informational answers %v, want [103]", got)
	}
}

func TestRequestIDKeptOrReplaced(t *testing.T) {
	s := newSetup(t, nil, withEntries())
	resp := s.do(t, "GET", "/echo", "", nil, "X-Request-Id", "trace-abc-123")
	if got := resp.Header.Get("X-Request-Id"); got != "trace-abc-123" {
		t.Errorf("echoed id = %q", got)
	}
	if e := decodeEcho(t, resp); e.Header["X-Request-Id"][0] != "trace-abc-123" {
		t.Errorf("upstream id = %v", e.Header["X-Request-Id"])
	}
	resp = s.do(t, "GET", "/echo", "", nil, "X-Request-Id", "bad id\" with spaces")
	if got := resp.Header.Get("X-Request-Id"); len(got) != 32 {
		t.Errorf("ill-formed id not replaced: %q", got)
	}
	resp.Body.Close()
}

func TestClientIPTrust(t *testing.T) {
	t.Run("untrusted peer: forwarding headers ignored and dropped", func(t *testing.T) {
		s := newSetup(t, nil, withEntries(), withConfig(func(c *gateway.Config) { c.TrustedProxies = nil }))
		resp := s.do(t, "GET", "/echo", "6.6.6.6", nil, "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "X-Real-IP", "6.6.6.7", "Forwarded", "for=6.6.6.8")
		e := decodeEcho(t, resp)
		if got := e.Header["X-Forwarded-For"]; len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %v, want the peer", got)
		}
		if e.Header["X-Real-Ip"][0] != "127.0.0.1" || e.Header["X-Forwarded-Host"][0] == "evil.example" ||
			e.Header["X-Forwarded-Proto"][0] != "http" || e.Header["Forwarded"] != nil {
			t.Errorf("spoofed headers survived: %v", e.Header)
		}
	})
	t.Run("trusted peer: right-most untrusted address wins", func(t *testing.T) {
		s := newSetup(t, nil, withEntries(), withConfig(func(c *gateway.Config) {
			c.TrustedProxies = []string{"127.0.0.1/32", "10.0.0.0/8"}
		}))
		resp := s.do(t, "GET", "/echo", "1.1.1.1, 203.0.113.9, 10.0.0.2", nil, "X-Forwarded-Proto", "https")
		e := decodeEcho(t, resp)
		if got := e.Header["X-Forwarded-For"]; len(got) != 1 || got[0] != "203.0.113.9" {
			t.Errorf("X-Forwarded-For = %v, want 203.0.113.9 (never the left-most)", got)
		}
		if e.Header["X-Forwarded-Proto"][0] != "https" {
			t.Errorf("trusted proto dropped: %v", e.Header["X-Forwarded-Proto"])
		}
	})
}

func TestPrototypeCases(t *testing.T) {
	t.Run("allowed IP passes, other IP refused", func(t *testing.T) {
		var s *setup
		s = newSetup(t, nil, withEntries()) // placeholder to get a store
		st := s.store
		s = newSetup(t, st, withEntries(prototypeEntries(t, st.(detections.Counter), []string{"127.0.0.1", "192.168.0.1"})...))
		resp := s.do(t, "GET", "/echo", "192.168.0.1", nil)
		if resp.StatusCode != 200 {
			t.Errorf("allowed IP: %d", resp.StatusCode)
		}
		resp.Body.Close()
		resp = s.do(t, "GET", "/echo", "192.168.0.2", nil)
		if b := readBody(t, resp); resp.StatusCode != 403 || b != denied {
			t.Errorf("other IP: %d %q", resp.StatusCode, b)
		}
	})
	t.Run("malicious payload in JSON body and in query", func(t *testing.T) {
		s := newSetup(t, nil)
		for i, tc := range []struct {
			path, body string
			want       int
		}{
			{"/echo", `{"malicious":"params"}`, 403},
			{"/echo?malicious=params", "", 403},
			{"/echo", "", 200},
			{"/echo", `{"a":{"b":[1,{"c":"MALICIOUS"}]}}`, 403},
			{"/echo?q=%256d%2561licious", "", 403},
			{"/echo?q=mal%00icious", "", 403},
			{"/echo?q=%EF%BD%8D%EF%BD%81%EF%BD%8C%EF%BD%89%EF%BD%83%EF%BD%89%EF%BD%8F%EF%BD%95%EF%BD%93", "", 403},
			{"/echo", `{"note":"harmless"}`, 200},
		} {
			client := fmt.Sprintf("198.51.100.%d", i+1)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			resp := s.do(t, "POST", tc.path, client, body, "Content-Type", "application/json")
			b := readBody(t, resp)
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.path, tc.body, resp.StatusCode, tc.want)
			}
			if tc.want == 403 && b != denied {
				t.Errorf("block body %q leaks detail", b)
			}
		}
	})
}

func TestBodyLimit(t *testing.T) {
	s := newSetup(t, nil, withEntries(), withConfig(func(c *gateway.Config) { c.MaxBodyBytes = 1024 }))
	resp := s.do(t, "POST", "/echo", "", strings.NewReader(strings.Repeat("a", 1024)))
	if resp.StatusCode != 200 {
		t.Errorf("at the limit: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp = s.do(t, "POST", "/echo", "", strings.NewReader(strings.Repeat("a", 1025)))
	if resp.StatusCode != 413 {
		t.Errorf("declared over the limit: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// Chunked: no Content-Length, the limit still applies while reading.
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write([]byte(strings.Repeat("b", 4096))); pw.Close() }()
	resp = s.do(t, "PUT", "/echo", "", pr)
	if resp.StatusCode != 413 {
		t.Errorf("chunked over the limit: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestMalformedBodiesForwarded(t *testing.T) {
	s := newSetup(t, nil)
	for i, tc := range []struct{ ct, body string }{
		{"application/json", `{"a": [1, 2`},
		{"application/json", "\xff\xfe not utf-8 \x00"},
		{"application/x-www-form-urlencoded", "a=%zz&b=%&c"},
		{"multipart/form-data; boundary=xyz", "--xyz\r\nbroken"},
		{"multipart/form-data", "no boundary"},
		{"text/plain", strings.Repeat("\xc3\x28", 100)},
	} {
		resp := s.do(t, "POST", "/echo", fmt.Sprintf("192.0.2.%d", 10+i), strings.NewReader(tc.body), "Content-Type", tc.ct)
		if resp.StatusCode != 200 {
			t.Errorf("%s %q: %d", tc.ct, tc.body, resp.StatusCode)
			resp.Body.Close()
			continue
		}
		if e := decodeEcho(t, resp); string(e.Body) != tc.body {
			t.Errorf("body changed: %q", e.Body)
		}
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Run("down: 502", func(t *testing.T) {
		s := newSetup(t, nil, withEntries())
		s.upstream.Close()
		resp := s.do(t, "GET", "/echo", "", nil)
		if b := readBody(t, resp); resp.StatusCode != 502 || b != `{"error":"Bad Gateway"}`+"\n" {
			t.Errorf("%d %q", resp.StatusCode, b)
		}
	})
	t.Run("slow: 504 after the timeout", func(t *testing.T) {
		s := newSetup(t, nil, withEntries(), withConfig(func(c *gateway.Config) { c.Timeouts.Upstream = 200 * time.Millisecond }))
		start := time.Now()
		resp := s.do(t, "GET", "/slow", "", nil)
		if b := readBody(t, resp); resp.StatusCode != 504 || !strings.Contains(b, "Gateway Timeout") {
			t.Errorf("%d %q", resp.StatusCode, b)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("took %v", d)
		}
	})
}

// failing is a detection that errors or panics.
type failing struct {
	name   string
	panics bool
}

func (f failing) Name() string { return f.name }
func (f failing) Inspect(context.Context, *detections.Request) (detections.Verdict, error) {
	if f.panics {
		var m map[string]int
		m["boom"]++ //lint:ignore SA5000 a real nil-map panic, on purpose
	}
	return detections.Block("never"), errors.New("cannot decide")
}

type always struct{ name string }

func (a always) Name() string { return a.name }
func (a always) Inspect(_ context.Context, r *detections.Request) (detections.Verdict, error) {
	if strings.Contains(r.RawQuery, "bad") {
		return detections.Block("bad_query"), nil
	}
	return detections.Allow, nil
}

func TestFailingDetectionsAreBypassed(t *testing.T) {
	s := newSetup(t, nil, withEntries(
		detections.Entry{Detection: failing{name: "erroring"}},
		detections.Entry{Detection: failing{name: "panicking", panics: true}},
		detections.Entry{Detection: always{name: "last"}},
	))
	if got := s.status(t, "GET", "/echo", ""); got != 200 {
		t.Errorf("clean request: %d", got)
	}
	if got := s.status(t, "GET", "/echo?bad", ""); got != 403 {
		t.Errorf("the detection after the failing ones did not run: %d", got)
	}
	failed := s.logs.lines("detection_failed")
	if len(failed) != 4 {
		t.Fatalf("detection_failed lines = %d, want 4: %s", len(failed), s.logs)
	}
	if failed[1]["detection"] != "panicking" || !strings.Contains(failed[1]["stack"].(string), "runtime") {
		t.Errorf("panic log: %v", failed[1])
	}
}

func TestMonitorModeProxies(t *testing.T) {
	s := newSetup(t, nil, withEntries(detections.Entry{Detection: always{name: "watcher"}, Mode: detections.ModeMonitor}))
	if got := s.status(t, "GET", "/echo?bad", "192.0.2.1"); got != 200 {
		t.Errorf("monitor mode blocked: %d", got)
	}
	wb := s.logs.lines("would_block")
	if len(wb) != 1 || wb[0]["detection"] != "watcher" || wb[0]["mode"] != "monitor" || wb[0]["client"] != "192.0.2.1" {
		t.Errorf("would_block lines: %v", wb)
	}
}

func TestLogsNeverCarrySecrets(t *testing.T) {
	s := newSetup(t, nil)
	resp := s.do(t, "POST", "/echo?token=supersecretquery&malicious=1", "192.0.2.50",
		strings.NewReader(`{"password":"hunter2-body-secret"}`), "Authorization", "Bearer auth-secret-xyz",
		"Cookie", "session=cookie-secret-abc", "Content-Type", "application/json")
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	logs := s.logs.String()
	for _, secret := range []string{"supersecretquery", "hunter2-body-secret", "auth-secret-xyz", "cookie-secret-abc"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
	if len(s.logs.lines("request_blocked")) != 1 {
		t.Errorf("no request_blocked line: %s", logs)
	}
}

func TestSlowClientsAreCut(t *testing.T) {
	s := newSetup(t, nil, withEntries(), withConfig(func(c *gateway.Config) {
		c.Timeouts.ReadHeader = 200 * time.Millisecond
		c.Timeouts.Read = 400 * time.Millisecond
	}))
	// Serve through a real server with the gateway's timeouts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.g.Serve(ln) }()
	t.Cleanup(func() { _ = s.g.Shutdown(context.Background()) })

	t.Run("slow headers", func(t *testing.T) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		_, err = c.Read(make([]byte, 1))
		if err == nil || time.Since(start) > 2*time.Second {
			t.Errorf("connection not closed on slow headers: %v after %v", err, time.Since(start))
		}
	})
	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"))
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("slow body: no answer and the connection still open after %v", time.Since(start))
		case err == nil:
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Errorf("slow body answered %d, want 408", resp.StatusCode)
			}
		}
		// A 408 (or the connection closed) within the read timeout: the
		// slot is freed.
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("slow body cut after %v, read timeout 400ms", d)
		}
	})
}

func TestUnknownMethodAndOddPaths(t *testing.T) {
	s := newSetup(t, nil, withEntries())
	for _, p := range []string{"/", "/echo/%2e%2e/x", "/echo//double", "/echo/..;/x"} {
		if got := s.status(t, "GET", p, ""); got != 200 {
			t.Errorf("%s: %d", p, got)
		}
	}
	if got := s.status(t, "FOOBAR", "/echo", ""); got != 200 {
		t.Errorf("FOOBAR: %d", got)
	}
}

func TestAllowedRequestsLoggedAtDebug(t *testing.T) {
	s := newSetup(t, nil, withEntries())
	s.status(t, "GET", "/echo?secret=value", "192.0.2.7")
	lines := s.logs.lines("request_allowed")
	if len(lines) != 1 || lines[0]["level"] != "DEBUG" || lines[0]["route"] != "default" || lines[0]["path"] != "/echo" || lines[0]["status"] != float64(200) {
		t.Errorf("request_allowed: %v", lines)
	}
	if strings.Contains(s.logs.String(), "secret=value") {
		t.Error("query logged")
	}
}

// panickyStore panics in the hot path, standing in for a bug in a store
// client: the gateway recovers, answers 500 JSON, and keeps serving.
type panickyStore struct{ *store.Memory }

func (panickyStore) Check(context.Context, string, *detections.StateQuery) (detections.Check, error) {
	panic("store bug")
}

func TestPanicInTheGatewayIsRecovered(t *testing.T) {
	s := newSetup(t, panickyStore{store.NewMemory(store.DefaultMemoryConfig())})
	resp := s.do(t, "GET", "/echo", "192.0.2.1", nil)
	if b := readBody(t, resp); resp.StatusCode != 500 || b != `{"error":"Internal Server Error"}`+"\n" {
		t.Errorf("panic answered %d %q", resp.StatusCode, b)
	}
	if lines := s.logs.lines("panic"); len(lines) != 1 || !strings.Contains(lines[0]["stack"].(string), "panickyStore") {
		t.Errorf("panic log: %v", lines)
	}
	// The process survives and answers the next request the same way.
	resp = s.do(t, "GET", "/echo", "192.0.2.1", nil)
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("second request: %d", resp.StatusCode)
	}
}
