package admin_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/admin"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

const adminToken = "s3cret-admin-token"

// adminSetup is a gateway (prototype chain, memory store) with its admin
// listener.
func adminSetup(t *testing.T, token string) (*setup, *httptest.Server, *store.MemoryEvents) {
	t.Helper()
	st := store.NewMemory(store.DefaultMemoryConfig())
	s := newSetup(t, st)
	mux := http.NewServeMux()
	h := admin.NewHealth(s.g)
	h.Register(mux)
	admin.New(s.g, h, st, s.events, token, slog.New(slog.DiscardHandler)).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv, s.events
}

func adminCall(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

var adminEndpoints = []struct{ method, path, body string }{
	{"GET", "/v1/status", ""},
	{"GET", "/v1/bans", ""},
	{"POST", "/v1/bans", `{"client":"192.0.2.1"}`},
	{"DELETE", "/v1/bans?client=192.0.2.1", ""},
	{"GET", "/v1/events", ""},
	{"GET", "/v1/summary", ""},
	{"GET", "/v1/counters?client=192.0.2.1", ""},
}

func TestAdminAuth(t *testing.T) {
	_, srv, _ := adminSetup(t, adminToken)
	for _, ep := range adminEndpoints {
		for _, tok := range []string{"", "wrong", adminToken + "x", strings.ToUpper(adminToken)} {
			if code, m := adminCall(t, srv, ep.method, ep.path, tok, ep.body); code != 401 || m["error"] == nil {
				t.Errorf("%s %s with token %q: %d %v", ep.method, ep.path, tok, code, m)
			}
		}
	}
	// Health and metrics stay open.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", p, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	_, srv, _ := adminSetup(t, "")
	for _, ep := range adminEndpoints {
		for _, tok := range []string{"", "anything"} {
			if code, m := adminCall(t, srv, ep.method, ep.path, tok, ep.body); code != 403 || !strings.Contains(m["error"].(string), "disabled") {
				t.Errorf("%s %s: %d %v", ep.method, ep.path, code, m)
			}
		}
	}
}

func TestAdminBadInput(t *testing.T) {
	_, srv, _ := adminSetup(t, adminToken)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/bans", `{"client":`},
		{"POST", "/v1/bans", `not json`},
		{"POST", "/v1/bans", `{"client":"192.0.2.1","extra":1}`},
		{"POST", "/v1/bans", `{"client":"192.0.2.1"} {"again":1}`},
		{"POST", "/v1/bans", `{"client":"not-an-ip"}`},
		{"POST", "/v1/bans", `{"client":"192.0.2.1","duration":"forever"}`},
		{"POST", "/v1/bans", `{"client":"192.0.2.1","duration":"-5m"}`},
		{"POST", "/v1/bans", `{"client":"192.0.2.1","duration":"9000h"}`},
		{"POST", "/v1/bans", `{"client":"0.0.0.0/0"}`},
		{"POST", "/v1/bans", `{"client":"192.0.2.1","reason":"two\nlines"}`},
		{"POST", "/v1/bans", `{"client":"192.0.2.1","reason":"\u001b[2J"}`},
		{"POST", "/v1/bans", `{"client":"192.0.2.1","reason":"` + strings.Repeat("x", 201) + `"}`},
		{"POST", "/v1/bans", ""},
		{"DELETE", "/v1/bans", ""},
		{"DELETE", "/v1/bans?client=nope", ""},
		{"GET", "/v1/bans?limit=0", ""},
		{"GET", "/v1/bans?limit=abc", ""},
		{"GET", "/v1/bans?client=300.1.1.1", ""},
		{"GET", "/v1/events?since=yesterday", ""},
		{"GET", "/v1/events?limit=-1", ""},
		{"GET", "/v1/events?client=bogus", ""},
		{"GET", "/v1/summary?window=abc", ""},
		{"GET", "/v1/counters?client=10.0.0.0/8", ""},
		{"GET", "/v1/counters", ""},
	} {
		code, m := adminCall(t, srv, tc.method, tc.path, adminToken, tc.body)
		if code != 400 || m["error"] == nil || m["error"] == "" {
			t.Errorf("%s %s %q: %d %v", tc.method, tc.path, tc.body, code, m)
		}
	}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/bans", strings.NewReader(`{"client":"192.0.2.1"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "text/plain")
	resp, _ := http.DefaultClient.Do(req)
	if resp.StatusCode != 400 {
		t.Errorf("text/plain body: %d", resp.StatusCode)
	}
	resp.Body.Close()
	if code, _ := adminCall(t, srv, "GET", "/v1/nope", adminToken, ""); code != 404 {
		t.Errorf("unknown endpoint: %d", code)
	}
}

func TestAdminBanLifecycle(t *testing.T) {
	s, srv, _ := adminSetup(t, adminToken)
	code, m := adminCall(t, srv, "POST", "/v1/bans", adminToken, `{"client":"203.0.113.9","duration":"1h","reason":"credential stuffing"}`)
	if code != 201 || m["client"] != "203.0.113.9" || m["detection"] != "admin" || m["ttl_seconds"].(float64) < 3590 {
		t.Fatalf("ban: %d %v", code, m)
	}
	if got := s.status(t, "GET", "/echo", "203.0.113.9"); got != 403 {
		t.Errorf("banned client got %d", got)
	}
	// IPv6: an address is banned as its /64.
	if code, m := adminCall(t, srv, "POST", "/v1/bans", adminToken, `{"client":"2001:db8:1:2::99","duration":"10m"}`); code != 201 || m["client"] != "2001:db8:1:2::/64" {
		t.Errorf("v6 ban: %d %v", code, m)
	}
	if got := s.status(t, "GET", "/echo", "2001:db8:1:2:ffff::1"); got != 403 {
		t.Errorf("same /64 got %d", got)
	}
	// A range ban covers every address in it.
	if code, m := adminCall(t, srv, "POST", "/v1/bans", adminToken, `{"client":"198.51.100.0/24","duration":"10m","reason":"hosting range"}`); code != 201 || m["cidr"] != true {
		t.Fatalf("range ban: %d %v", code, m)
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.status(t, "GET", "/echo", "198.51.100.77") != 403 {
		if time.Now().After(deadline) {
			t.Fatal("range ban not enforced")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, m = adminCall(t, srv, "GET", "/v1/bans", adminToken, "")
	if code != 200 || m["count"].(float64) != 3 {
		t.Errorf("list: %d %v", code, m)
	}
	if code, m := adminCall(t, srv, "GET", "/v1/bans?client=203.0.113.9", adminToken, ""); code != 200 || m["reason"] != "credential stuffing" {
		t.Errorf("get: %d %v", code, m)
	}
	if code, _ := adminCall(t, srv, "DELETE", "/v1/bans?client=203.0.113.9", adminToken, ""); code != 200 {
		t.Errorf("unban: %d", code)
	}
	if got := s.status(t, "GET", "/echo", "203.0.113.9"); got != 200 {
		t.Errorf("unbanned client got %d", got)
	}
	if code, _ := adminCall(t, srv, "DELETE", "/v1/bans?client=203.0.113.9", adminToken, ""); code != 404 {
		t.Errorf("second unban: %d", code)
	}
	if code, _ := adminCall(t, srv, "GET", "/v1/bans?client=203.0.113.9", adminToken, ""); code != 404 {
		t.Errorf("get after unban: %d", code)
	}
	if code, _ := adminCall(t, srv, "DELETE", "/v1/bans?client=198.51.100.0/24", adminToken, ""); code != 200 {
		t.Errorf("range unban: %d", code)
	}
}

func TestAdminEventsSummaryCounters(t *testing.T) {
	s, srv, _ := adminSetup(t, adminToken)
	for i := 0; i < 7; i++ {
		// 5 allowed, then 2 rate-limited, each an event (refusals below
		// ban_after are counted in Redis, not from the local cache).
		s.status(t, "GET", "/echo", "192.0.2.33")
	}
	s.status(t, "GET", "/echo?x=malicious", "192.0.2.34")
	code, m := adminCall(t, srv, "GET", "/v1/events?client=192.0.2.33", adminToken, "")
	if code != 200 || m["count"].(float64) != 2 {
		t.Fatalf("events: %d %v", code, m)
	}
	ev := m["events"].([]any)[0].(map[string]any)
	if ev["type"] != "request_blocked" || ev["detection"] != "rate_limit" || ev["client"] != "192.0.2.33" || ev["replica"] != "test" || ev["request_id"] == "" {
		t.Errorf("event: %v", ev)
	}
	if code, m := adminCall(t, srv, "GET", "/v1/events?detection=payload&since=5m", adminToken, ""); code != 200 || m["count"].(float64) != 1 {
		t.Errorf("events by detection: %d %v", code, m)
	}
	code, m = adminCall(t, srv, "GET", "/v1/summary?window=1h&top=1", adminToken, "")
	if code != 200 || m["blocks"].(float64) != 3 {
		t.Fatalf("summary: %d %v", code, m)
	}
	top := m["top_clients"].([]any)
	if len(top) != 1 || top[0].(map[string]any)["key"] != "192.0.2.33" || top[0].(map[string]any)["count"].(float64) != 2 {
		t.Errorf("top clients: %v", top)
	}
	code, m = adminCall(t, srv, "GET", "/v1/counters?client=192.0.2.33", adminToken, "")
	if code != 200 || m["counters"].(map[string]any)["rate_limit_refusals"] != "2" {
		t.Errorf("counters: %d %v", code, m)
	}
	code, m = adminCall(t, srv, "GET", "/v1/status", adminToken, "")
	if code != 200 || m["status"] != "ready" || m["store"] != "memory" || len(m["chain"].([]any)) != 5 {
		t.Errorf("status: %d %v", code, m)
	}
}

// TestAdminBanOfExemptClientConflicts: a ban of an exempt client would
// never be enforced: the API answers 409, and nothing is banned.
func TestAdminBanOfExemptClientConflicts(t *testing.T) {
	s, srv, _ := adminSetup(t, adminToken)
	exempt, err := detections.ParseIPSet([]string{"192.0.2.250/32"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.g.SetPolicy(&gateway.Policy{Chain: s.g.Policy().Chain, Exempt: exempt}); err != nil {
		t.Fatal(err)
	}
	code, m := adminCall(t, srv, "POST", "/v1/bans", adminToken, `{"client":"192.0.2.250","duration":"1h"}`)
	if code != http.StatusConflict || m["error"] == nil {
		t.Errorf("ban of an exempt client: %d %v, want 409", code, m)
	}
	if code, _ := adminCall(t, srv, "GET", "/v1/bans?client=192.0.2.250", adminToken, ""); code != http.StatusNotFound {
		t.Errorf("the exempt client's ban lookup: %d, want 404 (not banned)", code)
	}
}
