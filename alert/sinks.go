package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
)

// HTTPDoer sends requests (*http.Client).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// newHTTPClient is the sinks' client: its own transport with bounded
// waits, redirects refused (a webhook that redirects is misconfigured, and
// following it would carry its headers elsewhere).
func newHTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// funcs are the template functions of body and text templates.
var funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"join":  func(sep string, s []string) string { return strings.Join(s, sep) },
	"since": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
}

// sink turns a notification into an HTTP request.
type sink struct {
	cfg    SinkConfig
	client HTTPDoer
	build  func(n *Notification) (body []byte, contentType string, err error)
}

func newSink(c SinkConfig, client HTTPDoer) (*sink, error) {
	s := &sink{cfg: c, client: client}
	switch c.Type {
	case SinkWebhook:
		if c.Body == "" {
			s.build = func(n *Notification) ([]byte, string, error) {
				b, err := json.Marshal(n)
				return b, "application/json", err
			}
			break
		}
		t, err := template.New(c.Name).Funcs(funcs).Option("missingkey=zero").Parse(c.Body)
		if err != nil {
			return nil, fmt.Errorf("alert: sink %s: body: %w", c.Name, err)
		}
		ct := c.ContentType
		if ct == "" {
			ct = "application/json"
		}
		s.build = func(n *Notification) ([]byte, string, error) {
			var b bytes.Buffer
			err := t.Execute(&b, n)
			return b.Bytes(), ct, err
		}
	case SinkSlack:
		src := c.Text
		if src == "" {
			src = defaultSlackText
		}
		t, err := template.New(c.Name).Funcs(funcs).Option("missingkey=zero").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("alert: sink %s: text: %w", c.Name, err)
		}
		s.build = func(n *Notification) ([]byte, string, error) {
			var text bytes.Buffer
			if err := t.Execute(&text, n); err != nil {
				return nil, "", err
			}
			b, err := json.Marshal(slackMessage{Text: text.String(), Channel: c.Channel, Username: c.Username, IconEmoji: c.IconEmoji})
			return b, "application/json", err
		}
	case SinkAlertmanager:
		s.build = func(n *Notification) ([]byte, string, error) {
			b, err := json.Marshal(alertmanagerPayload(n))
			return b, "application/json", err
		}
	default:
		return nil, fmt.Errorf("alert: sink %s: unknown type %q", c.Name, c.Type)
	}
	return s, nil
}

// defaultSlackText summarises a group in Slack's mrkdwn.
const defaultSlackText = `{{if eq .Status "firing"}}:rotating_light:{{else}}:white_check_mark:{{end}} *[{{upper .Status}}{{if eq .Status "firing"}}:{{.Count}}{{end}}] {{index .GroupLabels "alertname"}}*{{range $k, $v := .GroupLabels}}{{if ne $k "alertname"}} {{$k}}={{$v}}{{end}}{{end}}
{{range .Alerts}}• {{index .Annotations "summary"}}
{{end}}{{if .TruncatedAlerts}}… and {{.TruncatedAlerts}} more
{{end}}{{if .ExternalURL}}<{{.ExternalURL}}|Open the Rampart console>{{end}}`

type slackMessage struct {
	Text      string `json:"text"`
	Channel   string `json:"channel,omitempty"`
	Username  string `json:"username,omitempty"`
	IconEmoji string `json:"icon_emoji,omitempty"`
}

// amAlert and amPayload are Alertmanager's webhook payload, version 4
// (prometheus/alertmanager notify/webhook: version, groupKey,
// truncatedAlerts and template.Data).
type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

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
	Alerts            []amAlert         `json:"alerts"`
}

func alertmanagerPayload(n *Notification) amPayload {
	p := amPayload{Version: "4", GroupKey: n.GroupKey, TruncatedAlerts: n.TruncatedAlerts, Status: n.Status, Receiver: n.Receiver,
		GroupLabels: n.GroupLabels, CommonLabels: n.CommonLabels, CommonAnnotations: n.CommonAnnotations, ExternalURL: n.ExternalURL,
		Alerts: make([]amAlert, 0, len(n.Alerts))}
	for i := range n.Alerts {
		a := &n.Alerts[i]
		p.Alerts = append(p.Alerts, amAlert{Status: a.Status(n.Time), Labels: a.Labels, Annotations: a.Annotations,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: generatorURL(n.ExternalURL, a), Fingerprint: a.Fingerprint})
	}
	return p
}

// generatorURL links an alert to the console page that shows it.
func generatorURL(base string, a *Alert) string {
	if base == "" {
		return ""
	}
	base = strings.TrimSuffix(base, "/")
	switch a.Labels["alertname"] {
	case AlertClientBanned:
		return base + "/bans?q=" + a.Labels["client"]
	case AlertAttackRate:
		return base + "/live?detection=" + a.Labels["detection"]
	case AlertReplicaDown, AlertStoreDown:
		return base + "/fleet"
	}
	return base + "/live"
}

// errPermanent marks a failure that a retry cannot fix (a 4xx answer, a
// template that fails).
type errPermanent struct{ error }

// send makes one attempt.
func (s *sink) send(ctx context.Context, n *Notification) (retryAfter time.Duration, err error) {
	nn := *n
	nn.Receiver = s.cfg.Name
	body, ct, err := s.build(&nn)
	if err != nil {
		return 0, errPermanent{fmt.Errorf("building the body: %w", err)}
	}
	method := strings.ToUpper(s.cfg.Method)
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, errPermanent{errors.New("building the request")}
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", "rampart-alerts")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, scrubURL(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retryAfter = time.Duration(s) * time.Second
		}
		return retryAfter, fmt.Errorf("status %d", resp.StatusCode)
	default:
		return 0, errPermanent{fmt.Errorf("status %d", resp.StatusCode)}
	}
}

// scrubURL keeps the sink's URL (often a secret) out of error messages.
func scrubURL(err error) error {
	var ue interface {
		error
		Unwrap() error
		Timeout() bool
	}
	if errors.As(err, &ue) {
		return errors.New(ue.Unwrap().Error())
	}
	return err
}

// dispatcher owns a sink's bounded queue and sends with retries.
type dispatcher struct {
	s     *sink
	cfg   Config
	m     *metrics
	log   *slog.Logger
	now   func() time.Time
	queue chan *Notification
	mu    sync.Mutex
	done  bool
}

func newDispatcher(s *sink, cfg Config, m *metrics, log *slog.Logger, now func() time.Time) *dispatcher {
	for _, r := range []string{"sent", "failed", "dropped"} {
		m.notifications.WithLabelValues(s.cfg.Name, r)
	}
	m.retries.WithLabelValues(s.cfg.Name)
	return &dispatcher{s: s, cfg: cfg, m: m, log: log.With(slog.String("sink", s.cfg.Name)), now: now,
		queue: make(chan *Notification, cfg.QueueSize)}
}

// enqueue never blocks: a full queue drops the notification and counts it.
func (d *dispatcher) enqueue(n *Notification) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return
	}
	select {
	case d.queue <- n:
	default:
		d.m.notifications.WithLabelValues(d.s.cfg.Name, "dropped").Inc()
		d.log.LogAttrs(context.Background(), slog.LevelWarn, "alert_dropped", slog.String("group", n.GroupKey),
			slog.String("detail", "the sink's queue is full (alerts.queue_size)"))
	}
}

func (d *dispatcher) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		d.done = true
		close(d.queue)
	}
}

func (d *dispatcher) run(ctx context.Context) {
	for n := range d.queue {
		d.deliver(ctx, n)
	}
}

func (d *dispatcher) deliver(ctx context.Context, n *Notification) {
	backoff := d.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		retryAfter, err := d.s.send(actx, n)
		cancel()
		if err == nil {
			d.m.notifications.WithLabelValues(d.s.cfg.Name, "sent").Inc()
			d.log.LogAttrs(ctx, slog.LevelInfo, "alert_sent", slog.String("group", n.GroupKey), slog.String("status", n.Status),
				slog.Int("alerts", n.Count()), slog.Int("attempts", attempt+1))
			return
		}
		var perm errPermanent
		if errors.As(err, &perm) || attempt >= d.cfg.MaxRetries || ctx.Err() != nil {
			d.m.notifications.WithLabelValues(d.s.cfg.Name, "failed").Inc()
			d.log.LogAttrs(ctx, slog.LevelError, "alert_failed", slog.String("group", n.GroupKey), slog.String("error", err.Error()),
				slog.Int("attempts", attempt+1))
			return
		}
		d.m.retries.WithLabelValues(d.s.cfg.Name).Inc()
		wait := min(max(backoff, retryAfter), d.cfg.MaxBackoff)
		d.log.LogAttrs(ctx, slog.LevelWarn, "alert_retry", slog.String("group", n.GroupKey), slog.String("error", err.Error()),
			slog.Int("attempt", attempt+1), slog.Duration("wait", wait))
		select {
		case <-ctx.Done():
			d.m.notifications.WithLabelValues(d.s.cfg.Name, "failed").Inc()
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, d.cfg.MaxBackoff)
	}
}
