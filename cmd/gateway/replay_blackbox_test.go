package main_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayBinaryExitStatus runs "gateway replay" as a process: a
// candidate over the gate exits 1, one within it 0.
func TestReplayBinaryExitStatus(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 6 {
		lines = append(lines, fmt.Sprintf(`{"id":"r%d","method":"GET","path":"/api/items","client_ip":"203.0.113.50","headers":[["User-Agent","Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0"]]}`, i))
	}
	input := filepath.Join(dir, "in.jsonl")
	cand := filepath.Join(dir, "cand.yaml")
	// The defaults admit 5 requests a minute, the candidate 2: it newly
	// blocks the 3rd to 5th request.
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cand, []byte("detections:\n  rate_limit: {rate: 2, burst: 2, period: 1m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max  string
		code int
		says string
	}{
		{"0", 1, "gate failed: the candidate newly blocks 3 requests (max 0)"},
		{"3", 0, "ok: 3 newly blocked (max 3)"},
		{"3", 2, "no such file"}, // a broken run, not a verdict
	} {
		in := input
		if tc.code == 2 {
			in = filepath.Join(dir, "missing.jsonl")
		}
		cmd := exec.Command(filepath.Join(binDir, "gateway"), "replay", "-candidate", cand, "-max-new-blocks", tc.max, in)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.says) || (code != 2 && !strings.Contains(string(out), "Summary")) {
			t.Errorf("-max-new-blocks %s: exit %d, want %d\nstderr: %s\nstdout: %s", tc.max, code, tc.code, stderr.String(), out)
		}
	}
}
