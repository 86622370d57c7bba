package detections_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/tlsfp"
)

func reqFrom(ip string) *detections.Request {
	a := netip.MustParseAddr(ip)
	return &detections.Request{ClientIP: a, ClientKey: detections.ClientKey(a, 64), Method: "GET", Path: "/", RawPath: "/", Header: http.Header{}}
}

func TestIP(t *testing.T) {
	t.Parallel()
	d, err := detections.NewIP(detections.IPConfig{
		Allow: []string{"127.0.0.1", "192.168.0.1", "10.0.0.0/8", "2001:db8::/32"},
		Deny:  []string{"10.6.6.0/24", "2001:db8:bad::/48"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ip, want string
	}{
		{"allowed address", "127.0.0.1", ""},
		{"allowed v4-mapped", "::ffff:192.168.0.1", ""},
		{"allowed range", "10.1.2.3", ""},
		{"not in allow list", "192.168.0.2", detections.ReasonIPNotAllowed},
		{"deny wins over allow", "10.6.6.6", detections.ReasonIPDenied},
		{"allowed v6", "2001:db8:1::1", ""},
		{"denied v6", "2001:db8:bad::1", detections.ReasonIPDenied},
		{"other v6", "2001:db9::1", detections.ReasonIPNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := d.Inspect(t.Context(), reqFrom(tc.ip))
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tc.want {
				t.Errorf("reason = %q, want %q", v.Reason, tc.want)
			}
		})
	}
	if !d.AllowListed(netip.MustParseAddr("127.0.0.1")) || d.AllowListed(netip.MustParseAddr("8.8.8.8")) {
		t.Error("allow list wrong")
	}
}

func TestIPConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := detections.NewIP(detections.IPConfig{Allow: []string{"nope"}, Deny: []string{"10.0.0.0/33"}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`allow: invalid address or CIDR: "nope"`, `deny: `} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestUserAgent(t *testing.T) {
	t.Parallel()
	everyone, _ := detections.NewUserAgent(detections.DefaultUserAgentConfig())
	only, _ := detections.NewUserAgent(detections.UserAgentConfig{Allow: []string{"not_white_listed"}, Empty: "block"})
	globbed, _ := detections.NewUserAgent(detections.UserAgentConfig{Allow: []string{"curl/*", "re:^Mozilla/5\\.0 "}, Deny: []string{"BadBot"}})
	tests := []struct {
		name string
		d    *detections.UserAgent
		ua   string
		want string
	}{
		{"prototype star allows a browser", everyone, "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", ""},
		{"prototype star allows python", everyone, "python-requests/2.31.0", ""},
		{"default deny: sqlmap", everyone, "sqlmap/1.7.2#stable (https://sqlmap.org)", detections.ReasonUADenied},
		{"default deny is case-insensitive", everyone, "Mozilla/5.0 (compatible; NUCLEI/3.1)", detections.ReasonUADenied},
		{"default deny: nikto", everyone, "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000001)", detections.ReasonUADenied},
		{"empty allowed by default", everyone, "", ""},
		{"prototype not_white_listed refuses others", only, "python-requests/2.31.0", detections.ReasonUANotAllowed},
		{"prototype not_white_listed admits itself", only, "not_white_listed", ""},
		{"empty blocked when configured", only, "", detections.ReasonUAMissing},
		{"glob allow", globbed, "curl/8.5.0", ""},
		{"regex allow", globbed, "Mozilla/5.0 (Macintosh)", ""},
		{"regex is anchored where written", globbed, "xMozilla/5.0 ", detections.ReasonUANotAllowed},
		{"deny wins over allow", globbed, "curl/8.5.0 BadBot", detections.ReasonUADenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := reqFrom("192.0.2.1")
			if tc.ua != "" {
				r.Header.Set("User-Agent", tc.ua)
			}
			v, err := tc.d.Inspect(t.Context(), r)
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tc.want {
				t.Errorf("reason = %q, want %q", v.Reason, tc.want)
			}
		})
	}
	if _, err := detections.NewUserAgent(detections.UserAgentConfig{Deny: []string{"re:("}, Empty: "maybe"}); err == nil {
		t.Error("bad config accepted")
	}
}

func TestPatternSet(t *testing.T) {
	t.Parallel()
	s := detections.MustCompilePatterns([]string{"malicious", "EVIL", "he", "she", "hers", "a*z", "re:[0-9]{3}-x"})
	tests := []struct {
		text, want string
	}{
		{"this is MaLiCiOuS", "malicious"},
		{"so evil", "EVIL"},
		{"ushers", "she"},
		{"abcz", "a*z"},
		{"call 555-X now", "re:[0-9]{3}-x"},
		{"nothing to see", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, ok := s.Match(tc.text)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("Match(%q) = %q, %v; want %q", tc.text, got, ok, tc.want)
		}
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip     string
		prefix int
		want   string
	}{
		{"192.0.2.1", 64, "192.0.2.1"},
		{"::ffff:192.0.2.1", 64, "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
		{"2001:db8::1", 128, "2001:db8::1"},
		{"fe80::1%eth0", 128, "fe80::1"},
	}
	for _, tc := range tests {
		if got := detections.ClientKey(netip.MustParseAddr(tc.ip), tc.prefix); got != tc.want {
			t.Errorf("ClientKey(%s, %d) = %s, want %s", tc.ip, tc.prefix, got, tc.want)
		}
	}
	if got := detections.ClientKey(netip.Addr{}, 64); got != "invalid" {
		t.Errorf("invalid address key = %q", got)
	}
}

func stateReq(ip string, st *detections.ClientState) *detections.Request {
	r := reqFrom(ip)
	r.State = st
	return r
}

func TestRateLimitVerdicts(t *testing.T) {
	t.Parallel()
	cfg := detections.DefaultRateLimitConfig()
	cfg.Routes = []detections.RouteLimit{{Name: "login", Method: "POST", Path: "/login", Limit: detections.PerMinute(2)}}
	d, err := detections.NewRateLimit(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Query picks the bucket.
	var q detections.StateQuery
	r := reqFrom("192.0.2.1")
	d.Query(r, &q)
	if q.RateKey != "" || q.RateLimit != detections.PerMinute(5) || q.BanAfter != 10 {
		t.Errorf("default query = %+v", q)
	}
	r.Method, r.Path = "POST", "/login/form"
	q = detections.StateQuery{}
	d.Query(r, &q)
	if q.RateKey != "login" || q.RateLimit.Rate != 2 {
		t.Errorf("route query = %+v", q)
	}

	allowed := &detections.ClientState{Rate: detections.RateResult{Allowed: 1, Remaining: 3}}
	if v, err := d.Inspect(t.Context(), stateReq("192.0.2.1", allowed)); err != nil || v.Action != detections.ActionAllow {
		t.Errorf("allowed: %+v %v", v, err)
	}
	refused := &detections.ClientState{Rate: detections.RateResult{Allowed: 0, RetryAfter: 11500 * time.Millisecond}, Refused: 3}
	v, err := d.Inspect(t.Context(), stateReq("192.0.2.1", refused))
	if err != nil || v.Reason != detections.ReasonRateLimited || v.BlockFor != 0 {
		t.Fatalf("refused: %+v %v", v, err)
	}
	if v.RetryAfter != 11500*time.Millisecond {
		t.Errorf("retry after = %v", v.RetryAfter)
	}
	if got := v.Header.Get("RateLimit-Policy"); got != `"default";q=5;w=60` {
		t.Errorf("RateLimit-Policy = %q", got)
	}
	if got := v.Header.Get("RateLimit"); got != `"default";r=0;t=12` {
		t.Errorf("RateLimit = %q", got)
	}
	hammer := &detections.ClientState{Rate: detections.RateResult{Allowed: 0, RetryAfter: time.Second}, Refused: 10}
	if v, _ := d.Inspect(t.Context(), stateReq("192.0.2.1", hammer)); v.BlockFor != 10*time.Minute {
		t.Errorf("hammering not banned: %+v", v)
	}
	down := &detections.ClientState{Err: detections.ErrStore}
	if _, err := d.Inspect(t.Context(), stateReq("192.0.2.1", down)); err == nil {
		t.Error("store outage not reported")
	}
}

// memLimiter is a trivial fallback limiter: n requests, then refuse.
type memLimiter struct{ n map[string]int }

func (m *memLimiter) Allow(_ context.Context, key string, l detections.Limit) (detections.RateResult, error) {
	m.n[key]++
	if m.n[key] > l.Burst {
		return detections.RateResult{Limit: l, RetryAfter: time.Second}, nil
	}
	return detections.RateResult{Limit: l, Allowed: 1}, nil
}

func TestRateLimitFallback(t *testing.T) {
	t.Parallel()
	down := &detections.ClientState{Err: detections.ErrStore}
	for _, tc := range []struct {
		name     string
		fallback detections.Fallback
		allowed  int
	}{
		{"explicit limit", detections.Fallback{Limit: detections.PerMinute(2)}, 2},
		// Unset: the configured limit, applied per replica.
		{"default is the configured limit", detections.Fallback{}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := detections.DefaultRateLimitConfig()
			cfg.Fallback = tc.fallback
			d, err := detections.NewRateLimit(cfg, &memLimiter{n: map[string]int{}})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i <= tc.allowed; i++ {
				want := detections.ActionAllow
				if i == tc.allowed {
					want = detections.ActionBlock
				}
				v, err := d.Inspect(t.Context(), stateReq("192.0.2.1", down))
				if err != nil || v.Action != want {
					t.Errorf("request %d: %+v %v", i+1, v, err)
				}
			}
		})
	}
	// Off, or no local limiter: the outage is reported (fail open or
	// closed by on_store_error).
	cfg := detections.DefaultRateLimitConfig()
	cfg.Fallback = detections.Fallback{Off: true}
	for _, lim := range []detections.Limiter{&memLimiter{n: map[string]int{}}, nil} {
		d, err := detections.NewRateLimit(cfg, lim)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Inspect(t.Context(), stateReq("192.0.2.1", down)); err == nil {
			t.Error("fallback off: outage not reported")
		}
	}
}

func TestRateLimitConfigErrors(t *testing.T) {
	t.Parallel()
	cfg := detections.RateLimitConfig{Limit: detections.Limit{Rate: 0}, BanAfter: 1,
		Routes: []detections.RouteLimit{{Name: "Bad Name", Path: "x"}}}
	err := cfg.Validate()
	for _, want := range []string{"rate, burst and period", "ban_after is set but ban_for is 0", "must match", "must start with /"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

type countFake struct{ n map[string]int64 }

func (c *countFake) Incr(_ context.Context, client string, _ time.Duration) (int64, error) {
	c.n[client]++
	return c.n[client], nil
}

func TestEnumeration(t *testing.T) {
	t.Parallel()
	cfg := detections.DefaultEnumerationConfig()
	cfg.KnownRoutes = []string{"/api/endpoint", "/favicon.ico", "/static/*"}
	counter := &countFake{n: map[string]int64{}}
	d, err := detections.NewEnumeration(cfg, counter)
	if err != nil {
		t.Fatal(err)
	}
	known := func(path string) bool {
		var q detections.StateQuery
		r := reqFrom("192.0.2.1")
		r.Path = path
		d.Query(r, &q)
		return !q.CountInvalid
	}
	for _, p := range []string{"/api/endpoint", "/API/Endpoint/", "//api//endpoint", "/static/app.js", "/favicon.ico"} {
		if !known(p) {
			t.Errorf("%s counted as unknown", p)
		}
	}
	for _, p := range []string{"/api/endpoints", "/admin", "/"} {
		if known(p) {
			t.Errorf("%s counted as known", p)
		}
	}
	// Inspect: five invalid requests allowed, the sixth refused.
	r := reqFrom("192.0.2.1")
	r.Path = "/api/endpoint"
	for n, want := range map[int64]detections.Action{4: detections.ActionAllow, 5: detections.ActionBlock} {
		r.State = &detections.ClientState{Invalid: n}
		v, _ := d.Inspect(t.Context(), r)
		if v.Action != want {
			t.Errorf("known route with %d invalid before: %v", n, v.Action)
		}
	}
	r.Path = "/nope" // this request itself was counted by the store
	for n, want := range map[int64]detections.Action{5: detections.ActionAllow, 6: detections.ActionBlock} {
		r.State = &detections.ClientState{Invalid: n}
		v, _ := d.Inspect(t.Context(), r)
		if v.Action != want || (want == detections.ActionBlock && v.BlockFor != 10*time.Minute) {
			t.Errorf("unknown route with count %d: %+v", n, v)
		}
	}
	// Observer: 404s count; the 5th bans.
	r.Path = "/api/endpoint"
	for i := 1; i <= 5; i++ {
		v, err := d.ObserveResponse(t.Context(), r, detections.Response{Status: 404})
		if err != nil {
			t.Fatal(err)
		}
		if (i == 5) != (v.Action == detections.ActionBlock) {
			t.Errorf("404 #%d: %+v", i, v)
		}
	}
	if v, _ := d.ObserveResponse(t.Context(), r, detections.Response{Status: 200}); v.Action != detections.ActionAllow || counter.n["192.0.2.1"] != 5 {
		t.Error("200 counted")
	}
	// An unknown route's 404 is not counted twice.
	r.Path = "/nope"
	_, _ = d.ObserveResponse(t.Context(), r, detections.Response{Status: 404})
	if counter.n["192.0.2.1"] != 5 {
		t.Error("unknown route counted again on its 404")
	}
}

// TestRateLimitAlso: an additional bucket keyed by the TLS fingerprint
// refuses a request the per-IP bucket admits.
func TestRateLimitAlso(t *testing.T) {
	t.Parallel()
	cfg := detections.DefaultRateLimitConfig()
	cfg.Also = []detections.RouteLimit{{Name: "ja4", Key: []string{"ja4"}, Limit: detections.PerMinute(100)}}
	d, err := detections.NewRateLimit(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := reqFrom("192.0.2.1")
	r.TLS = &detections.TLS{Fingerprint: tlsfp.Fingerprint{JA4: "t13d1516h2_a_b"}}
	var q detections.StateQuery
	d.Query(r, &q)
	if len(q.Subjects) != 1 || q.Subjects[0].RateKey != "ja4" || q.RateLimit != detections.PerMinute(5) {
		t.Fatalf("query %+v", q)
	}
	subject := q.Subjects[0].Subject
	r.State = &detections.ClientState{Rate: detections.RateResult{Allowed: 1},
		Subjects: []detections.SubjectState{{Subject: subject, Rate: detections.RateResult{Limit: detections.PerMinute(100), RetryAfter: time.Second}}}}
	v, err := d.Inspect(t.Context(), r)
	if err != nil || v.Action != detections.ActionBlock || v.BlockFor != 0 || !strings.Contains(v.Header.Get("Ratelimit"), `"ja4"`) {
		t.Errorf("fingerprint bucket empty: %+v %v", v, err)
	}
}
