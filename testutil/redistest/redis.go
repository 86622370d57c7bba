// Package redistest runs real Redis topologies for tests: one
// redis-server (StartRedis), a Redis Cluster with replicas (StartCluster)
// and a Sentinel-managed master with replicas (StartSentinel). Every
// process listens on a free loopback port, keeps its data in a temporary
// directory, and is stopped at test cleanup or, should the test binary
// die, killed by the kernel (testutil.Start's Pdeathsig).
//
// The binaries come from PATH (Debian's redis-server, redis-cli and
// redis-sentinel); the test is skipped, with the package to install, when
// they are missing.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/testutil"
)

// startTimeout bounds how long a starting redis-server may take to answer
// PING (it answers LOADING while it reads its append-only file).
const startTimeout = 15 * time.Second

// Options configures StartRedis. The zero value is a throw-away server: no
// persistence, a free port, a temporary data directory.
type Options struct {
	// AppendOnly turns the append-only file on (appendfsync everysec), so
	// data survives Stop and Restart as it would a crash in production
	// (up to the last second).
	AppendOnly bool
	// Port is the port to listen on; a free one when 0.
	Port int
	// Dir is the data directory; a new t.TempDir() when empty.
	Dir string
	// Name labels the process in logs; "redis" when empty.
	Name string
	// Args are more redis-server arguments, e.g. "--maxmemory", "8mb".
	Args []string
	// Cluster makes a cluster-enabled node (nodes.conf in Dir, a free
	// cluster bus port) with NodeTimeout as cluster-node-timeout.
	Cluster     bool
	NodeTimeout time.Duration
}

// Redis is one redis-server process. Its methods that can fail the test
// (Stop, Start, Restart, Shutdown, CommandStats, ...) must be called from
// the test's goroutine.
type Redis struct {
	// Addr is 127.0.0.1:Port.
	Addr string
	// Port is the client port; it stays the same across restarts.
	Port int
	// ClusterPort is the cluster bus port of a cluster node (0 otherwise).
	ClusterPort int
	// Dir is the data directory; it survives restarts.
	Dir string

	t    testing.TB
	opts Options
	bin  string

	mu   sync.Mutex
	proc *testutil.Proc
}

// StartRedis starts a redis-server on a free loopback port and stops it at
// cleanup. It skips the test when redis-server is not installed.
func StartRedis(t testing.TB, opts Options) *Redis {
	t.Helper()
	bin := lookPath(t, "redis-server", "redis-server")
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Name == "" {
		opts.Name = "redis"
	}
	r := &Redis{Dir: opts.Dir, Port: opts.Port, t: t, opts: opts, bin: bin}
	r.start()
	return r
}

// lookPath finds a Redis binary or skips the test.
func lookPath(t testing.TB, name, pkg string) string {
	t.Helper()
	return testutil.NeedTool(t, name, pkg)
}

func (r *Redis) args(port, clusterPort int) []string {
	aof := "no"
	if r.opts.AppendOnly {
		aof = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--save", "", "--appendonly", aof, "--appendfsync", "everysec",
		"--daemonize", "no", "--protected-mode", "no", "--loglevel", "notice",
		// Replicas sync at once instead of waiting 5 s for more replicas.
		"--repl-diskless-sync-delay", "0",
	}
	if r.opts.Cluster {
		timeout := r.opts.NodeTimeout
		if timeout <= 0 {
			timeout = time.Second
		}
		args = append(args,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(clusterPort),
			"--cluster-node-timeout", strconv.FormatInt(timeout.Milliseconds(), 10),
			// A replica may always take over, however long it was cut off:
			// tests kill masters on purpose.
			"--cluster-replica-validity-factor", "0")
	}
	return append(args, r.opts.Args...)
}

// start starts the process: on r.Port once it is known, else on free
// ports, retried when another process took the port first.
func (r *Redis) start() {
	r.t.Helper()
	fixed := r.Port != 0
	var lastErr error
	for range 5 {
		port, cport := r.Port, r.ClusterPort
		if !fixed {
			port = testutil.FreePort(r.t)
		}
		if r.opts.Cluster && cport == 0 {
			cport = testutil.FreePort(r.t)
		}
		p := testutil.Start(r.t, testutil.Spec{
			Name: r.opts.Name, Binary: r.bin, Args: r.args(port, cport), Dir: r.Dir,
			StopSignal: syscall.SIGKILL, TailLines: 20,
		})
		addr := "127.0.0.1:" + strconv.Itoa(port)
		err := waitPing(addr, p, startTimeout)
		if err == nil {
			r.mu.Lock()
			r.proc, r.Addr, r.Port, r.ClusterPort = p, addr, port, cport
			r.mu.Unlock()
			return
		}
		p.Kill()
		lastErr = fmt.Errorf("%w\n%s", err, p.Tail(10))
		if fixed || !strings.Contains(p.Output(), "in use") {
			break
		}
	}
	r.t.Fatalf("starting %s: %v", r.opts.Name, lastErr)
}

// waitPing waits until addr answers PING, or p exits.
func waitPing(addr string, p *testutil.Proc, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second})
	defer c.Close()
	return testutil.Poll(timeout, 10*time.Millisecond, func() error {
		if !p.Running() {
			return testutil.Permanent(fmt.Errorf("redis-server exited: %v", p.Err()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		// Another process may have taken the port first: it answers, but
		// it is not ours.
		if pid := infoField(info, "process_id"); pid != strconv.Itoa(p.Pid()) {
			return fmt.Errorf("%s is served by process %s, not %d", addr, pid, p.Pid())
		}
		return c.Ping(ctx).Err()
	})
}

// infoField returns the value of field in an INFO reply.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// Proc returns the current process (a new one after each restart).
func (r *Redis) Proc() *testutil.Proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// Running reports whether the server process is running.
func (r *Redis) Running() bool { return r.Proc().Running() }

// URL returns redis://Addr.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// Client returns a new go-redis client of this server, closed at cleanup.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server with SIGKILL, a crash: what is not yet in the
// append-only file (appendfsync everysec) is lost. It does nothing when the
// server is not running.
func (r *Redis) Stop() { r.Proc().Kill() }

// Start starts a stopped server again on the same port and data directory.
// It does nothing when the server is running.
func (r *Redis) Start() {
	r.t.Helper()
	if r.Running() {
		return
	}
	r.start()
}

// Restart is Stop then Start: a crash and a restart on the same port and
// data directory.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	r.start()
}

// Shutdown stops the server cleanly with SHUTDOWN, which writes out the
// append-only file first.
func (r *Redis) Shutdown() {
	r.t.Helper()
	p := r.Proc()
	if !p.Running() {
		return
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer c.Close()
	// The server closes the connection instead of answering: an error is
	// the expected outcome, exiting is what counts.
	_ = c.Shutdown(context.Background()).Err()
	if err := p.Wait(10 * time.Second); errors.Is(err, testutil.ErrRunning) {
		r.t.Fatalf("%s did not shut down: %s", r.opts.Name, p.Tail(10))
	}
}

// Pause stalls the server with SIGSTOP: connections stay open and nothing
// answers, as with a server stuck on a slow disk or a long script.
func (r *Redis) Pause() {
	r.t.Helper()
	if err := r.Proc().Pause(); err != nil {
		r.t.Fatalf("pausing %s: %v", r.opts.Name, err)
	}
}

// Resume continues a paused server.
func (r *Redis) Resume() {
	r.t.Helper()
	if err := r.Proc().Resume(); err != nil {
		r.t.Fatalf("resuming %s: %v", r.opts.Name, err)
	}
}

// CommandStats returns the calls of every command since the start or the
// last ResetStats (INFO commandstats), by lower-case name.
func (r *Redis) CommandStats() map[string]int64 {
	r.t.Helper()
	stats, err := commandStats(r.Addr)
	if err != nil {
		r.t.Fatal(err)
	}
	return stats
}

// ResetStats zeroes the server's statistics (CONFIG RESETSTAT).
func (r *Redis) ResetStats() {
	r.t.Helper()
	if err := resetStats(r.Addr); err != nil {
		r.t.Fatal(err)
	}
}

// do runs one command on addr with a short-lived connection: the harness
// talks to nodes that may be dead, paused or just promoted.
func do(addr string, args ...any) *redis.Cmd {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond, ReadTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := redis.NewCmd(ctx, args...)
	_ = c.Process(ctx, cmd)
	return cmd
}

func commandStats(addr string) (map[string]int64, error) {
	info, err := do(addr, "INFO", "commandstats").Text()
	if err != nil {
		return nil, fmt.Errorf("INFO commandstats on %s: %w", addr, err)
	}
	return ParseCommandStats(info), nil
}

func resetStats(addr string) error {
	if err := do(addr, "CONFIG", "RESETSTAT").Err(); err != nil {
		return fmt.Errorf("CONFIG RESETSTAT on %s: %w", addr, err)
	}
	return nil
}

// ParseCommandStats returns the calls per command of an INFO commandstats
// reply, by lower-case name ("evalsha", "set", "cluster|info"). Commands a
// Lua script runs are counted under their own names.
func ParseCommandStats(info string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// logName names a node's process and log file after its index.
func logName(kind string, i int) string { return kind + strconv.Itoa(i) }

// confPath is where a process's config file goes.
func confPath(dir, name string) string { return filepath.Join(dir, name+".conf") }
