package console

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
)

// MonitorStore is what the monitor writes (and the console reads) in the
// shared store. *store.Redis and *store.Memory satisfy it.
type MonitorStore interface {
	Heartbeat(ctx context.Context, hb store.Heartbeat, retention time.Duration) error
	Fleet(ctx context.Context) ([]store.Heartbeat, error)
	LeaveFleet(ctx context.Context, replica string) error
	AddRates(ctx context.Context, at time.Time, r store.RateSample) error
	Rates(ctx context.Context, from, to time.Time) ([]store.RatePoint, error)
	AddTop(ctx context.Context, hits []store.TopHit) error
	Top(ctx context.Context, dim string, window time.Duration, n int) ([]store.TopEntry, error)
	AddReload(ctx context.Context, r store.Reload) error
	Reloads(ctx context.Context, n int) ([]store.Reload, error)
}

// redisTail is how events are followed on Redis (*store.Redis).
type redisTail interface {
	TailEvents(ctx context.Context, fn func([]record.Event))
	ConsumeEvents(ctx context.Context, group, consumer string, fn func([]record.Event))
}

// memoryTail is how events are followed in memory (*store.MemoryEvents).
type memoryTail interface {
	Tail(ctx context.Context, fn func([]record.Event))
}

// MonitorOptions are the monitor's collaborators.
type MonitorOptions struct {
	Gateway *gateway.Gateway
	// Store is the shared store (*store.Redis or *store.Memory).
	Store MonitorStore
	// Events is the event log (*store.EventStream or *store.MemoryEvents);
	// nil when events are off (no live page, no top offenders).
	Events any
	// Version is the build's version, ConfigHash the running file's hash
	// (asked at every heartbeat: a reload changes it).
	Version    string
	ConfigHash func() string
	Config     Config
	Logger     *slog.Logger
	// Now is the clock (tests); nil uses time.Now.
	Now func() time.Time
}

// Monitor is the background half of the console, which runs on every
// replica whether its console is enabled or not: it follows the event
// stream (fanning each batch out to the live pages and the alerts), feeds
// the top-offender counters, samples the gateway's request counters once a
// second into the fleet's rate chart, and heartbeats this replica into the
// fleet. None of it runs on the request path: the gateway's events already
// go to the stream, and its metrics are read from the registry.
type Monitor struct {
	g       *gateway.Gateway
	st      MonitorStore
	cfg     Config
	version string
	hash    func() string
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	tail    func(ctx context.Context, fn func([]record.Event)) // nil: events off
	topFeed func(ctx context.Context, fn func([]record.Event)) // nil: fed from tail

	mu   sync.Mutex
	subs map[*subscriber]struct{}

	topMu      sync.Mutex
	topPending map[topKey]int64

	// rates of this replica over the last heartbeat interval, for the
	// heartbeat (float64 bits).
	reqRate, blockRate atomic.Uint64
}

// subscriber is one consumer of the live feed: a bounded queue; when it is
// full, batches are dropped and counted rather than slowing the feed.
type subscriber struct {
	ch      chan []record.Event
	dropped atomic.Int64
}

// NewMonitor returns the monitor; Run starts it.
func NewMonitor(opts MonitorOptions) (*Monitor, error) {
	if opts.Gateway == nil || opts.Store == nil {
		return nil, errors.New("console: the monitor needs the gateway and the store")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ConfigHash == nil {
		opts.ConfigHash = func() string { return "" }
	}
	if isNil(opts.Events) {
		opts.Events = nil // a typed nil (events off) is no event log
	}
	m := &Monitor{g: opts.Gateway, st: opts.Store, cfg: opts.Config, version: opts.Version, hash: opts.ConfigHash,
		log: opts.Logger.With(slog.String("component", "monitor")), now: opts.Now, subs: map[*subscriber]struct{}{}}
	m.started = m.now()
	replica := m.g.Replica()
	if opts.Events != nil {
		if rt, ok := opts.Store.(redisTail); ok && m.g.Store().Shared() {
			m.tail = rt.TailEvents
			m.topFeed = func(ctx context.Context, fn func([]record.Event)) { rt.ConsumeEvents(ctx, store.TopGroup, replica, fn) }
		} else if mt, ok := opts.Events.(memoryTail); ok {
			m.tail = mt.Tail
		} else {
			return nil, errors.New("console: the event log can be followed neither in Redis nor in memory")
		}
	}
	return m, nil
}

// EventsEnabled reports whether there is an event stream to follow.
func (m *Monitor) EventsEnabled() bool { return m.tail != nil }

// Run works until ctx ends, then removes this replica from the fleet.
func (m *Monitor) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if m.tail != nil {
		wg.Go(func() {
			m.tail(ctx, func(evs []record.Event) {
				m.publish(evs)
				if m.topFeed == nil {
					m.addTop(ctx, evs)
				}
			})
		})
	}
	if m.topFeed != nil {
		wg.Go(func() { m.topFeed(ctx, func(evs []record.Event) { m.addTop(ctx, evs) }) })
	}
	wg.Go(func() { m.flushTop(ctx) })
	wg.Go(func() { m.sample(ctx) })
	wg.Wait()
	// A clean stop leaves the fleet: the replica is not shown as missing,
	// and the replica_down alert does not fire for a scale-down.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := m.st.LeaveFleet(lctx, m.g.Replica()); err != nil {
		m.log.LogAttrs(lctx, slog.LevelDebug, "leave_fleet_failed", slog.String("error", err.Error()))
	}
}

// Subscription is one consumer's feed of event batches.
type Subscription struct {
	m    *Monitor
	s    *subscriber
	once sync.Once
}

// C delivers the batches.
func (sub *Subscription) C() <-chan []record.Event { return sub.s.ch }

// Dropped reports how many batches were lost because the consumer fell
// behind.
func (sub *Subscription) Dropped() int64 { return sub.s.dropped.Load() }

// Close ends the subscription.
func (sub *Subscription) Close() {
	sub.once.Do(func() {
		sub.m.mu.Lock()
		delete(sub.m.subs, sub.s)
		sub.m.mu.Unlock()
	})
}

// Subscribe returns a feed of event batches: every replica's events, as
// they are written to the stream. A subscriber more than buffer batches
// behind loses batches (counted by Dropped) rather than slowing the feed.
func (m *Monitor) Subscribe(buffer int) *Subscription {
	s := &subscriber{ch: make(chan []record.Event, max(buffer, 1))}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	return &Subscription{m: m, s: s}
}

func (m *Monitor) publish(evs []record.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.subs {
		select {
		case s.ch <- evs:
		default:
			s.dropped.Add(1)
		}
	}
}

// offenderHits turns security events into top-offender hits: blocked and
// would-be-blocked requests count against their client, route, rule, TLS
// fingerprint (JA4) and, for the user_agent detection, the pattern that
// matched (events carry no raw User-Agent).
func offenderHits(evs []record.Event) []store.TopHit {
	hits := make([]store.TopHit, 0, 4*len(evs))
	for i := range evs {
		e := &evs[i]
		if e.Type != record.EventRequestBlocked && e.Type != record.EventWouldBlock {
			continue
		}
		add := func(dim, member string) {
			if member != "" {
				hits = append(hits, store.TopHit{Time: e.Time, Dim: dim, Member: member, N: 1})
			}
		}
		add(store.TopClients, e.Client)
		if p := requestPath(e); p != "" {
			add(store.TopRoutes, joinNonEmpty(" ", e.Method, p))
		}
		rule := e.Rule
		if rule == "" {
			rule = e.Reason
		}
		if e.Detection != "" {
			add(store.TopRules, joinNonEmpty("/", e.Detection, rule))
		}
		if e.Detection == "user_agent" {
			add(store.TopUserAgents, rule)
		}
		add(store.TopJA4, e.JA4)
	}
	return hits
}

func joinNonEmpty(sep string, parts ...string) string {
	out := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if out != "" {
			out += sep
		}
		out += p
	}
	return out
}

// topFlushEvery is how often the top-offender hits collected in process
// are written: a flood from one client costs one increment per period, not
// one per event.
const topFlushEvery = time.Second

// maxTopPending bounds the hits collected between two writes (distinct
// offender and minute); beyond it they are written at once.
const maxTopPending = 20_000

// addTop collects the hits of evs, summed per offender and second.
func (m *Monitor) addTop(ctx context.Context, evs []record.Event) {
	hits := offenderHits(evs)
	if len(hits) == 0 {
		return
	}
	m.topMu.Lock()
	if m.topPending == nil {
		m.topPending = map[topKey]int64{}
	}
	for _, h := range hits {
		m.topPending[topKey{h.Dim, h.Member, h.Time.Unix() / 60 * 60}] += h.N
	}
	full := len(m.topPending) >= maxTopPending
	m.topMu.Unlock()
	if full {
		m.writeTop(ctx)
	}
}

type topKey struct {
	dim, member string
	minute      int64
}

func (m *Monitor) flushTop(ctx context.Context) {
	t := time.NewTicker(topFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.writeTop(context.WithoutCancel(ctx))
			return
		case <-t.C:
			m.writeTop(ctx)
		}
	}
}

func (m *Monitor) writeTop(ctx context.Context) {
	m.topMu.Lock()
	pending := m.topPending
	m.topPending = nil
	m.topMu.Unlock()
	if len(pending) == 0 {
		return
	}
	hits := make([]store.TopHit, 0, len(pending))
	for k, n := range pending {
		hits = append(hits, store.TopHit{Time: time.Unix(k.minute, 0), Dim: k.dim, Member: k.member, N: n})
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := m.st.AddTop(wctx, hits); err != nil && ctx.Err() == nil {
		m.log.LogAttrs(ctx, slog.LevelDebug, "top_offenders_write_failed", slog.String("error", err.Error()))
	}
}

// requestTotals are the gateway's request counters, as the rate chart
// groups them.
type requestTotals struct {
	allowed, blocked, banned, all float64
}

// readTotals reads rampart_requests_total from the gateway's registry.
func readTotals(g *gateway.Gateway) (requestTotals, error) {
	fams, err := g.Metrics().Registry.Gather()
	if err != nil {
		return requestTotals{}, err
	}
	var t requestTotals
	for _, f := range fams {
		if f.GetName() != "rampart_requests_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			v := mt.GetCounter().GetValue()
			t.all += v
			switch label(mt, "result") {
			case "proxied", "upstream_error", "aborted":
				t.allowed += v
			case "blocked":
				t.blocked += v
			case "banned":
				t.banned += v
			}
		}
	}
	return t, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sample reads the request counters once a second, adds this replica's
// deltas to the fleet's rate chart, and heartbeats every cfg.Heartbeat.
func (m *Monitor) sample(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev, _ := readTotals(m.g)
	hbPrev, hbAt := prev, m.now()
	m.heartbeat(ctx)
	nextHB := hbAt.Add(m.cfg.Heartbeat)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := m.now()
		cur, err := readTotals(m.g)
		if err != nil {
			continue
		}
		d := store.RateSample{Allowed: int64(cur.allowed - prev.allowed), Blocked: int64(cur.blocked - prev.blocked), Banned: int64(cur.banned - prev.banned)}
		prev = cur
		// The second that just ended.
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if err := m.st.AddRates(wctx, now.Add(-time.Second), d); err != nil && ctx.Err() == nil {
			m.log.LogAttrs(ctx, slog.LevelDebug, "rates_write_failed", slog.String("error", err.Error()))
		}
		cancel()
		if !now.Before(nextHB) {
			secs := now.Sub(hbAt).Seconds()
			if secs > 0 {
				storeF64(&m.reqRate, (cur.all-hbPrev.all)/secs)
				storeF64(&m.blockRate, (cur.blocked+cur.banned-hbPrev.blocked-hbPrev.banned)/secs)
			}
			hbPrev, hbAt = cur, now
			m.heartbeat(ctx)
			nextHB = now.Add(m.cfg.Heartbeat)
		}
	}
}

// Heartbeat returns this replica's heartbeat as of now.
func (m *Monitor) Heartbeat() store.Heartbeat {
	st := m.g.Store()
	hb := store.Heartbeat{
		Replica: m.g.Replica(), Version: m.version, ConfigHash: m.hash(), Started: m.started.UTC(),
		Store: "memory", StoreHealthy: st.Healthy(), RequestRate: loadF64(&m.reqRate), BlockRate: loadF64(&m.blockRate),
		LocalBans: m.g.Caches().Bans, Interval: m.cfg.Heartbeat,
	}
	if st.Shared() {
		hb.Store = "redis"
	}
	if le, ok := st.(interface{ LastError() string }); ok && !hb.StoreHealthy {
		hb.StoreError = le.LastError()
	}
	for _, e := range m.g.Policy().Chain.Entries() {
		hb.Chain = append(hb.Chain, e.Detection.Name()+":"+e.Mode.String())
	}
	return hb
}

func (m *Monitor) heartbeat(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := m.st.Heartbeat(wctx, m.Heartbeat(), m.cfg.FleetRetention); err != nil && ctx.Err() == nil {
		m.log.LogAttrs(ctx, slog.LevelDebug, "heartbeat_failed", slog.String("error", err.Error()))
	}
}

// RecordReload adds a configuration reload (or the start) of this replica
// to the fleet's reload list, which the console's Config page shows.
func (m *Monitor) RecordReload(ctx context.Context, r store.Reload) {
	if r.Replica == "" {
		r.Replica = m.g.Replica()
	}
	if r.Time.IsZero() {
		r.Time = m.now().UTC()
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := m.st.AddReload(wctx, r); err != nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "reload_record_failed", slog.String("error", err.Error()))
	}
}

func storeF64(a *atomic.Uint64, v float64) { a.Store(math.Float64bits(v)) }
func loadF64(a *atomic.Uint64) float64     { return math.Float64frombits(a.Load()) }

// isNil reports a nil interface or one holding a nil pointer.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}
