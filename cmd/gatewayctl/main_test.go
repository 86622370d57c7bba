package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/admin"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
)

func TestExitCodes(t *testing.T) {
	api := newFixture(t, fixtureOptions{})
	disabled := newFixture(t, fixtureOptions{token: "-"})
	noEvents := newFixture(t, fixtureOptions{noEvents: true})
	outage := newFixture(t, fixtureOptions{adminStore: func(s admin.Store) admin.Store { return failingStore{s} }})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(slow.Close)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
	}))
	t.Cleanup(proxy.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nothing := "http://" + ln.Addr().String()
	ln.Close()

	env := func(url, token string) map[string]string {
		e := map[string]string{envURL: url}
		if token != "" {
			e[envToken] = token
		}
		return e
	}
	ok := env(api.url, testToken)
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string // a substring; "" means stderr is empty
	}{
		{"success", ok, []string{"status"}, exitOK, ""},
		{"help", ok, []string{"help"}, exitOK, ""},
		{"help flag", ok, []string{"-h"}, exitOK, ""},
		{"command help flag", ok, []string{"events", "tail", "-h"}, exitOK, ""},

		{"no server", env(nothing, testToken), []string{"status"}, exitFailure, "connection refused"},
		{"timeout", env(slow.URL, testToken), []string{"-timeout", "50ms", "status"}, exitFailure, "no answer within 50ms (-timeout)"},
		{"not the admin API", env(proxy.URL, testToken), []string{"bans", "list"}, exitFailure, "unexpected answer 502 Bad Gateway"},
		{"store down", env(outage.url, testToken), []string{"bans", "list"}, exitFailure, "gatewayctl: store: dial tcp 10.0.0.9:6379"},

		{"no command", ok, nil, exitUsage, "Usage:"},
		{"unknown command", ok, []string{"frobnicate"}, exitUsage, `gatewayctl: unknown command "frobnicate"`},
		{"unknown subcommand", ok, []string{"bans", "purge"}, exitUsage, `unknown subcommand "purge" (want list, get, add, rm)`},
		{"unknown flag", ok, []string{"bans", "list", "-bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{"missing argument", ok, []string{"bans", "rm"}, exitUsage, "bans rm: want CLIENT, got 0 arguments"},
		{"extra argument", ok, []string{"status", "now"}, exitUsage, `status: unexpected argument "now"`},
		{"not an address", ok, []string{"bans", "add", "example.com"}, exitUsage, `client "example.com" is not an IP address or CIDR range`},
		{"bad duration", ok, []string{"bans", "add", "192.0.2.1", "-for", "-1h"}, exitUsage, "-for -1h0m0s: want a positive duration"},
		{"bad limit", ok, []string{"bans", "list", "-limit", "0"}, exitUsage, "-limit 0: want 1..100000"},
		{"bad count", ok, []string{"events", "tail", "-n", "20000"}, exitUsage, "-n 20000: want 1..10000"},
		{"bad since", ok, []string{"events", "tail", "-since", "yesterday"}, exitUsage, `-since "yesterday"`},
		{"bad window", ok, []string{"summary", "-window", "0s"}, exitUsage, "-window 0s"},
		{"bad output", ok, []string{"-o", "yaml", "status"}, exitUsage, `-o "yaml": want table or json`},
		{"bad url", env("ftp://example.com", testToken), []string{"status"}, exitUsage, "want an http:// or https:// URL"},
		{"API refuses a range", ok, []string{"bans", "add", "0.0.0.0/0"}, exitUsage, "gatewayctl: refusing to ban every address"},
		{"API refuses a reason", ok, []string{"bans", "add", "192.0.2.1", "-reason", "two\nlines"}, exitUsage, "reason must be printable"},
		{"API refuses an escape in a reason", ok, []string{"bans", "add", "192.0.2.1", "-reason", "\x1b[2Jclear"}, exitUsage, "reason must be printable"},
		{"API refuses counters of a range", ok, []string{"counters", "10.0.0.0/8"}, exitUsage, "counters are per client, not per range"},

		{"rm of a client not banned", ok, []string{"bans", "rm", "192.0.2.77"}, exitNotFound, "gatewayctl: no active ban for 192.0.2.77\n"},
		{"get of a client not banned", ok, []string{"bans", "get", "2001:db8::1"}, exitNotFound, "no active ban for 2001:db8::/64"},
		{"event log disabled", env(noEvents.url, testToken), []string{"events", "tail"}, exitNotFound, "the event log is disabled"},

		{"wrong token", env(api.url, "wrong"), []string{"status"}, exitAuth, "gatewayctl: missing or wrong bearer token\n"},
		{"no token", env(api.url, ""), []string{"bans", "list"}, exitAuth, "missing or wrong bearer token (no token given: set GATEWAY_ADMIN_TOKEN)"},
		{"API disabled", env(disabled.url, testToken), []string{"bans", "rm", "192.0.2.1"}, exitAuth, "admin API disabled: set GATEWAY_ADMIN_TOKEN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.env, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			if tc.stderr == "" && r.stderr != "" || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q, want %q", r.stderr, tc.stderr)
			}
			if tc.code != exitOK && r.stdout != "" {
				t.Errorf("stdout %q on failure", r.stdout)
			}
		})
	}
}

// TestAgainstGateway drives the request path and the CLI together: what
// gatewayctl shows is what the gateway did, and a ban made with it bites.
func TestAgainstGateway(t *testing.T) {
	f := newFixture(t, fixtureOptions{chain: []detections.Entry{{Detection: blockPath{"payload", "/admin"}}}})
	const attacker = "203.0.113.50"
	for range 3 {
		if code := f.request(t, attacker, http.MethodGet, "/admin"); code != http.StatusForbidden {
			t.Fatalf("detection: status %d", code)
		}
	}

	r := f.run(t, "events", "tail", "-type", record.EventRequestBlocked, "-o", "json")
	var evs struct {
		Events []record.Event `json:"events"`
		Count  int            `json:"count"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil || r.code != exitOK {
		t.Fatalf("exit %d, %v: %s%s", r.code, err, r.stdout, r.stderr)
	}
	if evs.Count != 3 || evs.Events[0].Client != attacker || evs.Events[0].Route != "default" || evs.Events[0].Path != "/admin" || evs.Events[0].Rule != "rule_1" {
		t.Fatalf("events %+v", evs)
	}
	r = f.run(t, "events", "tail", "-client", attacker)
	if got := countLines(r.stdout, "request_blocked  "+attacker+"  payload    test_block  GET     /admin  rule_1@path"); got != 3 {
		t.Errorf("%d blocked rows in\n%s", got, r.stdout)
	}

	r = f.run(t, "summary", "-o", "json")
	var sum struct {
		Blocks     int `json:"blocks"`
		TopClients []struct {
			Key   string `json:"key"`
			Count int    `json:"count"`
		} `json:"top_clients"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Blocks != 3 || sum.TopClients[0].Key != attacker {
		t.Fatalf("summary %s, %v", r.stdout, err)
	}

	const victim = "198.51.100.60"
	if code := f.request(t, victim, http.MethodGet, "/ok"); code == http.StatusForbidden {
		t.Fatal("refused before the ban")
	}
	if r := f.run(t, "bans", "add", victim, "-for", "10m", "-reason", "testing"); r.code != exitOK {
		t.Fatalf("bans add: %+v", r)
	}
	if code := f.request(t, victim, http.MethodGet, "/ok"); code != http.StatusForbidden {
		t.Fatalf("after bans add: status %d", code)
	}
	r = f.run(t, "events", "tail", "-client", victim, "-type", record.EventClientBlocklisted)
	if !strings.Contains(r.stdout, "client_blocklisted  "+victim+"  admin") {
		t.Errorf("no ban event:\n%s", r.stdout)
	}
	if r := f.run(t, "bans", "rm", victim); r.code != exitOK || r.stdout != "unbanned "+victim+"\n" {
		t.Fatalf("bans rm: %+v", r)
	}
	if code := f.request(t, victim, http.MethodGet, "/ok"); code == http.StatusForbidden {
		t.Fatal("still refused after bans rm")
	}
	if r := f.run(t, "bans", "rm", victim); r.code != exitNotFound {
		t.Fatalf("second bans rm: %+v", r)
	}
}

// TestTokenNeverPrinted checks help, warnings and errors for the token,
// whether it comes from the environment or a flag.
func TestTokenNeverPrinted(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	const wrong = "wr0ng-t0ken-value"
	for _, args := range [][]string{
		{"-h"},
		{"help", "bans", "add"},
		{"bans", "add", "-h"},
		{"status", "-h"},
		{"-token", wrong, "status"},
		{"status", "-token", wrong},
		{"-token", wrong, "-url", "http://127.0.0.1:1", "status"},
	} {
		for _, tok := range []string{testToken, wrong} {
			r := runCLI(t, map[string]string{envURL: f.url, envToken: tok}, args...)
			if strings.Contains(r.stdout+r.stderr, tok) {
				t.Errorf("%q with token %q printed it:\n%s%s", args, tok, r.stdout, r.stderr)
			}
		}
	}
	// A -token flag overrides the environment, with a warning.
	r := runCLI(t, map[string]string{envURL: f.url, envToken: wrong}, "status", "-token", testToken)
	if r.code != exitOK || !strings.Contains(r.stderr, "warning: -token is visible") {
		t.Errorf("%+v", r)
	}
}

func TestFlagsAndArguments(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	host := strings.TrimPrefix(f.url, "http://")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // a substring of stdout
	}{
		{"flags after the argument", nil, []string{"bans", "add", "192.0.2.1", "-for", "2m", "-reason", "after"}, "after"},
		{"flags before the argument", nil, []string{"bans", "add", "-reason", "before", "-for", "2m", "192.0.2.2"}, "before"},
		{"global flags after the command", nil, []string{"bans", "get", "192.0.2.1", "-o", "json", "-timeout", "2s"}, `"reason": "after"`},
		{"double dash", nil, []string{"bans", "rm", "--", "192.0.2.2"}, "unbanned 192.0.2.2"},
		{"url flag", map[string]string{envToken: testToken}, []string{"bans", "get", "-url", f.url, "192.0.2.1"}, "after"},
		{"url without scheme", map[string]string{envURL: host, envToken: testToken}, []string{"status"}, "ready"},
		{"url with a trailing slash", map[string]string{envURL: f.url + "/", envToken: testToken}, []string{"status"}, "ready"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = map[string]string{envURL: f.url, envToken: testToken}
			}
			r := runCLI(t, env, tc.args...)
			if r.code != exitOK || !strings.Contains(r.stdout, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	t.Parallel()
	for _, c := range commands {
		if !strings.Contains(usageText, "\n  "+c.synopsis()+"\n") && !strings.Contains(usageText, "\n  "+c.synopsis()+" ") {
			t.Errorf("usageText lacks %q", c.synopsis())
		}
	}
	for code, doc := range map[int]string{exitOK: "success", exitFailure: "error talking to the gateway",
		exitUsage: "usage error", exitNotFound: "not found (404)", exitAuth: "authentication"} {
		if !strings.Contains(usageText, "\n  "+string(rune('0'+code))+"  "+doc) {
			t.Errorf("usageText does not document exit %d", code)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "expired"},
		{0, "expired"},
		{400 * time.Millisecond, "expired"},
		{time.Second, "1s"},
		{59 * time.Second, "59s"},
		{598 * time.Second, "9m58s"},
		{10 * time.Minute, "10m"},
		{time.Hour, "1h"},
		{time.Hour + 30*time.Minute + 59*time.Second, "1h30m"},
		{36 * time.Hour, "1d12h"},
		{365 * 24 * time.Hour, "365d"},
	}
	for _, tc := range tests {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"empty", "", 0, "-"},
		{"plain", "/api/login", 0, "/api/login"},
		{"tab and newline", "a\tb\nc", 0, "a?b?c"},
		{"escape sequence", "\x1b[2J", 0, "?[2J"},
		{"C1 control", "x\u009by", 0, "x?y"},
		{"line separator", "x\u2028y", 0, "x?y"},
		{"invalid UTF-8", "a\xffb", 0, "a?b"},
		{"exactly max", "abcd", 4, "abcd"},
		{"over max", "abcde", 4, "abc…"},
		{"runes, not bytes", "ééééé", 4, "ééé…"},
	}
	for _, tc := range tests {
		if got := clean(tc.in, tc.max); got != tc.want {
			t.Errorf("%s: clean(%q, %d) = %q, want %q", tc.name, tc.in, tc.max, got, tc.want)
		}
	}
}

// TestBansAddExisting: the API keeps an existing ban and still answers 201,
// so gatewayctl says so rather than let the operator believe the new
// duration applies.
func TestBansAddExisting(t *testing.T) {
	f := newFixture(t, fixtureOptions{now: func() time.Time { return clock }})
	if r := f.run(t, "bans", "add", "192.0.2.5", "-for", "10m", "-reason", "first"); r.code != exitOK || r.stderr != "" {
		t.Fatalf("first add: %+v", r)
	}
	// An operator's second ban replaces the first: new reason and duration.
	r := f.run(t, "bans", "add", "192.0.2.5", "-for", "48h", "-reason", "second")
	if r.code != exitOK || !strings.Contains(r.stdout, "second") || !strings.Contains(r.stdout, "2d") || r.stderr != "" {
		t.Fatalf("second add: %+v", r)
	}
	// A range ban is replaced, and the default reason is "manual".
	for _, d := range []string{"1h", "2h"} {
		if r := f.run(t, "bans", "add", "10.1.0.0/16", "-for", d); r.code != exitOK || r.stderr != "" {
			t.Errorf("range -for %s: %+v", d, r)
		}
	}
}

func TestCheck(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	if r := f.run(t, "check", f.url+"/readyz"); r.code != exitOK || !strings.HasPrefix(r.stdout, "ok 200 ") {
		t.Errorf("readyz: %+v", r)
	}
	// No token is sent: a protected endpoint fails the check (exit 1).
	if r := f.run(t, "check", f.url+"/v1/status"); r.code != exitFailure || !strings.Contains(r.stderr, "401") {
		t.Errorf("protected endpoint: %+v", r)
	}
	if r := f.run(t, "check", "http://127.0.0.1:1/readyz"); r.code != exitFailure {
		t.Errorf("nothing listening: %+v", r)
	}
	if r := f.run(t, "check", "not-a-url"); r.code != exitUsage {
		t.Errorf("bad URL: %+v", r)
	}
}

// TestDurationsInDays: what bans list prints ("2d") bans add accepts.
func TestDurationsInDays(t *testing.T) {
	f := newFixture(t, fixtureOptions{now: func() time.Time { return clock }})
	r := f.run(t, "bans", "add", "192.0.2.6", "-for", "2d", "-reason", "days")
	if r.code != exitOK || !strings.Contains(r.stdout, "2d") || r.stderr != "" {
		t.Fatalf("-for 2d: %+v", r)
	}
	b, found, err := f.store.GetBan(t.Context(), "192.0.2.6")
	if err != nil || !found || b.TTL != 48*time.Hour {
		t.Errorf("ban %+v %v %v", b, found, err)
	}
	if r := f.run(t, "bans", "add", "192.0.2.7", "-for", "1d12h"); r.code != exitOK {
		t.Errorf("-for 1d12h: %+v", r)
	}
}

// TestBansRmForget: -forget also resets the client's escalation, so its
// next automatic ban is a first offence.
func TestBansRmForget(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	req := record.BanRequest{Client: "192.0.2.8", Reason: "r", Detection: "rate_limit", Duration: 10 * time.Minute, Escalate: true}
	for _, args := range [][]string{{"bans", "rm", "192.0.2.8"}, {"bans", "rm", "-forget", "192.0.2.8"}} {
		if _, err := f.store.Ban(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		if r := f.run(t, args...); r.code != exitOK {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	b, err := f.store.Ban(t.Context(), req)
	if err != nil || b.Count != 1 || b.TTL != 10*time.Minute {
		t.Errorf("after -forget: strike %d, ban %v, %v (want a first offence of 10m)", b.Count, b.TTL, err)
	}
}

// TestIdentityNeverPrinted: an identity's value (header:X-Api-Key=<key>)
// travels in the query (?client=...); no error prints it, whatever goes
// wrong: a 500 that is not the API's, a login redirect echoing the URL, no
// server, no answer in time, or the key given without its header name.
func TestIdentityNeverPrinted(t *testing.T) {
	const secret = "k3y-s3cr3t-7f1d9a"
	identity := "header:X-Api-Key=" + secret
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "internal error", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
	}))
	t.Cleanup(login.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(slow.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name, url string
		args      []string
		stderr    string // a substring the error must still have
	}{
		{"500 on bans get", broken.URL, []string{"bans", "get", identity}, "GET " + broken.URL + "/v1/bans: unexpected answer 500"},
		{"500 on bans rm", broken.URL, []string{"bans", "rm", "-forget", identity}, "DELETE " + broken.URL + "/v1/bans: unexpected answer 500"},
		{"500 on counters", broken.URL, []string{"counters", identity}, "GET " + broken.URL + "/v1/counters: unexpected answer 500"},
		{"redirect", login.URL, []string{"bans", "get", identity}, "unexpected answer 302 Found to /login (check -url)"},
		{"closed port", closed, []string{"bans", "get", identity}, "GET " + closed + "/v1/bans: dial tcp"},
		{"closed port rm", closed, []string{"bans", "rm", identity}, "DELETE " + closed + "/v1/bans: dial tcp"},
		{"timeout", slow.URL, []string{"-timeout", "50ms", "counters", identity}, "GET " + slow.URL + "/v1/counters: no answer within 50ms"},
		{"key without its name", closed, []string{"bans", "get", "X-Api-Key=" + secret}, `client "X-Api-Key=..." is not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, map[string]string{envURL: tc.url, envToken: testToken}, tc.args...)
			if r.code == exitOK {
				t.Fatalf("exit 0: %+v", r)
			}
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("the identity's value was printed:\n%s%s", r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q, want %q", r.stderr, tc.stderr)
			}
		})
	}
}
