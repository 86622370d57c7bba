// Package storetest starts Redis servers for tests, in the manner of
// net/http/httptest: New on miniredis for unit tests, Real on a real
// redis-server for contract and integration tests.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/testutil/redistest"
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

// Server is a real Redis server for a test: one that the test started
// (Real, RealOwned) or the external one GATEWAY_TEST_REDIS_ADDR names.
type Server struct {
	// Addr is host:port.
	Addr string
	// Dir is the data directory of a server the test started ("" for an
	// external one).
	Dir string
	// Prefix is the key prefix tests must use on this server (ConfigFor
	// sets it): the store's default "gw:" on a server the test started, a
	// unique "gw:test-<hex>:" on an external one, which other tests (and
	// other runs) share.
	Prefix string

	t     testing.TB
	redis *redistest.Redis // nil for an external server
}

// Real returns a real Redis for t. When GATEWAY_TEST_REDIS_ADDR is set it
// uses that server without flushing it: the test gets a unique Prefix (use
// ConfigFor) and, at cleanup, only the keys under that prefix are deleted.
// Otherwise it starts a redis-server of its own (RealOwned). It skips the
// test, with a clear message, only when it needs redis-server and none is
// installed; CI installs one.
//
// Tests that need the whole server to themselves (INFO commandstats,
// restarts, FLUSHALL, KEYS over the default prefix) use RealOwned.
func Real(t testing.TB) *Server {
	t.Helper()
	addr := os.Getenv("GATEWAY_TEST_REDIS_ADDR")
	if addr == "" {
		return RealOwned(t)
	}
	var tag [6]byte
	_, _ = rand.Read(tag[:])
	s := &Server{Addr: addr, Prefix: "gw:test-" + hex.EncodeToString(tag[:]) + ":", t: t}
	c := redis.NewClient(&redis.Options{Addr: addr})
	if err := c.Ping(t.Context()).Err(); err != nil {
		c.Close()
		t.Fatalf("GATEWAY_TEST_REDIS_ADDR=%s: %v", addr, err)
	}
	t.Cleanup(func() {
		defer c.Close()
		if err := deletePrefix(context.Background(), c, s.Prefix); err != nil {
			t.Errorf("deleting the test's keys (%s*) from GATEWAY_TEST_REDIS_ADDR=%s: %v", s.Prefix, addr, err)
		}
	})
	return s
}

// RealOwned starts a redis-server of t's own on a free loopback port, with
// its data directory in t.TempDir() and the append-only file on, and stops
// it at cleanup, whatever GATEWAY_TEST_REDIS_ADDR says. It skips the test
// when redis-server is not installed.
func RealOwned(t testing.TB) *Server {
	t.Helper()
	r := redistest.StartRedis(t, redistest.Options{AppendOnly: true})
	return &Server{Addr: r.Addr, Dir: r.Dir, Prefix: store.DefaultConfig().Prefix, t: t, redis: r}
}

// deletePrefix deletes the keys under prefix, found with SCAN, never
// anything else.
func deletePrefix(ctx context.Context, c *redis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return c.Unlink(ctx, batch...).Err()
	}
	return nil
}

// ConfigFor returns Config for srv, with srv's key prefix.
func ConfigFor(srv *Server) store.Config {
	cfg := Config(srv.URL())
	cfg.Prefix = srv.Prefix
	return cfg
}

// NewFor returns a store on srv under srv's key prefix, closed at cleanup.
func NewFor(t testing.TB, srv *Server) *store.Redis {
	t.Helper()
	s, err := store.NewRedis(ConfigFor(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Owned reports whether the test started the server (RealOwned), so it
// may stop, restart or flush it.
func (s *Server) Owned() bool { return s.redis != nil }

// owned returns the started server, failing the test for an external one.
func (s *Server) owned(op string) *redistest.Redis {
	s.t.Helper()
	if s.redis == nil {
		s.t.Fatalf("%s: cannot control the external redis GATEWAY_TEST_REDIS_ADDR=%s; use storetest.RealOwned", op, s.Addr)
	}
	return s.redis
}

// Stop kills the server (idempotent), as a crash would. Data stays in Dir
// (append-only file, appendfsync everysec).
func (s *Server) Stop() {
	s.t.Helper()
	s.owned("Stop").Stop()
}

// Restart starts the server again on the same port and data directory
// after killing it, so append-only data survives, as with a Redis crash and
// restart in production: SHUTDOWN would be cleaner, but a kill is what bans
// must survive (everysec loses at most a second: the tests wait for it).
func (s *Server) Restart() {
	s.t.Helper()
	s.owned("Restart").Restart()
}

// Shutdown stops the server cleanly (SHUTDOWN, which flushes the AOF).
func (s *Server) Shutdown() {
	s.t.Helper()
	s.owned("Shutdown").Shutdown()
}

// Start starts a stopped server again on the same port and data directory.
func (s *Server) Start() {
	s.t.Helper()
	s.owned("Start").Start()
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
// INFO commandstats. On an external server they include other tests'
// calls: count on RealOwned.
func CommandCalls(t testing.TB, c *redis.Client, cmd string) int64 {
	t.Helper()
	return CommandStats(t, c)[cmd]
}

// CommandStats returns the calls of every command from INFO commandstats,
// keyed by lower-case name. Commands that Lua scripts run are counted too,
// under their own names. On an external server they include other tests'
// calls: count on RealOwned.
func CommandStats(t testing.TB, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	return redistest.ParseCommandStats(info)
}

func init() {
	// go-redis logs dial failures to stderr; outage tests cause many.
	redis.SetLogger(quietLogger{})
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
