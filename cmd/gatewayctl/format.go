package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// The views mirror the admin API's JSON (gateway/admin.go). They are
// declared here rather than imported so that the CLI depends on the API's
// wire format only, and fields it does not know are ignored.

type banView struct {
	Client     string    `json:"client"`
	CIDR       bool      `json:"cidr"`
	Reason     string    `json:"reason"`
	Detection  string    `json:"detection"`
	Count      int64     `json:"count"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	Until      time.Time `json:"until"`
	TTLSeconds int64     `json:"ttl_seconds"`
	Replica    string    `json:"replica"`
}

type eventView struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	RequestID string    `json:"request_id"`
	Client    string    `json:"client"`
	ClientIP  string    `json:"client_ip"`
	Detection string    `json:"detection"`
	Reason    string    `json:"reason"`
	Rule      string    `json:"rule"`
	Location  string    `json:"location"`
	Method    string    `json:"method"`
	Route     string    `json:"route"`
	Path      string    `json:"path"`
}

type statusView struct {
	Status     string `json:"status"`
	Replica    string `json:"replica"`
	Store      string `json:"store"`
	StoreOK    bool   `json:"store_ok"`
	StoreError string `json:"store_error"`
	Circuit    string `json:"circuit"`
	Upstream   string `json:"upstream"`
	Chain      []struct {
		Name string `json:"name"`
		Mode string `json:"mode"`
	} `json:"chain"`
	LocalBans     int `json:"local_bans_cached"`
	LocalRefusals int `json:"local_refusals_cached"`
	Upstreams     []struct {
		Route     string `json:"route"`
		Instances []struct {
			Instance  string `json:"instance"`
			State     string `json:"state"`
			InFlight  int64  `json:"in_flight"`
			Requests  uint64 `json:"requests"`
			Failures  uint64 `json:"failures"`
			LastError string `json:"last_error"`
		} `json:"instances"`
	} `json:"upstreams"`
	Feeds []struct {
		Feed      string `json:"feed"`
		Mode      string `json:"mode"`
		Entries   int    `json:"entries"`
		LastError string `json:"last_error"`
	} `json:"feeds"`
}

type countView struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

type summaryView struct {
	Window        string         `json:"window"`
	Events        int            `json:"events"`
	Blocks        int            `json:"blocks"`
	ByType        map[string]int `json:"by_type"`
	TopClients    []countView    `json:"top_clients"`
	TopDetections []countView    `json:"top_detections"`
	Truncated     bool           `json:"truncated"`
}

type countersView struct {
	Client   string            `json:"client"`
	Counters map[string]string `json:"counters"`
}

// maxCell caps a table cell; -o json shows everything.
const maxCell = 64

// clean makes s safe to print in a table cell: control characters
// (tabs, newlines, and terminal escapes an attacker can plant in a route,
// a parameter name or a reason) and invalid UTF-8 become '?', the result is
// cut to max runes (0: no cap), and empty becomes "-" so every row has
// every column.
func clean(s string, max int) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	n := 0
	for i, r := range s {
		if max > 0 && n == max-1 && utf8.RuneCountInString(s[i:]) > 1 {
			b.WriteRune('…')
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func runeLen(s string) int { return utf8.RuneCountInString(s) }

// table writes tab-separated rows aligned with two spaces between columns.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// humanDuration shows the two most significant units: 45s, 9m58s, 2h5m,
// 3d4h. Zero and below is "expired".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "expired"
	}
	day := 24 * time.Hour
	two := func(a int64, ua string, b int64, ub string) string {
		if b == 0 {
			return strconv.FormatInt(a, 10) + ua
		}
		return strconv.FormatInt(a, 10) + ua + strconv.FormatInt(b, 10) + ub
	}
	switch {
	case d < time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d < time.Hour:
		return two(int64(d/time.Minute), "m", int64(d%time.Minute/time.Second), "s")
	case d < day:
		return two(int64(d/time.Hour), "h", int64(d%time.Hour/time.Minute), "m")
	}
	return two(int64(d/day), "d", int64(d%day/time.Hour), "h")
}

// timeLeft is the ban's remaining time as the gateway computed it
// (ttl_seconds), so the operator's clock does not matter.
func timeLeft(b *banView) string {
	return humanDuration(time.Duration(b.TTLSeconds) * time.Second)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

func writeBans(w io.Writer, bans []banView) error {
	if len(bans) == 0 {
		_, err := fmt.Fprintln(w, "No active bans.")
		return err
	}
	tw := table(w)
	row(tw, "CLIENT", "DETECTION", "REASON", "COUNT", "TIME LEFT", "REPLICA")
	for i := range bans {
		b := &bans[i]
		row(tw, clean(b.Client, maxCell), clean(b.Detection, maxCell), clean(b.Reason, maxCell),
			strconv.FormatInt(b.Count, 10), timeLeft(b), clean(b.Replica, maxCell))
	}
	return tw.Flush()
}

// writeBan shows one ban as a two-column sheet.
func writeBan(w io.Writer, b *banView) error {
	tw := table(w)
	kind := "client"
	if b.CIDR {
		kind = "range"
	}
	row(tw, "CLIENT", clean(b.Client, 0)+" ("+kind+")")
	row(tw, "DETECTION", clean(b.Detection, 0))
	row(tw, "REASON", clean(b.Reason, 0))
	row(tw, "COUNT", strconv.FormatInt(b.Count, 10))
	row(tw, "FIRST SEEN", formatTime(b.FirstSeen))
	row(tw, "LAST SEEN", formatTime(b.LastSeen))
	row(tw, "UNTIL", formatTime(b.Until))
	row(tw, "TIME LEFT", timeLeft(b))
	row(tw, "REPLICA", clean(b.Replica, 0))
	return tw.Flush()
}

var eventHeader = []string{"TIME", "TYPE", "CLIENT", "DETECTION", "REASON", "METHOD", "PATH", "RULE/LOCATION"}

func eventRow(e *eventView) []string {
	client := e.Client
	if client == "" {
		client = e.ClientIP
	}
	where := e.Rule
	switch {
	case e.Rule != "" && e.Location != "":
		where = e.Rule + "@" + e.Location
	case e.Rule == "":
		where = e.Location
	}
	path := e.Path
	switch {
	case path == "":
		path = e.Route // an event from before routes had names
	case e.Route != "" && e.Route != "default":
		path = e.Route + ":" + path // the route that matched, when there are routes
	}
	return []string{formatTime(e.Time), clean(e.Type, maxCell), clean(client, maxCell), clean(e.Detection, maxCell),
		clean(e.Reason, maxCell), clean(e.Method, 16), clean(path, maxCell), clean(where, maxCell)}
}

func writeEvents(w io.Writer, evs []event) error {
	if len(evs) == 0 {
		_, err := fmt.Fprintln(w, "No events.")
		return err
	}
	tw := table(w)
	row(tw, eventHeader...)
	for i := range evs {
		row(tw, eventRow(&evs[i].eventView)...)
	}
	return tw.Flush()
}

func writeStatus(w io.Writer, s *statusView) error {
	tw := table(w)
	row(tw, "STATUS", clean(s.Status, 0))
	row(tw, "REPLICA", clean(s.Replica, 0))
	store := clean(s.Store, 0) + ", ok"
	if !s.StoreOK {
		store = clean(s.Store, 0) + ", failing: " + clean(s.StoreError, 200)
	}
	row(tw, "STORE", store)
	row(tw, "CIRCUIT", clean(s.Circuit, 0))
	row(tw, "UPSTREAM", clean(s.Upstream, 0))
	row(tw, "LOCAL CACHE", fmt.Sprintf("%d bans, %d refusals", s.LocalBans, s.LocalRefusals))
	if len(s.Chain) == 0 {
		row(tw, "CHAIN", "empty: every request is allowed")
		return tw.Flush()
	}
	fmt.Fprintln(tw)
	row(tw, "DETECTION", "MODE")
	for _, e := range s.Chain {
		row(tw, clean(e.Name, maxCell), clean(e.Mode, maxCell))
	}
	if len(s.Upstreams) > 0 {
		fmt.Fprintln(tw)
		row(tw, "ROUTE", "INSTANCE", "STATE", "IN FLIGHT", "REQUESTS", "FAILURES", "LAST ERROR")
		for _, u := range s.Upstreams {
			for _, in := range u.Instances {
				row(tw, clean(u.Route, maxCell), clean(in.Instance, maxCell), clean(in.State, maxCell), strconv.FormatInt(in.InFlight, 10),
					strconv.FormatUint(in.Requests, 10), strconv.FormatUint(in.Failures, 10), dash(clean(in.LastError, maxCell)))
			}
		}
	}
	if len(s.Feeds) > 0 {
		fmt.Fprintln(tw)
		row(tw, "FEED", "MODE", "ENTRIES", "LAST ERROR")
		for _, f := range s.Feeds {
			row(tw, clean(f.Feed, maxCell), clean(f.Mode, maxCell), strconv.Itoa(f.Entries), dash(clean(f.LastError, maxCell)))
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeSummary(w io.Writer, s *summaryView) error {
	tw := table(w)
	window := clean(s.Window, 0)
	if d, err := time.ParseDuration(s.Window); err == nil {
		window = humanDuration(d)
	}
	row(tw, "WINDOW", window)
	events := strconv.Itoa(s.Events)
	if s.Truncated {
		events += " (counted the latest only: the window holds more)"
	}
	row(tw, "EVENTS", events)
	row(tw, "BLOCKS", strconv.Itoa(s.Blocks))
	byType := make([]countView, 0, len(s.ByType))
	for k, v := range s.ByType {
		byType = append(byType, countView{k, v})
	}
	slices.SortFunc(byType, func(a, b countView) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key))
	})
	counts(tw, "TYPE", "EVENTS", byType)
	counts(tw, "CLIENT", "BLOCKS", s.TopClients)
	counts(tw, "DETECTION", "BLOCKS", s.TopDetections)
	return tw.Flush()
}

func counts(w io.Writer, key, count string, cs []countView) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintln(w)
	row(w, key, count)
	for _, c := range cs {
		row(w, clean(c.Key, maxCell), strconv.Itoa(c.Count))
	}
}

func writeCounters(w io.Writer, c *countersView) error {
	if len(c.Counters) == 0 {
		_, err := fmt.Fprintf(w, "No counters for %s.\n", clean(c.Client, 0))
		return err
	}
	tw := table(w)
	row(tw, "KEY", "VALUE")
	for _, k := range slices.Sorted(maps.Keys(c.Counters)) {
		row(tw, clean(k, 0), clean(c.Counters[k], 0))
	}
	return tw.Flush()
}
