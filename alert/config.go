package alert

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"time"
)

// Config configures alerting (the alerts section of the file).
type Config struct {
	// Enabled turns alerting on (it needs at least one sink).
	Enabled bool `yaml:"enabled"`
	// ExternalURL is where people reach the console (links in
	// notifications), e.g. https://rampart-admin.example.com/console.
	ExternalURL string `yaml:"external_url"`
	// GroupWait is how long a new group collects alerts before its first
	// notification; GroupInterval how long to wait before notifying about
	// alerts added to a group already notified; RepeatInterval how long
	// before an unchanged, still firing group is notified again.
	GroupWait      time.Duration `yaml:"group_wait"`
	GroupInterval  time.Duration `yaml:"group_interval"`
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	// GroupThreshold, when > 0, sends a group's notification as soon as it
	// holds this many new alerts, without waiting out GroupWait (never
	// sooner than GroupInterval after the previous one).
	GroupThreshold int `yaml:"group_threshold"`
	// MaxAlertsPerNotification bounds the alerts listed in one
	// notification; the rest are counted (truncatedAlerts).
	MaxAlertsPerNotification int `yaml:"max_alerts_per_notification"`
	// QueueSize bounds each sink's queue of notifications waiting to be
	// sent; when it is full, new ones are dropped and counted.
	QueueSize int `yaml:"queue_size"`
	// MaxRetries is how many times a failed send is retried, waiting
	// RetryBackoff, doubled after each attempt up to MaxBackoff (a
	// Retry-After from the sink is honoured within MaxBackoff). Timeout
	// bounds each attempt.
	MaxRetries   int           `yaml:"max_retries"`
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	MaxBackoff   time.Duration `yaml:"max_backoff"`
	Timeout      time.Duration `yaml:"timeout"`
	// Rules are the triggers.
	Rules RulesConfig `yaml:"rules"`
	// Sinks receive every notification.
	Sinks []SinkConfig `yaml:"sinks"`
}

// RulesConfig holds the triggers.
type RulesConfig struct {
	// Bans alerts on clients put on the blocklist.
	Bans BanRule `yaml:"bans"`
	// AttackRate alerts on a detection blocking many requests fleet-wide.
	AttackRate RateRule `yaml:"attack_rate"`
	// ReplicaDown alerts on a replica that stopped heartbeating.
	ReplicaDown ReplicaRule `yaml:"replica_down"`
	// StoreDown alerts on this replica's store failing.
	StoreDown StoreRule `yaml:"store_down"`
}

// BanRule alerts on clients put on the blocklist (RampartClientBanned,
// grouped by detection).
type BanRule struct {
	// Enabled turns the rule on.
	Enabled bool `yaml:"enabled"`
	// Operator also alerts on bans made by operators (detection admin).
	Operator bool `yaml:"operator"`
}

// RateRule alerts when a detection blocks at least Threshold requests
// within Window over the whole fleet (RampartAttackRate, one alert per
// detection); it resolves when the count falls to half the threshold.
type RateRule struct {
	// Enabled turns the rule on.
	Enabled bool `yaml:"enabled"`
	// Window is the time blocks are counted over.
	Window time.Duration `yaml:"window"`
	// Threshold is the number of blocks within Window that fires.
	Threshold int `yaml:"threshold"`
	// PerDetection overrides Threshold for some detections.
	PerDetection map[string]int `yaml:"per_detection"`
}

// ReplicaRule alerts when a replica has not heartbeated for After
// (RampartReplicaDown); a replica that shuts down cleanly leaves the fleet
// and does not alert.
type ReplicaRule struct {
	// Enabled turns the rule on.
	Enabled bool `yaml:"enabled"`
	// After is the silence that fires.
	After time.Duration `yaml:"after"`
}

// StoreRule alerts when this replica's store has been failing for After
// (RampartStoreDown, one alert per replica: without Redis the replicas
// cannot agree who sends, so each sends its own).
type StoreRule struct {
	// Enabled turns the rule on.
	Enabled bool `yaml:"enabled"`
	// After is how long the store must fail to fire.
	After time.Duration `yaml:"after"`
}

// Sink types.
const (
	SinkWebhook      = "webhook"
	SinkSlack        = "slack"
	SinkAlertmanager = "alertmanager"
)

// SinkConfig is one receiver of notifications.
type SinkConfig struct {
	// Name identifies the sink in logs, metrics and payloads (receiver).
	Name string `yaml:"name"`
	// Type is webhook (any HTTP endpoint, body from a template), slack (a
	// Slack-compatible incoming webhook: Slack, Mattermost, Rocket.Chat)
	// or alertmanager (the Alertmanager webhook payload, version 4).
	Type string `yaml:"type"`
	// URL is the endpoint. It is often a secret itself (Slack's is): the
	// console shows only its host.
	URL string `yaml:"url"`
	// Method is the webhook's HTTP method (POST).
	Method string `yaml:"method"`
	// Headers are added to every request (e.g. Authorization).
	Headers map[string]string `yaml:"headers"`
	// Body is the webhook's Go template (text/template) over the
	// notification; empty sends the notification as JSON. Functions: json,
	// upper, lower, join, since.
	Body string `yaml:"body"`
	// ContentType of the webhook body (application/json).
	ContentType string `yaml:"content_type"`
	// Text is the Slack message template (a default summarises the group).
	Text string `yaml:"text"`
	// Channel, Username and IconEmoji override the Slack webhook's own.
	Channel   string `yaml:"channel"`
	Username  string `yaml:"username"`
	IconEmoji string `yaml:"icon_emoji"`
}

// DefaultConfig returns the defaults documented in the README: off, and
// when turned on, Alertmanager's grouping times and every rule.
func DefaultConfig() Config {
	return Config{
		GroupWait:                30 * time.Second,
		GroupInterval:            5 * time.Minute,
		RepeatInterval:           4 * time.Hour,
		MaxAlertsPerNotification: 100,
		QueueSize:                100,
		MaxRetries:               5,
		RetryBackoff:             time.Second,
		MaxBackoff:               time.Minute,
		Timeout:                  10 * time.Second,
		Rules: RulesConfig{
			Bans:        BanRule{Enabled: true},
			AttackRate:  RateRule{Enabled: true, Window: time.Minute, Threshold: 100},
			ReplicaDown: ReplicaRule{Enabled: true, After: 30 * time.Second},
			StoreDown:   StoreRule{Enabled: true, After: 10 * time.Second},
		},
	}
}

// Validate reports every problem in c, under the keys of the file.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Enabled && len(c.Sinks) == 0 {
		add("sinks: alerting is enabled but no sink is configured")
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("external_url: %q is not an http(s) URL", c.ExternalURL)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"group_wait", c.GroupWait}, {"group_interval", c.GroupInterval}, {"repeat_interval", c.RepeatInterval},
		{"retry_backoff", c.RetryBackoff}, {"max_backoff", c.MaxBackoff}, {"timeout", c.Timeout}} {
		if d.v <= 0 {
			add("%s: %v must be > 0", d.key, d.v)
		}
	}
	if c.RepeatInterval > 0 && c.RepeatInterval < c.GroupInterval {
		add("repeat_interval: %v must be >= group_interval (%v)", c.RepeatInterval, c.GroupInterval)
	}
	if c.MaxBackoff > 0 && c.MaxBackoff < c.RetryBackoff {
		add("max_backoff: %v must be >= retry_backoff (%v)", c.MaxBackoff, c.RetryBackoff)
	}
	if c.GroupThreshold < 0 {
		add("group_threshold: %d must be >= 0", c.GroupThreshold)
	}
	if c.MaxAlertsPerNotification <= 0 || c.MaxAlertsPerNotification > 10_000 {
		add("max_alerts_per_notification: %d must be in 1..10000", c.MaxAlertsPerNotification)
	}
	if c.QueueSize <= 0 || c.QueueSize > 100_000 {
		add("queue_size: %d must be in 1..100000", c.QueueSize)
	}
	if c.MaxRetries < 0 || c.MaxRetries > 100 {
		add("max_retries: %d must be in 0..100", c.MaxRetries)
	}
	r := c.Rules
	if r.AttackRate.Enabled {
		if r.AttackRate.Window < time.Second || r.AttackRate.Window > time.Hour {
			add("rules.attack_rate.window: %v must be within [1s, 1h]", r.AttackRate.Window)
		}
		if r.AttackRate.Threshold <= 0 {
			add("rules.attack_rate.threshold: %d must be > 0", r.AttackRate.Threshold)
		}
		for d, n := range r.AttackRate.PerDetection {
			if n <= 0 {
				add("rules.attack_rate.per_detection.%s: %d must be > 0", d, n)
			}
		}
	}
	if r.ReplicaDown.Enabled && r.ReplicaDown.After < time.Second {
		add("rules.replica_down.after: %v must be >= 1s", r.ReplicaDown.After)
	}
	if r.StoreDown.Enabled && r.StoreDown.After <= 0 {
		add("rules.store_down.after: %v must be > 0", r.StoreDown.After)
	}
	names := map[string]bool{}
	for i, s := range c.Sinks {
		key := fmt.Sprintf("sinks[%d]", i)
		if s.Name == "" {
			add("%s.name: must be set", key)
		} else if names[s.Name] {
			add("%s.name: %q is used twice", key, s.Name)
		}
		names[s.Name] = true
		switch s.Type {
		case SinkWebhook, SinkSlack, SinkAlertmanager:
		default:
			add("%s.type: %q is not webhook, slack or alertmanager", key, s.Type)
		}
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("%s.url: not an http(s) URL", key) // the URL itself is not repeated: it may be a secret
		}
		if s.Method != "" && s.Type != SinkWebhook {
			add("%s.method: only webhook sinks take a method", key)
		}
		switch strings.ToUpper(s.Method) {
		case "", "POST", "PUT", "PATCH":
		default:
			add("%s.method: %q is not POST, PUT or PATCH", key, s.Method)
		}
		for h := range s.Headers {
			if h == "" || strings.ContainsAny(h, " \t\r\n:") {
				add("%s.headers: %q is not a header name", key, h)
			}
		}
		for _, t := range []struct{ field, src string }{{"body", s.Body}, {"text", s.Text}} {
			if t.src == "" {
				continue
			}
			if _, err := template.New(t.field).Funcs(funcs).Parse(t.src); err != nil {
				add("%s.%s: %v", key, t.field, err)
			}
		}
		if s.Body != "" && s.Type != SinkWebhook {
			add("%s.body: only webhook sinks take a body template (slack: text)", key)
		}
		if s.Text != "" && s.Type != SinkSlack {
			add("%s.text: only slack sinks take a text template", key)
		}
	}
	return errors.Join(errs...)
}
