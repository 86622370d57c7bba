package ipfeed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time shared by the replicas and the lease.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingStore counts the calls that move sets, to show that unchanged
// sets are neither stored nor fetched from the store again.
type countingStore struct {
	SetStore
	puts, gets atomic.Int64
}

func (s *countingStore) Put(ctx context.Context, feed string, set []byte, meta Meta) error {
	s.puts.Add(1)
	return s.SetStore.Put(ctx, feed, set, meta)
}

func (s *countingStore) Get(ctx context.Context, feed string) ([]byte, Meta, error) {
	s.gets.Add(1)
	return s.SetStore.Get(ctx, feed)
}

// fleet is n Managers sharing one lease and one store, as n replicas
// sharing Redis would.
type fleet struct {
	clock    *clock
	store    *countingStore
	replicas []*Manager
}

func newFleet(t *testing.T, n int, cfg Config, client *http.Client) *fleet {
	t.Helper()
	fl := &fleet{clock: newClock(), store: &countingStore{SetStore: NewMemoryStore()}}
	lease := NewMemoryLease(fl.clock.Now)
	for i := range n {
		m, err := NewManager(cfg, lease, fl.store, Options{Client: client, Now: fl.clock.Now, Replica: fmt.Sprintf("r%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		fl.replicas = append(fl.replicas, m)
	}
	return fl
}

// syncAll syncs every replica at once and returns their errors.
func (fl *fleet) syncAll(t *testing.T) []error {
	t.Helper()
	errs := make([]error, len(fl.replicas))
	var wg sync.WaitGroup
	for i, m := range fl.replicas {
		wg.Go(func() { errs[i] = m.Sync(t.Context()) })
	}
	wg.Wait()
	return errs
}

// expect checks that every replica matches exactly the listed addresses
// among probes.
func (fl *fleet) expect(t *testing.T, step string, listed []string, notListed []string) {
	t.Helper()
	for i, m := range fl.replicas {
		for _, a := range listed {
			if hit, ok := m.Match(mustAddr(a)); !ok || hit.Feed != "drop" {
				t.Errorf("%s: replica %d: %s not matched", step, i, a)
			}
		}
		for _, a := range notListed {
			if _, ok := m.Match(mustAddr(a)); ok {
				t.Errorf("%s: replica %d: %s matched", step, i, a)
			}
		}
	}
}

func joinedErr(errs []error) (n int, msg string) {
	var parts []string
	for _, err := range errs {
		if err != nil {
			n++
			parts = append(parts, err.Error())
		}
	}
	return n, strings.Join(parts, " | ")
}

func TestFleetFetchesOncePerRefresh(t *testing.T) {
	t.Parallel()
	fs, srv := newFeedServer(t, "192.0.2.0/24\n2001:db8::/48\n")
	fs.gzip = true
	cfg := Config{Feeds: []FeedConfig{{Name: "drop", URL: srv.URL + "/drop.txt?token=secret"}}}
	fl := newFleet(t, 3, cfg, srv.Client())

	// 1. First sync, all replicas at once: one download, everyone has it.
	if n, msg := joinedErr(fl.syncAll(t)); n > 0 {
		t.Fatalf("first sync: %s", msg)
	}
	if hits, _ := fs.counts(); hits != 1 {
		t.Fatalf("first sync: %d downloads, want 1", hits)
	}
	fl.expect(t, "first", []string{"192.0.2.1", "2001:db8::1", "::ffff:192.0.2.9"}, []string{"198.51.100.1", "2001:db8:1::1"})
	if puts, gets := fl.store.puts.Load(), fl.store.gets.Load(); puts != 1 || gets != 2 {
		t.Errorf("first sync: %d puts, %d gets; want 1, 2", puts, gets)
	}

	// 2. Polls within the refresh: no download, no set moved.
	for range 3 {
		fl.clock.Advance(10 * time.Minute)
		if n, msg := joinedErr(fl.syncAll(t)); n > 0 {
			t.Fatal(msg)
		}
	}
	if hits, _ := fs.counts(); hits != 1 {
		t.Fatalf("within refresh: %d downloads", hits)
	}
	if puts, gets := fl.store.puts.Load(), fl.store.gets.Load(); puts != 1 || gets != 2 {
		t.Errorf("within refresh: %d puts, %d gets", puts, gets)
	}

	// 3. The feed changed; after the refresh one replica downloads it and
	// all pick it up.
	fs.set("198.51.100.0/24\n2001:db8::/48\n")
	fl.clock.Advance(31 * time.Minute)
	if n, msg := joinedErr(fl.syncAll(t)); n > 0 {
		t.Fatal(msg)
	}
	if hits, _ := fs.counts(); hits != 2 {
		t.Fatalf("after change: %d downloads, want 2", hits)
	}
	fl.expect(t, "changed", []string{"198.51.100.1", "2001:db8::1"}, []string{"192.0.2.1"})
	for i, m := range fl.replicas {
		if st := m.Status()[0]; st.Version != 2 || st.Ranges != 2 || st.LastError != "" || st.Local {
			t.Errorf("replica %d status %+v", i, st)
		}
	}

	// 4. Unchanged feed: a conditional request, a 304, nothing stored.
	fl.clock.Advance(time.Hour)
	if n, msg := joinedErr(fl.syncAll(t)); n > 0 {
		t.Fatal(msg)
	}
	if hits, notMod := fs.counts(); hits != 3 || notMod != 1 {
		t.Fatalf("unchanged: %d downloads, %d 304s", hits, notMod)
	}
	if puts := fl.store.puts.Load(); puts != 2 {
		t.Errorf("unchanged: %d puts, want 2", puts)
	}

	// 4b. Same bytes under new validators: downloaded, but not stored or
	// decoded again (the digest is unchanged).
	fs.touch()
	fl.clock.Advance(time.Hour)
	if n, msg := joinedErr(fl.syncAll(t)); n > 0 {
		t.Fatal(msg)
	}
	if hits, notMod := fs.counts(); hits != 4 || notMod != 1 {
		t.Fatalf("same bytes: %d downloads, %d 304s", hits, notMod)
	}
	if puts, gets := fl.store.puts.Load(), fl.store.gets.Load(); puts != 2 || gets != 4 {
		t.Errorf("same bytes: %d puts, %d gets; want 2, 4", puts, gets)
	}
	if meta, _ := fl.store.Meta(t.Context(), "drop"); meta.Version != 2 || meta.ETag != fs.etag {
		t.Errorf("same bytes: meta %+v", meta)
	}

	// 5. The server fails: the list stays everywhere, the error is
	// returned by the replica that fetched and reported by all.
	fs.fail(500)
	fl.clock.Advance(time.Hour)
	n, msg := joinedErr(fl.syncAll(t))
	if n != 1 || !strings.Contains(msg, "unexpected status 500") {
		t.Fatalf("500: %d errors: %s", n, msg)
	}
	if strings.Contains(msg, "secret") {
		t.Errorf("token in error: %s", msg)
	}
	fl.expect(t, "after 500", []string{"198.51.100.1"}, []string{"192.0.2.1"})
	fl.syncAll(t) // the replicas that synced before the failure see it now
	for i, m := range fl.replicas {
		st := m.Status()[0]
		if !strings.Contains(st.LastError, "500") || st.Version != 2 || st.Ranges != 2 || strings.Contains(st.Source, "secret") {
			t.Errorf("replica %d status after 500: %+v", i, st)
		}
	}
	if hits, _ := fs.counts(); hits != 5 {
		t.Fatalf("after 500: %d downloads, want 5", hits)
	}

	// 6. Garbage (an HTML page with 200): same, after RetryAfter.
	fs.set("<html><body>we moved</body></html>\n")
	fl.clock.Advance(DefaultRetryAfter)
	n, msg = joinedErr(fl.syncAll(t))
	if n != 1 || !strings.Contains(msg, ErrNoEntries.Error()) {
		t.Fatalf("garbage: %d errors: %s", n, msg)
	}
	fl.expect(t, "after garbage", []string{"198.51.100.1"}, []string{"192.0.2.1"})
	if hits, _ := fs.counts(); hits != 6 {
		t.Fatalf("after garbage: %d downloads, want 6", hits)
	}

	// 7. Recovery.
	fs.set("203.0.113.0/24\n")
	fl.clock.Advance(DefaultRetryAfter)
	if n, msg := joinedErr(fl.syncAll(t)); n > 0 {
		t.Fatal(msg)
	}
	fl.syncAll(t)
	fl.expect(t, "recovered", []string{"203.0.113.5"}, []string{"198.51.100.1", "2001:db8::1"})
	for i, m := range fl.replicas {
		if st := m.Status()[0]; st.LastError != "" || st.Version != 3 {
			t.Errorf("replica %d status after recovery: %+v", i, st)
		}
	}
	if hits, _ := fs.counts(); hits != 7 {
		t.Fatalf("recovery: %d downloads, want 7", hits)
	}
}

// flakyStore fails every call while down is set, like Redis during an
// outage.
type flakyStore struct {
	SetStore
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (s *flakyStore) Put(ctx context.Context, feed string, set []byte, meta Meta) error {
	if s.down.Load() {
		return errDown
	}
	return s.SetStore.Put(ctx, feed, set, meta)
}

func (s *flakyStore) PutMeta(ctx context.Context, feed string, meta Meta) error {
	if s.down.Load() {
		return errDown
	}
	return s.SetStore.PutMeta(ctx, feed, meta)
}

func (s *flakyStore) Meta(ctx context.Context, feed string) (Meta, error) {
	if s.down.Load() {
		return Meta{}, errDown
	}
	return s.SetStore.Meta(ctx, feed)
}

func (s *flakyStore) Get(ctx context.Context, feed string) ([]byte, Meta, error) {
	if s.down.Load() {
		return nil, Meta{}, errDown
	}
	return s.SetStore.Get(ctx, feed)
}

func TestStoreOutage(t *testing.T) {
	t.Parallel()
	fs, srv := newFeedServer(t, "192.0.2.0/24\n")
	clk := newClock()
	store := &flakyStore{SetStore: NewMemoryStore()}
	cfg := Config{Feeds: []FeedConfig{{Name: "drop", URL: srv.URL + "/list"}}}
	m, err := NewManager(cfg, NewMemoryLease(clk.Now), store, Options{Client: srv.Client(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := NewManager(cfg, NewMemoryLease(clk.Now), store, Options{Client: srv.Client(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	store.down.Store(true)
	// A replica with a list keeps it and does not fetch; one that starts
	// during the outage fetches for itself.
	if err := m.Sync(t.Context()); !errors.Is(err, errDown) {
		t.Fatalf("outage not reported: %v", err)
	}
	if err := fresh.Sync(t.Context()); !errors.Is(err, errDown) {
		t.Fatalf("outage not reported: %v", err)
	}
	if hits, _ := fs.counts(); hits != 2 {
		t.Fatalf("%d downloads, want 2", hits)
	}
	for i, r := range []*Manager{m, fresh} {
		if !r.Matcher().Contains(mustAddr("192.0.2.1")) {
			t.Errorf("replica %d lost the list", i)
		}
	}
	if st := fresh.Status()[0]; !st.Local || !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("fresh status %+v", st)
	}
	// No more than one download per refresh while the outage lasts.
	for range 5 {
		clk.Advance(time.Minute)
		_ = m.Sync(t.Context())
		_ = fresh.Sync(t.Context())
	}
	if hits, _ := fs.counts(); hits != 2 {
		t.Fatalf("%d downloads during the outage, want 2", hits)
	}
	fs.set("198.51.100.0/24\n")
	clk.Advance(time.Hour)
	_ = m.Sync(t.Context())
	if !m.Matcher().Contains(mustAddr("198.51.100.1")) {
		t.Error("local refresh after an hour not applied")
	}
	// The store is back: the fleet converges on the stored version.
	store.down.Store(false)
	for range 2 {
		clk.Advance(time.Hour)
		for _, r := range []*Manager{m, fresh} {
			if err := r.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, r := range []*Manager{m, fresh} {
		st := r.Status()[0]
		if st.Local || st.Version == 0 || !r.Matcher().Contains(mustAddr("198.51.100.1")) || r.Matcher().Contains(mustAddr("192.0.2.1")) {
			t.Errorf("replica %d after the outage: %+v", i, st)
		}
	}
}

func TestCorruptStoredSet(t *testing.T) {
	t.Parallel()
	fs, srv := newFeedServer(t, "192.0.2.0/24\n")
	fl := newFleet(t, 2, Config{Feeds: []FeedConfig{{Name: "drop", URL: srv.URL + "/list"}}}, srv.Client())
	a, b := fl.replicas[0], fl.replicas[1]
	if err := a.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Someone writes garbage as a newer version.
	meta, _ := fl.store.Meta(t.Context(), "drop")
	meta.Version++
	meta.Digest = "feedfacefeedfacefeedfacefeedface"
	if err := fl.store.Put(t.Context(), "drop", []byte("IPFS\x01\x00garbage"), meta); err != nil {
		t.Fatal(err)
	}
	fs.set("198.51.100.0/24\n")
	err := b.Sync(t.Context())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt set not reported: %v", err)
	}
	if !b.Matcher().Contains(mustAddr("192.0.2.1")) {
		t.Fatal("list dropped on a corrupt stored set")
	}
	// b refetches at its next sync (once the lease taken then expires).
	fl.clock.Advance(time.Minute + DefaultTimeout)
	if err := b.Sync(t.Context()); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if err := a.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, m := range fl.replicas {
		if !m.Matcher().Contains(mustAddr("198.51.100.1")) {
			t.Errorf("replica %d not repaired: %+v", i, m.Status()[0])
		}
	}
}

// hookLease runs before when asked for the lease, then grants it.
type hookLease struct{ before func() }

func (l hookLease) TryAcquire(context.Context, string, time.Duration) (bool, error) {
	l.before()
	return true, nil
}

// TestLeaseRecheck: a replica that saw the feed due, but got the lease
// only after another replica finished the refresh, does not fetch again.
func TestLeaseRecheck(t *testing.T) {
	t.Parallel()
	fs, srv := newFeedServer(t, "192.0.2.0/24\n")
	clk := newClock()
	store := NewMemoryStore()
	cfg := Config{Feeds: []FeedConfig{{Name: "drop", URL: srv.URL + "/list"}}}
	a, err := NewManager(cfg, hookLease{func() {}}, store, Options{Client: srv.Client(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewManager(cfg, hookLease{func() {
		if err := a.Sync(t.Context()); err != nil {
			t.Error(err)
		}
	}}, store, Options{Client: srv.Client(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if hits, _ := fs.counts(); hits != 1 {
		t.Errorf("%d downloads, want 1", hits)
	}
	if !b.Matcher().Contains(mustAddr("192.0.2.1")) {
		t.Error("b did not load a's result")
	}
}

func TestMatchPrefersEnforce(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := Config{Feeds: []FeedConfig{
		{Name: "watch", File: write("watch.txt", "192.0.2.0/24\n198.51.100.0/24\n"), Mode: ModeMonitor},
		{Name: "block", File: write("block.txt", "192.0.2.128/25\n2001:db8::/32\n")},
	}}
	m, err := NewManager(cfg, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr, feed string
		mode       Mode
	}{
		{"192.0.2.1", "watch", ModeMonitor},
		{"192.0.2.200", "block", ModeEnforce}, // in both: enforce wins
		{"198.51.100.1", "watch", ModeMonitor},
		{"2001:db8::1", "block", ModeEnforce},
		{"203.0.113.1", "", ""},
	}
	for _, tc := range tests {
		hit, ok := m.Match(mustAddr(tc.addr))
		if ok != (tc.feed != "") || hit.Feed != tc.feed || hit.Mode != tc.mode {
			t.Errorf("Match(%s) = %+v, %v", tc.addr, hit, ok)
		}
	}
	a := mustAddr("192.0.2.200")
	if n := testing.AllocsPerRun(1000, func() { m.Match(a) }); n != 0 {
		t.Errorf("Match allocates %v", n)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(path, []byte("192.0.2.0/24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(Config{Feeds: []FeedConfig{{Name: "f", File: path, Refresh: time.Second}}}, nil, nil, Options{Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !m.Matcher().Contains(mustAddr("192.0.2.1")) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not load the feed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A changed file is picked up at the next refresh.
	if err := os.WriteFile(path, []byte("198.51.100.0/24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for !m.Matcher().Contains(mustAddr("198.51.100.1")) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not reload the feed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestLogEvents(t *testing.T) {
	t.Parallel()
	fs, srv := newFeedServer(t, "192.0.2.0/24\n")
	fs.fail(503)
	path := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(path, []byte("198.51.100.0/24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cfg := Config{Feeds: []FeedConfig{{Name: "f", File: path}, {Name: "u", URL: srv.URL + "/l?token=secret"}}}
	m, err := NewManager(cfg, nil, nil, Options{Client: srv.Client(), Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "feed u: ") {
		t.Fatalf("Sync = %v", err)
	}
	var events []map[string]any
	for line := range strings.Lines(buf.String()) {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if len(events) != 2 {
		t.Fatalf("events: %s", buf.String())
	}
	for _, e := range events {
		switch e["msg"] {
		case EventFeedUpdated:
			if e["feed"] != "f" || e["level"] != "INFO" || e["ranges"] != float64(1) {
				t.Errorf("updated event %v", e)
			}
		case EventFeedRefreshFailed:
			if e["feed"] != "u" || e["level"] != "WARN" || !strings.Contains(e["error"].(string), "503") {
				t.Errorf("failed event %v", e)
			}
		default:
			t.Errorf("unexpected event %v", e)
		}
	}
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("token logged: %s", buf.String())
	}
}
