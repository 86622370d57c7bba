package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartgw/rampart/alert"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
	"github.com/rampartgw/rampart/testutil"
)

// receiver is a real HTTP server that records what sinks send; answer
// picks each request's status (200 when nil).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	hdrs   []http.Header
	answer func(n int) (status int, retryAfter string)
	hold   chan struct{} // when set, requests wait for it to close
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.hdrs = append(r.hdrs, req.Header.Clone())
		n, answer, hold := len(r.bodies), r.answer, r.hold
		r.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-req.Context().Done():
				return
			}
		}
		if answer != nil {
			code, ra := answer(n)
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			w.WriteHeader(code)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func (r *receiver) body(i int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bodies[i]
}

// amPayload is the Alertmanager webhook payload as a receiver reads it.
type amPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

func (r *receiver) am(t *testing.T, i int) amPayload {
	t.Helper()
	var p amPayload
	if err := json.Unmarshal(r.body(i), &p); err != nil {
		t.Fatalf("payload %d: %v: %s", i, err, r.body(i))
	}
	return p
}

// testConfig is a fast configuration with the given sinks.
func testConfig(sinks ...alert.SinkConfig) alert.Config {
	c := alert.DefaultConfig()
	c.Enabled = true
	c.ExternalURL = "https://rampart.example/console"
	c.GroupWait, c.GroupInterval, c.RepeatInterval = 300*time.Millisecond, time.Hour, 2*time.Hour
	c.RetryBackoff, c.MaxBackoff, c.Timeout = 20*time.Millisecond, 200*time.Millisecond, 2*time.Second
	c.Rules.AttackRate.Threshold = 100
	c.Rules.ReplicaDown.Enabled, c.Rules.StoreDown.Enabled = false, false
	c.Sinks = sinks
	return c
}

// run starts an alerter fed by the returned channel; it stops at cleanup.
func run(t *testing.T, opts alert.Options) (chan<- []record.Event, func()) {
	t.Helper()
	ch := make(chan []record.Event, 64)
	return ch, start(t, opts, ch)
}

// start starts an alerter fed by ch and returns its stop function (also
// called at cleanup).
func start(t *testing.T, opts alert.Options, ch <-chan []record.Event) func() {
	t.Helper()
	if opts.Replica == "" {
		opts.Replica = "replica-a"
	}
	if opts.Tick == 0 {
		opts.Tick = 20 * time.Millisecond
	}
	a, err := alert.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx, ch) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

func blocked(i int, det string) record.Event {
	return record.Event{Time: time.Now().UTC(), Type: record.EventRequestBlocked, Client: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
		Detection: det, Reason: "malicious_payload", Replica: "replica-b"}
}

func banned(i int, det string) record.Event {
	e := blocked(i, det)
	e.Type, e.BanFor = record.EventClientBlocklisted, "10m0s"
	return e
}

// feed sends n events made by mk in batches of 500, as the event tail
// delivers them.
func feed(ch chan<- []record.Event, n int, mk func(int) record.Event) {
	for i := 0; i < n; i += 500 {
		batch := make([]record.Event, 0, 500)
		for j := i; j < min(i+500, n); j++ {
			batch = append(batch, mk(j))
		}
		ch <- batch
	}
}

// TestFloodGivesOneAlert: 10,000 blocks give one attack-rate
// notification, and 10,000 bans one grouped ban notification, on each
// kind of sink; the flood going on does not send more within
// group_interval.
func TestFloodGivesOneAlert(t *testing.T) {
	am, slack, hook := newReceiver(t), newReceiver(t), newReceiver(t)
	cfg := testConfig(
		alert.SinkConfig{Name: "am", Type: alert.SinkAlertmanager, URL: am.srv.URL + "/webhook"},
		alert.SinkConfig{Name: "chat", Type: alert.SinkSlack, URL: slack.srv.URL + "/services/T/B/X", Channel: "#sec", Username: "rampart"},
		alert.SinkConfig{Name: "hook", Type: alert.SinkWebhook, URL: hook.srv.URL + "/in", Headers: map[string]string{"Authorization": "Bearer hook-secret"},
			Body: `{"text":"{{.Status}} {{index .GroupLabels "alertname"}} {{.Count}}","alerts":{{json .Alerts}}}`},
	)
	// The alerter's clock stands still while the flood is fed, so however
	// slow this machine is, the whole flood lands within group_wait; then
	// the clock moves on.
	clock := &fakeClock{now: time.Now()}
	reg := prometheus.NewRegistry()
	ch, stop := run(t, alert.Options{Config: cfg, Registerer: reg, Now: clock.Now})
	start := time.Now()
	feed(ch, 10_000, func(i int) record.Event { return blocked(i, "payload") })
	feed(ch, 10_000, func(i int) record.Event { return banned(i, "payload") })
	observed(t, reg, alert.AlertClientBanned, 10_000) // and the blocks before them
	t.Logf("20,000 events fed and observed in %v", time.Since(start))
	clock.Add(cfg.GroupWait)
	for _, r := range []*receiver{am, slack, hook} {
		testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return r.count() >= 2 }, "notifications: %d", r.count())
	}
	// The flood goes on: nothing more until group_interval (an hour).
	feed(ch, 2000, func(i int) record.Event { return blocked(20_000+i, "payload") })
	feed(ch, 2000, func(i int) record.Event { return banned(20_000+i, "payload") })
	observed(t, reg, alert.AlertClientBanned, 12_000)
	for range 10 {
		clock.Add(cfg.GroupWait)
		time.Sleep(30 * time.Millisecond) // a tick or more
	}
	for name, r := range map[string]*receiver{"alertmanager": am, "slack": slack, "webhook": hook} {
		if n := r.count(); n != 2 {
			t.Errorf("%s received %d notifications, want 2 (one per group)", name, n)
		}
	}

	// The Alertmanager v4 payload.
	byName := map[string]amPayload{}
	for i := range 2 {
		p := am.am(t, i)
		byName[p.GroupLabels["alertname"]] = p
	}
	bans := byName[alert.AlertClientBanned]
	if bans.Version != "4" || bans.Status != "firing" || bans.Receiver != "am" || bans.ExternalURL != cfg.ExternalURL ||
		bans.GroupKey != `{}/rampart:{alertname="RampartClientBanned", detection="payload"}` {
		t.Errorf("ban notification: %+v", bans)
	}
	if len(bans.Alerts)+bans.TruncatedAlerts != 10_000 || len(bans.Alerts) != cfg.MaxAlertsPerNotification {
		t.Errorf("ban notification lists %d alerts + %d truncated, want %d + %d", len(bans.Alerts), bans.TruncatedAlerts,
			cfg.MaxAlertsPerNotification, 10_000-cfg.MaxAlertsPerNotification)
	}
	if bans.CommonLabels["detection"] != "payload" || bans.CommonLabels["severity"] != "warning" || bans.CommonLabels["client"] != "" {
		t.Errorf("common labels %v", bans.CommonLabels)
	}
	a0 := bans.Alerts[0]
	if a0.Status != "firing" || a0.Labels["client"] != "10.0.0.0" || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(a0.Fingerprint) ||
		a0.StartsAt.IsZero() || a0.EndsAt.Sub(a0.StartsAt) != 10*time.Minute || a0.GeneratorURL != cfg.ExternalURL+"/bans?q=10.0.0.0" ||
		!strings.Contains(a0.Annotations["summary"], "10.0.0.0 banned by payload") {
		t.Errorf("first ban alert %+v", a0)
	}
	rate := byName[alert.AlertAttackRate]
	if len(rate.Alerts) != 1 || rate.TruncatedAlerts != 0 || rate.Alerts[0].Labels["detection"] != "payload" || !rate.Alerts[0].EndsAt.IsZero() ||
		!strings.Contains(rate.Alerts[0].Annotations["description"], "threshold 100") {
		t.Errorf("attack-rate notification %+v", rate)
	}

	// Slack and the webhook template.
	var msgs []map[string]any
	for i := range 2 {
		var m map[string]any
		if err := json.Unmarshal(slack.body(i), &m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	all := fmt.Sprint(msgs)
	for _, want := range []string{"[FIRING:10000] RampartClientBanned* detection=payload", "… and 9900 more", "#sec", "rampart",
		"<https://rampart.example/console|Open the Rampart console>", "[FIRING:1] RampartAttackRate*"} {
		if !strings.Contains(all, want) {
			t.Errorf("slack messages lack %q: %s", want, all)
		}
	}
	for i := range 2 {
		var m struct {
			Text   string
			Alerts []json.RawMessage
		}
		if err := json.Unmarshal(hook.body(i), &m); err != nil {
			t.Fatalf("webhook body %d: %v: %s", i, err, hook.body(i))
		}
		if m.Text != "firing RampartClientBanned 10000" && m.Text != "firing RampartAttackRate 1" {
			t.Errorf("webhook text %q", m.Text)
		}
		if got := hook.hdrs[i].Get("Authorization"); got != "Bearer hook-secret" {
			t.Errorf("webhook header %q", got)
		}
	}
	stop()
	if got := gathered(t, reg, "rampart_alert_notifications_total", "sink", "am", "result", "sent"); got != 2 {
		t.Errorf("sent metric %v", got)
	}
}

// observed waits until the alerter has raised n alerts of the name.
func observed(t *testing.T, reg *prometheus.Registry, name string, n int) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() bool {
		return gathered(t, reg, "rampart_alerts_total", "alertname", name) >= float64(n)
	}, "%s: %v alerts observed, want %d", name, gathered(t, reg, "rampart_alerts_total", "alertname", name), n)
}

// gathered reads one series from a registry.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestRetries: 5xx and 429 are retried with backoff (Retry-After
// honoured within max_backoff), 4xx are not, and every attempt has a
// timeout.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(n int) (int, string)
		requests int
		result   string
	}{
		{"500, 503, then 200", func(n int) (int, string) { return []int{500, 503, 200}[min(n-1, 2)], "" }, 3, "sent"},
		{"429 with Retry-After", func(n int) (int, string) {
			if n == 1 {
				return 429, "1"
			}
			return 200, ""
		}, 2, "sent"},
		{"400 is final", func(int) (int, string) { return 400, "" }, 1, "failed"},
		{"always 502", func(int) (int, string) { return 502, "" }, 4, "failed"}, // 1 + max_retries
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t)
			r.answer = tc.answer
			cfg := testConfig(alert.SinkConfig{Name: "am", Type: alert.SinkAlertmanager, URL: r.srv.URL})
			cfg.MaxRetries = 3
			reg := prometheus.NewRegistry()
			ch, stop := run(t, alert.Options{Config: cfg, Registerer: reg})
			ch <- []record.Event{banned(1, "rate_limit")}
			testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
				return gathered(t, reg, "rampart_alert_notifications_total", "sink", "am", "result", tc.result) == 1
			}, "no %s notification after %d requests", tc.result, r.count())
			time.Sleep(100 * time.Millisecond)
			stop()
			if n := r.count(); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			if got := gathered(t, reg, "rampart_alert_retries_total", "sink", "am"); got != float64(tc.requests-1) {
				t.Errorf("retries %v, want %d", got, tc.requests-1)
			}
		})
	}
	t.Run("a hung sink times out and is retried", func(t *testing.T) {
		r := newReceiver(t)
		r.hold = make(chan struct{})
		cfg := testConfig(alert.SinkConfig{Name: "am", Type: alert.SinkAlertmanager, URL: r.srv.URL})
		cfg.Timeout, cfg.MaxRetries = 100*time.Millisecond, 1
		reg := prometheus.NewRegistry()
		ch, stop := run(t, alert.Options{Config: cfg, Registerer: reg})
		ch <- []record.Event{banned(1, "rate_limit")}
		testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
			return gathered(t, reg, "rampart_alert_notifications_total", "sink", "am", "result", "failed") == 1
		}, "the hung sink was not given up on")
		close(r.hold)
		stop()
		if n := r.count(); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
	})
}

// TestQueueIsBounded: a sink that hangs holds one notification in flight
// and queue_size in its queue; the rest are dropped and counted, and the
// other sinks are not held up.
func TestQueueIsBounded(t *testing.T) {
	slow, fast := newReceiver(t), newReceiver(t)
	slow.hold = make(chan struct{})
	cfg := testConfig(alert.SinkConfig{Name: "slow", Type: alert.SinkWebhook, URL: slow.srv.URL},
		alert.SinkConfig{Name: "fast", Type: alert.SinkWebhook, URL: fast.srv.URL})
	cfg.QueueSize, cfg.Timeout = 2, 10*time.Second
	reg := prometheus.NewRegistry()
	ch, stop := run(t, alert.Options{Config: cfg, Registerer: reg})
	metric := func(sink, result string) float64 {
		return gathered(t, reg, "rampart_alert_notifications_total", "sink", sink, "result", result)
	}
	// One group first, until the slow sink holds it in flight; then nine
	// more groups (one per detection), nine notifications at once.
	ch <- []record.Event{banned(0, "detection_0")}
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return slow.count() == 1 && fast.count() == 1 }, "first notification")
	var evs []record.Event
	for i := 1; i < 10; i++ {
		evs = append(evs, banned(i, fmt.Sprint("detection_", i)))
	}
	ch <- evs
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return metric("slow", "dropped") == 7 },
		"dropped: %v", metric("slow", "dropped"))
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return metric("fast", "sent")+metric("fast", "dropped") == 10 },
		"fast sink: sent %v, dropped %v", metric("fast", "sent"), metric("fast", "dropped"))
	if metric("fast", "sent") < 3 || slow.count() != 1 {
		t.Errorf("fast sink sent %v, the slow one got %d requests", metric("fast", "sent"), slow.count())
	}
	close(slow.hold)
	stop()
	if got := metric("slow", "sent"); got != 3 {
		t.Errorf("slow sink sent %v, want 3 (one in flight, two queued)", got)
	}
}

// TestDedupAcrossReplicas: two replicas share one Redis; each reads the
// whole event stream and evaluates the same alerts, and the sink gets each
// notification once. When the lease holder stops, the other takes over
// and what it was holding back is not lost.
func TestDedupAcrossReplicas(t *testing.T) {
	for _, kind := range []string{"miniredis", "redis"} {
		t.Run(kind, func(t *testing.T) {
			var a, b *store.Redis
			expire := func() {} // real Redis: leases lapse in real time
			if kind == "miniredis" {
				var mr *miniredis.Miniredis
				a, mr = storetest.New(t)
				b = storetest.NewOn(t, mr.Addr())
				expire = func() { mr.FastForward(200 * time.Millisecond) } // miniredis expires keys only when told
			} else {
				if testing.Short() {
					t.Skip("real redis runs in the full suite")
				}
				srv := storetest.Real(t)
				a, b = storetest.NewFor(t, srv), storetest.NewFor(t, srv)
			}
			r := newReceiver(t)
			cfg := testConfig(alert.SinkConfig{Name: "am", Type: alert.SinkAlertmanager, URL: r.srv.URL})
			// Generous times: a replica starved of CPU for longer than the
			// lease would (rightly) send a duplicate rather than nothing.
			cfg.GroupWait, cfg.GroupInterval, cfg.RepeatInterval = time.Second, 1500*time.Millisecond, time.Hour
			// Each replica reads the whole stream (store.TestTailEvents): both
			// alerters get the same batches.
			var batches [][]record.Event
			for i := 0; i < 1000; i += 500 {
				var b []record.Event
				for j := i; j < i+500; j++ {
					b = append(b, banned(j, "enumeration"))
				}
				batches = append(batches, b)
			}
			regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
			var stops []func()
			var chans []chan<- []record.Event
			for i, st := range []*store.Redis{a, b} {
				ch := make(chan []record.Event, 64)
				for _, b := range batches {
					ch <- b
				}
				stop := start(t, alert.Options{Config: cfg, Replica: fmt.Sprint("replica-", i), Claimer: st, Registerer: regs[i], Tick: 50 * time.Millisecond}, ch)
				stops, chans = append(stops, stop), append(chans, ch)
			}
			var sent, dedup [2]float64
			read := func() {
				for i, reg := range regs {
					sent[i] = gathered(t, reg, "rampart_alert_notifications_total", "sink", "am", "result", "sent")
					dedup[i] = gathered(t, reg, "rampart_alert_notifications_deduplicated_total")
				}
			}
			// One sends; the other stands aside until the holder's next
			// claim, then counts the notification as deduplicated.
			if err := testutil.Poll(10*time.Second, 10*time.Millisecond, func() error {
				if read(); sent[0]+sent[1] >= 1 && dedup[0]+dedup[1] >= 1 {
					return nil
				}
				return fmt.Errorf("sent %v, deduplicated %v, %d requests", sent, dedup, r.count())
			}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * cfg.GroupInterval)
			read()
			if n := r.count(); n != 1 {
				for i := range n {
					p := r.am(t, i)
					t.Logf("notification %d: %d + %d alerts", i, len(p.Alerts), p.TruncatedAlerts)
				}
				t.Fatalf("%d notifications from two replicas, want 1", n)
			}
			if p := r.am(t, 0); p.TruncatedAlerts+len(p.Alerts) != 1000 {
				t.Errorf("the notification covers %d + %d alerts, want 1000", len(p.Alerts), p.TruncatedAlerts)
			}
			if sent[0]+sent[1] != 1 || dedup[0]+dedup[1] != 1 || sent[0] != dedup[1] {
				t.Fatalf("sent %v, deduplicated %v: want one of each, on different replicas", sent, dedup)
			}
			// Stop the holder: the other takes the lease when it lapses and
			// sends the bans it was holding back meanwhile.
			holder := 0
			if sent[1] == 1 {
				holder = 1
			}
			stops[holder]()
			var more []record.Event
			for i := range 50 {
				more = append(more, banned(5000+i, "enumeration"))
			}
			chans[1-holder] <- more
			testutil.Eventually(t, 15*time.Second, 20*time.Millisecond, func() bool { expire(); return r.count() >= 2 }, "the survivor did not take over")
			time.Sleep(2 * cfg.GroupInterval)
			if n := r.count(); n != 2 {
				t.Errorf("%d notifications after the take-over, want 2", n)
			}
			if p := r.am(t, 1); len(p.Alerts) != 50 {
				t.Errorf("the take-over notification lists %d alerts, want the 50 new bans", len(p.Alerts))
			}
		})
	}
}

// fakeClock is a clock tests move.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeHealth is a store whose failure the test sets.
type fakeHealth struct {
	since atomic.Int64 // unix nanos failing since; 0: healthy
	clock *fakeClock
}

func (h *fakeHealth) Healthy() bool { return h.since.Load() == 0 }
func (h *fakeHealth) FailingFor(now time.Time) time.Duration {
	if s := h.since.Load(); s != 0 {
		return now.Sub(time.Unix(0, s))
	}
	return 0
}

// TestStateAlerts: a replica that stops heartbeating, the store failing
// and an attack rate fire, then resolve, each notified once either way
// (the resolution as status resolved with endsAt).
func TestStateAlerts(t *testing.T) {
	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	mcfg := store.DefaultMemoryConfig()
	mcfg.Now = clock.Now
	mem := store.NewMemory(mcfg)
	health := &fakeHealth{clock: clock}
	r := newReceiver(t)
	cfg := testConfig(alert.SinkConfig{Name: "am", Type: alert.SinkAlertmanager, URL: r.srv.URL})
	cfg.GroupWait, cfg.GroupInterval = time.Second, 2*time.Second
	cfg.Rules.ReplicaDown = alert.ReplicaRule{Enabled: true, After: 3 * time.Second}
	cfg.Rules.StoreDown = alert.StoreRule{Enabled: true, After: 2 * time.Second}
	cfg.Rules.AttackRate = alert.RateRule{Enabled: true, Window: 10 * time.Second, Threshold: 50, PerDetection: map[string]int{"rate_limit": 500}}
	ch, _ := run(t, alert.Options{Config: cfg, Claimer: mem, Fleet: mem, Health: health, Now: clock.Now})
	beat := func(replica string) {
		t.Helper()
		if err := mem.Heartbeat(t.Context(), store.Heartbeat{Replica: replica, Interval: time.Second, Version: "v2", ConfigHash: "abc"}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	beat("replica-a")
	beat("replica-b")
	// An attack on payload (over 50 in 10 s) but not on rate_limit (500).
	ch <- func() []record.Event {
		var evs []record.Event
		for i := range 60 {
			e := blocked(i, "payload")
			e.Time = clock.Now()
			evs = append(evs, e)
			e2 := blocked(i, "rate_limit")
			e2.Time = clock.Now()
			evs = append(evs, e2)
		}
		return evs
	}()
	step := func(d time.Duration) {
		for range int(d / (500 * time.Millisecond)) {
			clock.Add(500 * time.Millisecond)
			beat("replica-a")                 // replica-b has stopped
			time.Sleep(30 * time.Millisecond) // a tick or two
		}
	}
	health.since.Store(clock.Now().UnixNano())
	step(5 * time.Second)
	testutil.Eventually(t, 3*time.Second, 10*time.Millisecond, func() bool { return r.count() >= 3 }, "firing: %d notifications", r.count())
	firing := map[string]amPayload{}
	for i := range r.count() {
		p := r.am(t, i)
		firing[p.GroupLabels["alertname"]] = p
	}
	for _, name := range []string{alert.AlertAttackRate, alert.AlertReplicaDown, alert.AlertStoreDown} {
		p, ok := firing[name]
		if !ok || p.Status != "firing" || len(p.Alerts) != 1 || p.Alerts[0].Labels["severity"] == "" {
			t.Errorf("%s: %+v", name, p)
		}
	}
	if p := firing[alert.AlertAttackRate]; p.Alerts[0].Labels["detection"] != "payload" {
		t.Errorf("attack rate on %q", p.Alerts[0].Labels["detection"])
	}
	if p := firing[alert.AlertReplicaDown]; p.Alerts[0].Labels["replica"] != "replica-b" || p.Alerts[0].GeneratorURL != cfg.ExternalURL+"/fleet" {
		t.Errorf("replica down: %+v", p.Alerts[0])
	}
	if p := firing[alert.AlertStoreDown]; p.Alerts[0].Labels["replica"] != "replica-a" {
		t.Errorf("store down: %+v", p.Alerts[0])
	}
	if n := r.count(); n != 3 {
		t.Fatalf("%d notifications while firing, want 3", n)
	}
	// Everything recovers: replica-b heartbeats, the store answers, the
	// attack is over (the window empties).
	health.since.Store(0)
	for range 12 {
		beat("replica-b")
		step(time.Second)
	}
	testutil.Eventually(t, 3*time.Second, 10*time.Millisecond, func() bool { return r.count() >= 6 }, "resolved: %d notifications", r.count())
	for range 6 {
		beat("replica-b")
		step(time.Second)
	}
	if n := r.count(); n != 6 {
		t.Errorf("%d notifications, want 6 (3 firing, 3 resolved)", n)
	}
	for i := 3; i < r.count(); i++ {
		p := r.am(t, i)
		if p.Status != "resolved" || len(p.Alerts) != 1 || p.Alerts[0].Status != "resolved" || p.Alerts[0].EndsAt.IsZero() {
			t.Errorf("notification %d: %+v", i, p)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := alert.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := alert.DefaultConfig()
	bad.Enabled = true
	bad.GroupWait, bad.RepeatInterval, bad.QueueSize = 0, time.Minute, 0
	bad.Rules.AttackRate.Threshold = 0
	bad.Sinks = []alert.SinkConfig{
		{Name: "a", Type: "email", URL: "https://x.example/"},
		{Name: "a", Type: alert.SinkWebhook, URL: "ftp://secret-host/path", Body: "{{ .Oops"},
		{Type: alert.SinkSlack, URL: "https://hooks.example/T/B/SECRET", Body: "x", Method: "GET"},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{"group_wait", "repeat_interval", "queue_size", "rules.attack_rate.threshold", `sinks[0].type: "email"`,
		`sinks[1].name: "a" is used twice`, "sinks[1].url", "sinks[1].body", "sinks[2].name", "sinks[2].method", "sinks[2].body"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "SECRET") || strings.Contains(msg, "secret-host") {
		t.Errorf("the error repeats a sink URL:\n%s", msg)
	}
	on := alert.DefaultConfig()
	on.Enabled = true
	if err := on.Validate(); err == nil || !strings.Contains(err.Error(), "no sink") {
		t.Errorf("enabled without sinks: %v", err)
	}
}

// lockedBuffer is a log written from the alerter's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestDroppedEventsCounted: event batches the feed lost because the
// alerter fell behind (Options.Dropped, the console subscription's count)
// show in rampart_alert_events_dropped_total and in the log.
func TestDroppedEventsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	var dropped atomic.Int64
	log := &lockedBuffer{}
	r := newReceiver(t)
	cfg := testConfig(alert.SinkConfig{Name: "am", Type: alert.SinkAlertmanager, URL: r.srv.URL})
	_, stop := run(t, alert.Options{Config: cfg, Registerer: reg, Dropped: dropped.Load,
		Logger: slog.New(slog.NewJSONHandler(log, nil))})
	metric := func() float64 { return gathered(t, reg, "rampart_alert_events_dropped_total") }
	if got := metric(); got != 0 {
		t.Fatalf("before any drop: %v, want 0 (the series exists from the start)", got)
	}
	dropped.Store(3)
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() bool { return metric() == 3 }, "dropped: %v, want 3", metric())
	dropped.Store(5)
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() bool { return metric() == 5 }, "dropped: %v, want 5", metric())
	stop()
	if got := metric(); got != 5 {
		t.Errorf("after stop: %v, want 5 (no drop counted twice)", got)
	}
	if s := log.String(); !strings.Contains(s, `"msg":"alert_events_dropped"`) || !strings.Contains(s, `"batches":2`) {
		t.Errorf("log lacks the drops:\n%s", s)
	}
}
