// Package storetest starts Redis servers for tests, in the manner of
// net/http/httptest: New on miniredis for unit tests, Real on a real
// redis-server for contract and integration tests.
package storetest

import (
	"bufio"
	"context"

	"net"
	"os"
	"os/exec"

	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/store"
)

// Config returns a store config for tests: short breaker cooldown, the given
// URL.
func Config(url string) store.Config {
	cfg := store.DefaultConfig()
	cfg.URL = url
	// Generous: tests check correctness, and -race on a busy 2-core CI box
	// (other packages' tests run in parallel) can stall a call for a
	// while; a timeout would fail open and look like a wrong count.
	cfg.Timeout = 2 * time.Second
	cfg.DialTimeout = time.Second
	cfg.BreakerCooldown = 100 * time.Millisecond
	cfg.Replica = "test"
	return cfg
}

// New returns a store on a fresh miniredis, closed at cleanup.
func New(t testing.TB) (*store.Redis, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	return NewOn(t, mr.Addr()), mr
}

// NewOn returns a store on addr (host:port), closed at cleanup.
func NewOn(t testing.TB, addr string) *store.Redis {
	t.Helper()
	s, err := store.NewRedis(Config("redis://" + addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Server is a real redis-server process started for a test.
type Server struct {
	Addr string
	Dir  string
	t    testing.TB
	cmd  *exec.Cmd
	port int
}

// Real starts a real redis-server on a free loopback port, with its data
// directory in t.TempDir(), and stops it at cleanup. When
// GATEWAY_TEST_REDIS_ADDR is set, it uses that server instead (flushing it).
// It skips the test, with a clear message, only when no redis-server binary
// exists; CI installs one.
func Real(t testing.TB) *Server {
	t.Helper()
	if addr := os.Getenv("GATEWAY_TEST_REDIS_ADDR"); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			t.Fatalf("flushing GATEWAY_TEST_REDIS_ADDR=%s: %v", addr, err)
		}
		return &Server{Addr: addr, t: t}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server); .ci/run installs it")
	}
	s := &Server{Dir: t.TempDir(), t: t}
	s.start(bin, 0)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(bin string, port int) {
	s.t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		p := port
		if p == 0 {
			p = freePort(s.t)
		}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "yes", "--appendfsync", "everysec", "--dir", s.Dir,
			"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning")
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("starting redis-server: %v", err)
		}
		go drain(stdout)
		addr := "127.0.0.1:" + strconv.Itoa(p)
		if waitReady(addr, 5*time.Second) {
			s.cmd, s.Addr, s.port = cmd, addr, p
			return
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if port != 0 {
			break
		}
	}
	s.t.Fatalf("redis-server did not start")
}

func drain(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
	}
}

// Stop stops the server (idempotent). Data stays in Dir (append-only file).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port and data directory, so
// append-only data survives, as with a Redis restart in production.
func (s *Server) Restart() {
	s.t.Helper()
	if s.Dir == "" {
		s.t.Fatal("cannot restart an external redis (GATEWAY_TEST_REDIS_ADDR)")
	}
	s.Stop()
	// Give the append-only file its fsync; SHUTDOWN would be cleaner but Kill
	// mimics a crash, which is what bans must survive (appendfsync everysec
	// loses at most a second: the tests wait for it).
	bin, _ := exec.LookPath("redis-server")
	s.start(bin, s.port)
}

// Shutdown stops the server cleanly (SHUTDOWN, which flushes the AOF).
func (s *Server) Shutdown() {
	if s.cmd == nil {
		return
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	_ = c.Shutdown(context.Background()).Err()
	_ = c.Close()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Start starts a stopped server again on the same port and data directory.
func (s *Server) Start() {
	s.t.Helper()
	bin, _ := exec.LookPath("redis-server")
	s.start(bin, s.port)
}

// URL returns redis://addr.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Client returns a plain go-redis client, closed at cleanup.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// CommandCalls returns the calls of cmd (lower case, e.g. "evalsha") from
// INFO commandstats.
func CommandCalls(t testing.TB, c *redis.Client, cmd string) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_"+cmd+":") {
			continue
		}
		for _, kv := range strings.Split(strings.TrimSpace(line[len("cmdstat_"+cmd+":"):]), ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
	}
	return 0
}

// CommandStats returns the calls of every command from INFO commandstats,
// keyed by lower-case name. Commands that Lua scripts run are counted too,
// under their own names.
func CommandStats(t testing.TB, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(addr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	for time.Now().Before(deadline) {
		if c.Ping(context.Background()).Err() == nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func init() {
	// go-redis logs dial failures to stderr; outage tests cause many.
	redis.SetLogger(quietLogger{})
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
