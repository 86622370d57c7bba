//go:build e2e || cluster

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBuilds()
	os.Exit(code)
}

// proc is one child process (testutil.Proc) whose output goes to a log
// file in the cluster's directory.
type proc struct {
	*testutil.Proc
	name string
	log  string
}

// startProc starts bin with args and exactly env (plus PATH and HOME). The
// child dies with the test binary (Pdeathsig), so a crashed or timed-out
// run leaves nothing behind. It is not tied to t, which may be a subtest
// restarting a replica: the cluster's shutdown stops it and shows the end
// of its log when the test failed.
func startProc(t *testing.T, dir, name, bin string, args, env []string) *proc {
	t.Helper()
	p, err := testutil.Launch(testutil.Spec{Name: name, Binary: bin, Args: args, Env: env, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return &proc{Proc: p, name: name, log: p.LogPath()}
}

func (p *proc) running() bool { return p != nil && p.Running() }

// stop sends sig and waits up to wait for the process to end; past that it
// is killed.
func (p *proc) stop(sig syscall.Signal, wait time.Duration) {
	if p != nil {
		p.Stop(sig, wait)
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string { return p.Tail(n) }

func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: apt-get install %s", name, pkg)
	}
	return p
}

// gw is one gateway replica.
type gw struct {
	name      string
	port      int // proxy
	adminPort int
	p         *proc
}

func (g *gw) url() string      { return "http://127.0.0.1:" + strconv.Itoa(g.port) }
func (g *gw) adminURL() string { return "http://127.0.0.1:" + strconv.Itoa(g.adminPort) }

// cluster is the system under test: redis, upstream, gateways, HAProxy.
type cluster struct {
	t     *testing.T
	dir   string
	bin   string
	token string

	redisBin, redisCLI, haproxyBin string
	redisPort                      int
	redisDir                       string
	redis                          *proc
	// redisURL, when set, is an external store (a Cluster or Sentinel the
	// test started) instead of the cluster's own redis-server.
	redisURL string

	upstreamPort int
	upstream     *proc

	gws []*gw

	lbPort, statsPort int
	lb                *proc

	admin *http.Client
	// config is the gateways' file: deploy/rampart.yaml plus what the
	// cluster adds (see clusterConfig).
	config string
}

// testBudget is what the e2e gateways add to deploy/rampart.yaml: a Redis
// timeout and a breaker budget that a loaded 2-core CI box meets, so tests
// that assert exact limits never see a store call fail open. (The outage
// tests use the production defaults instead.)
const testBudget = `
redis:
  timeout: 2s
  breaker_failures: 1000
`

func newCluster(t *testing.T, replicas int) *cluster {
	t.Helper()
	return newClusterWith(t, replicas, func(base string) string { return base + testBudget })
}

// newClusterWith starts a cluster whose gateways read deploy/rampart.yaml
// as edit rewrites it.
func newClusterWith(t *testing.T, replicas int, edit func(base string) string) *cluster {
	t.Helper()
	return newClusterOn(t, replicas, "", edit)
}

// newClusterOn starts a cluster whose gateways use the store at redisURL
// ("": a redis-server of its own).
func newClusterOn(t *testing.T, replicas int, redisURL string, edit func(base string) string) *cluster {
	t.Helper()
	c := &cluster{
		redisURL:   redisURL,
		t:          t,
		dir:        t.TempDir(),
		redisBin:   lookTool(t, "redis-server", "redis-server"),
		redisCLI:   lookTool(t, "redis-cli", "redis-tools"),
		haproxyBin: lookTool(t, "haproxy", "haproxy"),
		admin:      &http.Client{Timeout: 5 * time.Second},
	}
	c.redisDir = filepath.Join(c.dir, "redis")
	if err := os.MkdirAll(c.redisDir, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "deploy", "rampart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.config = filepath.Join(c.dir, "rampart.yaml")
	if err := os.WriteFile(c.config, []byte(edit(string(base))), 0o644); err != nil {
		t.Fatal(err)
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	c.token = hex.EncodeToString(tok[:])

	t.Cleanup(c.shutdown)
	start := time.Now()
	// As the Dockerfile builds them (static, trimmed); once per test binary.
	c.bin = testutil.BuildBinaries(t, testutil.ModuleRoot(t), "./cmd/gateway", "./cmd/demo-upstream")
	t.Logf("built gateway and demo-upstream in %v", time.Since(start).Round(time.Millisecond))

	if c.redisURL == "" {
		c.redisPort = testutil.FreePort(t)
		c.startRedis(t)
		c.redisURL = "redis://127.0.0.1:" + strconv.Itoa(c.redisPort) + "/0"
	}
	c.upstreamPort = testutil.FreePort(t)
	c.upstream = startProc(t, c.dir, "upstream", filepath.Join(c.bin, "demo-upstream"),
		[]string{"-listen", "127.0.0.1:" + strconv.Itoa(c.upstreamPort)}, nil)
	waitFor(t, 10*time.Second, "demo upstream", func() error {
		return httpStatus(c.admin, "http://127.0.0.1:"+strconv.Itoa(c.upstreamPort)+"/api/endpoint", 200)
	})
	for i := 1; i <= replicas; i++ {
		g := &gw{name: "gw" + strconv.Itoa(i), port: testutil.FreePort(t), adminPort: testutil.FreePort(t)}
		c.gws = append(c.gws, g)
		c.startGateway(t, g)
	}
	for _, g := range c.gws {
		c.waitGatewayReady(t, g)
	}
	c.lbPort, c.statsPort = testutil.FreePort(t), testutil.FreePort(t)
	c.startHAProxy(t)
	t.Logf("cluster up in %v: redis %s, upstream :%d, %s, haproxy :%d (stats :%d)",
		time.Since(start).Round(time.Millisecond), c.redisURL, c.upstreamPort, c.describeGateways(), c.lbPort, c.statsPort)
	return c
}

func (c *cluster) describeGateways() string {
	var parts []string
	for _, g := range c.gws {
		parts = append(parts, fmt.Sprintf("%s :%d (admin :%d)", g.name, g.port, g.adminPort))
	}
	return strings.Join(parts, ", ")
}

func (c *cluster) lbURL() string { return "http://127.0.0.1:" + strconv.Itoa(c.lbPort) }

// startRedis starts redis-server on c.redisPort with its data in
// c.redisDir: append-only file on, RDB snapshots off, so what survives a
// restart survived through the AOF.
func (c *cluster) startRedis(t *testing.T) {
	t.Helper()
	c.redis = startProc(t, c.dir, "redis", c.redisBin, []string{
		"--port", strconv.Itoa(c.redisPort), "--bind", "127.0.0.1", "--dir", c.redisDir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--daemonize", "no", "--protected-mode", "no", "--loglevel", "notice",
	}, nil)
	waitFor(t, 10*time.Second, "redis-server", func() error {
		out, err := c.redisCLIOut("PING")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "PONG" {
			return fmt.Errorf("PING: %q", out)
		}
		return nil
	})
}

// startGateway starts g with the compose deployment's config file and the
// environment the compose file sets, mapped to loopback.
func (c *cluster) startGateway(t *testing.T, g *gw) {
	t.Helper()
	env := []string{
		"GATEWAY_CONFIG=" + c.config,
		"GATEWAY_BANS_SNAPSHOT_FILE=" + filepath.Join(c.dir, g.name+".bans"),
		"GATEWAY_LISTEN=127.0.0.1:" + strconv.Itoa(g.port),
		"GATEWAY_ADMIN_LISTEN=127.0.0.1:" + strconv.Itoa(g.adminPort),
		"GATEWAY_UPSTREAM=http://127.0.0.1:" + strconv.Itoa(c.upstreamPort),
		"REDIS_URL=" + c.redisURL,
		// HAProxy connects from 127.0.0.1; every client uses another 127.x
		// address, so only the LB's forwarding headers are believed.
		"GATEWAY_TRUSTED_PROXIES=127.0.0.1/32",
		"GATEWAY_ADMIN_TOKEN=" + c.token,
		"GATEWAY_REPLICA=" + g.name,
	}
	g.p = startProc(t, c.dir, g.name, filepath.Join(c.bin, "gateway"), nil, env)
}

func (c *cluster) waitGatewayReady(t *testing.T, g *gw) {
	t.Helper()
	waitFor(t, 15*time.Second, g.name+" ready", func() error {
		if !g.p.running() {
			return testutil.Permanent(fmt.Errorf("%s exited: %v\n%s", g.name, g.p.Err(), g.p.tail(20)))
		}
		return httpStatus(c.admin, g.adminURL()+"/readyz?strict=1", 200)
	})
}

// restartGateway stops g with sig (if it runs) and starts it again on the
// same ports.
func (c *cluster) restartGateway(t *testing.T, g *gw, sig syscall.Signal) {
	t.Helper()
	g.p.stop(sig, 20*time.Second)
	c.startGateway(t, g)
	c.waitGatewayReady(t, g)
}

func (c *cluster) startHAProxy(t *testing.T) {
	t.Helper()
	src := filepath.Join(testutil.ModuleRoot(t), "deploy", "haproxy", "haproxy.cfg")
	var servers []haproxyServer
	for _, g := range c.gws {
		servers = append(servers, haproxyServer{name: g.name, port: g.port, checkPort: g.adminPort})
	}
	cfg := renderHAProxy(t, src, c.lbPort, c.statsPort, servers)
	path := filepath.Join(c.dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(c.haproxyBin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n--- config ---\n%s", err, out, cfg)
	}
	c.lb = startProc(t, c.dir, "haproxy", c.haproxyBin, []string{"-db", "-f", path}, nil)
	waitFor(t, 15*time.Second, "haproxy: every gateway UP", func() error {
		if !c.lb.running() {
			return testutil.Permanent(fmt.Errorf("haproxy exited: %v\n%s", c.lb.Err(), c.lb.tail(20)))
		}
		st, err := c.lbStats()
		if err != nil {
			return err
		}
		for _, g := range c.gws {
			if st[g.name].status != "UP" {
				return fmt.Errorf("%s is %q", g.name, st[g.name].status)
			}
		}
		return nil
	})
}

// shutdown stops everything; on failure it first shows the end of every
// log.
func (c *cluster) shutdown() {
	procs := []*proc{c.lb}
	for _, g := range c.gws {
		procs = append(procs, g.p)
	}
	procs = append(procs, c.upstream, c.redis)
	if c.t.Failed() {
		// t.TempDir goes away: keep the logs where they can be read.
		keep, err := os.MkdirTemp("", "rampart-e2e-logs-")
		for _, p := range procs {
			if p == nil {
				continue
			}
			c.t.Logf("--- last lines of %s ---\n%s", p.name, p.tail(8))
			if err == nil {
				if data, rerr := os.ReadFile(p.log); rerr == nil {
					_ = os.WriteFile(filepath.Join(keep, filepath.Base(p.log)), data, 0o644)
				}
			}
		}
		if err == nil {
			c.t.Logf("full logs kept in %s", keep)
		}
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		if p != nil {
			wg.Go(func() { p.stop(syscall.SIGTERM, 5*time.Second) })
		}
	}
	wg.Wait()
}

// redisCLIOut runs redis-cli against the cluster's Redis.
func (c *cluster) redisCLIOut(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.redisCLI, append([]string{"-p", strconv.Itoa(c.redisPort)}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("redis-cli %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String(), nil
}

func (c *cluster) redisCLI1(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.redisCLIOut(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// banKeys lists gw:ban:* with redis-cli --scan, as an operator would.
func (c *cluster) banKeys(t *testing.T) map[string]bool {
	t.Helper()
	out := c.redisCLI1(t, "--scan", "--pattern", "gw:ban:*")
	keys := map[string]bool{}
	for _, k := range strings.Fields(out) {
		keys[k] = true
	}
	return keys
}

// adminBan bans client through g's admin API and returns when the answer
// arrived.
func (c *cluster) adminBan(t *testing.T, g *gw, client, dur, reason string) time.Time {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"client": client, "duration": dur, "reason": reason})
	req, _ := http.NewRequest(http.MethodPost, g.adminURL()+"/v1/bans", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.admin.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	at := time.Now()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/bans on %s: %s %s", g.name, resp.Status, data)
	}
	return at
}

// localBansCached reads the replica's count of locally cached bans.
func (c *cluster) localBansCached(ctx context.Context, g *gw) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.adminURL()+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.admin.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		LocalBans int `json:"local_bans_cached"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	return st.LocalBans, nil
}

// metric reads one sample of g's /metrics, e.g.
// `rampart_blocklist_hits_total{source="store"}`; 0 when absent.
func (c *cluster) metric(g *gw, series string) float64 {
	resp, err := c.admin.Get(g.adminURL() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

// waitFor retries f every 50 ms until it returns nil, or fails the test;
// an error wrapped by testutil.Permanent fails it at once.
func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	testutil.EventuallyErr(t, timeout, 50*time.Millisecond, f, "%s", what)
}

func httpStatus(c *http.Client, url string, want int) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// The prototype's policy, as deploy/rampart.yaml configures it.
const (
	rateBurst    = 5                // requests allowed at once per client
	rateEvery    = 12 * time.Second // then one more every 12 s
	banAfter     = 10               // refusals within a minute that ban
	invalidLimit = 5                // invalid answers before the ban
)

// summary collects the numbers printed at the end.
type summary struct {
	mu    sync.Mutex
	lines []string
}

func (s *summary) add(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, fmt.Sprintf(format, args...))
}

func (s *summary) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// storeFailures sums the replicas' failed check calls: each is a request
// that did not get the shared limit (fail-open or the per-replica
// fallback). With the test budget it must stay 0.
func (c *cluster) storeFailures() int {
	n := 0.0
	for _, g := range c.gws {
		n += c.metric(g, `rampart_store_errors_total{op="check"}`)
	}
	return int(n)
}

func (c *cluster) storeFailureDetail() string {
	var parts []string
	for _, g := range c.gws {
		parts = append(parts, fmt.Sprintf("%s: %.0f failed checks, %.0f rate_limit bypassed", g.name,
			c.metric(g, `rampart_store_errors_total{op="check"}`),
			c.metric(g, `rampart_detection_errors_total{detection="rate_limit",kind="store"}`)))
	}
	return strings.Join(parts, "; ")
}
