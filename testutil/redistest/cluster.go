package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/testutil"
)

// DefaultNodeTimeout is the cluster-node-timeout StartCluster uses: short,
// so a killed master is replaced within a few seconds, and long enough
// that a busy CI machine does not fail nodes over by itself.
const DefaultNodeTimeout = 1500 * time.Millisecond

// ClusterOptions configures StartClusterWith.
type ClusterOptions struct {
	// Masters is the number of masters (at least 1; redis-cli wants 3
	// for a cluster it creates).
	Masters int
	// ReplicasPerMaster is the number of replicas of each master.
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout; DefaultNodeTimeout when zero.
	NodeTimeout time.Duration
	// Args are more redis-server arguments for every node.
	Args []string
}

// Cluster is a Redis Cluster of real redis-server processes on loopback,
// created with redis-cli --cluster create. Its methods must be called from
// the test's goroutine, as they fail the test on error.
type Cluster struct {
	t       testing.TB
	opts    ClusterOptions
	servers []*Redis // every node, in start order

	mu       sync.Mutex
	killed   *Node // the master KillMaster killed, until WaitFailover
	killedAt time.Time
}

// Node is one cluster node as CLUSTER NODES describes it.
type Node struct {
	// ID is the node's 40-character cluster id.
	ID string
	// Addr is host:port of its client port.
	Addr string
	// Master reports the master role; MasterID is the master of a replica.
	Master   bool
	MasterID string
	// Failed reports that the node is flagged fail or fail? (pfail).
	Failed bool
	// Flags are all the flags, e.g. "myself", "master", "fail?".
	Flags []string
	// Slots are the slot ranges a master serves.
	Slots []SlotRange
}

// Owns reports whether the node serves slot.
func (n Node) Owns(slot int) bool {
	return slices.ContainsFunc(n.Slots, func(r SlotRange) bool { return r.Contains(slot) })
}

// SlotCount returns how many slots the node serves.
func (n Node) SlotCount() int {
	total := 0
	for _, r := range n.Slots {
		total += r.End - r.Start + 1
	}
	return total
}

// StartCluster starts masters × (1 + replicasPerMaster) cluster nodes,
// creates the cluster with redis-cli and returns when every node reports
// cluster_state:ok, every slot is served, all nodes agree on who serves
// which, and every replica is in sync. Everything stops at cleanup. It
// skips the test when redis-server or redis-cli is not installed.
func StartCluster(t testing.TB, masters, replicasPerMaster int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Masters: masters, ReplicasPerMaster: replicasPerMaster})
}

// StartClusterWith is StartCluster with more options.
func StartClusterWith(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	cli := lookPath(t, "redis-cli", "redis-tools")
	if opts.Masters < 1 || opts.ReplicasPerMaster < 0 {
		t.Fatalf("StartCluster: %d masters, %d replicas per master", opts.Masters, opts.ReplicasPerMaster)
	}
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = DefaultNodeTimeout
	}
	c := &Cluster{t: t, opts: opts}
	start := time.Now()
	n := opts.Masters * (1 + opts.ReplicasPerMaster)
	for i := range n {
		c.servers = append(c.servers, StartRedis(t, Options{
			Name: logName("node", i), Cluster: true, NodeTimeout: opts.NodeTimeout, Args: opts.Args,
		}))
	}
	// redis-cli makes the first Masters nodes masters and spreads the rest
	// over them as replicas; the harness reads the outcome back rather
	// than relying on that.
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.ReplicasPerMaster), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out.String())
	}
	c.WaitHealthy(30 * time.Second)
	t.Logf("redis cluster of %d masters and %d replicas each up in %v: %s",
		opts.Masters, opts.ReplicasPerMaster, time.Since(start).Round(time.Millisecond), c.describe())
	return c
}

// describe lists the masters with their slots and replicas.
func (c *Cluster) describe() string {
	nodes := c.Topology()
	var parts []string
	for _, m := range c.Masters() {
		s := fmt.Sprintf("%s %v", m.Addr, m.Slots)
		for _, r := range nodes {
			if r.MasterID == m.ID {
				s += " ← " + r.Addr
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// Addrs returns the address of every node, in start order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr
	}
	return addrs
}

// URL returns the cluster as go-redis ParseClusterURL reads it:
// redis://<first node>?addr=<second>&addr=<third>...
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	q := url.Values{"addr": addrs[1:]}
	return (&url.URL{Scheme: "redis", Host: addrs[0], RawQuery: q.Encode()}).String()
}

// Client returns a cluster client of every node, closed at cleanup. It
// reloads the slot map every second: by default go-redis keeps sending a
// dead master's slots to it for up to a minute when no MOVED tells it
// otherwise (redis/go-redis#3979), and the harness's own checks should not
// wait for that.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Servers returns every node's process, in start order, for stopping,
// pausing or restarting one.
func (c *Cluster) Servers() []*Redis { return slices.Clone(c.servers) }

// Server returns the process of the node at addr.
func (c *Cluster) Server(addr string) *Redis {
	c.t.Helper()
	for _, s := range c.servers {
		if s.Addr == addr {
			return s
		}
	}
	c.t.Fatalf("no cluster node at %s", addr)
	return nil
}

// live returns the nodes whose process runs.
func (c *Cluster) live() []*Redis {
	var out []*Redis
	for _, s := range c.servers {
		if s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// Topology returns every node as a running node sees it (CLUSTER NODES).
func (c *Cluster) Topology() []Node {
	c.t.Helper()
	var lastErr error
	for _, s := range c.live() {
		nodes, err := clusterNodes(s.Addr)
		if err == nil {
			return nodes
		}
		lastErr = err
	}
	c.t.Fatalf("reading the cluster topology: no node answered: %v", lastErr)
	return nil
}

// Masters returns the masters that are not failed, those serving slots
// first, ordered by their lowest slot (so index 0 serves slot 0 in a new
// cluster, and a promoted replica takes its old master's index).
func (c *Cluster) Masters() []Node {
	c.t.Helper()
	return masters(c.Topology())
}

func masters(nodes []Node) []Node {
	var out []Node
	for _, n := range nodes {
		if n.Master && !n.Failed {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b Node) int {
		switch {
		case len(a.Slots) == 0 && len(b.Slots) == 0:
			return strings.Compare(a.Addr, b.Addr)
		case len(a.Slots) == 0:
			return 1
		case len(b.Slots) == 0:
			return -1
		}
		return a.Slots[0].Start - b.Slots[0].Start
	})
	return out
}

// MasterForSlot returns the master serving slot.
func (c *Cluster) MasterForSlot(slot int) Node {
	c.t.Helper()
	for _, m := range c.Masters() {
		if m.Owns(slot) {
			return m
		}
	}
	c.t.Fatalf("no master serves slot %d", slot)
	return Node{}
}

// MasterFor returns the master serving key's slot.
func (c *Cluster) MasterFor(key string) Node {
	c.t.Helper()
	return c.MasterForSlot(Slot(key))
}

// MasterIndex returns the index in Masters of the master serving key.
func (c *Cluster) MasterIndex(key string) int {
	c.t.Helper()
	slot := Slot(key)
	for i, m := range c.Masters() {
		if m.Owns(slot) {
			return i
		}
	}
	c.t.Fatalf("no master serves slot %d", slot)
	return -1
}

// CommandStats returns INFO commandstats summed over the running masters:
// the commands clients sent (replicas also count what they replay, so
// they are left out).
func (c *Cluster) CommandStats() map[string]int64 {
	c.t.Helper()
	sum := map[string]int64{}
	for _, m := range c.Masters() {
		stats, err := commandStats(m.Addr)
		if err != nil {
			c.t.Fatal(err)
		}
		for k, v := range stats {
			sum[k] += v
		}
	}
	return sum
}

// ResetStats zeroes the statistics of every running node.
func (c *Cluster) ResetStats() {
	c.t.Helper()
	for _, s := range c.live() {
		if err := resetStats(s.Addr); err != nil {
			c.t.Fatal(err)
		}
	}
}

// KillMaster kills Masters()[i] with SIGKILL and returns it. WaitFailover
// then waits for its replica to take over.
func (c *Cluster) KillMaster(i int) Node {
	c.t.Helper()
	ms := c.Masters()
	if i < 0 || i >= len(ms) {
		c.t.Fatalf("KillMaster(%d): there are %d masters", i, len(ms))
	}
	m := ms[i]
	c.Server(m.Addr).Stop()
	c.mu.Lock()
	c.killed, c.killedAt = &m, time.Now()
	c.mu.Unlock()
	return m
}

// WaitFailover waits until a replica of the master KillMaster killed serves
// all its slots and answers ROLE as master, and every running node reports
// cluster_state:ok and the same slot map. It returns the time from the
// kill to then, and fails the test if that takes longer than timeout.
func (c *Cluster) WaitFailover(timeout time.Duration) time.Duration {
	c.t.Helper()
	c.mu.Lock()
	killed, at := c.killed, c.killedAt
	c.killed = nil
	c.mu.Unlock()
	if killed == nil {
		c.t.Fatal("WaitFailover without KillMaster")
	}
	var promoted string
	err := testutil.Poll(time.Until(at.Add(timeout)), 10*time.Millisecond, func() error {
		views, err := c.agreedViews()
		if err != nil {
			return err
		}
		for _, r := range killed.Slots {
			owner, ok := ownerOf(views, r.Start)
			if !ok || owner.ID == killed.ID || owner.Failed {
				return fmt.Errorf("slot %d still served by %s", r.Start, killed.Addr)
			}
			promoted = owner.Addr
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
		c.t.Fatalf("no failover of %s within %v: %v", killed.Addr, timeout, err)
	}
	c.t.Logf("cluster failover: %s replaced by %s %v after the kill", killed.Addr, promoted, took.Round(time.Millisecond))
	return took
}

// WaitHealthy waits until every running node reports cluster_state:ok with
// all 16384 slots served, every running node sees every other as up and
// agrees on the slot map, and every running replica's link to its master
// is up.
func (c *Cluster) WaitHealthy(timeout time.Duration) {
	c.t.Helper()
	err := testutil.Poll(timeout, 20*time.Millisecond, func() error {
		views, err := c.agreedViews()
		if err != nil {
			return err
		}
		live := c.live()
		for addr, nodes := range views {
			for _, s := range live {
				n, ok := nodeAt(nodes, s.Addr)
				if !ok || n.Failed || slices.Contains(n.Flags, "handshake") {
					return fmt.Errorf("%s does not see %s as up", addr, s.Addr)
				}
			}
		}
		for _, s := range live {
			if n, _ := nodeAt(views[s.Addr], s.Addr); n.Master {
				continue
			}
			info, _ := do(s.Addr, "INFO", "replication").Text()
			link := infoField(info, "master_link_status")
			if link != "up" {
				return fmt.Errorf("replica %s: master_link_status %q", s.Addr, link)
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("cluster not healthy: %v", err)
	}
}

// agreedViews returns every running node's CLUSTER NODES, once each one
// reports cluster_state:ok and all of them agree on which node serves
// which slot.
func (c *Cluster) agreedViews() (map[string][]Node, error) {
	views := map[string][]Node{}
	var first, firstAddr string
	for _, s := range c.live() {
		info, err := do(s.Addr, "CLUSTER", "INFO").Text()
		if err != nil {
			return nil, fmt.Errorf("CLUSTER INFO on %s: %w", s.Addr, err)
		}
		if st := infoField(info, "cluster_state"); st != "ok" {
			return nil, fmt.Errorf("%s: cluster_state:%s", s.Addr, st)
		}
		if ok := infoField(info, "cluster_slots_ok"); ok != strconv.Itoa(Slots) {
			return nil, fmt.Errorf("%s: cluster_slots_ok:%s", s.Addr, ok)
		}
		nodes, err := clusterNodes(s.Addr)
		if err != nil {
			return nil, err
		}
		views[s.Addr] = nodes
		sig := slotMapSignature(nodes)
		if first == "" {
			first, firstAddr = sig, s.Addr
		} else if sig != first {
			return nil, fmt.Errorf("%s and %s disagree on the slot map:\n%s\n%s", firstAddr, s.Addr, first, sig)
		}
	}
	if len(views) == 0 {
		return nil, errors.New("no cluster node is running")
	}
	return views, nil
}

// slotMapSignature is a comparable form of who serves which slots.
func slotMapSignature(nodes []Node) string {
	var parts []string
	for _, n := range nodes {
		if n.Master && len(n.Slots) > 0 {
			parts = append(parts, fmt.Sprintf("%s=%v", n.ID, n.Slots))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// ownerOf returns the master serving slot in any of the (agreeing) views.
func ownerOf(views map[string][]Node, slot int) (Node, bool) {
	for _, nodes := range views {
		for _, n := range nodes {
			if n.Master && n.Owns(slot) {
				return n, true
			}
		}
		break
	}
	return Node{}, false
}

func nodeAt(nodes []Node, addr string) (Node, bool) {
	for _, n := range nodes {
		if n.Addr == addr {
			return n, true
		}
	}
	return Node{}, false
}

// clusterNodes runs CLUSTER NODES on addr.
func clusterNodes(addr string) ([]Node, error) {
	text, err := do(addr, "CLUSTER", "NODES").Text()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", addr, err)
	}
	return ParseClusterNodes(text)
}

// ParseClusterNodes parses a CLUSTER NODES reply. Slots being imported or
// migrated ("[slot-<-id]", "[slot->-id]") are left out: the slot still
// belongs to the node that lists it plainly.
func ParseClusterNodes(text string) ([]Node, error) {
	var nodes []Node
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q: too few fields", line)
		}
		// ip:port@cport[,hostname]
		addr, _, _ := strings.Cut(f[1], "@")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("CLUSTER NODES line %q: address: %w", line, err)
		}
		n := Node{ID: f[0], Addr: addr, Flags: strings.Split(f[2], ",")}
		n.Master = slices.Contains(n.Flags, "master")
		n.Failed = slices.Contains(n.Flags, "fail") || slices.Contains(n.Flags, "fail?")
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			start, err := strconv.Atoi(lo)
			if err != nil {
				return nil, fmt.Errorf("CLUSTER NODES line %q: slot %q", line, s)
			}
			end := start
			if isRange {
				if end, err = strconv.Atoi(hi); err != nil {
					return nil, fmt.Errorf("CLUSTER NODES line %q: slot %q", line, s)
				}
			}
			n.Slots = append(n.Slots, SlotRange{start, end})
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, errors.New("CLUSTER NODES: empty reply")
	}
	return nodes, nil
}

// Reshard moves the n lowest slots of Masters()[from] to Masters()[to],
// keys included, while clients keep running (they get MOVED and, during a
// slot's move, ASK), and returns the slots moved once every node agrees.
func (c *Cluster) Reshard(from, to, n int) []int {
	c.t.Helper()
	ms := c.Masters()
	if from < 0 || from >= len(ms) || to < 0 || to >= len(ms) || from == to {
		c.t.Fatalf("Reshard(%d, %d): there are %d masters", from, to, len(ms))
	}
	var slots []int
	for _, r := range ms[from].Slots {
		for s := r.Start; s <= r.End && len(slots) < n; s++ {
			slots = append(slots, s)
		}
	}
	if len(slots) < n {
		c.t.Fatalf("Reshard: %s serves only %d slots", ms[from].Addr, len(slots))
	}
	for _, s := range slots {
		m := c.beginMigration(s, ms[from], ms[to])
		m.Finish()
	}
	c.WaitHealthy(30 * time.Second)
	return slots
}

// MoveSlot moves slot, keys included, to Masters()[to] and returns when
// every node agrees.
func (c *Cluster) MoveSlot(slot, to int) {
	c.t.Helper()
	c.BeginMigration(slot, to).Finish()
	c.WaitHealthy(30 * time.Second)
}

// Migration is one slot on its way from one master to another, for tests
// of the state in between: keys still on the source are served there, the
// others get ASK to the target, and multi-key commands over both get
// TRYAGAIN.
type Migration struct {
	c        *Cluster
	Slot     int
	From, To Node
}

// BeginMigration marks slot as migrating from its master to Masters()[to]
// (CLUSTER SETSLOT IMPORTING on the target, MIGRATING on the source)
// without moving any key yet.
func (c *Cluster) BeginMigration(slot, to int) *Migration {
	c.t.Helper()
	ms := c.Masters()
	if to < 0 || to >= len(ms) {
		c.t.Fatalf("BeginMigration(%d, %d): there are %d masters", slot, to, len(ms))
	}
	from := c.MasterForSlot(slot)
	if from.ID == ms[to].ID {
		c.t.Fatalf("BeginMigration: %s serves slot %d already", from.Addr, slot)
	}
	return c.beginMigration(slot, from, ms[to])
}

func (c *Cluster) beginMigration(slot int, from, to Node) *Migration {
	c.t.Helper()
	c.must(to.Addr, "CLUSTER", "SETSLOT", slot, "IMPORTING", from.ID)
	c.must(from.Addr, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.ID)
	return &Migration{c: c, Slot: slot, From: from, To: to}
}

// MoveKeys migrates up to max of the slot's keys still on the source and
// returns how many it moved.
func (m *Migration) MoveKeys(max int) int {
	m.c.t.Helper()
	keys, err := do(m.From.Addr, "CLUSTER", "GETKEYSINSLOT", m.Slot, max).StringSlice()
	if err != nil {
		m.c.t.Fatalf("CLUSTER GETKEYSINSLOT %d on %s: %v", m.Slot, m.From.Addr, err)
	}
	if len(keys) == 0 {
		return 0
	}
	host, port, _ := net.SplitHostPort(m.To.Addr)
	args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	m.c.must(m.From.Addr, args...)
	return len(keys)
}

// Finish moves the remaining keys and assigns the slot to the target on
// both masters and every other running master; the rest learn it by
// gossip (WaitHealthy waits for that).
func (m *Migration) Finish() {
	m.c.t.Helper()
	for m.MoveKeys(100) > 0 {
	}
	m.c.must(m.To.Addr, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.To.ID)
	m.c.must(m.From.Addr, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.To.ID)
	for _, n := range m.c.Masters() {
		if n.ID != m.To.ID && n.ID != m.From.ID {
			m.c.must(n.Addr, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.To.ID)
		}
	}
}

// must runs a command on addr and fails the test on error.
func (c *Cluster) must(addr string, args ...any) {
	c.t.Helper()
	if err := do(addr, args...).Err(); err != nil {
		c.t.Fatalf("%v on %s: %v", args, addr, err)
	}
}
