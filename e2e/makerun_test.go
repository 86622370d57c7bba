//go:build e2e

package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil"
)

// TestMakeRunStops: `timeout 8 make run` starts the demo upstream and the
// gateway, and its SIGTERM stops both: the command returns and the ports
// are free again.
func TestMakeRunStops(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	gw, up, adm := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	cmd := exec.Command("timeout", "-s", "TERM", "8", "make", "run")
	cmd.Dir = testutil.ModuleRoot(t)
	cmd.Env = append(cmd.Environ(),
		"GATEWAY_LISTEN=127.0.0.1:"+strconv.Itoa(gw), "UPSTREAM_LISTEN=127.0.0.1:"+strconv.Itoa(up),
		"GATEWAY_ADMIN_LISTEN=127.0.0.1:"+strconv.Itoa(adm), "BIN="+t.TempDir())
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(gw)+"/api/endpoint", 60*time.Second)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("timeout 8 make run still running after %v:\n%s", time.Since(start), out)
	}
	for _, p := range []int{gw, up, adm} {
		if testutil.HTTPStatus("http://127.0.0.1:"+strconv.Itoa(p)+"/") == nil {
			t.Errorf("port %d still answers after make run stopped", p)
		}
	}
	if !strings.Contains(out.String(), "admin API token for this run") {
		t.Errorf("no generated admin token printed:\n%s", out)
	}
}
