package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/testutil"
)

func init() {
	// Outage tests make go-redis log every failed dial.
	redis.SetLogger(quiet{})
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestRedisLifecycle(t *testing.T) {
	t.Parallel()
	r := StartRedis(t, Options{AppendOnly: true})
	ctx := t.Context()
	c := r.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.CommandStats()["set"]; got != 1 {
		t.Errorf("commandstats set = %d, want 1", got)
	}
	r.ResetStats()
	if got, ok := r.CommandStats()["set"]; ok {
		t.Errorf("set = %d after ResetStats", got)
	}

	t.Run("pause stalls, resume answers", func(t *testing.T) {
		r.Pause()
		short := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, ReadTimeout: 200 * time.Millisecond})
		defer short.Close()
		if err := short.Ping(ctx).Err(); err == nil {
			t.Error("a paused server answered PING")
		}
		r.Resume()
		if err := short.Ping(ctx).Err(); err != nil {
			t.Errorf("PING after Resume: %v", err)
		}
	})

	t.Run("shutdown and start keep the data and the port", func(t *testing.T) {
		addr := r.Addr
		r.Shutdown()
		if r.Running() {
			t.Fatal("running after Shutdown")
		}
		r.Start()
		if r.Addr != addr {
			t.Errorf("restarted on %s, was %s", r.Addr, addr)
		}
		if got, err := c.Get(ctx, "k").Result(); got != "v" {
			t.Errorf("after a clean restart GET k = %q, %v", got, err)
		}
	})

	t.Run("restart after a crash", func(t *testing.T) {
		pid := r.Proc().Pid()
		r.Restart()
		if r.Proc().Pid() == pid {
			t.Error("Restart kept the process")
		}
		if got, err := c.Get(ctx, "k").Result(); got != "v" {
			t.Errorf("after a crash GET k = %q, %v (it was in the AOF)", got, err)
		}
	})
}

func TestSlot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key string
		want      int
	}{
		{"check value of CRC16/XMODEM", "123456789", 0x31C3},
		{"plain key", "foo", 12182},
		{"hash tag", "{user1000}.following", Slot("user1000")},
		{"first tag only", "foo{bar}{zap}", Slot("bar")},
		{"empty tag hashes the whole key", "foo{}{bar}", int(crc16("foo{}{bar}") % Slots)},
		{"tag up to the first closing brace", "foo{{bar}}zap", Slot("{bar")},
		{"rampart client tag", "gw:ban:{192.0.2.1}", Slot("192.0.2.1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Slot(tc.key); got != tc.want {
				t.Errorf("Slot(%q) = %d, want %d", tc.key, got, tc.want)
			}
		})
	}
	// The same answers as Redis itself, on keys of every shape.
	node := StartRedis(t, Options{Cluster: true})
	keys := []string{"", "{", "}", "{}", "a{b", "x{y}z"}
	for _, tc := range tests {
		keys = append(keys, tc.key)
	}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("k%d{%d}%x", i, rand.IntN(50), rand.Uint64()))
	}
	for _, k := range keys {
		want, err := do(node.Addr, "CLUSTER", "KEYSLOT", k).Int()
		if err != nil {
			t.Fatal(err)
		}
		if got := Slot(k); got != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

func TestParseClusterNodes(t *testing.T) {
	t.Parallel()
	text := `07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002,host2 master,fail? - 0 1426238316232 2 connected 5461-10922 [5461->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 16383
`
	nodes, err := ParseClusterNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{
		{ID: "07c37dfeb235213a872192d90877d0cd55635b91", Addr: "127.0.0.1:30004", MasterID: "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca", Flags: []string{"slave"}},
		{ID: "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1", Addr: "127.0.0.1:30002", Master: true, Failed: true, Flags: []string{"master", "fail?"}, Slots: []SlotRange{{5461, 10922}}},
		{ID: "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca", Addr: "127.0.0.1:30001", Master: true, Flags: []string{"myself", "master"}, Slots: []SlotRange{{0, 5460}, {16383, 16383}}},
	}
	if fmt.Sprint(nodes) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", nodes, want)
	}
	if got := masters(nodes); len(got) != 1 || got[0].Addr != "127.0.0.1:30001" || got[0].SlotCount() != 5462 {
		t.Errorf("masters = %+v", got)
	}
	if _, err := ParseClusterNodes("abc 127.0.0.1:1@2 master\n"); err == nil {
		t.Error("a short line parsed")
	}
}

// errorStats sums INFO errorstats (e.g. "MOVED", "ASK") over addrs.
func errorStats(t *testing.T, addrs ...string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, a := range addrs {
		info, err := do(a, "INFO", "errorstats").Text()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(info) {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":count=")
			if name, isErr := strings.CutPrefix(name, "errorstat_"); ok && isErr {
				n, _ := strconv.ParseInt(rest, 10, 64)
				out[name] += n
			}
		}
	}
	return out
}

// keysInSlots returns n keys whose slots satisfy in.
func keysInSlots(prefix string, n int, in func(slot int) bool) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if k := prefix + strconv.Itoa(i); in(Slot(k)) {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestClusterRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	t.Parallel()
	began := time.Now()
	c := StartCluster(t, 3, 0)
	ctx := t.Context()
	cc := c.Client()

	t.Run("URL is what ParseClusterURL reads", func(t *testing.T) {
		o, err := redis.ParseClusterURL(c.URL())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(o.Addrs, c.Addrs()) {
			t.Errorf("ParseClusterURL(%s).Addrs = %v, want %v", c.URL(), o.Addrs, c.Addrs())
		}
	})

	t.Run("a key lands on the master of its slot", func(t *testing.T) {
		ms := c.Masters()
		if len(ms) != 3 || ms[0].Slots[0].Start != 0 || ms[2].Slots[len(ms[2].Slots)-1].End != Slots-1 {
			t.Fatalf("masters: %+v", ms)
		}
		perMaster := map[string]int{}
		for i := range 60 {
			key := fmt.Sprintf("route:%d", i)
			if err := cc.Set(ctx, key, i, 0).Err(); err != nil {
				t.Fatal(err)
			}
			owner := c.MasterFor(key)
			perMaster[owner.Addr]++
			if got, err := do(owner.Addr, "GET", key).Text(); err != nil || got != strconv.Itoa(i) {
				t.Errorf("GET %s on its master %s: %q %v", key, owner.Addr, got, err)
			}
			for _, m := range ms {
				if m.ID == owner.ID {
					continue
				}
				if err := do(m.Addr, "GET", key).Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED "+strconv.Itoa(Slot(key))+" "+owner.Addr) {
					t.Errorf("GET %s on %s, not its master: %v, want MOVED to %s", key, m.Addr, err, owner.Addr)
				}
			}
		}
		if len(perMaster) != 3 {
			t.Errorf("60 keys on %d masters: %v", len(perMaster), perMaster)
		}
	})

	t.Run("command stats are summed over the masters", func(t *testing.T) {
		c.ResetStats()
		for i := range 30 {
			if err := cc.Incr(ctx, fmt.Sprintf("stats:%d", i)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if got := c.CommandStats()["incr"]; got != 30 {
			t.Errorf("incr calls = %d, want 30", got)
		}
	})

	t.Run("reshard under traffic: the client follows MOVED and ASK, no write lost", func(t *testing.T) {
		const moved = 20
		// Keys in the slots that move: the lowest of master 0.
		keys := keysInSlots("live:", 40, func(s int) bool { return s < moved })
		for _, k := range keys {
			if err := cc.Set(ctx, k, 0, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		from, to := c.Masters()[0], c.Masters()[1]
		before := errorStats(t, from.Addr, to.Addr)
		var (
			stop   atomic.Bool
			wg     sync.WaitGroup
			mu     sync.Mutex
			incrs  = map[string]int{}
			errs   []error
			rounds atomic.Int64
		)
		for w := range 4 {
			wg.Go(func() {
				for !stop.Load() {
					for i := w; i < len(keys); i += 4 {
						err := cc.Incr(ctx, keys[i]).Err()
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
						} else {
							incrs[keys[i]]++
						}
						mu.Unlock()
					}
					rounds.Add(1)
				}
			})
		}
		testutil.Eventually(t, 10*time.Second, time.Millisecond, func() bool { return rounds.Load() > 8 }, "traffic")
		start := time.Now()
		slots := c.Reshard(0, 1, moved)
		took := time.Since(start)
		stop.Store(true)
		wg.Wait()
		if len(slots) != moved || slots[0] != 0 || slots[moved-1] != moved-1 {
			t.Errorf("moved slots %v", slots)
		}
		for _, s := range slots {
			if owner := c.MasterForSlot(s); owner.ID != to.ID {
				t.Errorf("slot %d served by %s after the reshard, want %s", s, owner.Addr, to.Addr)
			}
		}
		if len(errs) > 0 {
			t.Errorf("%d commands failed during the reshard, e.g. %v", len(errs), errs[0])
		}
		for _, k := range keys {
			got, err := do(to.Addr, "GET", k).Int()
			if err != nil || got != incrs[k] {
				t.Errorf("%s on its new master: %d %v, want %d", k, got, err, incrs[k])
			}
		}
		after := errorStats(t, from.Addr, to.Addr)
		total := 0
		for _, n := range incrs {
			total += n
		}
		t.Logf("reshard of %d slots (%d keys) in %v under traffic: %d INCRs, %d failed; redirects: %d MOVED, %d ASK",
			moved, len(keys), took.Round(time.Millisecond), total, len(errs), after["MOVED"]-before["MOVED"], after["ASK"]-before["ASK"])
		if after["MOVED"] == before["MOVED"] {
			t.Error("the client was never redirected with MOVED: the keys did not move under it")
		}
	})

	t.Run("mid-migration: ASK for moved keys, TRYAGAIN across both, MOVED after", func(t *testing.T) {
		ms := c.Masters()
		slot := ms[2].Slots[0].Start
		var keys []string // two keys of one slot
		for i := 0; len(keys) < 2; i++ {
			if k := fmt.Sprintf("ask:{t%d}", i); Slot(k) == slot {
				keys = append(keys, k, k+":second")
			}
		}
		for _, k := range keys {
			if err := cc.Set(ctx, k, "v-"+k, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		m := c.BeginMigration(slot, 0)
		if n := m.MoveKeys(1); n != 1 {
			t.Fatalf("moved %d keys, want 1", n)
		}
		before := errorStats(t, m.From.Addr)
		for _, k := range keys {
			if got, err := cc.Get(ctx, k).Result(); got != "v-"+k {
				t.Errorf("GET %s mid-migration: %q %v", k, got, err)
			}
		}
		if got := errorStats(t, m.From.Addr)["ASK"] - before["ASK"]; got != 1 {
			t.Errorf("%d ASK redirects for the one moved key, want 1", got)
		}
		if err := cc.MGet(ctx, keys...).Err(); err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
			t.Errorf("MGET over a half-moved slot: %v, want TRYAGAIN", err)
		}
		m.Finish()
		c.WaitHealthy(10 * time.Second)
		if owner := c.MasterForSlot(slot); owner.ID != m.To.ID {
			t.Fatalf("slot %d served by %s, want %s", slot, owner.Addr, m.To.Addr)
		}
		if got, err := cc.MGet(ctx, keys...).Result(); err != nil || got[0] != "v-"+keys[0] || got[1] != "v-"+keys[1] {
			t.Errorf("MGET after the move: %v %v", got, err)
		}
	})
	t.Logf("TestClusterRouting wall clock %v", time.Since(began).Round(time.Millisecond))
}

// firstSuccess runs set every 20 ms from now until it succeeds or deadline
// passes and returns when it first succeeded (zero if never).
func firstSuccess(deadline time.Time, set func() error) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		for time.Now().Before(deadline) {
			if set() == nil {
				out <- time.Now()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		out <- time.Time{}
	}()
	return out
}

func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster and fails a master over")
	}
	t.Parallel()
	began := time.Now()
	c := StartCluster(t, 3, 1)
	ctx := t.Context()
	cc := c.Client()
	// A client with go-redis' defaults (60 s slot-map reload), as an
	// application would build it.
	stock := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = stock.Close() })

	const key = "failover:{victim}"
	victim := c.MasterIndex(key)
	owner := c.Masters()[victim]
	// Written and acknowledged by the replica, so it must survive.
	direct := redis.NewClient(&redis.Options{Addr: owner.Addr})
	defer direct.Close()
	conn := direct.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, key, "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}
	for _, cl := range []*redis.ClusterClient{cc, stock} {
		if got, err := cl.Get(ctx, key).Result(); got != "kept" {
			t.Fatalf("GET before the kill: %q %v", got, err)
		}
	}

	killed := c.KillMaster(victim)
	killedAt := time.Now()
	probe := func(cl *redis.ClusterClient) func() error {
		return func() error {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			return cl.Set(ctx, "failover:{victim}:after", "x", 0).Err()
		}
	}
	harnessOK := firstSuccess(killedAt.Add(20*time.Second), probe(cc))
	stockOK := firstSuccess(killedAt.Add(8*time.Second), probe(stock))

	took := c.WaitFailover(15 * time.Second)
	if took > 15*time.Second {
		t.Errorf("failover took %v", took)
	}
	promoted := c.Masters()[victim]
	if promoted.ID == killed.ID || promoted.MasterID != "" || !slices.Equal(promoted.Slots, killed.Slots) {
		t.Errorf("after the failover master %d is %+v, killed %+v", victim, promoted, killed)
	}
	at := <-harnessOK
	if at.IsZero() {
		t.Fatal("writes through the harness client never succeeded after the failover")
	}
	if got, err := cc.Get(ctx, key).Result(); got != "kept" {
		t.Errorf("GET of a replicated key after the failover: %q %v", got, err)
	}
	stockAt := <-stockOK
	stockNote := fmt.Sprintf("%v after the kill", stockAt.Sub(killedAt).Round(time.Millisecond))
	if stockAt.IsZero() {
		stockNote = "not within 8 s of the kill (no MOVED, 60 s slot-map reload: redis/go-redis#3979)"
	}
	t.Logf("cluster failover %v (node timeout %v); harness client writes again %v after the kill; stock go-redis client: %s",
		took.Round(time.Millisecond), DefaultNodeTimeout, at.Sub(killedAt).Round(time.Millisecond), stockNote)

	// The killed master comes back as a replica of its successor.
	start := time.Now()
	c.Server(killed.Addr).Start()
	c.WaitHealthy(30 * time.Second)
	for _, n := range c.Topology() {
		if n.Addr == killed.Addr && (n.Master || n.MasterID != promoted.ID) {
			t.Errorf("restarted old master: %+v, want a replica of %s", n, promoted.ID)
		}
	}
	t.Logf("old master rejoined as a replica in %v; TestClusterFailover wall clock %v",
		time.Since(start).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis Sentinel and fails the master over")
	}
	t.Parallel()
	began := time.Now()
	s := StartSentinel(t, 2, 3)
	ctx := t.Context()

	o, err := redis.ParseFailoverURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if o.MasterName != s.MasterName || !slices.Equal(o.SentinelAddrs, s.SentinelAddrs()) {
		t.Errorf("ParseFailoverURL(%s) = %q %v", s.URL(), o.MasterName, o.SentinelAddrs)
	}

	fc := s.Client()
	conn := fc.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, "k", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Do(ctx, "WAIT", 2, 5000).Int(); err != nil || n != 2 {
		t.Fatalf("WAIT 2: %d %v", n, err)
	}
	old := s.KillMaster()
	killedAt := time.Now()
	writes := firstSuccess(killedAt.Add(30*time.Second), func() error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return fc.Set(ctx, "after", "x", 0).Err()
	})
	took := s.WaitFailover(20 * time.Second)
	if now := s.MasterAddr(); now == old {
		t.Fatalf("master still %s", now)
	}
	at := <-writes
	if at.IsZero() {
		t.Fatal("the failover client never wrote after the failover")
	}
	if got, err := fc.Get(ctx, "k").Result(); got != "kept" {
		t.Errorf("GET of a replicated key after the failover: %q %v", got, err)
	}
	if err := fc.Get(ctx, "after").Err(); errors.Is(err, redis.Nil) {
		t.Error("the write after the failover is gone")
	}
	t.Logf("sentinel failover %v (down-after %v); failover client writes again %v after the kill; TestSentinelFailover wall clock %v",
		took.Round(time.Millisecond), SentinelDownAfter, at.Sub(killedAt).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
