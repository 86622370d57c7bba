package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampartgw/rampart/record"
)

// action runs a command whose flags are parsed; args are its positional
// arguments, as many as command.args names.
type action func(ctx context.Context, a *app, args []string) error

// command is one gatewayctl command.
type command struct {
	name  string   // "bans add"
	args  []string // positional arguments, e.g. CLIENT
	flags string   // flags for the synopsis, e.g. "[-for 1h] [-reason TEXT]"
	help  string
	// setup defines the command's flags on fs and returns the action that
	// reads them.
	setup func(fs *flag.FlagSet) action
}

func (c *command) synopsis() string {
	return strings.Join(strings.Fields(c.name+" "+strings.Join(c.args, " ")+" "+c.flags), " ")
}

// commands lists every command, in the order of the help text.
var commands = []*command{
	{name: "status", help: "Show the replica's status: store, circuit breaker, upstream and detection chain.", setup: statusCmd},
	{name: "bans list", flags: "[-limit N]", help: "List active bans: CIDR ranges first, then clients, longest remaining first.", setup: bansListCmd},
	{name: "bans get", args: []string{"CLIENT"}, help: "Show the active ban of CLIENT (an IP address, IPv6 meaning its /64, or a CIDR range).", setup: bansGetCmd},
	{name: "bans add", args: []string{"CLIENT"}, flags: "[-for 1h|7d] [-reason TEXT]", help: "Ban CLIENT (an IP address, IPv6 meaning its /64, or a CIDR range) on every replica.", setup: bansAddCmd},
	{name: "bans rm", args: []string{"CLIENT"}, flags: "[-forget]", help: "Lift the ban of CLIENT (-forget: and its ban history, so its next ban is not escalated). Exit status 3 if it was not banned.", setup: bansRmCmd},
	{name: "events tail", flags: "[-client IP] [-detection NAME] [-type TYPE] [-since 15m] [-n 50] [-f]",
		help: "Show recent security events, oldest first. With -f, keep polling every second and print\n" +
			"new events as they arrive until interrupted (-o json: one JSON object per line).", setup: eventsTailCmd},
	{name: "summary", flags: "[-window 1h] [-top 10]", help: "Count the events of the last window, and the clients and detections that blocked most.", setup: summaryCmd},
	{name: "counters", args: []string{"CLIENT"}, help: "Show the live per-client counters the store keeps for CLIENT.", setup: countersCmd},
	{name: "tls fingerprints", flags: "[-top 20]", help: "The TLS fingerprints (JA4, JA3n) this replica's listener saw most often, refusals included.", setup: tlsFingerprintsCmd},
	{name: "check", args: []string{"URL"}, help: "GET URL without a token; exit 0 on a 2xx answer, 1 otherwise. A health probe for images without a shell (docker compose healthchecks).", setup: checkCmd},
}

// lookup finds the command named by the first one or two words of args.
func lookup(args []string) (*command, []string, error) {
	group := false
	for _, c := range commands {
		first, second, sub := strings.Cut(c.name, " ")
		if first != args[0] {
			continue
		}
		if !sub {
			return c, args[1:], nil
		}
		group = true
		if len(args) > 1 && args[1] == second {
			return c, args[2:], nil
		}
	}
	if group {
		var subs []string
		for _, c := range commands {
			if first, second, ok := strings.Cut(c.name, " "); ok && first == args[0] {
				subs = append(subs, second)
			}
		}
		if len(args) == 1 {
			return nil, nil, usagef(nil, "%s: missing subcommand (%s)", args[0], strings.Join(subs, ", "))
		}
		return nil, nil, usagef(nil, "%s: unknown subcommand %q (want %s)", args[0], args[1], strings.Join(subs, ", "))
	}
	return nil, nil, usagef(nil, "unknown command %q", args[0])
}

// checkCmd is a health probe: GET an absolute URL, no token, no body
// parsing; any 2xx passes.
func checkCmd(*flag.FlagSet) action {
	return func(ctx context.Context, a *app, args []string) error {
		u, err := url.Parse(args[0])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef(nil, "check %q: want an absolute http(s) URL", args[0])
		}
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return usagef(nil, "check: %v", err)
		}
		req.Header.Set("User-Agent", "gatewayctl-check")
		resp, err := a.hc.Do(req)
		if err != nil {
			return a.transportError(ctx, http.MethodGet, u, err)
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("check %s: %s", safeURL(u), resp.Status)
		}
		fmt.Fprintf(a.stdout, "ok %d %s\n", resp.StatusCode, u.Redacted())
		return nil
	}
}

func statusCmd(*flag.FlagSet) action {
	return func(ctx context.Context, a *app, _ []string) error {
		data, err := a.get(ctx, "/v1/status", nil)
		if err != nil || a.json {
			return a.result(data, err)
		}
		var s statusView
		if err := decode(data, &s); err != nil {
			return err
		}
		return writeStatus(a.stdout, &s)
	}
}

func bansListCmd(fs *flag.FlagSet) action {
	limit := fs.Int("limit", 1000, "show at most `N` client bans (1..100000; CIDR ranges are always shown)")
	return func(ctx context.Context, a *app, _ []string) error {
		if *limit < 1 || *limit > 100_000 {
			return usagef(nil, "-limit %d: want 1..100000", *limit)
		}
		data, err := a.get(ctx, "/v1/bans", url.Values{"limit": {strconv.Itoa(*limit)}})
		if err != nil || a.json {
			return a.result(data, err)
		}
		var l struct {
			Bans []banView `json:"bans"`
		}
		if err := decode(data, &l); err != nil {
			return err
		}
		return writeBans(a.stdout, l.Bans)
	}
}

func bansGetCmd(*flag.FlagSet) action {
	return func(ctx context.Context, a *app, args []string) error {
		client, err := clientArg(args[0])
		if err != nil {
			return err
		}
		return a.showBan(a.get(ctx, "/v1/bans", url.Values{"client": {client}}))
	}
}

// durationFlag is a -for value: a Go duration or whole days ("7d",
// "1d12h"), as bans list prints them.
type durationFlag struct{ d time.Duration }

func (f *durationFlag) String() string { return f.d.String() }

func (f *durationFlag) Set(s string) error {
	d, err := record.ParseDuration(s)
	if err != nil {
		return err
	}
	f.d = d
	return nil
}

func bansAddCmd(fs *flag.FlagSet) action {
	df := &durationFlag{d: time.Hour}
	fs.Var(df, "for", "ban `duration` (90s, 15m, 24h or 7d), at most a year")
	dur := &df.d
	reason := fs.String("reason", "", "why, one line shown to other operators (default \"manual\")")
	return func(ctx context.Context, a *app, args []string) error {
		client, err := clientArg(args[0])
		if err != nil {
			return err
		}
		if *dur <= 0 || *dur > 365*24*time.Hour {
			return usagef(nil, "-for %v: want a positive duration of at most a year (365d)", *dur)
		}
		body := map[string]string{"client": client, "duration": dur.String(), "reason": *reason}
		data, err := a.call(ctx, http.MethodPost, "/v1/bans", nil, body)
		return a.showBan(data, err)
	}
}

func (a *app) showBan(data []byte, err error) error {
	if err != nil || a.json {
		return a.result(data, err)
	}
	var b banView
	if err := decode(data, &b); err != nil {
		return err
	}
	return writeBan(a.stdout, &b)
}

func bansRmCmd(fs *flag.FlagSet) action {
	forget := fs.Bool("forget", false, "also forget the client's ban history, so its next automatic ban is not escalated")
	return func(ctx context.Context, a *app, args []string) error {
		client, err := clientArg(args[0])
		if err != nil {
			return err
		}
		q := url.Values{"client": {client}}
		if *forget {
			q.Set("forget", "1")
		}
		data, err := a.call(ctx, http.MethodDelete, "/v1/bans", q, nil)
		if err != nil || a.json {
			return a.result(data, err)
		}
		var r struct {
			Client string `json:"client"`
		}
		if err := decode(data, &r); err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "unbanned %s\n", clean(r.Client, 0))
		return err
	}
}

func summaryCmd(fs *flag.FlagSet) action {
	window := fs.Duration("window", time.Hour, "count events of the last `duration`")
	top := fs.Int("top", 10, "show the top `N` clients and detections (1..1000)")
	return func(ctx context.Context, a *app, _ []string) error {
		if *window <= 0 {
			return usagef(nil, "-window %v: want a positive duration such as 1h", *window)
		}
		if *top < 1 || *top > 1000 {
			return usagef(nil, "-top %d: want 1..1000", *top)
		}
		data, err := a.get(ctx, "/v1/summary", url.Values{"window": {window.String()}, "top": {strconv.Itoa(*top)}})
		if err != nil || a.json {
			return a.result(data, err)
		}
		var s summaryView
		if err := decode(data, &s); err != nil {
			return err
		}
		return writeSummary(a.stdout, &s)
	}
}

func countersCmd(*flag.FlagSet) action {
	return func(ctx context.Context, a *app, args []string) error {
		client, err := clientArg(args[0])
		if err != nil {
			return err
		}
		data, err := a.get(ctx, "/v1/counters", url.Values{"client": {client}})
		if err != nil || a.json {
			return a.result(data, err)
		}
		var c countersView
		if err := decode(data, &c); err != nil {
			return err
		}
		return writeCounters(a.stdout, &c)
	}
}

// result prints data as JSON, or returns err.
func (a *app) result(data []byte, err error) error {
	if err != nil {
		return err
	}
	return a.printJSON(data)
}

// clientArg checks that s is an IP address or a CIDR range before asking the
// gateway, which turns it into a client key (an IPv6 address into its /64).
func clientArg(s string) (string, error) {
	s = strings.TrimSpace(s)
	if _, err := netip.ParseAddr(s); err == nil {
		return s, nil
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return s, nil
	}
	// An identity: its hashed form as bans list shows it (id:...), or the
	// key and the value (jwt:sub=alice, header:X-Api-Key=k1); the gateway
	// hashes the value, which is never stored or logged.
	if strings.HasPrefix(s, "id:") || (strings.Contains(s, "=") && strings.Contains(s, ":")) {
		return s, nil
	}
	// Not printed whole: it may be an identity's value without its key
	// (X-Api-Key=<key>).
	if k, _, ok := strings.Cut(s, "="); ok {
		s = k + "=..."
	}
	return "", usagef(nil, "client %q is not an IP address or CIDR range", s)
}

func tlsFingerprintsCmd(fs *flag.FlagSet) action {
	top := fs.Int("top", 20, "how many `N`, at most 256")
	return func(ctx context.Context, a *app, _ []string) error {
		data, err := a.get(ctx, "/v1/tls/fingerprints", url.Values{"top": {strconv.Itoa(*top)}})
		if err != nil || a.json {
			return a.result(data, err)
		}
		var v struct {
			Replica      string `json:"replica"`
			Fingerprints []struct {
				JA4      string `json:"ja4"`
				JA3N     string `json:"ja3n"`
				Count    int64  `json:"count"`
				Refused  int64  `json:"refused"`
				Estimate bool   `json:"estimate"`
			} `json:"fingerprints"`
		}
		if err := decode(data, &v); err != nil {
			return err
		}
		tw := table(a.stdout)
		row(tw, "JA4", "JA3N", "HANDSHAKES", "REFUSED")
		for _, f := range v.Fingerprints {
			n := strconv.FormatInt(f.Count, 10)
			if f.Estimate {
				n = "<=" + n
			}
			row(tw, clean(f.JA4, 64), clean(f.JA3N, 40), n, strconv.FormatInt(f.Refused, 10))
		}
		return tw.Flush()
	}
}
