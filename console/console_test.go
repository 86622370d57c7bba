package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/console"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
	"github.com/rampartgw/rampart/testutil"
)

var pages = []string{"/console/live", "/console/bans", "/console/top", "/console/fleet", "/console/config"}

func TestConsoleOffWithoutToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := browser(t)
	for _, p := range append(pages, "/console/login", "/console", "/console/live/stream") {
		pg := get(t, c, h.admin.URL+p)
		if pg.code != http.StatusForbidden || !strings.Contains(pg.body, "GATEWAY_ADMIN_TOKEN") {
			t.Errorf("%s: %d %q", p, pg.code, pg.body)
		}
	}
	if pg := login(t, c, h, ""); pg.code != http.StatusForbidden || len(pg.header.Values("Set-Cookie")) != 0 {
		t.Errorf("login with no token configured: %d, cookies %v", pg.code, pg.header.Values("Set-Cookie"))
	}
	cfg := console.DefaultConfig()
	cfg.Enabled = false
	h2 := newHarness(t, harnessOpts{token: testToken, cfg: &cfg})
	if pg := get(t, c, h2.admin.URL+"/console/live"); pg.code != http.StatusForbidden || !strings.Contains(pg.body, "enabled: false") {
		t.Errorf("disabled console: %d %q", pg.code, pg.body)
	}
}

func TestLoginSession(t *testing.T) {
	h := newHarness(t, harnessOpts{token: testToken})
	c := browser(t)
	// Without a session every page sends the browser to the login page,
	// and the stream answers 401.
	for _, p := range pages {
		pg := get(t, c, h.admin.URL+p)
		if loc := pg.header.Get("Location"); pg.code != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/login?next=") {
			t.Errorf("%s without a session: %d %q", p, pg.code, loc)
		}
	}
	if pg := get(t, c, h.admin.URL+"/console/live/stream"); pg.code != http.StatusUnauthorized {
		t.Errorf("stream without a session: %d", pg.code)
	}
	for _, tok := range []string{"", "wrong", testToken + "x", strings.ToUpper(testToken)} {
		pg := login(t, c, h, tok)
		if pg.code != http.StatusUnauthorized || len(pg.header.Values("Set-Cookie")) != 0 || !strings.Contains(pg.body, "not the admin token") {
			t.Errorf("login with %q: %d, cookies %v", tok, pg.code, pg.header.Values("Set-Cookie"))
		}
	}
	// The failures above are logged, without the token.
	if !strings.Contains(h.logs.String(), `"msg":"console_login_failed"`) || strings.Contains(h.logs.String(), "wrong") {
		t.Errorf("login failures not logged, or logged with the token: %s", h.logs.String())
	}
	// Spaces around the token are dropped, as the admin API drops them (a
	// token pasted with its newline).
	for _, tok := range []string{testToken + "\n", " " + testToken + "\r\n"} {
		if pg := login(t, browser(t), h, tok); pg.code != http.StatusSeeOther || pg.header.Get("Location") != "/console/bans" {
			t.Errorf("login with %q: %d %q", tok, pg.code, pg.header.Get("Location"))
		}
	}
	pg := login(t, c, h, testToken)
	if pg.code != http.StatusSeeOther || pg.header.Get("Location") != "/console/bans" {
		t.Fatalf("login: %d %q %s", pg.code, pg.header.Get("Location"), pg.body)
	}
	ck := pg.header.Get("Set-Cookie")
	for _, attr := range []string{"rampart_console=", "Path=/console", "HttpOnly", "SameSite=Strict", "Max-Age=28800"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("session cookie %q lacks %s", ck, attr)
		}
	}
	if strings.Contains(ck, "Secure") {
		t.Errorf("cookie %q is Secure over plain HTTP (the browser would drop it)", ck)
	}
	for _, p := range pages {
		pg := get(t, c, h.admin.URL+p)
		if pg.code != http.StatusOK {
			t.Errorf("%s: %d %s", p, pg.code, pg.body)
			continue
		}
		checkPage(t, p, pg)
	}
	// A redirect after login stays inside the console.
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/v1/bans", "/console/\\evil"} {
		c2 := browser(t)
		pg := post(t, c2, h.admin.URL+"/console/login", url.Values{"token": {testToken}, "next": {next}})
		if loc := pg.header.Get("Location"); loc != "/console/live" {
			t.Errorf("next %q: redirected to %q", next, loc)
		}
	}
	// Log out (a POST with the CSRF token) ends the session in the browser.
	pg = get(t, c, h.admin.URL+"/console/live")
	pg = post(t, c, h.admin.URL+"/console/logout", url.Values{"csrf": {csrfOf(t, pg.body)}})
	if pg.code != http.StatusSeeOther || !strings.Contains(pg.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %q", pg.code, pg.header.Get("Set-Cookie"))
	}
	if pg := get(t, c, h.admin.URL+"/console/live"); pg.code != http.StatusSeeOther {
		t.Errorf("after logout: %d", pg.code)
	}
}

// checkPage checks what every page must be: the strict CSP, no inline
// script or style, no token, every asset from this listener.
func checkPage(t *testing.T, name string, pg page) {
	t.Helper()
	if csp := pg.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") ||
		strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: CSP %q", name, csp)
	}
	for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"} {
		if pg.header.Get(h) == "" {
			t.Errorf("%s: no %s", name, h)
		}
	}
	if strings.Contains(pg.body, testToken) {
		t.Errorf("%s renders the admin token", name)
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>`),     // inline script
		regexp.MustCompile(`<script(?:(?:\s+(?:defer|async))*)\s*>`), // script without src
		regexp.MustCompile(`\sstyle\s*=`),                            // inline style attribute
		regexp.MustCompile(`<style`),                                 // style element
		regexp.MustCompile(`\son[a-z]+\s*=`),                         // event handler attribute
		regexp.MustCompile(`(?:src|href|action)="(?:https?:)?//`),    // anything from elsewhere
		regexp.MustCompile(`javascript:`),
	} {
		if m := re.FindString(pg.body); m != "" {
			t.Errorf("%s: %q in the page", name, m)
		}
	}
}

// TestSessionEndsWhenTokenChanges: a cookie made under one admin token is
// worth nothing to a gateway with another (the same replica restarted
// with a new token, or another replica).
func TestSessionEndsWhenTokenChanges(t *testing.T) {
	_, mr := storetest.New(t)
	a := newHarness(t, harnessOpts{redisAddr: mr.Addr(), token: testToken})
	b := newHarness(t, harnessOpts{redisAddr: mr.Addr(), token: "the-new-token-9876543210", replica: "replica-b"})
	c := browser(t)
	if pg := login(t, c, a, testToken); pg.code != http.StatusSeeOther {
		t.Fatalf("login: %d", pg.code)
	}
	pg := get(t, c, a.admin.URL+"/console/bans")
	if pg.code != http.StatusOK {
		t.Fatalf("bans with the session: %d", pg.code)
	}
	csrf := csrfOf(t, pg.body)
	au, _ := url.Parse(a.admin.URL)
	bu, _ := url.Parse(b.admin.URL)
	// Replay A's cookie against B.
	for _, ck := range c.Jar.Cookies(&url.URL{Scheme: "http", Host: au.Host, Path: "/console/"}) {
		c.Jar.SetCookies(&url.URL{Scheme: "http", Host: bu.Host, Path: "/console/"}, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/console"}})
	}
	if pg := get(t, c, b.admin.URL+"/console/bans"); pg.code != http.StatusSeeOther {
		t.Errorf("the old token's session opened a page: %d", pg.code)
	}
	if pg := get(t, c, b.admin.URL+"/console/live/stream"); pg.code != http.StatusUnauthorized {
		t.Errorf("the old token's session opened the stream: %d", pg.code)
	}
	if _, err := a.g.Ban(t.Context(), mustTarget(t, a, "192.0.2.50"), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	pg = post(t, c, b.admin.URL+"/console/bans/unban", url.Values{"client": {"192.0.2.50"}, "csrf": {csrf}})
	if pg.code != http.StatusUnauthorized {
		t.Errorf("the old token's session unbanned: %d", pg.code)
	}
	if code := a.request(t, "/x", "192.0.2.50"); code != http.StatusForbidden {
		t.Errorf("the ban was lifted: %d", code)
	}
}

func mustTarget(t *testing.T, h *harness, s string) gatewayTarget {
	t.Helper()
	tg, err := h.g.ParseTarget(s)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// TestCSRF: a state-changing POST needs the session's CSRF token and, when
// the browser says where it comes from, the console's own origin.
func TestCSRF(t *testing.T) {
	h := newHarness(t, harnessOpts{token: testToken})
	c, other := browser(t), browser(t)
	login(t, c, h, testToken)
	login(t, other, h, testToken)
	csrf := csrfOf(t, get(t, c, h.admin.URL+"/console/bans").body)
	otherCSRF := csrfOf(t, get(t, other, h.admin.URL+"/console/bans").body)
	if csrf == otherCSRF {
		t.Fatal("two sessions share a CSRF token")
	}
	if _, err := h.g.Ban(t.Context(), mustTarget(t, h, "192.0.2.60"), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"no token", url.Values{"client": {"192.0.2.60"}}, nil},
		{"wrong token", url.Values{"client": {"192.0.2.60"}, "csrf": {"AAAA"}}, nil},
		{"another session's token", url.Values{"client": {"192.0.2.60"}, "csrf": {otherCSRF}}, nil},
		{"token in a header only", url.Values{"client": {"192.0.2.60"}}, []string{"X-CSRF-Token", csrf}},
		{"cross-origin", url.Values{"client": {"192.0.2.60"}, "csrf": {csrf}}, []string{"Origin", "http://evil.example"}},
		{"cross-site fetch", url.Values{"client": {"192.0.2.60"}, "csrf": {csrf}}, []string{"Sec-Fetch-Site", "cross-site"}},
	} {
		for _, path := range []string{"/console/bans/unban", "/console/bans", "/console/logout"} {
			pg := post(t, c, h.admin.URL+path, tc.form, tc.hdr...)
			if pg.code != http.StatusForbidden || !strings.Contains(pg.body, "CSRF") {
				t.Errorf("%s %s: %d", tc.name, path, pg.code)
			}
		}
	}
	if code := h.request(t, "/x", "192.0.2.60"); code != http.StatusForbidden {
		t.Fatalf("a refused POST lifted the ban: %d", code)
	}
	if !strings.Contains(h.logs.String(), "console_csrf_refused") {
		t.Error("CSRF refusals are not logged")
	}
	// GET does not change anything.
	if pg := get(t, c, h.admin.URL+"/console/bans/unban?client=192.0.2.60"); pg.code == http.StatusSeeOther && strings.Contains(pg.header.Get("Location"), "unbanned") {
		t.Error("GET unbanned")
	}
	pg := post(t, c, h.admin.URL+"/console/bans/unban", url.Values{"client": {"192.0.2.60"}, "csrf": {csrf}}, "Origin", h.admin.URL)
	if pg.code != http.StatusSeeOther || !strings.Contains(pg.header.Get("Location"), "done=unbanned") {
		t.Fatalf("unban with the token: %d %q", pg.code, pg.header.Get("Location"))
	}
	if code := h.request(t, "/x", "192.0.2.60"); code != http.StatusOK {
		t.Errorf("after unban: %d", code)
	}
	// Ban from the page: the client is refused on its next request.
	pg = post(t, c, h.admin.URL+"/console/bans", url.Values{"client": {"192.0.2.61"}, "duration": {"2h"}, "reason": {"abuse report"}, "csrf": {csrf}})
	if pg.code != http.StatusSeeOther {
		t.Fatalf("ban: %d %s", pg.code, pg.body)
	}
	if code := h.request(t, "/x", "192.0.2.61"); code != http.StatusForbidden {
		t.Errorf("after ban: %d", code)
	}
	bans := get(t, c, h.admin.URL+"/console/bans?done=banned&client=192.0.2.61")
	for _, want := range []string{"Banned 192.0.2.61 on every replica", "abuse report", "admin", "2h00m"} {
		if !strings.Contains(bans.body, want) {
			t.Errorf("bans page lacks %q", want)
		}
	}
	for _, bad := range []url.Values{
		{"client": {"not-an-ip"}}, {"client": {"0.0.0.0/0"}}, {"client": {"192.0.2.62"}, "duration": {"-5m"}},
		{"client": {"192.0.2.62"}, "duration": {"400d"}}, {"client": {"192.0.2.62"}, "reason": {"line\nbreak"}},
	} {
		bad.Set("csrf", csrf)
		if pg := post(t, c, h.admin.URL+"/console/bans", bad); pg.code != http.StatusBadRequest {
			t.Errorf("ban %v: %d", bad, pg.code)
		}
	}
}

// TestBanNoticeNeedsTheBan: the notice after a ban or an unban comes from
// the redirect's query string, which any link can carry, so it is shown
// only when the ban list agrees with it.
func TestBanNoticeNeedsTheBan(t *testing.T) {
	h := newHarness(t, harnessOpts{token: testToken})
	c := browser(t)
	login(t, c, h, testToken)
	for _, s := range []string{"192.0.2.80", "198.51.100.0/24"} {
		if _, err := h.g.Ban(t.Context(), mustTarget(t, h, s), time.Hour, "test"); err != nil {
			t.Fatal(err)
		}
	}
	notice := regexp.MustCompile(`<p class="notice [a-z]+" role="status">([^<]*)</p>`)
	for _, tc := range []struct{ query, want string }{
		// What the console's own redirects say.
		{"done=banned&client=192.0.2.80", "Banned 192.0.2.80 on every replica."},
		{"done=banned&client=198.51.100.0%2F24", "Banned 198.51.100.0/24 on every replica."},
		{"done=unbanned&client=192.0.2.81", "Unbanned 192.0.2.81 on every replica."},
		{"done=notbanned&client=192.0.2.81", "192.0.2.81 was not banned."},
		// Crafted links: no ban made, or still banned, or not a client.
		{"done=banned&client=192.0.2.81", ""},
		{"done=banned&client=198.51.100.0%2F25", ""},
		{"done=unbanned&client=192.0.2.80", ""},
		{"done=notbanned&client=192.0.2.80", ""},
		{"done=banned&client=Everyone%2C+by+order+of+the+CISO", ""},
		{"done=unbanned&client=the+attacker", ""},
		{"done=banned", ""},
		{"done=other&client=192.0.2.80", ""},
	} {
		pg := get(t, c, h.admin.URL+"/console/bans?"+tc.query)
		if pg.code != http.StatusOK {
			t.Fatalf("%s: %d", tc.query, pg.code)
		}
		got := ""
		if m := notice.FindStringSubmatch(pg.body); m != nil {
			got = m[1]
		}
		if got != tc.want {
			t.Errorf("%s: notice %q, want %q", tc.query, got, tc.want)
		}
	}
	// The real unban's redirect says so.
	csrf := csrfOf(t, get(t, c, h.admin.URL+"/console/bans").body)
	pg := post(t, c, h.admin.URL+"/console/bans/unban", url.Values{"client": {"192.0.2.80"}, "csrf": {csrf}})
	if pg.code != http.StatusSeeOther {
		t.Fatalf("unban: %d %s", pg.code, pg.body)
	}
	if body := get(t, c, h.admin.URL+pg.header.Get("Location")).body; !strings.Contains(body, "Unbanned 192.0.2.80 on every replica.") {
		t.Errorf("no notice after the unban (%s)", pg.header.Get("Location"))
	}
}

// TestLoginRateLimit: failed logins are throttled per address, even for
// the right token, and the refusal is logged once per window.
func TestLoginRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := console.DefaultConfig()
	cfg.Heartbeat, cfg.FleetRetention = 200*time.Millisecond, time.Minute
	h := newHarness(t, harnessOpts{token: testToken, cfg: &cfg, now: clock})
	c := browser(t)
	for i := range cfg.LoginAttempts {
		if pg := login(t, c, h, "guess"); pg.code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, pg.code)
		}
	}
	for range 3 {
		pg := login(t, c, h, testToken)
		if pg.code != http.StatusTooManyRequests || pg.header.Get("Retry-After") == "" || len(pg.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("over the limit: %d retry %q", pg.code, pg.header.Get("Retry-After"))
		}
	}
	if n := strings.Count(h.logs.String(), "console_login_throttled"); n != 1 {
		t.Errorf("throttling logged %d times, want once", n)
	}
	mu.Lock()
	now = now.Add(cfg.LoginWindow)
	mu.Unlock()
	if pg := login(t, c, h, testToken); pg.code != http.StatusSeeOther {
		t.Errorf("after the window: %d", pg.code)
	}
}

// TestPagesShowTheFleet renders every page over real data on Redis
// (miniredis): bans of each kind, events, two replicas on different
// configurations, top offenders, a redacted configuration and reloads.
func TestPagesShowTheFleet(t *testing.T) {
	_, mr := storetest.New(t)
	type sink struct {
		URL     string            `yaml:"url"`
		Headers map[string]string `yaml:"headers"`
	}
	running := map[string]any{
		"upstream": "http://upstream:5000/api",
		"admin":    map[string]any{"listen": "127.0.0.1:9090", "token": testToken},
		"redis":    map[string]any{"url": "redis://app:hunter2-redis@redis:6379/0"},
		"alerts":   map[string]any{"sinks": []sink{{URL: "https://hooks.slack.example/services/T000/B000/XXXXSECRET", Headers: map[string]string{"Authorization": "Bearer sink-secret"}}}},
	}
	a := newHarness(t, harnessOpts{redisAddr: mr.Addr(), token: testToken, running: running})
	b := newHarness(t, harnessOpts{redisAddr: mr.Addr(), token: testToken, replica: "replica-b"})
	c := browser(t)
	login(t, c, a, testToken)
	ctx := t.Context()
	for _, s := range []string{"192.0.2.70", "198.51.100.0/24"} {
		if _, err := b.g.Ban(ctx, mustTarget(t, b, s), time.Hour, "test ban "+s); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if code := b.request(t, "/search?q=malicious", "203.0.113.5"); code != http.StatusForbidden {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	a.mon.RecordReload(ctx, store.Reload{Trigger: "sighup", OK: false, ConfigHash: "ffff", PreviousHash: "abc123", Error: "rampart.yaml:3: chain: unknown detection; rampart.yaml:9: redis.url: redis://app:pw-IN-ERROR@redis:6379/x: bad database"})
	a.mon.RecordReload(ctx, store.Reload{Trigger: "file_changed", OK: true, ConfigHash: "abc123", PreviousHash: "0000", NotApplied: []string{"listen"}})
	// Replica b reports another configuration; a third one stopped.
	st := a.st
	if err := st.Heartbeat(ctx, store.Heartbeat{Replica: "replica-c", ConfigHash: "abc123", Interval: 100 * time.Millisecond}, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The top offenders reach the page through the consumer group.
	testutil.Eventually(t, 5*time.Second, 50*time.Millisecond, func() bool {
		top, _ := st.Top(ctx, store.TopClients, 5*time.Minute, 5)
		return len(top) == 1 && top[0].Count == 3
	}, "the top offenders were not counted once each")

	live := get(t, c, a.admin.URL+"/console/live")
	for _, want := range []string{"203.0.113.5", "request_blocked", "payload", "replica-b", "GET /search", "client_blocklisted"} {
		if !strings.Contains(live.body, want) {
			t.Errorf("live page lacks %q", want)
		}
	}
	if f := get(t, c, a.admin.URL+"/console/live?replica=replica-a&type=request_blocked"); strings.Contains(f.body, "203.0.113.5") {
		t.Error("the replica filter let replica-b's events through")
	}
	bans := get(t, c, a.admin.URL+"/console/bans")
	for _, want := range []string{"192.0.2.70", "198.51.100.0/24", "k-range", "k-ip", "test ban 192.0.2.70", "replica-b", "1h00m"} {
		if !strings.Contains(bans.body, want) {
			t.Errorf("bans page lacks %q", want)
		}
	}
	if s := get(t, c, a.admin.URL+"/console/bans?q=198.51"); strings.Contains(s.body, "192.0.2.70") || !strings.Contains(s.body, "198.51.100.0/24") {
		t.Error("the ban search does not filter")
	}
	top := get(t, c, a.admin.URL+"/console/top?window=1h")
	for _, want := range []string{"203.0.113.5", "GET /search", "payload/", `aria-current="page">1h`} {
		if !strings.Contains(top.body, want) {
			t.Errorf("top page lacks %q", want)
		}
	}
	time.Sleep(400 * time.Millisecond) // replica-c misses its heartbeats
	fleet := get(t, c, a.admin.URL+"/console/fleet")
	for _, want := range []string{"replica-a", "replica-b", "replica-c", "1 missing", "test-1.0", "(this one)", "payload:enforce"} {
		if !strings.Contains(fleet.body, want) {
			t.Errorf("fleet page lacks %q", want)
		}
	}
	cfg := get(t, c, a.admin.URL+"/console/config")
	for _, want := range []string{"[redacted]", "redis://app:xxxxx@redis:6379/0", "https://hooks.slack.example/", "http://upstream:5000/api",
		"unknown detection", "sighup", "file_changed", "listen"} {
		if !strings.Contains(cfg.body, want) {
			t.Errorf("config page lacks %q", want)
		}
	}
	for _, secret := range []string{testToken, "hunter2-redis", "XXXXSECRET", "sink-secret", "pw-IN-ERROR"} {
		for name, pg := range map[string]page{"live": live, "bans": bans, "top": top, "fleet": fleet, "config": cfg} {
			if strings.Contains(pg.body, secret) {
				t.Errorf("%s page shows the secret %q", name, secret)
			}
		}
	}
	for name, pg := range map[string]page{"live": live, "bans": bans, "top": top, "fleet": fleet, "config": cfg} {
		checkPage(t, name, pg)
	}
}

// TestFleetMarksOldConfig: a live replica on a configuration most of the
// fleet does not run stands out.
func TestFleetMarksOldConfig(t *testing.T) {
	h := newHarness(t, harnessOpts{token: testToken})
	ctx := t.Context()
	for _, hb := range []store.Heartbeat{{Replica: "r1", ConfigHash: "abc123"}, {Replica: "r2", ConfigHash: "abc123"}, {Replica: "r3", ConfigHash: "0ld0ld"}} {
		hb.Interval = time.Minute
		if err := h.st.Heartbeat(ctx, hb, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	c := browser(t)
	login(t, c, h, testToken)
	body := get(t, c, h.admin.URL+"/console/fleet").body
	if !strings.Contains(body, "1 on another configuration") || !regexp.MustCompile(`(?s)<tr class="stale">\s*<td><b>r3</b>`).MatchString(body) {
		t.Errorf("r3 does not stand out:\n%s", body)
	}
}

// TestStream: the live stream delivers blocked requests from every
// replica, filtered, within the 2 s budget.
func TestStream(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			var a, b *harness
			if kind == "memory" {
				a = newHarness(t, harnessOpts{token: testToken})
				b = a
			} else {
				_, mr := storetest.New(t)
				a = newHarness(t, harnessOpts{redisAddr: mr.Addr(), token: testToken})
				b = newHarness(t, harnessOpts{redisAddr: mr.Addr(), token: testToken, replica: "replica-b"})
			}
			c := browser(t)
			login(t, c, a, testToken)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", a.admin.URL+"/console/live/stream?detection=payload", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			got := make(chan []map[string]string, 10)
			go func() {
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
						var evs []map[string]string
						if json.Unmarshal([]byte(d), &evs) == nil {
							got <- evs
						}
					}
				}
			}()
			time.Sleep(300 * time.Millisecond) // the tail is reading
			start := time.Now()
			if code := b.request(t, "/a?x=malicious", "203.0.113.77"); code != http.StatusForbidden {
				t.Fatalf("request: %d", code)
			}
			select {
			case evs := <-got:
				if len(evs) != 1 || evs[0]["client"] != "203.0.113.77" || evs[0]["type"] != record.EventRequestBlocked || evs[0]["replica"] != b.g.Replica() {
					t.Errorf("streamed %v", evs)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("the event took %v", d)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("no event on the stream")
			}
		})
	}
}

func TestRatesAndHeartbeat(t *testing.T) {
	h := newHarness(t, harnessOpts{token: testToken})
	for range 5 {
		h.request(t, "/ok", "192.0.2.90")
	}
	for range 2 {
		h.request(t, "/?q=malicious", "192.0.2.91")
	}
	c := browser(t)
	login(t, c, h, testToken)
	var ch struct {
		Total store.RateSample
	}
	testutil.Eventually(t, 5*time.Second, 100*time.Millisecond, func() bool {
		pg := get(t, c, h.admin.URL+"/console/live/rates")
		return json.Unmarshal([]byte(pg.body), &ch) == nil && ch.Total.Allowed == 5 && ch.Total.Blocked == 2
	}, "rates: %+v", &ch)
	fleet, err := h.st.Fleet(t.Context())
	if err != nil || len(fleet) != 1 || fleet[0].Replica != "replica-a" || fleet[0].Version != "test-1.0" || fleet[0].ConfigHash != "abc123" || fleet[0].Store != "memory" {
		t.Fatalf("fleet %+v %v", fleet, err)
	}
}

// TestEventsOff: with the event log disabled (a nil log, typed or not)
// the pages say so and the stream is absent.
func TestEventsOff(t *testing.T) {
	h := newHarness(t, harnessOpts{token: testToken})
	var none *store.MemoryEvents
	mon, err := console.NewMonitor(console.MonitorOptions{Gateway: h.g, Store: h.st, Events: none, Config: h.cfg})
	if err != nil {
		t.Fatal(err)
	}
	con, err := console.New(console.Options{Gateway: h.g, Token: testToken, Store: h.st, Events: none, Monitor: mon, Config: h.cfg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	con.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := browser(t)
	post(t, c, srv.URL+"/console/login", url.Values{"token": {testToken}})
	if pg := get(t, c, srv.URL+"/console/live"); pg.code != 200 || !strings.Contains(pg.body, "event log is disabled") {
		t.Errorf("live: %d", pg.code)
	}
	if pg := get(t, c, srv.URL+"/console/top"); pg.code != 200 || !strings.Contains(pg.body, "event log is disabled") {
		t.Errorf("top: %d", pg.code)
	}
	if pg := get(t, c, srv.URL+"/console/live/stream"); pg.code != http.StatusNotFound {
		t.Errorf("stream: %d", pg.code)
	}
}

func TestHumanDurations(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"}, {1400 * time.Millisecond, "1s"}, {59*time.Second + 600*time.Millisecond, "1m00s"},
		{time.Hour - 100*time.Millisecond, "1h00m"}, {2*time.Hour - time.Second, "2h00m"}, {47*time.Hour + 59*time.Minute + 50*time.Second, "2d0h"},
		{50 * time.Hour, "2d2h"},
	} {
		if got := console.HumanDuration(tc.d); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.d, got, tc.want)
		}
	}
}
