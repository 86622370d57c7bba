//go:build cluster

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil/redistest"
)

// topology is a distributed store under test, with its faults.
type topology struct {
	name string
	// url is REDIS_URL for the gateways.
	url string
	// stats sums INFO commandstats over the masters; resetStats zeroes it.
	stats      func() map[string]int64
	resetStats func()
	// killMaster kills a master with SIGKILL; waitFailover waits for its
	// replica to take over and returns the time from the kill.
	killMaster   func() string
	waitFailover func() time.Duration
	// reshard moves slots between masters, keys included, while clients
	// run (nil: no slots to move). moving lists the slots it will move.
	moving  []int
	reshard func()
}

// TestClusterTopologies runs three gateway replicas behind HAProxy on a
// real 3-master/3-replica Redis Cluster and on a real Sentinel setup (1
// master, 2 replicas, 3 sentinels), and measures what the README's
// compatibility table claims: exact shared limits under races, a ban
// refused at the other replicas' next request, one round trip per allowed
// request, and requests through a master failover (and, on the Cluster, a
// slot migration) under load.
//
//	make test-cluster
func TestClusterTopologies(t *testing.T) {
	t.Run("cluster", func(t *testing.T) {
		rc := redistest.StartCluster(t, 3, 1)
		from, to := 0, 1
		var moving []int
		for _, r := range rc.Masters()[from].Slots {
			for s := r.Start; s <= r.End && len(moving) < 40; s++ {
				moving = append(moving, s)
			}
		}
		runTopology(t, topology{
			name: "cluster", url: rc.URL(),
			stats: rc.CommandStats, resetStats: rc.ResetStats,
			killMaster:   func() string { return rc.KillMaster(2).Addr },
			waitFailover: func() time.Duration { return rc.WaitFailover(60 * time.Second) },
			moving:       moving,
			reshard:      func() { rc.Reshard(from, to, len(moving)) },
		})
	})
	t.Run("sentinel", func(t *testing.T) {
		sn := redistest.StartSentinel(t, 2, 3)
		url := "redis+sentinel://" + strings.Join(sn.SentinelAddrs(), ",") + "/" + sn.MasterName
		master := func() *redistest.Redis { return sn.Master() }
		runTopology(t, topology{
			name: "sentinel", url: url,
			stats: func() map[string]int64 {
				return redistest.ParseCommandStats(master().Client().Info(context.Background(), "commandstats").Val())
			},
			resetStats:   func() { master().Client().ConfigResetStat(context.Background()) },
			killMaster:   sn.KillMaster,
			waitFailover: func() time.Duration { return sn.WaitFailover(60 * time.Second) },
		})
	})
}

func runTopology(t *testing.T, tp topology) {
	sum := &summary{}
	defer func() { t.Logf("%s summary:\n%s", tp.name, sum) }()
	pool := newIPPool()

	// Exactness, propagation and round trips on the e2e test budget (a
	// Redis timeout that a loaded box meets: exact counts need every
	// check answered by the store).
	a := newClusterOn(t, 3, tp.url, func(base string) string { return base + testBudget })
	t.Run("exact_limit_under_races", func(t *testing.T) { testRacingExactness(t, a, pool, sum, 100, nil) })
	t.Run("ban_refused_at_next_request", func(t *testing.T) { testBanNextRequest(t, a, pool, sum) })
	t.Run("round_trips_per_request", func(t *testing.T) { testRoundTripsOn(t, a, tp, pool, sum) })
	a.shutdown()

	// Faults on the production defaults (redis.timeout 50ms, breaker after
	// 5 failures, fail open with the per-replica fallback limit).
	b := newClusterOn(t, 3, tp.url, func(base string) string { return base })
	if tp.reshard != nil {
		t.Run("reshard_under_load", func(t *testing.T) { testReshardUnderLoad(t, b, tp, pool, sum) })
	}
	t.Run("master_killed_under_load", func(t *testing.T) { testFailoverUnderLoad(t, b, tp, pool, sum) })
}

// testRacingExactness: in each trial one fresh client sends 2×burst
// requests at once, spread over the three replicas; exactly the burst
// must pass. ips, when given, are the trial clients.
func testRacingExactness(t *testing.T, c *cluster, pool *ipPool, sum *summary, trials int, ips []netip.Addr) {
	const racers = 2 * rateBurst
	exact := 0
	var worst []string
	for trial := range trials {
		ip := pool.get()
		if ips != nil {
			ip = ips[trial]
		}
		cl := newClient(ip)
		var ok, refused, failed atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for r := range racers {
			g := c.gws[r%len(c.gws)]
			wg.Go(func() {
				<-start
				res := cl.get(t.Context(), g.url()+"/api/endpoint", nil)
				switch {
				case res.failed():
					failed.Add(1)
				case res.status == 200:
					ok.Add(1)
				default:
					refused.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		cl.close()
		if ok.Load() == rateBurst && failed.Load() == 0 {
			exact++
		} else if len(worst) < 5 {
			worst = append(worst, fmt.Sprintf("%s: %d allowed, %d refused, %d failed", ip, ok.Load(), refused.Load(), failed.Load()))
		}
	}
	if exact != trials {
		t.Errorf("%d of %d trials admitted exactly %d: %s; store failures: %s", exact, trials, rateBurst, strings.Join(worst, "; "), c.storeFailureDetail())
	}
	sum.add("exactness: %d/%d trials admitted exactly %d of %d racing requests over %d replicas (store failures %d)",
		exact, trials, rateBurst, racers, len(c.gws), c.storeFailures())
}

// testBanNextRequest: a ban through one replica's admin API is refused at
// another replica's very next request (its check reads the ban from the
// store), and reaches the other replicas' local caches by pub/sub.
func testBanNextRequest(t *testing.T, c *cluster, pool *ipPool, sum *summary) {
	const trials = 20
	var nextOK int
	var cached []time.Duration
	for trial := range trials {
		ip := pool.get()
		on, other := c.gws[trial%3], c.gws[(trial+1)%3]
		third := c.gws[(trial+2)%3]
		before2, _ := c.localBansCached(t.Context(), other)
		before3, _ := c.localBansCached(t.Context(), third)
		at := c.adminBan(t, on, ip.String(), "10m", "cluster e2e")
		cl := newClient(ip)
		res := cl.get(t.Context(), other.url()+"/api/endpoint", nil)
		cl.close()
		if res.banRefusal() {
			nextOK++
		} else {
			t.Errorf("trial %d: %s banned on %s, next request on %s: %d (%s)", trial, ip, on.name, other.name, res.status, refusalKind(res))
		}
		// Pub/sub: both other replicas cache the ban without asking.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			n2, _ := c.localBansCached(t.Context(), other)
			n3, _ := c.localBansCached(t.Context(), third)
			if n2 > before2 && n3 > before3 {
				cached = append(cached, time.Since(at))
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if len(cached) != trials {
		t.Errorf("the ban notification reached both other replicas' caches in %d of %d trials", len(cached), trials)
	}
	slices.Sort(cached)
	med, worst := time.Duration(0), time.Duration(0)
	if len(cached) > 0 {
		med, worst = cached[len(cached)/2], cached[len(cached)-1]
	}
	sum.add("ban propagation: refused at another replica's next request in %d/%d trials; pub/sub reached both other caches in %d/%d (median %v, worst %v, polled every 2ms)",
		nextOK, trials, len(cached), trials, med.Round(100*time.Microsecond), worst.Round(100*time.Microsecond))
}

// testRoundTripsOn counts the commands the masters served for n allowed
// requests, less what the same time with no traffic costs (heartbeats,
// event flushes).
func testRoundTripsOn(t *testing.T, c *cluster, tp topology, pool *ipPool, sum *summary) {
	const n = 300
	ips := pool.take(n)
	measure := func(traffic bool) (map[string]int64, time.Duration) {
		tp.resetStats()
		start := time.Now()
		if traffic {
			for i, ip := range ips {
				cl := newClient(ip)
				res := cl.get(t.Context(), c.gws[i%3].url()+"/api/endpoint", nil)
				cl.close()
				if res.status != 200 {
					t.Fatalf("%s: %d %v", ip, res.status, res.err)
				}
			}
		} else {
			time.Sleep(lastTraffic)
		}
		took := time.Since(start)
		return tp.stats(), took
	}
	busy, took := measure(true)
	lastTraffic = took
	idle, _ := measure(false)
	perReq := func(cmd string) float64 { return float64(busy[cmd]-idle[cmd]) / n }
	var total, idleTotal int64
	for k, v := range busy {
		if !strings.Contains(k, "|") && k != "info" && k != "config|resetstat" {
			total += v
		}
	}
	for k, v := range idle {
		if !strings.Contains(k, "|") && k != "info" {
			idleTotal += v
		}
	}
	scripts := perReq("evalsha") + perReq("eval")
	if scripts < 0.95 || scripts > 1.05 {
		t.Errorf("%.3f scripts per allowed request, want 1 (busy %v, idle %v)", scripts, busy, idle)
	}
	sum.add("round trips: %.3f scripts (EVALSHA) per allowed request, one round trip; %.3f commands per request as INFO commandstats counts them (the script's own calls inside Redis included), net of %d background commands in the same %v",
		scripts, float64(total-idleTotal)/n, idleTotal, took.Round(time.Millisecond))
}

// lastTraffic is how long the last traffic phase took (the idle
// measurement lasts as long).
var lastTraffic time.Duration

// loadResult is one request of a load phase.
type loadResult struct {
	at      time.Time
	latency time.Duration
	status  int
	err     error
	tag     int
}

// load sends requests through the load balancer from workers fresh
// clients at a time (each sends three, under the burst) until stop is
// closed; next picks a worker's next client and a tag for the report.
func load(ctx context.Context, c *cluster, workers int, next func() (netip.Addr, int), stop <-chan struct{}) []loadResult {
	var mu sync.Mutex
	var out []loadResult
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var mine []loadResult
			defer func() { mu.Lock(); out = append(out, mine...); mu.Unlock() }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ip, tag := next()
				cl := newClient(ip)
				for range 3 {
					start := time.Now()
					res := cl.get(ctx, c.lbURL()+"/api/endpoint", nil)
					mine = append(mine, loadResult{at: start, latency: time.Since(start), status: res.status, err: res.err, tag: tag})
				}
				cl.close()
			}
		})
	}
	wg.Wait()
	return out
}

// storeErrorWatch polls the replicas' failed check calls and circuit
// state every 100 ms and records when they last changed.
type storeErrorWatch struct {
	mu          sync.Mutex
	last        float64
	lastChange  time.Time
	circuitOpen bool
}

func watchStoreErrors(c *cluster, stop <-chan struct{}) *storeErrorWatch {
	w := &storeErrorWatch{last: float64(c.storeFailures())}
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			n := float64(c.storeFailures())
			open := false
			for _, g := range c.gws {
				open = open || c.metric(g, "rampart_store_circuit_open") == 1
			}
			w.mu.Lock()
			if n != w.last {
				w.last, w.lastChange = n, time.Now()
			}
			w.circuitOpen = w.circuitOpen || open
			w.mu.Unlock()
		}
	}()
	return w
}

// stats summarises a load phase: requests, failures (transport errors and
// 5xx; 200 and the gateway's 403/429 refusals are answers), and the
// latency percentiles of the requests sent in [from, to).
func stats(rs []loadResult, from, to time.Time, tag int) (n, failed int, p50, p99 time.Duration, codes map[int]int) {
	codes = map[int]int{}
	var lat []time.Duration
	for _, r := range rs {
		if r.at.Before(from) || !r.at.Before(to) || (tag >= 0 && r.tag != tag) {
			continue
		}
		n++
		codes[r.status]++
		if r.err != nil || r.status >= 500 {
			failed++
		}
		lat = append(lat, r.latency)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		p50, p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return
}

// testFailoverUnderLoad kills a master with SIGKILL under load and reports
// the requests failed, the latency during the failover and how long the
// replicas took to converge (their store calls succeed again).
func testFailoverUnderLoad(t *testing.T, c *cluster, tp topology, pool *ipPool, sum *summary) {
	stop := make(chan struct{})
	watchStop := make(chan struct{})
	defer close(watchStop)
	w := watchStoreErrors(c, watchStop)
	var results []loadResult
	done := make(chan struct{})
	go func() {
		results = load(t.Context(), c, 12, func() (netip.Addr, int) { return pool.get(), 0 }, stop)
		close(done)
	}()
	time.Sleep(2 * time.Second)
	killedAt := time.Now()
	killed := tp.killMaster()
	took := tp.waitFailover()
	time.Sleep(4 * time.Second)
	close(stop)
	<-done
	end := time.Now()

	w.mu.Lock()
	converged, opened := w.lastChange.Sub(killedAt), w.circuitOpen
	if w.lastChange.Before(killedAt) {
		converged = 0
	}
	w.mu.Unlock()
	n, failed, p50, p99, codes := stats(results, time.Time{}, end, -1)
	_, _, bp50, bp99, _ := stats(results, time.Time{}, killedAt, -1)
	fn, ffailed, fp50, fp99, _ := stats(results, killedAt, killedAt.Add(took+time.Second), -1)
	if failed > 0 {
		t.Errorf("%d of %d requests failed through the failover (answers %v)", failed, n, codes)
	}
	if converged > took+10*time.Second {
		t.Errorf("the replicas' store calls kept failing %v after the kill, %v after the failover", converged, converged-took)
	}
	sum.add("failover: master %s killed under load; %s promoted a replica in %v; replicas' store calls succeed again %v after the kill (circuit opened: %v)",
		killed, tp.name, took.Round(time.Millisecond), converged.Round(100*time.Millisecond), opened)
	sum.add("failover: %d requests, %d failed (answers %v); p50/p99 before the kill %v/%v, during the failover %v/%v (%d requests, %d failed), whole run %v/%v; store failures (fail open, fallback limit) %d",
		n, failed, codes, bp50.Round(100*time.Microsecond), bp99.Round(100*time.Microsecond),
		fp50.Round(100*time.Microsecond), fp99.Round(100*time.Microsecond), fn, ffailed,
		p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), c.storeFailures())
}

// testReshardUnderLoad moves slots between masters while half the load's
// clients hash to exactly those slots (they see MOVED, ASK and TRYAGAIN),
// then checks the limit is still exact for clients in the moved slots.
func testReshardUnderLoad(t *testing.T, c *cluster, tp topology, pool *ipPool, sum *summary) {
	inMoving := map[int]bool{}
	for _, s := range tp.moving {
		inMoving[s] = true
	}
	// Clients whose keys ({<ip>}) hash to the moving slots: about one
	// address in 400 of 127.40.0.0-127.71.255.255.
	var hot []netip.Addr
	for a := 0; a < 1<<21 && len(hot) < 6000; a++ {
		ip := netip.AddrFrom4([4]byte{127, 40 + byte(a>>16), byte(a >> 8), byte(a)})
		if a&0xff == 0 || a&0xff == 255 {
			continue
		}
		if inMoving[redistest.Slot(ip.String())] {
			hot = append(hot, ip)
		}
	}
	if len(hot) < 100 {
		t.Fatalf("only %d clients hash to the %d moving slots", len(hot), len(tp.moving))
	}
	check := hot[len(hot)-10:]
	hot = hot[:len(hot)-10]
	var hi atomic.Int32
	var flip atomic.Int32
	next := func() (netip.Addr, int) {
		if flip.Add(1)%2 == 0 {
			if i := int(hi.Add(1)); i < len(hot) {
				return hot[i], 1
			}
		}
		return pool.get(), 0
	}
	before := c.storeFailures()
	stop := make(chan struct{})
	done := make(chan struct{})
	var results []loadResult
	go func() {
		results = load(t.Context(), c, 12, next, stop)
		close(done)
	}()
	time.Sleep(time.Second)
	start := time.Now()
	tp.reshard()
	took := time.Since(start)
	time.Sleep(time.Second)
	close(stop)
	<-done
	n, failed, p50, p99, codes := stats(results, time.Time{}, time.Now(), -1)
	hn, hfailed, hp50, hp99, hcodes := stats(results, start, start.Add(took), 1)
	if failed > 0 {
		t.Errorf("%d of %d requests failed through the reshard (answers %v)", failed, n, codes)
	}
	if hn == 0 {
		t.Errorf("no request of a client in a moving slot was sent during the reshard")
	}
	sum.add("reshard: %d slots moved under load in %v; %d requests, %d failed (answers %v), p50/p99 %v/%v; clients in the moving slots during the move: %d requests, %d failed (answers %v), p50/p99 %v/%v; store failures (fail open) %d",
		len(tp.moving), took.Round(time.Millisecond), n, failed, codes, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond),
		hn, hfailed, hcodes, hp50.Round(100*time.Microsecond), hp99.Round(100*time.Microsecond), c.storeFailures()-before)
	t.Run("exact_after_reshard", func(t *testing.T) { testRacingExactness(t, c, pool, sum, len(check), check) })
}
