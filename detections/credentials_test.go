package detections_test

import (
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/store"
)

func unsigned(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims)) + "."
}

func TestJWTDetection(t *testing.T) {
	t.Parallel()
	mem := store.NewMemory(store.DefaultMemoryConfig())
	cfg := detections.DefaultJWTConfig()
	cfg.Shared.MaxClients = 2
	cfg.Rules = map[string]detections.Mode{"credential_shared": detections.ModeEnforce}
	d, err := detections.NewJWT(cfg, detections.JWTDeps{Spread: mem, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	run := func(r *detections.Request) detections.Verdict {
		t.Helper()
		d.Identify(t.Context(), r)
		v, err := d.Inspect(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	req := func(ip string, h ...string) *detections.Request {
		r := reqFrom(ip)
		r.Received = time.Now()
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		return r
	}
	tlsOn := &detections.TLS{Version: 0x0304}
	withTLS := func(r *detections.Request) *detections.Request { r.TLS = tlsOn; return r }

	if v := run(withTLS(req("192.0.2.1", "Authorization", "Bearer "+unsigned(`{"sub":"x","exp":9999999999}`)))); v.Action != detections.ActionBlock || v.Rule != "jwt_alg_none" {
		t.Errorf("alg none: %+v", v)
	}
	if v := run(withTLS(req("192.0.2.1"))); v.Action != detections.ActionAllow {
		t.Errorf("no token: %+v", v)
	}
	r := withTLS(req("192.0.2.1"))
	r.RawQuery = "q=1&API_KEY=abc"
	if v := run(r); v.Action != detections.ActionMonitor || v.Rule != detections.RuleCredentialInQuery || v.Location != "query:api_key" {
		t.Errorf("credential in the query: %+v", v)
	}
	if v := run(req("192.0.2.1", "Authorization", "Basic dXNlcjpwYXNz")); v.Action != detections.ActionMonitor || v.Rule != detections.RuleCredentialOverPlain {
		t.Errorf("Basic over plain HTTP while HTTPS is served: %+v", v)
	}
	// One (well-formed, unverified) token from three clients: the third
	// is over max_clients 2.
	tok := "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"s","exp":`+strconv.FormatInt(exp, 10)+`}`)) + ".c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmE"
	var last detections.Verdict
	for _, ip := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
		last = run(withTLS(req(ip, "Authorization", "Bearer "+tok)))
	}
	if last.Action != detections.ActionBlock || last.Rule != detections.RuleCredentialShared {
		t.Errorf("one token from 3 clients (max 2): %+v", last)
	}
	if _, err := detections.NewJWT(detections.JWTConfig{Config: cfg.Config, Rules: map[string]detections.Mode{"nope": detections.ModeOff}}, detections.JWTDeps{}); err == nil {
		t.Error("unknown rule accepted")
	}
}

// TestCredentialInQueryEncodedName: a credential parameter whose name is
// percent-encoded (api%5Fkey is api_key upstream) is still reported.
func TestCredentialInQueryEncodedName(t *testing.T) {
	t.Parallel()
	d, err := detections.NewJWT(detections.DefaultJWTConfig(), detections.JWTDeps{})
	if err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"api_key=abc": "query:api_key", "api%5Fkey=abc": "query:api_key", "api%5fkey=abc": "query:api_key",
		"pass%77ord=x": "query:password", "Access%5FToken=t": "query:access_token", "q=api%5Fkey": ""} {
		r := reqFrom("192.0.2.1")
		r.TLS = &detections.TLS{Version: 0x0304}
		r.RawQuery = q
		d.Identify(t.Context(), r)
		v, err := d.Inspect(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Location; (want == "") != (v.Action == detections.ActionAllow) || got != want || (want != "" && v.Rule != detections.RuleCredentialInQuery) {
			t.Errorf("query %q: %+v, want credential_in_query at %q", q, v, want)
		}
	}
}
