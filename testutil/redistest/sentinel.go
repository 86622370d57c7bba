package redistest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/testutil"
)

// Sentinel timings StartSentinel configures: a master is subjectively down
// after SentinelDownAfter without an answer, and a failover attempt that
// stalls is retried after twice SentinelFailoverTimeout.
const (
	SentinelDownAfter       = time.Second
	SentinelFailoverTimeout = 3 * time.Second
)

// Sentinel is a master with replicas (redis-server --replicaof) watched by
// redis-sentinel processes. Its methods must be called from the test's
// goroutine, as they fail the test on error.
type Sentinel struct {
	// MasterName is the name the sentinels monitor the master under.
	MasterName string

	t         testing.TB
	servers   []*Redis // index 0 is the first master
	sentinels []*sentinelProc

	mu         sync.Mutex
	killedAddr string
	killedAt   time.Time
}

type sentinelProc struct {
	addr string
	proc *testutil.Proc
}

// StartSentinel starts a master, replicas replicas of it and sentinels
// sentinels monitoring it (quorum: a majority of the sentinels), and
// returns when every sentinel knows the master, every replica and every
// other sentinel, and every replica is in sync. Everything stops at
// cleanup. It skips the test when redis-server is not installed.
func StartSentinel(t testing.TB, replicas, sentinels int) *Sentinel {
	t.Helper()
	if replicas < 0 || sentinels < 1 {
		t.Fatalf("StartSentinel: %d replicas, %d sentinels", replicas, sentinels)
	}
	start := time.Now()
	s := &Sentinel{MasterName: "rampart-test", t: t}
	master := StartRedis(t, Options{Name: logName("data", 0)})
	s.servers = append(s.servers, master)
	for i := 1; i <= replicas; i++ {
		s.servers = append(s.servers, StartRedis(t, Options{
			Name: logName("data", i), Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)},
		}))
	}
	// Replicas first in sync, so the sentinels' first INFO of the master
	// lists them all.
	testutil.EventuallyErr(t, 30*time.Second, 20*time.Millisecond, func() error {
		for _, r := range s.servers[1:] {
			info, err := do(r.Addr, "INFO", "replication").Text()
			if err != nil {
				return err
			}
			if link := infoField(info, "master_link_status"); link != "up" {
				return fmt.Errorf("replica %s: master_link_status %q", r.Addr, link)
			}
		}
		return nil
	}, "the replicas to sync")
	bin, sentinelFlag := sentinelBinary(t)
	quorum := sentinels/2 + 1
	for i := range sentinels {
		s.sentinels = append(s.sentinels, s.startSentinel(t, bin, sentinelFlag, i, master.Port, quorum))
	}
	s.waitDiscovered(replicas, 30*time.Second)
	t.Logf("sentinel setup up in %v: master %s, replicas %v, sentinels %v (quorum %d)",
		time.Since(start).Round(time.Millisecond), master.Addr, addrsOf(s.servers[1:]), s.SentinelAddrs(), quorum)
	return s
}

// sentinelBinary returns redis-sentinel, or redis-server with --sentinel.
func sentinelBinary(t testing.TB) (bin string, flag bool) {
	if p, err := exec.LookPath("redis-sentinel"); err == nil {
		return p, false
	}
	return lookPath(t, "redis-server", "redis-sentinel"), true
}

func (s *Sentinel) startSentinel(t testing.TB, bin string, flag bool, i, masterPort, quorum int) *sentinelProc {
	t.Helper()
	name := logName("sentinel", i)
	dir := t.TempDir()
	var lastErr error
	for range 5 {
		port := testutil.FreePort(t)
		// Sentinel rewrites its config file with what it learns, so it
		// must be a writable file of its own.
		conf := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
dir %s
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, port, dir, s.MasterName, masterPort, quorum,
			s.MasterName, SentinelDownAfter.Milliseconds(), s.MasterName, SentinelFailoverTimeout.Milliseconds(), s.MasterName)
		path := confPath(dir, name)
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{path}
		if flag {
			args = append(args, "--sentinel")
		}
		p := testutil.Start(t, testutil.Spec{Name: name, Binary: bin, Args: args, Dir: dir, StopSignal: syscall.SIGKILL, TailLines: 20})
		addr := "127.0.0.1:" + strconv.Itoa(port)
		err := waitPing(addr, p, startTimeout)
		if err == nil {
			return &sentinelProc{addr: addr, proc: p}
		}
		p.Kill()
		lastErr = fmt.Errorf("%w\n%s", err, p.Tail(10))
		if !strings.Contains(p.Output(), "in use") {
			break
		}
	}
	t.Fatalf("starting %s: %v", name, lastErr)
	return nil
}

// waitDiscovered waits until every sentinel sees the master as up, with
// replicas replicas in sync and every other sentinel.
func (s *Sentinel) waitDiscovered(replicas int, timeout time.Duration) {
	s.t.Helper()
	testutil.EventuallyErr(s.t, timeout, 50*time.Millisecond, func() error {
		for _, sp := range s.sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: sp.addr, MaxRetries: -1})
			err := func() error {
				defer sc.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				m, err := sc.Master(ctx, s.MasterName).Result()
				if err != nil {
					return fmt.Errorf("SENTINEL MASTER on %s: %w", sp.addr, err)
				}
				if m["flags"] != "master" || m["num-slaves"] != strconv.Itoa(replicas) || m["num-other-sentinels"] != strconv.Itoa(len(s.sentinels)-1) {
					return fmt.Errorf("sentinel %s: master flags %q, %s replicas, %s other sentinels", sp.addr, m["flags"], m["num-slaves"], m["num-other-sentinels"])
				}
				rs, err := sc.Replicas(ctx, s.MasterName).Result()
				if err != nil {
					return fmt.Errorf("SENTINEL REPLICAS on %s: %w", sp.addr, err)
				}
				for _, r := range rs {
					if r["flags"] != "slave" || r["master-link-status"] != "ok" {
						return fmt.Errorf("sentinel %s: replica %s:%s flags %q, link %q", sp.addr, r["ip"], r["port"], r["flags"], r["master-link-status"])
					}
				}
				return nil
			}()
			if err != nil {
				return err
			}
		}
		return nil
	}, "the sentinels to discover the master, its replicas and each other")
}

func addrsOf(rs []*Redis) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Addr
	}
	return out
}

// SentinelAddrs returns the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.sentinels))
	for i, sp := range s.sentinels {
		out[i] = sp.addr
	}
	return out
}

// SentinelProcs returns the sentinel processes, for stopping one.
func (s *Sentinel) SentinelProcs() []*testutil.Proc {
	out := make([]*testutil.Proc, len(s.sentinels))
	for i, sp := range s.sentinels {
		out[i] = sp.proc
	}
	return out
}

// Servers returns the data nodes, the first master first.
func (s *Sentinel) Servers() []*Redis { return slices.Clone(s.servers) }

// URL returns the setup as go-redis ParseFailoverURL reads it:
// redis://<first sentinel>?master_name=<name>&addr=<second>&addr=<third>.
func (s *Sentinel) URL() string {
	addrs := s.SentinelAddrs()
	q := url.Values{"master_name": {s.MasterName}}
	if len(addrs) > 1 {
		q["addr"] = addrs[1:]
	}
	return (&url.URL{Scheme: "redis", Host: addrs[0], RawQuery: q.Encode()}).String()
}

// Client returns a go-redis failover client (it asks the sentinels for the
// master and follows a failover), closed at cleanup.
func (s *Sentinel) Client() *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// MasterAddr returns the master's address as the first answering sentinel
// reports it.
func (s *Sentinel) MasterAddr() string {
	s.t.Helper()
	var lastErr error
	for _, sp := range s.sentinels {
		if !sp.proc.Running() {
			continue
		}
		addr, err := masterAddrBy(sp.addr, s.MasterName)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	s.t.Fatalf("no sentinel reports the master: %v", lastErr)
	return ""
}

// Master returns the data node that the sentinels report as master.
func (s *Sentinel) Master() *Redis {
	s.t.Helper()
	addr := s.MasterAddr()
	for _, r := range s.servers {
		if r.Addr == addr {
			return r
		}
	}
	s.t.Fatalf("the sentinels' master %s is not one of the data nodes", addr)
	return nil
}

func masterAddrBy(sentinel, name string) (string, error) {
	hp, err := do(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).StringSlice()
	if err != nil {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %w", sentinel, err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %v", sentinel, hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// KillMaster kills the current master with SIGKILL and returns its
// address. WaitFailover then waits for the sentinels to promote a replica.
func (s *Sentinel) KillMaster() string {
	s.t.Helper()
	m := s.Master()
	m.Stop()
	s.mu.Lock()
	s.killedAddr, s.killedAt = m.Addr, time.Now()
	s.mu.Unlock()
	return m.Addr
}

// WaitFailover waits until every running sentinel reports the same new
// master and that node answers ROLE as master. It returns the time from
// the kill to then, and fails the test if that takes longer than timeout.
func (s *Sentinel) WaitFailover(timeout time.Duration) time.Duration {
	s.t.Helper()
	s.mu.Lock()
	killed, at := s.killedAddr, s.killedAt
	s.killedAddr = ""
	s.mu.Unlock()
	if killed == "" {
		s.t.Fatal("WaitFailover without KillMaster")
	}
	var promoted string
	err := testutil.Poll(time.Until(at.Add(timeout)), 10*time.Millisecond, func() error {
		promoted = ""
		for _, sp := range s.sentinels {
			if !sp.proc.Running() {
				continue
			}
			addr, err := masterAddrBy(sp.addr, s.MasterName)
			if err != nil {
				return err
			}
			if addr == killed {
				return fmt.Errorf("sentinel %s still reports %s", sp.addr, killed)
			}
			if promoted != "" && addr != promoted {
				return fmt.Errorf("sentinels disagree: %s and %s", promoted, addr)
			}
			promoted = addr
		}
		role, err := do(promoted, "ROLE").Slice()
		if err != nil {
			return fmt.Errorf("ROLE on %s: %w", promoted, err)
		}
		if len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("%s is %v", promoted, role)
		}
		return nil
	})
	took := time.Since(at)
	if err != nil {
		s.t.Fatalf("no sentinel failover from %s within %v: %v", killed, timeout, err)
	}
	s.t.Logf("sentinel failover: %s replaced by %s %v after the kill", killed, promoted, took.Round(time.Millisecond))
	return took
}
