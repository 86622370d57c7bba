package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil"
)

// TestConsoleAndAlertsWired: the gateway binary serves the console on the
// admin listener (login page, every page behind it) and sends an alert for
// a ban to the configured webhook; /metrics shows the events its feed
// dropped.
func TestConsoleAndAlertsWired(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	config := writeConfig(t, fmt.Sprintf(`
alerts:
  enabled: true
  group_wait: 100ms
  rules: {bans: {enabled: true, operator: true}}
  sinks:
    - {name: hook, type: webhook, url: "%s/notify"}
`, hook.URL))
	s := startStack(t, config, "GATEWAY_ADMIN_TOKEN=c0nsole")

	resp, err := http.Get("http://" + s.admin + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<form") {
		t.Fatalf("GET /console/login: %d %.200s", resp.StatusCode, body)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get("http://" + s.admin + "/console/bans")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
		t.Errorf("GET /console/bans without a session: %d -> %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	ban, _ := json.Marshal(map[string]string{"client": "192.0.2.99", "duration": "10m", "reason": "wiring test"})
	req, _ := http.NewRequest("POST", "http://"+s.admin+"/v1/bans", bytes.NewReader(ban))
	req.Header.Set("Authorization", "Bearer c0nsole")
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/bans: %d", resp.StatusCode)
	}
	testutil.EventuallyErr(t, 15*time.Second, 50*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range got {
			if strings.Contains(b, "192.0.2.99") {
				return nil
			}
		}
		return fmt.Errorf("webhook got %d notifications: %v", len(got), got)
	}, "the ban's alert at the webhook")
	// The alerter's feed reports its drops (none here).
	resp, err = http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "\nrampart_alert_events_dropped_total 0\n") {
		t.Error("/metrics lacks rampart_alert_events_dropped_total 0")
	}
}
