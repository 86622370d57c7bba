package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

// lateReader is an upstream transport that answers before reading the
// request body and keeps the body (and GetBody) to read later, as a real
// transport's write loop may after RoundTrip has returned.
type lateReader struct {
	mu      sync.Mutex
	bodies  []io.ReadCloser
	getBody []func() (io.ReadCloser, error)
	during  []string // what GetBody of an answered request gave later
}

func (l *lateReader) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// While this request's body sits in a (possibly reused) exchange,
	// read the earlier requests' bodies again.
	for _, gb := range l.getBody {
		if rc, err := gb(); err == nil {
			b, _ := io.ReadAll(rc)
			l.during = append(l.during, string(b))
		}
	}
	l.bodies = append(l.bodies, r.Body)
	l.getBody = append(l.getBody, r.GetBody)
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r, ContentLength: 0}, nil
}

// TestBodyNotReadableAfterRelease: the gateway buffers a request body in
// a pooled exchange. A transport that reads the body after the request
// was answered must get an error, never bytes of the buffer another
// request has reused since (another client's body).
func TestBodyNotReadableAfterRelease(t *testing.T) {
	lr := &lateReader{}
	s := newSetup(t, nil, withTransport(lr))
	for i, body := range []string{`{"first":"` + strings.Repeat("a", 512) + `"}`, `{"second":"` + strings.Repeat("b", 512) + `"}`} {
		resp := s.do(t, "POST", "/echo", "192.0.2."+string(rune('1'+i)), strings.NewReader(body), "Content-Type", "application/json")
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if len(lr.bodies) != 2 {
		t.Fatalf("the transport saw %d requests, want 2", len(lr.bodies))
	}
	if len(lr.during) > 0 {
		t.Errorf("GetBody of an answered request still read %q", lr.during)
	}
	for i := range lr.bodies {
		// httputil.ReverseProxy fences req.Body itself once the handler
		// returned; GetBody is the gateway's.
		if b, err := io.ReadAll(lr.bodies[i]); err == nil || len(b) > 0 {
			t.Errorf("request %d: reading its body after the answer gave %q, %v; want an error", i, b, err)
		}
		if lr.getBody[i] == nil {
			t.Errorf("request %d: no GetBody", i)
			continue
		}
		if rc, err := lr.getBody[i](); !errors.Is(err, http.ErrBodyReadAfterClose) {
			var b []byte
			if rc != nil {
				b, _ = io.ReadAll(rc)
			}
			t.Errorf("request %d: GetBody after the answer gave %q, %v; want ErrBodyReadAfterClose", i, b, err)
		}
	}
}

// TestMonitoredLimitKeepsStateExact: a rate limit in monitor mode lets an
// over-limit client through, so its requests must still reach the store:
// answered from the local refusal cache, the enumeration counter of the
// same round trip would stop counting and the scan would never be blocked.
func TestMonitoredLimitKeepsStateExact(t *testing.T) {
	rl, err := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(3)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory(store.DefaultMemoryConfig())
	ecfg := detections.DefaultEnumerationConfig()
	ecfg.KnownRoutes = []string{"/api/endpoint"}
	en, err := detections.NewEnumeration(ecfg, st)
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, st, withEntries(detections.Entry{Detection: rl, Mode: detections.ModeMonitor}, detections.Entry{Detection: en}))
	const client = "192.0.2.90"
	for range 3 {
		if code := s.status(t, "GET", "/api/endpoint", client); code != http.StatusOK {
			t.Fatalf("within the limit: %d", code)
		}
	}
	blocked := 0
	for i := range 3 * ecfg.Limit {
		if s.status(t, "GET", "/unknown/"+strconv.Itoa(i), client) == http.StatusForbidden {
			blocked++
		}
	}
	if blocked == 0 {
		t.Errorf("%d requests to unknown routes over a monitored limit, none blocked by enumeration (threshold %d)", 3*ecfg.Limit, ecfg.Limit)
	}
}

// TestUpstreamErrorNotQuotedInLogs: a broken upstream answer is a 502 whose
// log line names the kind of error, not its text, which quotes the
// upstream's bytes (here a cookie in a malformed header line).
func TestUpstreamErrorNotQuotedInLogs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nSet-Cookie session=s3cr3t-cookie\r\n\r\n")
			}()
		}
	}()
	s := newSetup(t, nil, withConfig(func(c *gateway.Config) { c.Upstream.Instances = []string{"http://" + ln.Addr().String()} }))
	if code := s.status(t, "GET", "/echo", "192.0.2.91"); code != http.StatusBadGateway {
		t.Fatalf("malformed upstream answer: %d, want 502", code)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `"upstream_error"`) {
		t.Fatalf("no upstream_error line in %s", logs)
	}
	if strings.Contains(logs, "s3cr3t-cookie") {
		t.Errorf("the upstream's bytes reached the log: %s", logs)
	}
}

// TestRouteUpstreamTimeoutUnderWrite: like the top-level timeouts, a
// route's upstream timeout must end before the write timeout, or its 504
// could never be written.
func TestRouteUpstreamTimeoutUnderWrite(t *testing.T) {
	s := newSetup(t, nil)
	chain, err := detections.NewChain()
	if err != nil {
		t.Fatal(err)
	}
	route := func(up time.Duration) *gateway.Policy {
		return &gateway.Policy{Chain: chain, Routes: []gateway.Route{{RouteConfig: gateway.RouteConfig{Name: "slow", PathPrefix: "/echo",
			Upstream: gateway.UpstreamConfig{Instances: []string{s.upstream.URL}}, Timeouts: gateway.RouteTimeouts{Upstream: up}}}}}
	}
	write := gateway.DefaultConfig().Timeouts.Write
	if err := s.g.SetPolicy(route(write + time.Second)); err == nil || !strings.Contains(err.Error(), "timeouts.upstream") {
		t.Errorf("a route's upstream timeout over timeouts.write (%v): %v, want an error", write, err)
	}
	if err := s.g.SetPolicy(route(write / 2)); err != nil {
		t.Errorf("a route's upstream timeout under timeouts.write: %v", err)
	}
}

// tlsSeen records the TLS facts each request reached the chain with.
type tlsSeen struct {
	mu   sync.Mutex
	seen []*detections.TLS
}

func (*tlsSeen) Name() string { return "tls_seen" }
func (s *tlsSeen) Inspect(_ context.Context, r *detections.Request) (detections.Verdict, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *detections.TLS
	if r.TLS != nil {
		c := *r.TLS
		t = &c
	}
	s.seen = append(s.seen, t)
	return detections.Allow, nil
}

// TestTLSFactsFromTrustedHeaders: a trusted load balancer's TLS headers
// become the request's TLS facts, in OpenSSL's names (nginx $ssl_protocol
// and $ssl_cipher, HAProxy ssl_fc_*) as in IANA's; from any other peer
// they are ignored.
func TestTLSFactsFromTrustedHeaders(t *testing.T) {
	hdrs := gateway.TLSHeaders{Version: "X-SSL-Protocol", Cipher: "X-SSL-Cipher"}
	cases := []struct {
		version, cipher string
		wantV, wantC    uint16
	}{
		{"TLSv1", "DES-CBC3-SHA", 0x0301, 0x000a},
		{"TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 0x0303, 0xc02f},
		{"TLSv1.3", "TLS_AES_128_GCM_SHA256", 0x0304, 0x1301},
		{"1.2", "tls_ecdhe_rsa_with_aes_128_cbc_sha", 0x0303, 0xc013},
	}
	seen := &tlsSeen{}
	s := newSetup(t, nil, withEntries(detections.Entry{Detection: seen}), withConfig(func(c *gateway.Config) { c.TLS.Headers = hdrs }))
	for _, c := range cases {
		resp := s.do(t, "GET", "/echo", "192.0.2.95", nil, "X-SSL-Protocol", c.version, "X-SSL-Cipher", c.cipher)
		resp.Body.Close()
	}
	seen.mu.Lock()
	got := seen.seen
	seen.mu.Unlock()
	if len(got) != len(cases) {
		t.Fatalf("%d requests inspected, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		if g := got[i]; g == nil || g.Source != "header" || g.Version != c.wantV || g.CipherSuite != c.wantC || g.CipherName != c.cipher {
			t.Errorf("%s / %s: facts %+v, want version %#04x cipher %#04x from header", c.version, c.cipher, g, c.wantV, c.wantC)
		}
	}

	untrusted := &tlsSeen{}
	u := newSetup(t, nil, withEntries(detections.Entry{Detection: untrusted}), withConfig(func(c *gateway.Config) {
		c.TLS.Headers, c.TrustedProxies = hdrs, nil
	}))
	resp := u.do(t, "GET", "/echo", "", nil, "X-SSL-Protocol", "TLSv1.3", "X-SSL-Cipher", "TLS_AES_128_GCM_SHA256")
	resp.Body.Close()
	if len(untrusted.seen) != 1 || untrusted.seen[0] != nil {
		t.Errorf("TLS headers from an untrusted peer became facts: %+v", untrusted.seen)
	}
}

// TestParseTargetErrorsHideValues: an identity that cannot be parsed is
// refused with its key named, never its value (an API key), since the
// error reaches logs, API answers and gatewayctl's stderr.
func TestParseTargetErrorsHideValues(t *testing.T) {
	s := newSetup(t, nil)
	const secret = "k3y-s3cr3t-9a8b7c"
	for _, in := range []string{"nosuch:thing=" + secret, "header:=" + secret, "jwt:sub+header:X-Api-Key=" + secret, "sk_live_" + secret} {
		_, err := s.g.ParseTarget(in)
		if err == nil {
			t.Errorf("%q parsed", in)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error for %q shows the value: %v", in, err)
		}
	}
	if _, err := s.g.ParseTarget("10.0.0.300"); err == nil || !strings.Contains(err.Error(), "10.0.0.300") {
		t.Errorf("a mistyped address is named in its error: %v", err)
	}
}
