package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
)

//go:embed templates static
var assets embed.FS

var pageNames = []string{"login", "disabled", "error", "live", "bans", "top", "fleet", "config"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"ts":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
		"clock":   func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
		"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"dur":     humanDuration,
		"rate":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
		"nonzero": func(t time.Time) bool { return !t.IsZero() },
	}
	out := map[string]*template.Template{}
	for _, p := range pageNames {
		t, err := template.New(p).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parsing %s: %w", p, err)
		}
		out[p] = t
	}
	return out, nil
}

// humanDuration prints a duration for people: 45s, 12m, 3h20m, 2d4h.
func humanDuration(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour-30*time.Second:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// eventFilter is the Live page's filter, from its query string: exact
// type, detection and replica; substrings (any case) of rule, client and
// route.
type eventFilter struct {
	Type, Detection, Replica, Rule, Client, Route string
}

func filterOf(r *http.Request) eventFilter {
	q := r.URL.Query()
	get := func(k string) string {
		v := strings.TrimSpace(q.Get(k))
		if len(v) > 200 {
			v = v[:200]
		}
		return v
	}
	return eventFilter{Type: get("type"), Detection: get("detection"), Replica: get("replica"),
		Rule: strings.ToLower(get("rule")), Client: strings.ToLower(get("client")), Route: strings.ToLower(get("route"))}
}

func (f eventFilter) match(e *record.Event) bool {
	contains := func(s, sub string) bool { return sub == "" || strings.Contains(strings.ToLower(s), sub) }
	return (f.Type == "" || e.Type == f.Type) && (f.Detection == "" || e.Detection == f.Detection) &&
		(f.Replica == "" || e.Replica == f.Replica) && (contains(e.Rule, f.Rule) || contains(e.Reason, f.Rule)) &&
		(contains(e.Client, f.Client) || contains(e.ClientIP, f.Client)) && (contains(e.Path, f.Route) || contains(e.Route, f.Route))
}

// liveEvent is an event as the Live page shows it (and the stream sends).
type liveEvent struct {
	Time      string `json:"time"`
	Clock     string `json:"clock"`
	Type      string `json:"type"`
	Replica   string `json:"replica"`
	Client    string `json:"client"`
	Detection string `json:"detection"`
	Rule      string `json:"rule"`
	Request   string `json:"request"`
	Status    string `json:"status"`
	Detail    string `json:"detail"`
}

func viewEvent(e *record.Event) liveEvent {
	rule := e.Rule
	if rule == "" {
		rule = e.Reason
	} else if e.Reason != "" {
		rule = e.Reason + " · " + e.Rule
	}
	client := e.Client
	if e.ClientIP != "" && e.ClientIP != e.Client {
		client = e.ClientIP
	}
	v := liveEvent{Time: e.Time.UTC().Format(time.RFC3339Nano), Clock: e.Time.UTC().Format("15:04:05.000"), Type: e.Type,
		Replica: e.Replica, Client: client, Detection: e.Detection, Rule: rule, Request: joinNonEmpty(" ", e.Method, requestPath(e))}
	if e.Status != 0 {
		v.Status = strconv.Itoa(e.Status)
	}
	var detail []string
	if e.Route != "" && e.Route != "default" && e.Path != "" {
		detail = append(detail, "route "+e.Route)
	}
	if e.Mode != "" && e.Mode != "enforce" {
		detail = append(detail, e.Mode)
	}
	if e.BanFor != "" {
		detail = append(detail, "ban "+e.BanFor)
	}
	if e.Location != "" {
		detail = append(detail, "in "+e.Location)
	}
	if e.Score != 0 {
		detail = append(detail, "score "+strconv.Itoa(e.Score))
	}
	if e.JA4 != "" {
		detail = append(detail, "ja4 "+e.JA4)
	}
	if e.Error != "" {
		detail = append(detail, e.Error)
	}
	v.Detail = strings.Join(detail, ", ")
	return v
}

// requestPath is the event's path (older events, and events without a
// request path, carry only the route).
func requestPath(e *record.Event) string {
	if e.Path != "" {
		return e.Path
	}
	return e.Route
}

// chart is the rate chart as SVG polylines in a 900×200 box.
type chart struct {
	Width, Height            int
	Allowed, Blocked, Banned string // polyline points
	Max                      int64
	Total                    store.RateSample
	From, To                 time.Time
	Ticks                    []chartTick
}

type chartTick struct {
	X     int
	Label string
}

const chartW, chartH = 900, 200

func buildChart(pts []store.RatePoint) chart {
	ch := chart{Width: chartW, Height: chartH, Max: 1}
	if len(pts) == 0 {
		return ch
	}
	ch.From, ch.To = pts[0].Time, pts[len(pts)-1].Time
	for _, p := range pts {
		ch.Max = max(ch.Max, p.Allowed, p.Blocked, p.Banned)
		ch.Total.Allowed += p.Allowed
		ch.Total.Blocked += p.Blocked
		ch.Total.Banned += p.Banned
	}
	line := func(get func(store.RatePoint) int64) string {
		var b strings.Builder
		for i, p := range pts {
			x := float64(i) * float64(chartW) / float64(max(len(pts)-1, 1))
			y := float64(chartH) - float64(get(p))*float64(chartH-10)/float64(ch.Max)
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x, y)
		}
		return b.String()
	}
	ch.Allowed = line(func(p store.RatePoint) int64 { return p.Allowed })
	ch.Blocked = line(func(p store.RatePoint) int64 { return p.Blocked })
	ch.Banned = line(func(p store.RatePoint) int64 { return p.Banned })
	for i, p := range pts {
		if p.Time.Unix()%300 == 0 {
			ch.Ticks = append(ch.Ticks, chartTick{X: i * chartW / max(len(pts)-1, 1), Label: p.Time.UTC().Format("15:04")})
		}
	}
	return ch
}

func (c *Console) rateChart(ctx context.Context) (chart, error) {
	now := c.now().Truncate(time.Second)
	pts, err := c.st.Rates(ctx, now.Add(-store.MaxRateSpan), now)
	if err != nil {
		return buildChart(nil), err
	}
	return buildChart(pts), nil
}

var eventTypes = []string{record.EventRequestBlocked, record.EventWouldBlock, record.EventClientBlocklisted,
	record.EventClientUnbanned, record.EventDetectionFailed}

func (c *Console) live(w http.ResponseWriter, r *http.Request, s session) {
	ctx := r.Context()
	f := filterOf(r)
	data := map[string]any{"Title": "Live", "Filter": f, "Types": eventTypes, "EventsOn": c.events != nil && c.mon.EventsEnabled()}
	var errs []string
	if c.events != nil {
		// Bounded: on the memory store the scan holds the ring's lock,
		// which the request path takes to record events.
		evs, err := c.events.Query(ctx, record.EventQuery{Type: f.Type, Detection: f.Detection, Limit: 2000, Scan: 5000})
		if err != nil {
			errs = append(errs, storeErr(err))
		}
		var rows []liveEvent
		dets := map[string]bool{}
		reps := map[string]bool{}
		for i := range evs {
			if evs[i].Detection != "" {
				dets[evs[i].Detection] = true
			}
			if evs[i].Replica != "" {
				reps[evs[i].Replica] = true
			}
			if len(rows) < 100 && f.match(&evs[i]) {
				rows = append(rows, viewEvent(&evs[i]))
			}
		}
		for _, e := range c.g.Policy().Chain.Entries() {
			dets[e.Detection.Name()] = true
		}
		if fleet, err := c.st.Fleet(ctx); err == nil {
			for _, hb := range fleet {
				reps[hb.Replica] = true
			}
		}
		data["Events"], data["Detections"], data["Replicas"] = rows, slices.Sorted(maps.Keys(dets)), slices.Sorted(maps.Keys(reps))
	}
	ch, err := c.rateChart(ctx)
	if err != nil {
		errs = append(errs, storeErr(err))
	}
	data["Chart"], data["Errors"] = ch, errs
	c.render(w, r, http.StatusOK, "live", s, data)
}

// rates answers the chart's data for the Live page's script.
func (c *Console) rates(w http.ResponseWriter, r *http.Request, _ session) {
	ch, err := c.rateChart(r.Context())
	if err != nil {
		http.Error(w, storeErr(err), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ch)
}

// Stream timing: a comment line keeps proxies and the browser from closing
// an idle stream; the stream ends after streamMax (the browser reconnects
// at once, and the session is checked again).
const (
	streamPing = 15 * time.Second
	streamMax  = 10 * time.Minute
)

// stream is the Live page's Server-Sent Events: every batch of events from
// the fleet that passes the filter, as one "events" message.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, s session) {
	if !c.mon.EventsEnabled() {
		http.Error(w, "the event log is disabled (events.enabled: false)", http.StatusNotFound)
		return
	}
	select {
	case c.streams <- struct{}{}:
		defer func() { <-c.streams }()
	default:
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many live pages open on this replica (admin.console.max_streams)", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the admin server's write timeout would cut the stream
	f := filterOf(r)
	sub := c.mon.Subscribe(64)
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 2000\n: connected\n\n")
	if rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	end := time.NewTimer(min(streamMax, time.Until(s.expires)))
	defer end.Stop()
	var dropped int64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-ping.C:
			_, _ = fmt.Fprint(w, ": ping\n\n")
		case evs := <-sub.C():
			var out []liveEvent
			for i := range evs {
				if f.match(&evs[i]) {
					out = append(out, viewEvent(&evs[i]))
				}
			}
			if len(out) > 0 {
				b, _ := json.Marshal(out)
				_, _ = fmt.Fprintf(w, "event: events\ndata: %s\n\n", b)
			}
			if d := sub.Dropped(); d > dropped {
				_, _ = fmt.Fprintf(w, "event: dropped\ndata: %d\n\n", d-dropped)
				dropped = d
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// banRow is a ban as the Bans page shows it.
type banRow struct {
	Kind      string // ip, range, identity
	Client    string
	Reason    string
	Detection string
	FirstSeen time.Time
	LastSeen  time.Time
	Count     int64
	TTL       time.Duration
	Replica   string
}

func banKind(b record.Ban) string {
	if b.CIDR {
		return "range"
	}
	if _, err := netip.ParsePrefix(b.Client); err == nil {
		return "ip"
	}
	if _, err := netip.ParseAddr(b.Client); err == nil {
		return "ip"
	}
	return "identity"
}

func (c *Console) bans(w http.ResponseWriter, r *http.Request, s session) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	data := map[string]any{"Title": "Bans", "Query": q, "DefaultDuration": ""}
	var errs []string
	cidrs, err := c.st.ListCIDRBans(ctx)
	if err != nil {
		errs = append(errs, storeErr(err))
	}
	const limit = 2000
	bans, err := c.st.ListBans(ctx, limit)
	if err != nil {
		errs = append(errs, storeErr(err))
	}
	all := append(cidrs, bans...)
	data["Notice"] = c.notice(r, all, len(errs) == 0 && len(bans) < limit)
	now := c.now()
	var rows []banRow
	lq := strings.ToLower(q)
	for _, b := range all {
		row := banRow{Kind: banKind(b), Client: b.Client, Reason: b.Reason, Detection: b.Detection, FirstSeen: b.FirstSeen,
			LastSeen: b.LastSeen, Count: b.Count, TTL: b.TTL, Replica: b.Replica}
		if row.TTL <= 0 && !b.Until.IsZero() {
			row.TTL = b.Until.Sub(now)
		}
		if lq != "" && !strings.Contains(strings.ToLower(strings.Join([]string{row.Kind, row.Client, row.Reason, row.Detection, row.Replica}, " ")), lq) {
			continue
		}
		rows = append(rows, row)
	}
	data["Bans"], data["Total"], data["Truncated"], data["Errors"] = rows, len(cidrs)+len(bans), len(bans) == limit, errs
	c.render(w, r, http.StatusOK, "bans", s, data)
}

// notice is the message of a redirect after a ban or an unban: fixed
// texts, with the client's key (escaped by the template). The query string
// is anyone's to write (a link), so a notice is shown only when it agrees
// with bans, the list this page just read (complete: every ban when
// the list is not truncated and no read failed): a client said banned
// must be in it, one said unbanned (or not banned) must not.
func (c *Console) notice(r *http.Request, bans []record.Ban, complete bool) map[string]string {
	q := r.URL.Query()
	done := q.Get("done")
	if done != "banned" && done != "unbanned" && done != "notbanned" {
		return nil
	}
	t, err := c.g.ParseTarget(q.Get("client"))
	if err != nil {
		return nil
	}
	listed := false
	for _, b := range bans {
		if b.Client == t.Key {
			listed = true
			break
		}
	}
	client := t.Key
	if len(client) > 64 {
		client = client[:64]
	}
	switch {
	case done == "banned" && listed:
		return map[string]string{"Kind": "ok", "Text": "Banned " + client + " on every replica."}
	case done == "unbanned" && !listed && complete:
		return map[string]string{"Kind": "ok", "Text": "Unbanned " + client + " on every replica."}
	case done == "notbanned" && !listed && complete:
		return map[string]string{"Kind": "warn", "Text": client + " was not banned."}
	}
	return nil
}

func (c *Console) banError(w http.ResponseWriter, r *http.Request, s session, code int, msg string) {
	c.render(w, r, code, "error", s, map[string]any{"Title": "Ban refused", "Message": msg, "Back": "/console/bans"})
}

func (c *Console) ban(w http.ResponseWriter, r *http.Request, s session) {
	f := r.PostForm
	t, err := c.g.ParseTarget(strings.TrimSpace(f.Get("client")))
	if err != nil {
		c.banError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	dur, reason, err := gateway.CheckBan(t, strings.TrimSpace(f.Get("duration")), f.Get("reason"))
	if err != nil {
		c.banError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	_, err = c.g.Ban(r.Context(), t, dur, reason)
	switch {
	case errors.Is(err, gateway.ErrExempt):
		c.banError(w, r, s, http.StatusConflict, t.Key+" is exempt or allow-listed: it is never banned.")
		return
	case err != nil:
		c.banError(w, r, s, http.StatusServiceUnavailable, storeErr(err))
		return
	}
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console_ban", slog.String("client", t.Key), slog.String("client_ip", clientAddr(r)),
		slog.String("duration", dur.String()))
	http.Redirect(w, r, "/console/bans?done=banned&client="+url.QueryEscape(t.Key), http.StatusSeeOther)
}

func (c *Console) unban(w http.ResponseWriter, r *http.Request, s session) {
	t, err := c.g.ParseTarget(strings.TrimSpace(r.PostForm.Get("client")))
	if err != nil {
		c.banError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	existed, err := c.g.Unban(r.Context(), t, "console", false)
	if err != nil {
		c.banError(w, r, s, http.StatusServiceUnavailable, storeErr(err))
		return
	}
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console_unban", slog.String("client", t.Key), slog.String("client_ip", clientAddr(r)))
	done := "unbanned"
	if !existed {
		done = "notbanned"
	}
	http.Redirect(w, r, "/console/bans?done="+done+"&client="+url.QueryEscape(t.Key), http.StatusSeeOther)
}

// urlPassword matches the password of a URL in free text.
var urlPassword = regexp.MustCompile(`(://[^/\s:@]*:)[^/\s@]+@`)

// scrubSecrets hides URL passwords in text that other replicas wrote (a
// refused reload's error), in case one quotes a value.
func scrubSecrets(s string) string { return urlPassword.ReplaceAllString(s, "${1}xxxxx@") }

// topWindows are the Top offenders page's windows.
var topWindows = []struct {
	Name string
	D    time.Duration
}{{"5m", 5 * time.Minute}, {"1h", time.Hour}, {"24h", 24 * time.Hour}}

var dimTitles = map[string]string{store.TopClients: "Clients", store.TopRoutes: "Routes", store.TopRules: "Rules",
	store.TopUserAgents: "User agents (user_agent detection)", store.TopJA4: "TLS fingerprints (JA4)"}

type topTable struct {
	Dim, Title string
	Rows       []store.TopEntry
	Max        int64
}

func (c *Console) top(w http.ResponseWriter, r *http.Request, s session) {
	ctx := r.Context()
	win := topWindows[0]
	for _, tw := range topWindows {
		if r.URL.Query().Get("window") == tw.Name {
			win = tw
		}
	}
	var tables []topTable
	var errs []string
	for _, dim := range store.TopDimensions() {
		rows, err := c.st.Top(ctx, dim, win.D, 20)
		if err != nil {
			errs = append(errs, storeErr(err))
			continue
		}
		t := topTable{Dim: dim, Title: dimTitles[dim], Rows: rows, Max: 1}
		for _, e := range rows {
			t.Max = max(t.Max, e.Count)
		}
		tables = append(tables, t)
	}
	c.render(w, r, http.StatusOK, "top", s, map[string]any{"Title": "Top offenders", "Window": win.Name, "Windows": topWindows,
		"Tables": tables, "Errors": errs, "EventsOn": c.mon.EventsEnabled()})
}

// fleetRow is a replica as the Fleet page shows it.
type fleetRow struct {
	store.Heartbeat
	Missing   bool
	OldConfig bool
	Uptime    time.Duration
	Self      bool
}

func (c *Console) fleet(w http.ResponseWriter, r *http.Request, s session) {
	fleet, err := c.st.Fleet(r.Context())
	var errs []string
	if err != nil {
		errs = append(errs, storeErr(err))
	}
	// The configuration most live replicas run is the reference; a live
	// replica on another one stands out.
	hashes := map[string]int{}
	for _, hb := range fleet {
		if hb.Missed() < 2 {
			hashes[hb.ConfigHash]++
		}
	}
	ref, refN := "", 0
	for h, n := range hashes {
		if n > refN || (n == refN && h > ref) {
			ref, refN = h, n
		}
	}
	var rows []fleetRow
	missing, old := 0, 0
	for _, hb := range fleet {
		row := fleetRow{Heartbeat: hb, Missing: hb.Missed() >= 2, Self: hb.Replica == c.g.Replica()}
		row.OldConfig = !row.Missing && len(hashes) > 1 && hb.ConfigHash != ref
		row.Uptime = hb.LastSeen.Sub(hb.Started) + hb.Age
		if row.Missing {
			missing++
			row.Uptime = hb.LastSeen.Sub(hb.Started)
		}
		if row.OldConfig {
			old++
		}
		rows = append(rows, row)
	}
	c.render(w, r, http.StatusOK, "fleet", s, map[string]any{"Title": "Fleet", "Rows": rows, "Missing": missing,
		"OldConfig": old, "Reference": ref, "Errors": errs, "Live": len(fleet) - missing})
}

func (c *Console) config(w http.ResponseWriter, r *http.Request, s session) {
	data := map[string]any{"Title": "Configuration"}
	var errs []string
	if c.running != nil {
		y, err := RedactedYAML(c.running())
		if err != nil {
			errs = append(errs, "The configuration could not be shown: "+err.Error())
		}
		data["YAML"] = string(y)
	}
	reloads, err := c.st.Reloads(r.Context(), 50)
	if err != nil {
		errs = append(errs, storeErr(err))
	}
	for i := range reloads {
		reloads[i].Error = scrubSecrets(reloads[i].Error)
	}
	data["Reloads"], data["Errors"], data["Hash"] = reloads, errs, c.mon.hash()
	c.render(w, r, http.StatusOK, "config", s, data)
}
