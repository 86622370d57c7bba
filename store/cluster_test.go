//go:build cluster

// The store on a real Redis Cluster (3 masters, 3 replicas) and a real
// Sentinel setup (1 master, 2 replicas, 3 sentinels), started from the
// test with Debian's redis-server and redis-sentinel:
//
//	make test-cluster   # go test -tags cluster ./store/ ./e2e/
package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/detections/jwt"
	"github.com/rampartgw/rampart/ipfeed"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
	"github.com/rampartgw/rampart/testutil/redistest"
)

// slotWatch is a go-redis hook that checks every command the store sends:
// a script's declared keys, and a multi-key command's keys, must share one
// hash slot. It records which scripts ran.
type slotWatch struct {
	mu       sync.Mutex
	scripts  map[string]int // sha1 -> calls
	commands int
	bad      []string
}

func newSlotWatch() *slotWatch { return &slotWatch{scripts: map[string]int{}} }

func (w *slotWatch) DialHook(next redis.DialHook) redis.DialHook { return next }

func (w *slotWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		w.check(cmd)
		return next(ctx, cmd)
	}
}

func (w *slotWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			w.check(c)
		}
		return next(ctx, cmds)
	}
}

// multiKey lists the multi-key commands whose every argument from the
// first on is a key.
var multiKey = map[string]bool{"del": true, "unlink": true, "exists": true, "mget": true, "touch": true, "watch": true, "pfcount": true, "sunion": true, "sinter": true}

func (w *slotWatch) check(cmd redis.Cmder) {
	args := cmd.Args()
	name := strings.ToLower(cmd.Name())
	var keys []string
	switch {
	case name == "eval" || name == "evalsha" || name == "eval_ro" || name == "evalsha_ro":
		if len(args) < 3 {
			return
		}
		n, _ := strconv.Atoi(fmt.Sprint(args[2]))
		for i := 0; i < n && 3+i < len(args); i++ {
			keys = append(keys, fmt.Sprint(args[3+i]))
		}
		w.mu.Lock()
		if name == "evalsha" || name == "evalsha_ro" {
			w.scripts[fmt.Sprint(args[1])]++
		} else {
			w.scripts[redis.NewScript(fmt.Sprint(args[1])).Hash()]++
		}
		w.mu.Unlock()
	case multiKey[name]:
		for _, a := range args[1:] {
			keys = append(keys, fmt.Sprint(a))
		}
	case name == "zunionstore":
		keys = append(keys, fmt.Sprint(args[1]))
		n, _ := strconv.Atoi(fmt.Sprint(args[2]))
		for i := 0; i < n && 3+i < len(args); i++ {
			keys = append(keys, fmt.Sprint(args[3+i]))
		}
	case name == "keys" || name == "scan":
		w.mu.Lock()
		w.bad = append(w.bad, fmt.Sprintf("%v: keyspace walk", args))
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.commands++
	for _, k := range keys[min(1, len(keys)):] {
		if redistest.Slot(k) != redistest.Slot(keys[0]) {
			w.bad = append(w.bad, fmt.Sprintf("%v: %s (slot %d) and %s (slot %d)", args, keys[0], redistest.Slot(keys[0]), k, redistest.Slot(k)))
			return
		}
	}
}

func (w *slotWatch) report(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bad {
		t.Errorf("cross-slot or keyspace-walking command: %s", b)
	}
	var ran, missing []string
	for sha, first := range store.ScriptSHAs() {
		if w.scripts[sha] == 0 {
			missing = append(missing, first)
		} else {
			ran = append(ran, fmt.Sprintf("%s… ×%d", first[:min(len(first), 40)], w.scripts[sha]))
		}
	}
	slices.Sort(ran)
	t.Logf("%d commands checked; scripts run on one slot each:\n  %s", w.commands, strings.Join(ran, "\n  "))
	for _, m := range missing {
		t.Errorf("script never exercised on the cluster: %s", m)
	}
}

func clusterStore(t *testing.T, url string, partitions int) *store.Redis {
	t.Helper()
	cfg := storetest.Config(url)
	cfg.Partitions = partitions
	s, err := store.NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestContractCluster runs the store contract on a 3-master/3-replica
// Cluster, with a hook that checks every script and multi-key command for
// keys of one slot, then every global structure across its partitions.
func TestContractCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	s := clusterStore(t, c.URL(), 0)
	if got := s.Keys().Partitions(); got != 16 {
		t.Fatalf("partitions on a Cluster = %d, want 16 (the default)", got)
	}
	w := newSlotWatch()
	s.AddHook(w)
	testStore(t, s, func(d time.Duration) { time.Sleep(d) })
	t.Run("global structures are partitioned over the shards", func(t *testing.T) { testPartitions(t, c, s) })
	t.Run("every other script", func(t *testing.T) { testOtherScripts(t, s) })
	t.Run("tails read every partition", func(t *testing.T) { testTails(t, s) })
	w.report(t)
}

// testPartitions writes bans, range bans and events for many clients and
// reads them back merged; their keys must sit on every master.
func testPartitions(t *testing.T, c *redistest.Cluster, s *store.Redis) {
	ctx := t.Context()
	const n = 200
	for i := range n {
		client := netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(i % 250)}).String()
		if _, err := s.Ban(ctx, record.BanRequest{Client: client, Duration: time.Duration(i+60) * time.Second, Reason: "partition test", Detection: "test", Replica: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := s.BanIndex(ctx, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) < n {
		t.Fatalf("ban index holds %d of %d bans", len(idx), n)
	}
	for i := 1; i < len(idx); i++ {
		if idx[i].Until.After(idx[i-1].Until) {
			t.Fatalf("merged ban index not longest-lasting first at %d", i)
		}
	}
	if limited, _ := s.BanIndex(ctx, 10); len(limited) != 10 || !limited[0].Until.Equal(idx[0].Until) {
		t.Errorf("BanIndex(10) = %d bans, first %v; want the 10 longest", len(limited), limited)
	}
	list, err := s.ListBans(ctx, 10*n)
	if err != nil || len(list) < n {
		t.Fatalf("ListBans: %d, %v", len(list), err)
	}
	for i := range 20 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, byte(i), 0}), 24)
		if _, err := s.BanCIDR(ctx, p, time.Minute, "range", "test"); err != nil {
			t.Fatal(err)
		}
	}
	ranges, err := s.ListCIDRBans(ctx)
	if err != nil || len(ranges) != 20 {
		t.Fatalf("range bans: %d, %v", len(ranges), err)
	}

	ev := s.Events(store.EventsConfig{Enabled: true, Buffer: 4096}, &countingSink{}, nil)
	base := time.Now().Add(-time.Hour)
	for i := range 300 {
		ev.Emit(record.Event{Time: base.Add(time.Duration(i) * time.Millisecond), Type: record.EventRequestBlocked, Detection: "payload", Client: "192.0.2.1", Score: i})
		if i%37 == 0 {
			ev.Flush(ctx) // many batches: they go to the partitions in turn
		}
	}
	ev.Flush(ctx)
	if n, err := ev.Len(ctx); err != nil || n < 300 {
		t.Fatalf("stream length %d, %v", n, err)
	}
	got, err := ev.Query(ctx, record.EventQuery{Detection: "payload", Limit: 250})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 || got[0].Score != 299 || got[249].Score != 50 {
		t.Fatalf("merged query: %d events, first score %d, last %d; want 250 from 299 down", len(got), got[0].Score, got[len(got)-1].Score)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Score != got[i-1].Score-1 {
			t.Fatalf("merged query out of order at %d: %d after %d", i, got[i].Score, got[i-1].Score)
		}
	}

	// Where the global keys live: every partition is its own key, and the
	// partitions spread over every master.
	keys := s.Keys()
	perMaster := map[string]int{}
	for p := range keys.Partitions() {
		for _, k := range []string{keys.BanIndex(p), keys.CIDRBans(p), keys.EventsPart(p)} {
			perMaster[c.MasterFor(k).Addr]++
		}
	}
	if len(perMaster) != len(c.Masters()) {
		t.Errorf("partitions sit on %d masters of %d: %v", len(perMaster), len(c.Masters()), perMaster)
	}
	t.Logf("global keys per master: %v", perMaster)
}

// testOtherScripts runs the scripts outside the request path once each.
func testOtherScripts(t *testing.T, s *store.Redis) {
	ctx := t.Context()
	if err := s.Heartbeat(ctx, store.Heartbeat{Replica: "r1"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if fl, err := s.Fleet(ctx); err != nil || len(fl) != 1 {
		t.Fatalf("fleet %v, %v", fl, err)
	}
	if err := s.AddTop(ctx, []store.TopHit{{Time: time.Now(), Dim: store.TopClients, Member: "192.0.2.9", N: 3}}); err != nil {
		t.Fatal(err)
	}
	if top, err := s.Top(ctx, store.TopClients, time.Hour, 5); err != nil || len(top) == 0 {
		t.Fatalf("top %v, %v", top, err)
	}
	algs := s.JWTAlgStore(time.Hour, time.Minute)
	if err := algs.Learn(ctx, "iss-a", jwt.FamilyRSA); err != nil {
		t.Fatal(err)
	}
	if got, err := algs.Learned(ctx, "iss-a"); err != nil || got == 0 {
		t.Fatalf("learned %v, %v", got, err)
	}
	if held, _, err := s.ClaimAlert(ctx, "group-a", "r1", time.Minute); err != nil || !held {
		t.Fatalf("alert lease: %v, %v", held, err)
	}
	fs := s.FeedStore()
	if err := fs.PutMeta(ctx, "feed-a", ipfeed.Meta{Source: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := fs.Put(ctx, "feed-a", []byte("set"), ipfeed.Meta{Version: 1, Source: "x"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.FeedLease("r1").TryAcquire(ctx, "feed-a", time.Second); err != nil || !ok {
		t.Fatalf("feed lease: %v, %v", ok, err)
	}
}

// testTails: the console's tail and the top-offender consumer group see
// every event, whichever partition it went to.
func testTails(t *testing.T, s *store.Redis) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	tailed, consumed := 0, 0
	go s.TailEvents(ctx, func(evs []record.Event) { mu.Lock(); tailed += len(evs); mu.Unlock() })
	go s.ConsumeEvents(ctx, "cluster-test", "c1", func(evs []record.Event) { mu.Lock(); consumed += len(evs); mu.Unlock() })
	time.Sleep(500 * time.Millisecond) // both started: they read what comes after
	ev := s.Events(store.EventsConfig{Enabled: true, Buffer: 4096, Batch: 10}, &countingSink{}, nil)
	const n = 200
	for i := range n {
		ev.Emit(record.Event{Time: time.Now(), Type: record.EventRequestBlocked, Detection: "tail", Score: i})
		if i%10 == 9 {
			ev.Flush(ctx)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := tailed >= n && consumed >= n
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if tailed != n || consumed != n {
		t.Errorf("tail saw %d, consumer group %d of %d events written over %d partitions", tailed, consumed, n, s.Keys().Partitions())
	}
}

// TestContractSentinel runs the store contract through Sentinel (the
// redis+sentinel:// URL), then fails the master over and checks the store
// finds the new one.
func TestContractSentinel(t *testing.T) {
	sn := redistest.StartSentinel(t, 2, 3)
	s := clusterStore(t, sn.URL(), 0)
	if got := s.Keys().Partitions(); got != 1 {
		t.Fatalf("partitions through Sentinel = %d, want 1", got)
	}
	testStore(t, s, func(d time.Duration) { time.Sleep(d) })

	ctx := t.Context()
	if _, err := s.Ban(ctx, record.BanRequest{Client: "192.0.2.77", Duration: time.Hour, Reason: "before failover", Detection: "test", Replica: "test"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // replication is asynchronous: let the ban reach the replicas
	old := sn.KillMaster()
	took := sn.WaitFailover(60 * time.Second)
	start := time.Now()
	var last error
	for time.Since(start) < 30*time.Second {
		_, found, err := s.GetBan(ctx, "192.0.2.77")
		if err == nil && found {
			last = nil
			break
		}
		last = fmt.Errorf("found=%v err=%v", found, err)
		time.Sleep(50 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("after failover from %s the store does not read the ban: %v", old, last)
	}
	t.Logf("Sentinel failover from %s to %s in %v; store answered %v later", old, sn.MasterAddr(), took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
