package main_test

// Black-box tests: the real gateway and demo-upstream binaries, started as
// processes, driven over TCP.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := testutil.Build(filepath.Join("..", ".."), "./cmd/gateway", "./cmd/demo-upstream")
	if err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	testutil.RemoveBuilds()
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return testutil.FreeAddr(t)
}

// proc is a started binary (testutil.Proc) whose output is collected.
type proc struct {
	*testutil.Proc
	cmd  *exec.Cmd // for signals and ProcessState
	done <-chan struct{}
}

func (p *proc) output() string { return p.Output() }

// start starts one of the built binaries with exactly env (plus PATH and
// HOME) and kills it at cleanup, showing its output if the test failed.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := testutil.Start(t, testutil.Spec{
		Name: name, Binary: filepath.Join(binDir, name), Args: args, Env: env,
		StopSignal: syscall.SIGKILL, TailLines: 100,
	})
	return &proc{Proc: p, cmd: p.Cmd(), done: p.Done()}
}

// waitUp waits for url to answer while p runs.
func waitUp(t *testing.T, p *proc, url string) {
	t.Helper()
	testutil.EventuallyErr(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !p.Running() {
			return testutil.Permanent(fmt.Errorf("exited: %v", p.Err()))
		}
		return testutil.HTTPStatus(url)
	}, "%s to come up", url)
}

// stack is a demo upstream and a gateway in front of it.
type stack struct {
	gw, admin, upstream string
	proc                *proc
	logFile             string
}

func startStack(t *testing.T, config string, env ...string) *stack {
	t.Helper()
	s := &stack{gw: freeAddr(t), admin: freeAddr(t), upstream: freeAddr(t), logFile: filepath.Join(t.TempDir(), "app.log")}
	up := start(t, "demo-upstream", nil, "-listen", s.upstream)
	waitUp(t, up, "http://"+s.upstream+"/api/endpoint")
	args := []string{}
	if config != "" {
		args = append(args, "-config", config)
	}
	env = append([]string{"GATEWAY_LISTEN=" + s.gw, "GATEWAY_UPSTREAM=http://" + s.upstream,
		"GATEWAY_ADMIN_LISTEN=" + s.admin, "GATEWAY_LOG_FILE=" + s.logFile, "GATEWAY_REPLICA=blackbox"}, env...)
	s.proc = start(t, "gateway", env, args...)
	waitUp(t, s.proc, "http://"+s.admin+"/healthz")
	return s
}

// client sends requests from a chosen loopback source address, so the
// gateway sees distinct client IPs without trusting any header.
func client(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

func call(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const denied = `{"error":"Access Denied"}` + "\n"

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rampart.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The prototype's test cases (tests/test_server.py), against the binaries
// running examples/prototype.yaml.
func TestPrototypeCases(t *testing.T) {
	prototype := filepath.Join("..", "..", "examples", "prototype.yaml")
	local, other := client("127.0.0.1"), client("127.0.0.2")

	t.Run("allowed IP reaches the API, other IP is denied", func(t *testing.T) {
		s := startStack(t, prototype)
		code, body := call(t, local, "GET", "http://"+s.gw+"/api/endpoint", "")
		if code != 200 || !strings.Contains(body, "API endpoint reached successfully") {
			t.Errorf("allowed IP: %d %q", code, body)
		}
		code, body = call(t, other, "GET", "http://"+s.gw+"/api/endpoint", "")
		if code != 403 || body != denied {
			t.Errorf("other IP: %d %q", code, body)
		}
	})
	t.Run("user agents: * admits all, a list admits only its members", func(t *testing.T) {
		s := startStack(t, prototype)
		if code, _ := call(t, local, "GET", "http://"+s.gw+"/api/endpoint", "", "User-Agent", "python-requests/2.31"); code != 200 {
			t.Errorf(`"*": %d`, code)
		}
		cfg := writeConfig(t, "detections:\n  user_agent:\n    allow: [not_white_listed]\n")
		s = startStack(t, cfg)
		if code, body := call(t, local, "GET", "http://"+s.gw+"/api/endpoint", "", "User-Agent", "python-requests/2.31"); code != 403 || body != denied {
			t.Errorf(`["not_white_listed"]: %d %q`, code, body)
		}
	})
	t.Run("malicious payload in body and query; empty payload passes", func(t *testing.T) {
		s := startStack(t, prototype)
		for _, tc := range []struct {
			method, path, body string
			want               int
		}{
			{"POST", "/api/endpoint", `{"malicious":"params"}`, 403},
			{"GET", "/api/endpoint?malicious=params", "", 403},
			{"GET", "/api/endpoint", "", 200},
		} {
			code, body := call(t, local, tc.method, "http://"+s.gw+tc.path, tc.body, "Content-Type", "application/json")
			if code != tc.want || (tc.want == 403 && body != denied) {
				t.Errorf("%s %s %s: %d %q", tc.method, tc.path, tc.body, code, body)
			}
		}
	})
	t.Run("5 requests per minute, then 403", func(t *testing.T) {
		s := startStack(t, prototype)
		var codes []int
		for i := 0; i < 7; i++ {
			code, _ := call(t, local, "GET", "http://"+s.gw+"/api/endpoint", "")
			codes = append(codes, code)
		}
		if fmt.Sprint(codes) != "[200 200 200 200 200 403 403]" {
			t.Errorf("codes = %v", codes)
		}
	})
	t.Run("5 invalid requests, then 403", func(t *testing.T) {
		s := startStack(t, filepath.Join("..", "..", "examples", "prototype.yaml"))
		var codes []int
		for i := 0; i < 6; i++ {
			code, _ := call(t, local, "GET", fmt.Sprintf("http://%s/admin%d", s.gw, i), "")
			codes = append(codes, code)
		}
		if fmt.Sprint(codes) != "[404 404 404 404 404 403]" {
			t.Errorf("codes = %v", codes)
		}
	})
	t.Run("logs go to the configured file", func(t *testing.T) {
		s := startStack(t, prototype)
		call(t, other, "GET", "http://"+s.gw+"/api/endpoint?malicious=1", "")
		deadline := time.Now().Add(3 * time.Second)
		for {
			b, _ := os.ReadFile(s.logFile)
			if strings.Contains(string(b), `"msg":"request_blocked"`) {
				if strings.Contains(string(b), "malicious=1") {
					t.Error("query value logged")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no request_blocked in %s: %s", s.logFile, b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestCheckConfig(t *testing.T) {
	for _, f := range []string{"../../examples/prototype.yaml", "../../config.example.yaml"} {
		out, err := exec.Command(filepath.Join(binDir, "gateway"), "-check-config", "-config", f).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("%s: %v %s", f, err, out)
		}
	}
	bad := writeConfig(t, "listen: x\ndetections:\n  rate_limit:\n    rate: -1\n  ip:\n    allow: [nope]\n")
	out, err := exec.Command(filepath.Join(binDir, "gateway"), "-check-config", "-config", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("bad config accepted: %s", out)
	}
	// Every error at once, each with its line and key; what would fail
	// at start (a listen address without a port) fails the check.
	for _, want := range []string{"rampart.yaml:1: listen:", "rampart.yaml:4: detections.rate_limit.rate:", "rampart.yaml:6: detections.ip.allow:", `"nope"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q: %s", want, out)
		}
	}
	typo := writeConfig(t, "listen: :1\nupstrem: y\n")
	out, _ = exec.Command(filepath.Join(binDir, "gateway"), "-check-config", "-config", typo).CombinedOutput()
	if !strings.Contains(string(out), `rampart.yaml:2: upstrem: unknown key (did you mean "upstream"?)`) {
		t.Errorf("typo: %s", out)
	}
	out, err = exec.Command(filepath.Join(binDir, "gateway"), "-config", writeConfig(t, "trusted_proxies: [0.0.0.0/0]\n")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "0.0.0.0/0") {
		t.Errorf("0.0.0.0/0 trust accepted: %v %s", err, out)
	}
}

func TestGracefulShutdown(t *testing.T) {
	s := startStack(t, "")
	c := client("127.0.0.1")
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Get("http://" + s.gw + "/slow?ms=700")
		if err != nil {
			res <- result{err: err}
			return
		}
		resp.Body.Close()
		res <- result{code: resp.StatusCode}
	}()
	time.Sleep(200 * time.Millisecond)
	if err := s.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.code != 200 {
		t.Errorf("in-flight request: %d %v", r.code, r.err)
	}
	select {
	case <-s.proc.done:
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not exit")
	}
	if code := s.proc.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if !strings.Contains(s.proc.output(), "gateway_stopped") {
		t.Errorf("no gateway_stopped line")
	}
}

// readyz returns the /readyz status field.
func readyz(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	s, _ := m["status"].(string)
	return s
}

func TestStartsWithRedisDownAndRecovers(t *testing.T) {
	bin := testutil.NeedTool(t, "redis-server", "redis-server")
	redisAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(redisAddr)
	s := startStack(t, "", "REDIS_URL=redis://"+redisAddr)
	c := client("127.0.0.1")
	// Redis is down: requests flow (fail open) under the per-replica
	// fallback limit (the configured 5 a minute), /readyz says degraded.
	for i := 0; i < 7; i++ {
		want := 200
		if i >= 5 {
			want = 403
		}
		if code, _ := call(t, c, "GET", "http://"+s.gw+"/api/endpoint", ""); code != want {
			t.Fatalf("request %d with Redis down: %d, want %d", i, code, want)
		}
	}
	if got := readyz(t, s.admin); got != "degraded" {
		t.Errorf("readyz = %q with Redis down", got)
	}
	// Redis comes up: the gateway recovers by itself and the limit counts.
	r := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Process.Kill(); _ = r.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for readyz(t, s.admin) != "ready" {
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %s", s.proc.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var codes []int
	for i := 0; i < 6; i++ {
		code, _ := call(t, c, "GET", "http://"+s.gw+"/api/endpoint", "")
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 200 200 200 200 403]" {
		t.Errorf("after recovery: %v", codes)
	}
	deadline = time.Now().Add(5 * time.Second)
	for _, want := range []string{"store_unavailable", "store_recovered"} {
		for !strings.Contains(s.proc.output(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s log line", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestReloadUnderTraffic(t *testing.T) {
	cfgPath := writeConfig(t, `
detections:
  rate_limit:
    rate: 100000
    burst: 100000
    period: 1s
  payload:
    patterns: ["forbidden-word"]
`)
	s := startStack(t, cfgPath)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var failed, total int
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		src := fmt.Sprintf("127.0.1.%d", w+1)
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}}
			for ctx.Err() == nil {
				resp, err := c.Get("http://" + s.gw + "/api/endpoint?q=hello")
				mu.Lock()
				total++
				if err != nil || (resp.StatusCode != 200 && resp.StatusCode != 403) {
					failed++
				}
				mu.Unlock()
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	// New rules: deny one client, a new pattern, a lower threshold.
	if err := os.WriteFile(cfgPath, []byte(`
detections:
  ip:
    deny: ["127.0.1.4"]
  rate_limit:
    rate: 100000
    burst: 100000
    period: 1s
  payload:
    patterns: ["forbidden-word", "hello"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.proc.output(), "config_reloaded") {
		if time.Now().After(deadline) {
			t.Fatal("no config_reloaded line")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	c := client("127.0.1.9")
	if code, _ := call(t, c, "GET", "http://"+s.gw+"/api/endpoint?q=hello", ""); code != 403 {
		t.Errorf("new pattern not applied: %d", code)
	}
	if code, _ := call(t, client("127.0.1.4"), "GET", "http://"+s.gw+"/api/endpoint", ""); code != 403 {
		t.Errorf("new deny entry not applied: %d", code)
	}
	if code, _ := call(t, c, "GET", "http://"+s.gw+"/api/endpoint?q=fine", ""); code != 200 {
		t.Errorf("clean request after reload: %d", code)
	}
	// An invalid config is rejected and the running one stays.
	if err := os.WriteFile(cfgPath, []byte("detections:\n  rate_limit:\n    rate: oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = s.proc.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(s.proc.output(), "config_reload_failed") {
		if time.Now().After(deadline) {
			t.Fatal("no config_reload_failed line")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := call(t, c, "GET", "http://"+s.gw+"/api/endpoint?q=hello", ""); code != 403 {
		t.Errorf("rules lost after a bad reload: %d", code)
	}
	cancel()
	wg.Wait()
	if failed != 0 || total < 50 {
		t.Errorf("%d of %d requests failed during reloads", failed, total)
	}
	t.Logf("%d requests during two reloads, %d failed", total, failed)
}

func TestReloadOnFileChange(t *testing.T) {
	cfgPath := writeConfig(t, "detections:\n  payload:\n    patterns: [\"first-word\"]\n")
	s := startStack(t, cfgPath, "GATEWAY_TRUSTED_PROXIES=127.0.0.1/32")
	c := client("127.0.0.1")
	hit := func(word string, ip string) int {
		code, _ := call(t, c, "GET", "http://"+s.gw+"/api/endpoint?q="+word, "", "X-Forwarded-For", ip)
		return code
	}
	if hit("second-word", "198.51.100.1") != 200 {
		t.Fatal("second-word blocked before the change")
	}
	time.Sleep(1100 * time.Millisecond) // a new mtime second on coarse file systems
	if err := os.WriteFile(cfgPath, []byte("detections:\n  payload:\n    patterns: [\"first-word\", \"second-word\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 2; hit("second-word", fmt.Sprintf("198.51.100.%d", i)) != 403; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("file change not picked up: %s", s.proc.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(s.proc.output(), `"trigger":"file_changed"`) {
		t.Error("no file_changed reload logged")
	}
}

// TestPrototypeOnRedis: examples/prototype.yaml on two gateways sharing one
// real Redis behaves like the prototype, as one: 5 requests a minute, then
// 403; 5 invalid requests, then 403.
func TestPrototypeOnRedis(t *testing.T) {
	bin := testutil.NeedTool(t, "redis-server", "redis-server")
	redisAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(redisAddr)
	r := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Process.Kill(); _ = r.Wait() })
	prototype := filepath.Join("..", "..", "examples", "prototype.yaml")
	a := startStack(t, prototype, "REDIS_URL=redis://"+redisAddr)
	b := startStack(t, prototype, "REDIS_URL=redis://"+redisAddr)
	c := client("127.0.0.1")
	var codes []int
	for i := 0; i < 7; i++ {
		gw := []*stack{a, b}[i%2].gw
		code, _ := call(t, c, "GET", "http://"+gw+"/api/endpoint", "")
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 200 200 200 200 403 403]" {
		t.Errorf("rate limit across two gateways: %v", codes)
	}
	// Invalid requests, counted once across both gateways.
	redisCLI := func(args ...string) string {
		out, err := exec.Command("redis-cli", append([]string{"-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// Fresh state (and fresh gateways: each replica remembers for up to
	// Retry-After that 127.0.0.1 is over its limit).
	redisCLI("FLUSHALL")
	a = startStack(t, prototype, "REDIS_URL=redis://"+redisAddr)
	b = startStack(t, prototype, "REDIS_URL=redis://"+redisAddr)
	codes = nil
	for i := 0; i < 6; i++ {
		gw := []*stack{a, b}[i%2].gw
		code, _ := call(t, c, "GET", fmt.Sprintf("http://%s/admin/%d", gw, i), "")
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[404 404 404 404 404 403]" {
		t.Errorf("invalid requests across two gateways: %v", codes)
	}
	if got := redisCLI("GET", "gw:enum:{127.0.0.1}"); got != "6" {
		t.Errorf("shared invalid counter = %q, want 6", got)
	}
}

// TestVersionStamp: the version make build stamps (-X main.version) is
// what gateway -version prints.
func TestVersionStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=v9.8.7-test", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "rampart v9.8.7-test" {
		t.Errorf("gateway -version: %q, %v", out, err)
	}
}
