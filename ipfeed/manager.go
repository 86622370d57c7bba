package ipfeed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Log events (constant messages; the data is in attributes).
const (
	// EventFeedUpdated: a replica installed a new version of a feed.
	EventFeedUpdated = "feed_updated"
	// EventFeedRefreshFailed: fetching, parsing, storing or loading a feed
	// failed; the previous list stays in use.
	EventFeedRefreshFailed = "feed_refresh_failed"
)

// Defaults of Options.
const (
	// DefaultPoll is how often each replica checks the store for a newer
	// version (a cheap Meta read per feed).
	DefaultPoll = 30 * time.Second
	// DefaultRetryAfter is how soon a failed refresh is retried (capped
	// at the feed's refresh).
	DefaultRetryAfter = 5 * time.Minute
)

// Options are the Manager's runtime dependencies and tuning; none comes
// from YAML.
type Options struct {
	// Client downloads URL feeds. nil: a client on a clone of
	// http.DefaultTransport. The Manager copies it and sets its own
	// redirect policy; each fetch is bounded by the feed's timeout.
	Client *http.Client
	// Poll is how often Run syncs (default DefaultPoll, and never longer
	// than the shortest feed refresh).
	Poll time.Duration
	// RetryAfter is how soon a failed refresh is tried again (default
	// DefaultRetryAfter).
	RetryAfter time.Duration
	// Replica names this instance in Meta.
	Replica string
	// Logger receives EventFeedUpdated and EventFeedRefreshFailed
	// (nil: discard).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now). The lease, the store and the
	// clocks of all replicas should agree to within a small fraction of
	// the refresh.
	Now func() time.Time
}

// Hit says which feed listed an address.
type Hit struct {
	// Feed is the feed's name.
	Feed string
	// Index is the feed's position in Config.Feeds.
	Index int
	// Mode is the feed's mode.
	Mode Mode
}

// Status is one feed's state on this replica.
type Status struct {
	Feed   string
	Source string // file path or redacted URL
	Mode   Mode
	// Version is the store version in use; 0 with Local set means this
	// replica fetched the list itself because the store was unreachable,
	// 0 without it that no list is loaded yet.
	Version uint64
	Local   bool
	// Counts of the list in use (see ParseResult).
	Entries, Ranges, Invalid, Dropped int
	// Problems are the first invalid lines of the list in use.
	Problems []string
	// Loaded is when this replica installed the list in use.
	Loaded time.Time
	// LastSuccess is the last successful download or 304 check by any
	// replica; LastAttempt the last attempt.
	LastSuccess, LastAttempt time.Time
	// LastError is this replica's last sync error, else the fleet's last
	// attempt error; "" when both succeeded.
	LastError string
}

// Manager keeps every feed fresh across a fleet and answers lookups from
// the merged list.
//
// On each sync, for each feed, a replica reads the feed's Meta from the
// SetStore. If the refresh is due (the last attempt is older than the
// feed's refresh, or than RetryAfter after a failure) it tries the Lease;
// the one replica that gets it reads the Meta again (another may just have
// finished), fetches with the stored ETag/Last-Modified, parses, and
// stores the encoded set (Put) or, when nothing changed, only the Meta
// (PutMeta); the replicas that found the lease taken wait (bounded by the
// lease TTL) for that attempt to be recorded. Then every replica whose
// list differs from the stored digest Gets, decodes and installs it, and
// the merged Matcher is swapped atomically. So a fleet fetches each feed once per refresh, and an
// unchanged list is neither stored nor decoded again.
//
// A failed fetch or parse never empties a list: the previous set stays
// everywhere and the error is returned, logged, put in Status and in the
// Meta (so every replica reports it). When the store or the lease cannot
// be reached, each replica falls back to fetching for itself, no more
// often than the feed's refresh.
type Manager struct {
	opts    Options
	lease   Lease
	store   SetStore
	fetch   *fetcher
	log     *slog.Logger
	feeds   []*feed
	enforce uint64 // mask of the feeds in ModeEnforce
	poll    time.Duration

	matcher   atomic.Pointer[Matcher]
	rebuildMu sync.Mutex
}

type feed struct {
	cfg   FeedConfig
	index int
	set   atomic.Pointer[Set]

	mu sync.Mutex // serialises syncs of this feed; guards the fields below
	// digest and version identify the installed set; local means it was
	// fetched by this replica without the store.
	digest  string
	version uint64
	local   bool
	info    Meta      // counts and validators of the installed set
	checked time.Time // last time the installed set was known current
	loaded  time.Time
	// broken is the digest of a stored set that does not decode, so it is
	// fetched anew instead of being loaded again and again.
	broken    string
	localNext time.Time // earliest next fetch without the store
	changed   bool      // a set was installed during this sync

	smu    sync.Mutex
	status Status
}

// NewManager validates cfg and returns a Manager with empty lists; call
// Sync to load them, then Run. A nil lease or store means this process is
// alone: in-memory ones are used.
func NewManager(cfg Config, lease Lease, store SetStore, opts Options) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if lease == nil {
		lease = NewMemoryLease(opts.Now)
	}
	if store == nil {
		store = NewMemoryStore()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		opts: opts, lease: lease, store: store, log: log,
		fetch: newFetcher(opts.Client, cfg.AllowHTTP), poll: opts.Poll,
	}
	for i, fc := range cfg.Feeds {
		f := &feed{cfg: fc, index: i}
		f.status = Status{Feed: fc.Name, Source: fc.source(), Mode: fc.Mode}
		m.feeds = append(m.feeds, f)
		if fc.Mode == ModeEnforce {
			m.enforce |= 1 << i
		}
		m.poll = min(m.poll, fc.Refresh)
	}
	mt, _ := NewMatcher(make([]*Set, len(m.feeds))...)
	m.matcher.Store(mt)
	return m, nil
}

// Match reports whether a feed lists a. When several do, an enforce feed
// wins over a monitor one, then the first in config order. It allocates
// nothing. The gateway checks its exempt list first: an exempt client is
// never blocked by a feed.
func (m *Manager) Match(a netip.Addr) (Hit, bool) {
	mask := m.matcher.Load().Feeds(a)
	if mask == 0 {
		return Hit{}, false
	}
	if e := mask & m.enforce; e != 0 {
		mask = e
	}
	f := m.feeds[bits.TrailingZeros64(mask)]
	return Hit{Feed: f.cfg.Name, Index: f.index, Mode: f.cfg.Mode}, true
}

// Matcher returns the merged list in use (feed i is Config.Feeds[i]).
func (m *Manager) Matcher() *Matcher { return m.matcher.Load() }

// Status returns every feed's state, in config order.
func (m *Manager) Status() []Status {
	out := make([]Status, len(m.feeds))
	for i, f := range m.feeds {
		f.smu.Lock()
		out[i] = f.status
		out[i].Problems = append([]string(nil), f.status.Problems...)
		f.smu.Unlock()
	}
	return out
}

// Run syncs at once and then every poll until ctx is done; it returns nil
// then. Failures are logged (EventFeedRefreshFailed) and retried.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.poll)
	defer t.Stop()
	for {
		_ = m.Sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sync brings every feed up to date once (see Manager), concurrently, and
// swaps in the new Matcher if any list changed. It returns the feeds'
// errors joined, each naming its feed; each is also logged once. A feed
// that failed keeps its previous list.
func (m *Manager) Sync(ctx context.Context) error {
	errs := make([]error, len(m.feeds))
	changed := make([]bool, len(m.feeds))
	var wg sync.WaitGroup
	for i, f := range m.feeds {
		wg.Go(func() {
			changed[i], errs[i] = m.syncFeed(ctx, f)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("feed %s: %w", f.cfg.Name, errs[i])
				if ctx.Err() != nil {
					return // shutting down: not a feed failure
				}
				m.log.LogAttrs(ctx, slog.LevelWarn, EventFeedRefreshFailed,
					slog.String("feed", f.cfg.Name), slog.String("source", f.cfg.source()), slog.String("error", errs[i].Error()))
			}
		})
	}
	wg.Wait()
	for _, c := range changed {
		if c {
			m.rebuild()
			break
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) rebuild() {
	m.rebuildMu.Lock()
	defer m.rebuildMu.Unlock()
	sets := make([]*Set, len(m.feeds))
	for i, f := range m.feeds {
		sets[i] = f.set.Load()
	}
	mt, _ := NewMatcher(sets...) // len(sets) <= MaxFeeds: Validate checked
	m.matcher.Store(mt)
}

func (m *Manager) retry(f *feed) time.Duration { return min(m.opts.RetryAfter, f.cfg.Refresh) }

// leaseTTL outlasts one fetch, parse and Put; after it another replica
// may take over a refresh whose holder died. It never outlasts the
// refresh, so the next refresh finds the lease free.
func (m *Manager) leaseTTL(f *feed) time.Duration {
	return min(f.cfg.Timeout+30*time.Second, f.cfg.Refresh)
}

// due reports whether the fleet should refresh f now, judging by the
// stored meta.
func (m *Manager) due(f *feed, meta Meta, found bool, now time.Time) bool {
	if !found || meta.Attempted.IsZero() || (f.broken != "" && f.broken == meta.Digest) {
		return true
	}
	interval := f.cfg.Refresh
	if meta.LastError != "" {
		interval = m.retry(f)
	}
	return !now.Before(meta.Attempted.Add(interval))
}

func (m *Manager) syncFeed(ctx context.Context, f *feed) (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Whatever path returns, changed reports whether a set was installed.
	f.changed = false
	defer func() { changed = f.changed }()
	now := m.opts.Now()
	name := f.cfg.Name
	meta, found, err := m.readMeta(ctx, name)
	if err != nil {
		return false, m.syncLocal(ctx, f, now, err)
	}
	var attemptErr error
	if m.due(f, meta, found, now) {
		ok, err := m.lease.TryAcquire(ctx, name, m.leaseTTL(f))
		if err != nil {
			return false, m.syncLocal(ctx, f, now, fmt.Errorf("acquiring lease: %w", err))
		}
		if ok {
			if meta, found, err = m.readMeta(ctx, name); err != nil {
				return false, m.syncLocal(ctx, f, now, err)
			}
			if m.due(f, meta, found, now) {
				meta, attemptErr = m.refresh(ctx, f, meta, found, now)
			}
		} else {
			meta = m.awaitHolder(ctx, f, meta, found)
		}
	}
	err = errors.Join(attemptErr, m.load(ctx, f, meta, now))
	m.setStatus(f, meta, err)
	return false, err
}

// awaitHolder waits, up to the lease TTL of wall-clock time, for the
// replica holding the lease to record its attempt, so that all replicas
// converge in the same sync (and one starting up does not serve without
// the list for a whole poll). It returns the newest meta it saw.
func (m *Manager) awaitHolder(ctx context.Context, f *feed, prev Meta, found bool) Meta {
	deadline := time.Now().Add(m.leaseTTL(f))
	wait := 20 * time.Millisecond
	for time.Now().Before(deadline) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return prev
		case <-t.C:
		}
		meta, ok, err := m.readMeta(ctx, f.cfg.Name)
		if err != nil {
			return prev
		}
		if ok && (!found || meta.Attempted.After(prev.Attempted)) {
			return meta
		}
		wait = min(2*wait, time.Second)
	}
	return prev
}

func (m *Manager) readMeta(ctx context.Context, name string) (Meta, bool, error) {
	meta, err := m.store.Meta(ctx, name)
	switch {
	case err == nil:
		return meta, true, nil
	case errors.Is(err, ErrNotFound):
		return Meta{}, false, nil
	default:
		return Meta{}, false, fmt.Errorf("reading meta: %w", err)
	}
}

// refresh fetches f as the lease holder and stores the outcome. It returns
// the meta now stored (or the best knowledge of it).
func (m *Manager) refresh(ctx context.Context, f *feed, meta Meta, found bool, now time.Time) (Meta, error) {
	name := f.cfg.Name
	var v validators
	if found && meta.Version > 0 && f.broken != meta.Digest {
		v = validators{meta.ETag, meta.LastModified}
	}
	got, err := m.fetch.fetch(ctx, f.cfg, v)
	next := cloneMeta(meta)
	next.Source, next.Attempted, next.Replica = f.cfg.source(), now, m.opts.Replica
	if err != nil {
		next.LastError = shortErr(err)
		if perr := m.store.PutMeta(ctx, name, next); perr != nil {
			err = errors.Join(err, fmt.Errorf("storing meta: %w", perr))
		}
		return next, err
	}
	next.LastError, next.Checked = "", now
	next.ETag, next.LastModified = got.etag, got.lastModified
	if got.notModified {
		if err := m.store.PutMeta(ctx, name, next); err != nil {
			return meta, fmt.Errorf("storing meta: %w", err)
		}
		return next, nil
	}
	enc, _ := got.res.Set.MarshalBinary()
	digest := digestOf(enc)
	next.Entries, next.Ranges, next.Invalid, next.Dropped = got.res.Entries, got.res.Set.Len(), got.res.Invalid, got.res.Dropped
	next.Problems = problemStrings(got.res.Problems)
	if found && meta.Version > 0 && digest == meta.Digest && f.broken != digest {
		if err := m.store.PutMeta(ctx, name, next); err != nil {
			return meta, fmt.Errorf("storing meta: %w", err)
		}
		return next, nil
	}
	next.Version, next.Digest, next.Fetched = meta.Version+1, digest, now
	if err := m.store.Put(ctx, name, enc, next); err != nil {
		if errors.Is(err, ErrConflict) {
			// Another replica stored a newer version meanwhile: load that.
			if cur, ok, rerr := m.readMeta(ctx, name); rerr == nil && ok {
				return cur, nil
			}
			return meta, nil
		}
		// The store is the fleet's truth, so the list is not used here
		// either; the lease expires soon and the next holder retries.
		return meta, fmt.Errorf("storing set: %w", err)
	}
	// The holder installs what it stored rather than reading it back.
	m.install(ctx, f, got.res.Set, digest, next.Version, false, next, now)
	return next, nil
}

// load installs the stored set when it differs from the one in use.
func (m *Manager) load(ctx context.Context, f *feed, meta Meta, now time.Time) error {
	if meta.Version == 0 {
		return nil
	}
	if meta.Digest == f.digest {
		// Same list (also when this replica fetched it locally before).
		f.version, f.local, f.checked = meta.Version, false, meta.Checked
		f.info = meta
		return nil
	}
	if meta.Digest == f.broken {
		return fmt.Errorf("stored set version %d does not decode; waiting for a fresh fetch", meta.Version)
	}
	enc, gm, err := m.store.Get(ctx, f.cfg.Name)
	if err != nil {
		return fmt.Errorf("loading set: %w", err)
	}
	set, err := DecodeSet(enc)
	if err != nil {
		f.broken = gm.Digest
		return fmt.Errorf("decoding stored set version %d: %w", gm.Version, err)
	}
	f.broken = ""
	m.install(ctx, f, set, gm.Digest, gm.Version, false, gm, now)
	return nil
}

// install makes set f's list (the Matcher is rebuilt by Sync).
func (m *Manager) install(ctx context.Context, f *feed, set *Set, digest string, version uint64, local bool, info Meta, now time.Time) {
	f.set.Store(set)
	f.changed = true
	f.digest, f.version, f.local, f.info = digest, version, local, info
	f.loaded, f.checked = now, info.Checked
	m.log.LogAttrs(ctx, slog.LevelInfo, EventFeedUpdated,
		slog.String("feed", f.cfg.Name), slog.String("source", f.cfg.source()),
		slog.Uint64("version", version), slog.Bool("local", local),
		slog.Int("entries", info.Entries), slog.Int("ranges", set.Len()),
		slog.Int("invalid", info.Invalid), slog.Int("dropped", info.Dropped))
}

// syncLocal is the fallback when the store or the lease is unreachable:
// this replica fetches for itself, at most once per refresh (RetryAfter
// after a failure), and keeps its list otherwise. coordErr is always
// returned, so the outage is reported.
func (m *Manager) syncLocal(ctx context.Context, f *feed, now time.Time, coordErr error) error {
	defer func() { m.setStatus(f, Meta{}, coordErr) }()
	if (f.set.Load() != nil && now.Sub(f.checked) < f.cfg.Refresh) || now.Before(f.localNext) {
		return coordErr
	}
	f.localNext = now.Add(m.retry(f))
	var v validators
	if f.set.Load() != nil {
		v = validators{f.info.ETag, f.info.LastModified}
	}
	got, err := m.fetch.fetch(ctx, f.cfg, v)
	if err != nil {
		coordErr = errors.Join(coordErr, err)
		return coordErr
	}
	f.checked, f.localNext = now, now.Add(f.cfg.Refresh)
	if got.notModified {
		return coordErr
	}
	enc, _ := got.res.Set.MarshalBinary()
	digest := digestOf(enc)
	if digest == f.digest {
		return coordErr
	}
	info := Meta{
		Source: f.cfg.source(), Fetched: now, Checked: now, Attempted: now, ETag: got.etag, LastModified: got.lastModified,
		Entries: got.res.Entries, Ranges: got.res.Set.Len(), Invalid: got.res.Invalid, Dropped: got.res.Dropped,
		Problems: problemStrings(got.res.Problems),
	}
	m.install(ctx, f, got.res.Set, digest, 0, true, info, now)
	return coordErr
}

func (m *Manager) setStatus(f *feed, meta Meta, err error) {
	s := Status{
		Feed: f.cfg.Name, Source: f.cfg.source(), Mode: f.cfg.Mode,
		Version: f.version, Local: f.local,
		Entries: f.info.Entries, Ranges: f.set.Load().Len(), Invalid: f.info.Invalid, Dropped: f.info.Dropped,
		Problems: f.info.Problems, Loaded: f.loaded,
		LastSuccess: f.checked, LastAttempt: meta.Attempted, LastError: meta.LastError,
	}
	if meta.Checked.After(s.LastSuccess) {
		s.LastSuccess = meta.Checked
	}
	if s.LastAttempt.IsZero() {
		s.LastAttempt = f.info.Attempted
	}
	if err != nil {
		s.LastError = shortErr(err)
	}
	f.smu.Lock()
	f.status = s
	f.smu.Unlock()
}

func digestOf(enc []byte) string {
	sum := sha256.Sum256(enc)
	return hex.EncodeToString(sum[:16])
}

func problemStrings(ps []LineError) []string {
	n := min(len(ps), 5)
	out := make([]string, n)
	for i := range n {
		out[i] = ps[i].Error()
	}
	return out
}
