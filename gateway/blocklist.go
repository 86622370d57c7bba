package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
)

// blocklist is what this replica knows of the shared blocklist: a bounded
// cache of bans (seen in its own checks, pushed by the other replicas over
// pub/sub, loaded from the ban index at start and after every
// reconnection), a cache of clients known to be over a limit, and the
// operators' range bans. Redis is the truth; these caches only ever refuse
// what Redis refused, and a cached ban is trusted without asking Redis
// again for at most bans.cache_max_stale — except while Redis cannot
// answer, when a known ban keeps biting until its own expiry.
//
// Automatic bans (detections, observers) and operator bans (admin API) go
// through ban, in the same steps and the same order.
type blocklist struct {
	store    Store
	cfg      BansConfig
	replica  string
	now      func() time.Time
	bans     *ttlCache[banEntry]
	refusals *ttlCache[refusalEntry]
	cidrs    atomic.Pointer[cidrSet]
	// cidrChanged wakes the range-ban syncer; reload wakes the index loader.
	cidrChanged, reload chan struct{}
	rec                 *recorder
	m                   *Metrics
	log                 *slog.Logger
}

// banEntry is a locally cached ban.
type banEntry struct {
	// fresh is until when the entry is trusted without asking the store.
	fresh     time.Time
	reason    string
	detection string
}

// refusalEntry caches the store's answer for a client known to be refused
// until a time (over a rate limit): its requests are refused from the cache
// without a round trip. GCRA refuses every request until RetryAfter whatever
// other replicas do, so this never refuses what the store would admit.
type refusalEntry struct {
	state detections.ClientState
}

// permanentHorizon is how far ahead a ban without expiry (set by hand in
// Redis) is cached; each store answer renews it.
const permanentHorizon = 24 * time.Hour

func newBlocklist(st Store, cfg BansConfig, replica string, now func() time.Time, rec *recorder, m *Metrics, log *slog.Logger) *blocklist {
	return &blocklist{
		store: st, cfg: cfg, replica: replica, now: now,
		bans:        newTTLCache[banEntry](cfg.CacheSize),
		refusals:    newTTLCache[refusalEntry](cfg.CacheSize),
		cidrChanged: make(chan struct{}, 1),
		reload:      make(chan struct{}, 1),
		rec:         rec, m: m, log: log,
	}
}

// lookupState says how far a cached ban may be trusted.
type lookupState uint8

const (
	notBanned  lookupState = iota
	bannedNow              // trusted: refuse without asking the store
	bannedOnce             // known, but not refreshed for cache_max_stale: ask the store; refuse if it cannot answer
)

// lookup returns what the replica knows about client (key k, address ip)
// at now. Range bans are always trusted: the whole set is reloaded from the
// store when it changes and every ten seconds.
func (b *blocklist) lookup(k string, ip netip.Addr, now time.Time) (banEntry, time.Time, lookupState) {
	if e, until, ok := b.bans.get(k, now); ok {
		if now.Before(e.fresh) {
			return e, until, bannedNow
		}
		return e, until, bannedOnce
	}
	if c, ok := b.cidrs.Load().match(ip, now); ok {
		return banEntry{reason: c.reason, detection: "admin"}, c.until, bannedNow
	}
	return banEntry{}, time.Time{}, notBanned
}

// remember caches a ban the store reported, trusted for cache_max_stale.
func (b *blocklist) remember(client string, ban record.Ban) {
	now := b.now()
	until := ban.Until
	if ban.TTL <= 0 || until.IsZero() {
		until = now.Add(permanentHorizon)
	}
	b.bans.set(client, banEntry{fresh: now.Add(b.cfg.CacheMaxStale), reason: ban.Reason, detection: ban.Detection}, until, now)
}

// forget drops a cached ban the store no longer has (its unban
// notification was lost).
func (b *blocklist) forget(client string) { b.bans.delete(client) }

// refusal returns a cached over-limit answer for the client's bucket key.
func (b *blocklist) refusal(key string, now time.Time) (detections.ClientState, time.Time, bool) {
	e, until, ok := b.refusals.update(key, now, func(v refusalEntry) refusalEntry { v.state.Refused++; return v })
	return e.state, until, ok
}

// refuseUntil caches an over-limit answer until the bucket admits again.
func (b *blocklist) refuseUntil(key string, st detections.ClientState, until, now time.Time) {
	b.refusals.set(key, refusalEntry{state: st}, until, now)
}

// ErrExempt refuses a ban of a client that is exempt or allow-listed: it
// would never be enforced.
var ErrExempt = errors.New("the client is exempt or allow-listed: it is never refused or banned")

// ban puts a client on the blocklist: in the store (synchronously, so the
// next request on any replica sees it), then in the local cache, then the
// metric and the event when the ban is new. A protected client is never
// banned. When the store fails, the replica still refuses the client for
// the base duration.
func (b *blocklist) ban(ctx context.Context, pol *Policy, req record.BanRequest, ip netip.Addr, r *detections.Request) (record.Ban, error) {
	if ip.IsValid() && pol.neverBan(ip) {
		return record.Ban{}, ErrExempt
	}
	if req.Replica == "" {
		req.Replica = b.replica
	}
	ban, err := b.store.Ban(context.WithoutCancel(ctx), req)
	if err != nil {
		b.m.storeErrors.WithLabelValues("ban").Inc()
		b.log.LogAttrs(ctx, slog.LevelWarn, "ban_failed", slog.String("client", req.Client),
			slog.String("detection", req.Detection), slog.String("error", err.Error()))
		now := b.now()
		b.bans.set(req.Client, banEntry{fresh: now.Add(req.Duration), reason: req.Reason, detection: req.Detection}, now.Add(req.Duration), now)
		return record.Ban{}, err
	}
	b.remember(req.Client, ban)
	if ban.New {
		b.m.bans.WithLabelValues(ban.Detection).Inc()
		b.rec.banned(ctx, r, ban)
	}
	return ban, nil
}

// unban lifts a client's ban everywhere: in the store (which tells every
// replica) and at once in this replica's caches.
func (b *blocklist) unban(ctx context.Context, client, by string, forget bool) (bool, error) {
	existed, err := b.store.Unban(ctx, client, forget)
	if err != nil {
		return false, err
	}
	b.onEvent(record.BanEvent{Client: client, Unban: true})
	if existed {
		b.rec.unbanned(ctx, client, by)
	}
	return existed, nil
}

// banRange bans a CIDR range (operators only).
func (b *blocklist) banRange(ctx context.Context, p netip.Prefix, dur time.Duration, reason string) (record.Ban, error) {
	ban, err := b.store.BanCIDR(ctx, p, dur, reason, b.replica)
	if err != nil {
		return record.Ban{}, err
	}
	b.wake(b.cidrChanged)
	b.m.bans.WithLabelValues(ban.Detection).Inc()
	b.rec.banned(ctx, nil, ban)
	return ban, nil
}

// unbanRange lifts a range ban.
func (b *blocklist) unbanRange(ctx context.Context, p netip.Prefix, by string) (bool, error) {
	existed, err := b.store.UnbanCIDR(ctx, p)
	if err != nil {
		return false, err
	}
	b.wake(b.cidrChanged)
	if existed {
		b.rec.unbanned(ctx, p.String(), by)
	}
	return existed, nil
}

// onEvent applies a notification from the store.
func (b *blocklist) onEvent(ev record.BanEvent) {
	switch {
	case ev.Reset:
		// Notifications may have been missed: forget what cannot be
		// trusted, then reload what the store knows.
		b.bans.clear()
		b.refusals.clear()
		b.wake(b.cidrChanged)
		b.wake(b.reload)
	case ev.CIDR:
		b.wake(b.cidrChanged)
	case ev.Unban:
		b.bans.delete(ev.Client)
		b.refusals.delete(ev.Client)
		b.refusals.deletePrefix(ev.Client + "\x00")
	case !ev.Until.IsZero():
		b.remember(ev.Client, record.Ban{Client: ev.Client, Until: ev.Until, TTL: ev.Until.Sub(b.now())})
	}
}

func (b *blocklist) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run keeps the caches in sync with the store until ctx ends: pub/sub
// notifications, the ban index after every (re)subscription, range bans,
// and the snapshot file.
func (b *blocklist) run(ctx context.Context) {
	if b.cfg.SnapshotFile != "" {
		b.loadSnapshot(ctx)
	}
	done := make(chan struct{}, 3)
	go func() { b.syncRanges(ctx, 10*time.Second); done <- struct{}{} }()
	go func() { b.loadIndexOnReset(ctx); done <- struct{}{} }()
	go func() { b.writeSnapshots(ctx, 5*time.Second); done <- struct{}{} }()
	b.store.SubscribeBans(ctx, b.onEvent)
	for range 3 {
		<-done
	}
}

// loadIndexOnReset loads the active bans, up to cache_size, whenever the
// subscription (re)starts: a fresh replica is as strict as an old one.
func (b *blocklist) loadIndexOnReset(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.reload:
		}
		bans, err := b.store.BanIndex(ctx, b.cfg.CacheSize)
		if err != nil {
			b.log.LogAttrs(ctx, slog.LevelWarn, "ban_index_load_failed", slog.String("error", err.Error()))
			continue
		}
		for _, ban := range bans {
			b.remember(ban.Client, ban)
		}
		b.log.LogAttrs(ctx, slog.LevelInfo, "ban_index_loaded", slog.Int("bans", len(bans)))
	}
}

// syncRanges reloads range bans when notified and every interval, so a
// lost notification costs at most one interval. While the store cannot
// answer, the last copy stays.
func (b *blocklist) syncRanges(ctx context.Context, every time.Duration) {
	b.reloadRanges(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.cidrChanged:
		}
		b.reloadRanges(ctx)
	}
}

func (b *blocklist) reloadRanges(ctx context.Context) {
	bans, err := b.store.ListCIDRBans(ctx)
	if err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "cidr_bans_reload_failed", slog.String("error", err.Error()))
		return
	}
	s := &cidrSet{}
	for _, ban := range bans {
		p, err := detections.ParseClientKey(ban.Client)
		if err != nil {
			continue
		}
		s.entries = append(s.entries, cidrEntry{prefix: p, until: ban.Until, reason: ban.Reason})
	}
	if len(s.entries) == 0 {
		s = nil
	}
	b.cidrs.Store(s)
}

// snapshotEntry is one line of the snapshot file.
type snapshotEntry struct {
	Client    string `json:"client"`
	UntilMS   int64  `json:"until_ms"`
	Reason    string `json:"reason,omitempty"`
	Detection string `json:"detection,omitempty"`
}

// writeSnapshots writes the known bans to the snapshot file every interval
// and once more when ctx ends.
func (b *blocklist) writeSnapshots(ctx context.Context, every time.Duration) {
	if b.cfg.SnapshotFile == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.writeSnapshot(context.WithoutCancel(ctx))
			return
		case <-t.C:
			b.writeSnapshot(ctx)
		}
	}
}

func (b *blocklist) writeSnapshot(ctx context.Context) {
	if err := b.saveSnapshot(); err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "ban_snapshot_failed", slog.String("file", b.cfg.SnapshotFile), slog.String("error", err.Error()))
	}
}

func (b *blocklist) saveSnapshot() error {
	path := b.cfg.SnapshotFile
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bans-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	var werr error
	b.bans.each(b.now(), func(k string, e banEntry, until time.Time) {
		if werr == nil {
			werr = enc.Encode(snapshotEntry{Client: k, UntilMS: until.UnixMilli(), Reason: e.reason, Detection: e.detection})
		}
	})
	if err := errors.Join(werr, w.Flush(), tmp.Chmod(0o600), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadSnapshot reads the bans this replica knew when it stopped. They are
// cached as not fresh: they bite only while the store cannot answer (the
// ban index replaces them once it can).
func (b *blocklist) loadSnapshot(ctx context.Context) {
	f, err := os.Open(b.cfg.SnapshotFile)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "ban_snapshot_unreadable", slog.String("file", b.cfg.SnapshotFile), slog.String("error", err.Error()))
		return
	}
	defer f.Close()
	now := b.now()
	n, bad := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() && n < b.cfg.CacheSize {
		var e snapshotEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Client == "" {
			bad++
			continue
		}
		until := time.UnixMilli(e.UntilMS)
		if !until.After(now) {
			continue
		}
		b.bans.set(e.Client, banEntry{reason: e.Reason, detection: e.Detection}, until, now)
		n++
	}
	attrs := []slog.Attr{slog.String("file", b.cfg.SnapshotFile), slog.Int("bans", n)}
	if bad > 0 {
		attrs = append(attrs, slog.Int("unreadable_lines", bad))
	}
	b.log.LogAttrs(ctx, slog.LevelInfo, "ban_snapshot_loaded", attrs...)
}

// cidrSet is the replica's copy of the operators' range bans. They are few,
// so a linear scan that allocates nothing is the fastest lookup.
type cidrSet struct {
	entries []cidrEntry
}

type cidrEntry struct {
	prefix netip.Prefix
	until  time.Time
	reason string
}

func (s *cidrSet) match(ip netip.Addr, now time.Time) (cidrEntry, bool) {
	if s == nil {
		return cidrEntry{}, false
	}
	for _, e := range s.entries {
		if e.prefix.Contains(ip) && now.Before(e.until) {
			return e, true
		}
	}
	return cidrEntry{}, false
}

// status is what the admin API shows of the caches.
func (b *blocklist) status() (bans, refusals, ranges int) {
	if s := b.cidrs.Load(); s != nil {
		ranges = len(s.entries)
	}
	return b.bans.len(), b.refusals.len(), ranges
}

// String names a lookup state for logs.
func (s lookupState) String() string {
	switch s {
	case bannedNow:
		return "cached"
	case bannedOnce:
		return "cached_stale"
	}
	return "none"
}
