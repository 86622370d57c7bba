// Package alert turns what the fleet does into notifications: clients
// banned, a detection blocking at an attack rate, a replica that stopped
// heartbeating, and Redis failing. Alerts are grouped the way Alertmanager
// groups them (group_wait, group_interval, repeat_interval, plus
// CrowdSec's group_threshold), so a flood gives one notification, not
// thousands; each sink has a bounded queue (drops counted) and retries with
// exponential backoff; and although every replica evaluates the same
// alerts (each reads the whole event stream and the fleet's heartbeats),
// only one sends each notification: the holder of the group's lease in
// Redis.
//
// Sinks: a generic webhook with a Go-template body, a Slack-compatible
// webhook, and an Alertmanager-compatible webhook (the version 4 payload
// that Alertmanager sends to its webhook receivers).
//
// Nothing here runs on the request path: alerts come from the event stream
// (through the console's monitor), the shared store and the store's circuit
// breaker, read by one background goroutine.
package alert

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
)

// Alert names (the alertname label): stable identifiers, like metric
// names.
const (
	AlertClientBanned = "RampartClientBanned"
	AlertAttackRate   = "RampartAttackRate"
	AlertReplicaDown  = "RampartReplicaDown"
	AlertStoreDown    = "RampartStoreDown"
)

// Alert is one alert, as Alertmanager models it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	// EndsAt is when the alert resolved (or, for a ban, when the ban
	// ends); zero while firing with no known end.
	EndsAt      time.Time `json:"endsAt"`
	Fingerprint string    `json:"fingerprint"`
}

// Status is firing or resolved as of now.
func (a *Alert) Status(now time.Time) string {
	if !a.EndsAt.IsZero() && !a.EndsAt.After(now) {
		return "resolved"
	}
	return "firing"
}

// fingerprint hashes the sorted labels (FNV-64a, as Alertmanager's
// fingerprints are 16 hex digits).
func fingerprint(labels map[string]string) string {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// Notification is what a sink is given: one group's alerts.
type Notification struct {
	// GroupKey identifies the group (Alertmanager style:
	// {}/rampart:{alertname="...", detection="..."}).
	GroupKey string `json:"groupKey"`
	// Receiver is the sink's name.
	Receiver string `json:"receiver"`
	// Status is firing when any alert fires, else resolved.
	Status            string            `json:"status"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	Alerts            []Alert           `json:"alerts"`
	// TruncatedAlerts counts alerts of the group not listed (over
	// max_alerts_per_notification).
	TruncatedAlerts int    `json:"truncatedAlerts"`
	ExternalURL     string `json:"externalURL"`
	// Replica is the replica that sent the notification; Time when.
	Replica string    `json:"replica"`
	Time    time.Time `json:"time"`
}

// Count is the number of alerts the notification is about, listed or not.
func (n *Notification) Count() int { return len(n.Alerts) + n.TruncatedAlerts }

// Firing returns the listed alerts that fire.
func (n *Notification) Firing() []Alert {
	var out []Alert
	for i := range n.Alerts {
		if n.Alerts[i].Status(n.Time) == "firing" {
			out = append(out, n.Alerts[i])
		}
	}
	return out
}

// Claimer decides which replica sends a group's notifications
// (*store.Redis and *store.Memory implement it): held reports whether
// replica holds the group's lease now, claimed when its holder last
// claimed it (the store's clock).
type Claimer interface {
	ClaimAlert(ctx context.Context, group, replica string, lease time.Duration) (held bool, claimed time.Time, err error)
}

// FleetReader reads the replicas' heartbeats.
type FleetReader interface {
	Fleet(ctx context.Context) ([]store.Heartbeat, error)
}

// StoreHealth is this replica's view of the store (the gateway's store).
type StoreHealth interface {
	Healthy() bool
	FailingFor(now time.Time) time.Duration
}

// Options are the alerter's collaborators.
type Options struct {
	Config Config
	// Replica is this replica's name.
	Replica string
	// Claimer deduplicates notifications across replicas; nil: this
	// replica always sends (a single instance).
	Claimer Claimer
	// Fleet, when set, feeds the replica_down rule.
	Fleet FleetReader
	// Health, when set, feeds the store_down rule.
	Health StoreHealth
	// Registerer receives the alerting metrics (the gateway's registry);
	// nil: not registered.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock and Tick the evaluation period (tests); defaults
	// time.Now and one second.
	Now  func() time.Time
	Tick time.Duration
	// Client sends the notifications; nil: a client with Timeout.
	Client HTTPDoer
	// Dropped, when set, reports how many event batches the feed given to
	// Run has lost so far because the alerter fell behind
	// (console.Subscription.Dropped): Run exports the increase as
	// rampart_alert_events_dropped_total and logs it, since the bans and
	// blocks in those batches raise no alert.
	Dropped func() int64
}

// Alerter evaluates the rules and sends notifications.
type Alerter struct {
	cfg     Config
	replica string
	claim   Claimer
	fleet   FleetReader
	health  StoreHealth
	log     *slog.Logger
	now     func() time.Time
	tick    time.Duration
	sinks   []*dispatcher
	m       *metrics
	dropped func() int64

	// Evaluation state, owned by Run's goroutine.
	groups    map[string]*group
	rates     map[string]*window // detection -> blocks per second
	rateFire  map[string]bool
	down      map[string]bool // replicas alerted as down
	storeDown bool
	lastFleet time.Time
	// droppedSeen is the Dropped count already exported.
	droppedSeen int64

	wg sync.WaitGroup
}

// New validates the configuration and builds the sinks.
func New(opts Options) (*Alerter, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Replica == "" {
		return nil, errors.New("alert: no replica name")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	a := &Alerter{cfg: opts.Config, replica: opts.Replica, claim: opts.Claimer, fleet: opts.Fleet, health: opts.Health,
		log: opts.Logger.With(slog.String("component", "alert")), now: opts.Now, tick: opts.Tick, dropped: opts.Dropped,
		groups: map[string]*group{}, rates: map[string]*window{}, rateFire: map[string]bool{}, down: map[string]bool{}}
	a.m = newMetrics(opts.Registerer)
	client := opts.Client
	if client == nil {
		client = newHTTPClient(opts.Config.Timeout)
	}
	for _, sc := range opts.Config.Sinks {
		s, err := newSink(sc, client)
		if err != nil {
			return nil, err
		}
		a.sinks = append(a.sinks, newDispatcher(s, opts.Config, a.m, a.log, a.now))
	}
	return a, nil
}

// Run evaluates the rules on the events it is given and on a timer, and
// sends notifications, until ctx ends; then it gives queued notifications
// a few seconds to go out.
func (a *Alerter) Run(ctx context.Context, events <-chan []record.Event) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	for _, d := range a.sinks {
		a.wg.Go(func() { d.run(sctx) })
	}
	t := time.NewTicker(a.tick)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case evs, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			a.Observe(evs)
		case <-t.C:
			a.countDropped(ctx)
			a.Evaluate(ctx)
		}
	}
	a.countDropped(ctx)
	for _, d := range a.sinks {
		d.close()
	}
	stop := time.AfterFunc(5*time.Second, cancel)
	a.wg.Wait()
	stop.Stop()
	cancel()
}

// countDropped exports the event batches the feed lost since the last
// look (Options.Dropped).
func (a *Alerter) countDropped(ctx context.Context) {
	if a.dropped == nil {
		return
	}
	n := a.dropped()
	if n < a.droppedSeen { // a new feed counting from zero
		a.droppedSeen = 0
	}
	d := n - a.droppedSeen
	if d <= 0 {
		return
	}
	a.droppedSeen = n
	a.m.eventsDropped.Add(float64(d))
	a.log.LogAttrs(ctx, slog.LevelWarn, "alert_events_dropped", slog.Int64("batches", d), slog.Int64("total", n),
		slog.String("detail", "the alerter fell behind the event feed: the bans and blocks in these batches raise no alert"))
}

// Observe feeds events to the rules. Run calls it; tests may too (from
// one goroutine, as Run does).
func (a *Alerter) Observe(evs []record.Event) {
	now := a.now()
	r := a.cfg.Rules
	for i := range evs {
		e := &evs[i]
		switch e.Type {
		case record.EventClientBlocklisted:
			if r.Bans.Enabled && (r.Bans.Operator || e.Detection != "admin") {
				a.add(banAlert(e), []string{"alertname", "detection"}, true, now)
			}
		case record.EventRequestBlocked:
			if r.AttackRate.Enabled && e.Detection != "" {
				w := a.rates[e.Detection]
				if w == nil {
					w = newWindow(r.AttackRate.Window)
					a.rates[e.Detection] = w
				}
				w.add(e.Time, now)
			}
		}
	}
}

func banAlert(e *record.Event) Alert {
	labels := map[string]string{"alertname": AlertClientBanned, "severity": "warning", "detection": e.Detection, "client": e.Client}
	when := e.Time
	if when.IsZero() {
		when = time.Now()
	}
	al := Alert{Labels: labels, StartsAt: when.UTC(), Annotations: map[string]string{
		"summary":     fmt.Sprintf("%s banned by %s", e.Client, e.Detection),
		"description": fmt.Sprintf("%s was put on the blocklist by the %s detection (%s) for %s, by replica %s.", e.Client, e.Detection, e.Reason, e.BanFor, e.Replica),
		"reason":      e.Reason,
	}}
	if d, err := time.ParseDuration(e.BanFor); err == nil && d > 0 {
		al.EndsAt = al.StartsAt.Add(d)
	}
	al.Fingerprint = fingerprint(labels)
	return al
}

// Evaluate runs the timed rules and sends what is due. Run calls it every
// tick.
func (a *Alerter) Evaluate(ctx context.Context) {
	now := a.now()
	a.evalRates(now)
	a.evalFleet(ctx, now)
	a.evalStore(now)
	a.flush(ctx, now)
}

func (a *Alerter) threshold(detection string) int {
	if n, ok := a.cfg.Rules.AttackRate.PerDetection[detection]; ok {
		return n
	}
	return a.cfg.Rules.AttackRate.Threshold
}

func (a *Alerter) evalRates(now time.Time) {
	rule := a.cfg.Rules.AttackRate
	for det, w := range a.rates {
		n, th := w.count(now), a.threshold(det)
		labels := map[string]string{"alertname": AlertAttackRate, "severity": "warning", "detection": det}
		switch {
		case !a.rateFire[det] && n >= th:
			a.rateFire[det] = true
			a.add(Alert{Labels: labels, StartsAt: now.UTC(), Annotations: map[string]string{
				"summary":     fmt.Sprintf("%s blocked %d requests in %s", det, n, rule.Window),
				"description": fmt.Sprintf("The %s detection blocked %d requests over the fleet in the last %s (threshold %d).", det, n, rule.Window, th),
			}}, []string{"alertname", "detection"}, false, now)
		case a.rateFire[det] && n <= th/2:
			a.rateFire[det] = false
			a.resolve(labels, []string{"alertname", "detection"}, now)
		case n == 0 && !a.rateFire[det]:
			delete(a.rates, det) // idle: forget it
		}
	}
}

func (a *Alerter) evalFleet(ctx context.Context, now time.Time) {
	rule := a.cfg.Rules.ReplicaDown
	if !rule.Enabled || a.fleet == nil || now.Sub(a.lastFleet) < min(5*time.Second, rule.After/2) {
		return
	}
	a.lastFleet = now
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	fleet, err := a.fleet.Fleet(fctx)
	if err != nil {
		return // the store is down: store_down says so
	}
	seen := map[string]bool{}
	for _, hb := range fleet {
		seen[hb.Replica] = true
		labels := map[string]string{"alertname": AlertReplicaDown, "severity": "critical", "replica": hb.Replica}
		switch {
		case hb.Age >= rule.After && !a.down[hb.Replica]:
			a.down[hb.Replica] = true
			a.add(Alert{Labels: labels, StartsAt: hb.LastSeen.UTC(), Annotations: map[string]string{
				"summary":     fmt.Sprintf("replica %s stopped heartbeating", hb.Replica),
				"description": fmt.Sprintf("Replica %s (version %s, config %s) last heartbeated %s ago.", hb.Replica, hb.Version, hb.ConfigHash, hb.Age.Round(time.Second)),
			}}, []string{"alertname"}, false, now)
		case hb.Age < rule.After && a.down[hb.Replica]:
			delete(a.down, hb.Replica)
			a.resolve(labels, []string{"alertname"}, now)
		}
	}
	for r := range a.down {
		if !seen[r] { // left the fleet (retention): resolved
			delete(a.down, r)
			a.resolve(map[string]string{"alertname": AlertReplicaDown, "severity": "critical", "replica": r}, []string{"alertname"}, now)
		}
	}
}

func (a *Alerter) evalStore(now time.Time) {
	rule := a.cfg.Rules.StoreDown
	if !rule.Enabled || a.health == nil {
		return
	}
	failing := a.health.FailingFor(now)
	labels := map[string]string{"alertname": AlertStoreDown, "severity": "critical", "replica": a.replica}
	switch {
	case !a.storeDown && failing >= rule.After:
		a.storeDown = true
		a.add(Alert{Labels: labels, StartsAt: now.Add(-failing).UTC(), Annotations: map[string]string{
			"summary":     fmt.Sprintf("replica %s cannot reach the shared store", a.replica),
			"description": fmt.Sprintf("Calls to Redis from %s have been failing for %s; the gateway applies its store failure policy (bans.on_store_error).", a.replica, failing.Round(time.Second)),
		}}, []string{"alertname", "replica"}, false, now)
	case a.storeDown && failing == 0 && a.health.Healthy():
		a.storeDown = false
		a.resolve(labels, []string{"alertname", "replica"}, now)
	}
}

// group is an aggregation group: alerts with the same group labels.
type group struct {
	key       string
	labels    map[string]string
	alerts    map[string]*entry // fingerprint -> alert
	order     []string          // fingerprints in arrival order
	truncated int               // one-shot alerts over the bound, since the last notification
	pending   int               // alerts new or changed since the last notification
	nextFlush time.Time
	lastSent  time.Time
	sentOnce  bool
	// deferred is the holder's last claim when this replica first stood
	// aside for the pending alerts (zero: not standing aside).
	deferred time.Time
}

type entry struct {
	alert    Alert
	oneShot  bool // notified once, then dropped (bans)
	notified bool
	// status last notified ("" never)
	notifiedStatus string
}

// groupKeyOf builds the group key and labels.
func groupKeyOf(labels map[string]string, by []string) (string, map[string]string) {
	gl := map[string]string{}
	for _, k := range by {
		gl[k] = labels[k]
	}
	var b strings.Builder
	b.WriteString("{}/rampart:{")
	for i, k := range slices.Sorted(maps.Keys(gl)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, gl[k])
	}
	b.WriteString("}")
	return b.String(), gl
}

// add puts an alert into its group.
func (a *Alerter) add(al Alert, by []string, oneShot bool, now time.Time) {
	if al.Fingerprint == "" {
		al.Fingerprint = fingerprint(al.Labels)
	}
	key, gl := groupKeyOf(al.Labels, by)
	g := a.groups[key]
	if g == nil {
		g = &group{key: key, labels: gl, alerts: map[string]*entry{}, nextFlush: now.Add(a.cfg.GroupWait)}
		a.groups[key] = g
	}
	a.m.alerts.WithLabelValues(al.Labels["alertname"]).Inc()
	if e := g.alerts[al.Fingerprint]; e != nil {
		e.alert.Annotations, e.alert.EndsAt = al.Annotations, al.EndsAt
		if e.alert.Status(now) != e.notifiedStatus {
			g.pending++
		}
	} else if len(g.alerts) < a.cfg.MaxAlertsPerNotification {
		g.alerts[al.Fingerprint] = &entry{alert: al, oneShot: oneShot}
		g.order = append(g.order, al.Fingerprint)
		g.pending++
	} else {
		g.truncated++
		g.pending++
	}
	if th := a.cfg.GroupThreshold; th > 0 && g.pending >= th {
		early := now
		if g.sentOnce {
			early = g.lastSent.Add(a.cfg.GroupInterval)
		}
		if early.Before(g.nextFlush) {
			g.nextFlush = early
		}
	}
}

// resolve marks a state alert resolved (it is notified at the group's next
// flush).
func (a *Alerter) resolve(labels map[string]string, by []string, now time.Time) {
	key, _ := groupKeyOf(labels, by)
	g := a.groups[key]
	if g == nil {
		return
	}
	if e := g.alerts[fingerprint(labels)]; e != nil && e.alert.EndsAt.IsZero() {
		e.alert.EndsAt = now.UTC()
		g.pending++
	}
}

// lease is how long a replica keeps a group's lease after its last claim:
// long enough to cover the gap between two flushes.
func (a *Alerter) lease() time.Duration { return 2*a.cfg.GroupInterval + a.cfg.GroupWait }

// flush sends the notifications that are due.
func (a *Alerter) flush(ctx context.Context, now time.Time) {
	for key, g := range a.groups {
		if now.Before(g.nextFlush) {
			continue
		}
		firing := false
		for _, e := range g.alerts {
			if e.alert.Status(now) == "firing" && !e.oneShot {
				firing = true
			}
		}
		repeat := firing && g.sentOnce && now.Sub(g.lastSent) >= a.cfg.RepeatInterval
		if g.pending == 0 && !repeat {
			if len(g.alerts) == 0 || !firing && allNotified(g) {
				// Quiet for a whole interval. A last claim tells replicas
				// standing aside that the holder is alive and done.
				a.claimLease(ctx, g)
				delete(a.groups, key)
				continue
			}
			g.nextFlush = now.Add(a.cfg.GroupInterval)
			a.claimLease(ctx, g) // keep the lease while the group lives
			continue
		}
		send, claimed := a.claimLease(ctx, g)
		if !send {
			// Another replica holds the lease. It sees the same alerts, but
			// it may have died: keep them until the holder has claimed
			// again since we first stood aside (it has flushed, and sent
			// them), or until its lease lapses and ours is the claim that
			// wins. Ask again at every tick meanwhile.
			if g.deferred.IsZero() {
				g.deferred = claimed
			}
			if !claimed.After(g.deferred) {
				g.nextFlush = now.Add(a.tick)
				continue
			}
			a.m.deduplicated.Inc()
		} else {
			n := a.notification(g, now)
			for _, d := range a.sinks {
				d.enqueue(n)
			}
		}
		// Either way the alerts are notified: every replica's view of the
		// group moves on together.
		for fp, e := range g.alerts {
			e.notified, e.notifiedStatus = true, e.alert.Status(now)
			if e.oneShot || e.notifiedStatus == "resolved" {
				delete(g.alerts, fp)
			}
		}
		g.order = keep(g.order, g.alerts)
		g.pending, g.truncated, g.lastSent, g.sentOnce, g.deferred = 0, 0, now, true, time.Time{}
		g.nextFlush = now.Add(a.cfg.GroupInterval)
	}
}

func allNotified(g *group) bool {
	for _, e := range g.alerts {
		if !e.notified {
			return false
		}
	}
	return true
}

func keep(order []string, m map[string]*entry) []string {
	out := order[:0]
	for _, fp := range order {
		if m[fp] != nil {
			out = append(out, fp)
		}
	}
	return out
}

// claimLease reports whether this replica sends the group's notification,
// and when the lease's holder last claimed it. Without a claimer, or when
// the store cannot answer, it sends: a duplicate beats a lost alert (and
// Redis failing is itself alerted on).
func (a *Alerter) claimLease(ctx context.Context, g *group) (bool, time.Time) {
	if a.claim == nil {
		return true, time.Time{}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ok, claimed, err := a.claim.ClaimAlert(cctx, g.key, a.replica, a.lease())
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "alert_claim_failed", slog.String("group", g.key), slog.String("error", err.Error()),
			slog.String("detail", "sending anyway: other replicas may send the same notification"))
		return true, time.Time{}
	}
	return ok, claimed
}

// notification builds a group's notification (the same for every sink
// but the receiver name).
func (a *Alerter) notification(g *group, now time.Time) *Notification {
	n := &Notification{GroupKey: g.key, GroupLabels: g.labels, ExternalURL: a.cfg.ExternalURL, Replica: a.replica,
		Time: now.UTC(), TruncatedAlerts: g.truncated, Status: "resolved"}
	for _, fp := range g.order {
		e := g.alerts[fp]
		if e == nil || (e.notified && e.oneShot) {
			continue
		}
		al := e.alert
		al.Labels, al.Annotations = maps.Clone(al.Labels), maps.Clone(al.Annotations)
		n.Alerts = append(n.Alerts, al)
		if al.Status(now) == "firing" {
			n.Status = "firing"
		}
	}
	n.CommonLabels, n.CommonAnnotations = common(n.Alerts, func(a *Alert) map[string]string { return a.Labels }),
		common(n.Alerts, func(a *Alert) map[string]string { return a.Annotations })
	if n.Status == "resolved" && n.TruncatedAlerts > 0 {
		n.Status = "firing"
	}
	return n
}

// common returns the pairs every alert shares.
func common(alerts []Alert, get func(*Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range get(&alerts[0]) {
		out[k] = v
	}
	for i := 1; i < len(alerts); i++ {
		m := get(&alerts[i])
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// window counts events per second over a sliding window.
type window struct {
	span    time.Duration
	buckets []int
	secs    []int64
}

func newWindow(span time.Duration) *window {
	n := int(span / time.Second)
	return &window{span: span, buckets: make([]int, n), secs: make([]int64, n)}
}

// add counts an event at t (events from the future or too far in the past
// count now).
func (w *window) add(t, now time.Time) {
	if t.IsZero() || t.After(now) || now.Sub(t) >= w.span {
		t = now
	}
	s := t.Unix()
	i := int(s % int64(len(w.buckets)))
	if w.secs[i] != s {
		w.secs[i], w.buckets[i] = s, 0
	}
	w.buckets[i]++
}

func (w *window) count(now time.Time) int {
	cur, n := now.Unix(), 0
	for i, s := range w.secs {
		if cur-s < int64(len(w.buckets)) && s <= cur {
			n += w.buckets[i]
		}
	}
	return n
}

// metrics of the alerter.
type metrics struct {
	alerts        *prometheus.CounterVec
	notifications *prometheus.CounterVec
	retries       *prometheus.CounterVec
	deduplicated  prometheus.Counter
	eventsDropped prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "rampart", Name: "alerts_total",
			Help: "Alerts raised by this replica's rules, by alertname (before grouping)."}, []string{"alertname"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "rampart", Name: "alert_notifications_total",
			Help: "Alert notifications, by sink and result: sent, failed (after every retry), dropped (the sink's queue was full)."}, []string{"sink", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "rampart", Name: "alert_retries_total",
			Help: "Retried notification attempts, by sink."}, []string{"sink"}),
		deduplicated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "rampart", Name: "alert_notifications_deduplicated_total",
			Help: "Notifications this replica did not send because another replica holds the group's lease (and sent them)."}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "rampart", Name: "alert_events_dropped_total",
			Help: "Batches of security events the alerter lost because it fell behind the event feed: the bans and blocks in them raised no alert."}),
	}
	if r != nil {
		// A second alerter on one registry (tests) shares the first's
		// collectors.
		register := func(c prometheus.Collector) prometheus.Collector {
			if err := r.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return are.ExistingCollector
				}
				panic(err) // two different metrics with one name: a programmer error
			}
			return c
		}
		m.alerts = register(m.alerts).(*prometheus.CounterVec)
		m.notifications = register(m.notifications).(*prometheus.CounterVec)
		m.retries = register(m.retries).(*prometheus.CounterVec)
		m.deduplicated = register(m.deduplicated).(prometheus.Counter)
		m.eventsDropped = register(m.eventsDropped).(prometheus.Counter)
	}
	for _, n := range []string{AlertClientBanned, AlertAttackRate, AlertReplicaDown, AlertStoreDown} {
		m.alerts.WithLabelValues(n)
	}
	return m
}
