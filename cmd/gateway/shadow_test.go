package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil"
)

// TestShadowPolicy: a candidate configuration judges live traffic beside
// the enforcing one. The live policy has the xss analyser off, the
// candidate has it on: an XSS request is answered 200, and is counted and
// recorded as newly blocked by the shadow; a clean request is the same in
// both; nothing of the candidate changes an answer.
func TestShadowPolicy(t *testing.T) {
	dir := t.TempDir()
	cand := filepath.Join(dir, "candidate.yaml")
	if err := os.WriteFile(cand, []byte("detections:\n  rate_limit: {rate: 1000, burst: 1000, period: 1m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := writeConfig(t, `
detections:
  rate_limit: {rate: 1000, burst: 1000, period: 1m}
  payload:
    analyzers:
      xss: {mode: off}
shadow:
  file: `+cand+`
`)
	s := startStack(t, config, "GATEWAY_ADMIN_TOKEN=sh4dow")
	c := client("127.0.0.1")
	if code, _ := call(t, c, "GET", "http://"+s.gw+"/echo?q=%3Cscript%3Ealert(1)%3C/script%3E", ""); code != 200 {
		t.Fatalf("XSS with the live xss analyser off: %d", code)
	}
	for range 3 {
		if code, _ := call(t, c, "GET", "http://"+s.gw+"/echo?q=hello", ""); code != 200 {
			t.Fatalf("clean request: %d", code)
		}
	}
	testutil.EventuallyErr(t, 10*time.Second, 50*time.Millisecond, func() error {
		nb := metricValue(t, s.admin, `rampart_shadow_decisions_total{detection="payload",outcome="newly_blocked"}`)
		same := metricValue(t, s.admin, `rampart_shadow_decisions_total{detection="none",outcome="same_allow"}`)
		if nb != 1 || same != 3 {
			return fmt.Errorf("newly_blocked %v, same_allow %v", nb, same)
		}
		return nil
	}, "the shadow's verdicts counted")
	req, _ := http.NewRequest("GET", "http://"+s.admin+"/v1/events?type=shadow_diff", nil)
	req.Header.Set("Authorization", "Bearer sh4dow")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var evs struct {
		Events []struct {
			Type, Detection, Rule, Reason, Live, Path string
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil {
		t.Fatal(err)
	}
	if len(evs.Events) != 1 || evs.Events[0].Detection != "payload" || !strings.HasPrefix(evs.Events[0].Rule, "xss") ||
		evs.Events[0].Reason != "newly_blocked" || evs.Events[0].Live != "allowed" || evs.Events[0].Path != "/echo" {
		t.Errorf("shadow_diff events: %+v", evs.Events)
	}
}
