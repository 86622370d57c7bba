package replay

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"iter"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fakeJudge blocks requests whose target or body contains one of its rules'
// needles, and optionally rate-limits each client to limit requests per
// fixed window of simulated time, banning a client that goes over for
// banFor. It keeps
// its state the way the real engine must: per configuration, driven by At.
type fakeJudge struct {
	rules  []fakeRule
	limit  int
	window time.Duration
	banFor time.Duration

	counts map[netip.Addr]windowCount
	banned map[netip.Addr]time.Time
}

type fakeRule struct {
	needle, detection, rule, location string
	status                            int
}

type windowCount struct {
	second time.Time
	n      int
}

func (j *fakeJudge) Judge(_ context.Context, r *Record) (Outcome, error) {
	if j.counts == nil {
		j.counts, j.banned = map[netip.Addr]windowCount{}, map[netip.Addr]time.Time{}
	}
	if until, ok := j.banned[r.ClientIP]; ok && r.At.Before(until) {
		return Outcome{Blocked: true, Status: 403, Detection: "rate_limit", Reason: "banned", Banned: true}, nil
	}
	if j.limit > 0 {
		s := r.At.Truncate(j.window)
		w := j.counts[r.ClientIP]
		if !w.second.Equal(s) {
			w = windowCount{second: s}
		}
		w.n++
		j.counts[r.ClientIP] = w
		if w.n > j.limit {
			j.banned[r.ClientIP] = r.At.Add(j.banFor)
			return Outcome{Blocked: true, Status: 429, Detection: "rate_limit", Reason: "rate_limited", RateLimited: true, BanFor: j.banFor}, nil
		}
	}
	text := strings.ToLower(r.Target + " " + string(r.Body))
	for _, rule := range j.rules {
		if strings.Contains(text, rule.needle) {
			st := rule.status
			if st == 0 {
				st = 403
			}
			return Outcome{Blocked: true, Status: st, Detection: rule.detection, Reason: "malicious_payload", RuleID: rule.rule, Location: rule.location}, nil
		}
	}
	return Outcome{}, nil
}

// The configurations of the golden test: the candidate adds an XSS rule,
// drops the legacy "passwd" pattern, moves SQL injection to another rule id,
// and adds a per-client rate limit.
func currentJudge() *fakeJudge {
	return &fakeJudge{rules: []fakeRule{
		{needle: "union", detection: "payload", rule: "sqli", location: "form:p"},
		{needle: "%27%20or%201%3d1", detection: "payload", rule: "sqli", location: "query:q"},
		{needle: "passwd", detection: "payload", rule: "pattern", location: "path"},
	}}
}

func candidateJudge() *fakeJudge {
	return &fakeJudge{
		rules: []fakeRule{
			{needle: "union", detection: "payload", rule: "sqli_grammar", location: "form:p"},
			{needle: "%27%20or%201%3d1", detection: "payload", rule: "sqli", location: "query:q"},
			{needle: "<script", detection: "payload", rule: "xss", location: "query:name"},
			{needle: "%3cimg", detection: "payload", rule: "xss", location: "query:p"},
		},
		limit:  2,
		window: 10 * time.Second,
		banFor: 10 * time.Minute,
	}
}

func seq(items ...any) iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		for _, it := range items {
			var ok bool
			switch v := it.(type) {
			case *Record:
				ok = yield(v, nil)
			case error:
				ok = yield(nil, v)
			}
			if !ok {
				return
			}
		}
	}
}

func rec(line int, method, target string, opts ...func(*Record)) *Record {
	r := &Record{Method: method, Target: target, Proto: "HTTP/1.1", Format: FormatJSONL, Source: "t.jsonl", Line: line}
	for _, o := range opts {
		o(r)
	}
	return r
}

func from(ip string) func(*Record) { return func(r *Record) { r.ClientIP = netip.MustParseAddr(ip) } }

func at(s string) func(*Record) {
	return func(r *Record) { r.Time, _ = time.Parse(time.RFC3339Nano, s) }
}

func TestRunTotals(t *testing.T) {
	t.Parallel()
	records := seq(
		rec(1, "GET", "/search?q=shoes", from("192.0.2.1"), at("2026-03-02T10:00:00Z")),                         // unchanged allow
		rec(2, "POST", "/login", from("192.0.2.1"), at("2026-03-02T10:00:00.1Z"), withBody("p=1 UNION SELECT")), // cause changed sqli -> sqli_grammar
		rec(3, "GET", "/item?name=<script>", from("192.0.2.2"), at("2026-03-02T10:00:01Z")),                     // newly blocked xss
		rec(4, "GET", "/etc/passwd", from("192.0.2.3"), at("2026-03-02T10:00:02Z")),                             // newly allowed (pattern dropped)
		rec(5, "GET", "/?q=%27%20OR%201%3D1", from("192.0.2.4"), at("2026-03-02T10:00:03Z")),                    // unchanged block
		rec(6, "GET", "/a", from("192.0.2.5"), at("2026-03-02T10:00:04Z")),                                      // allow
		rec(7, "GET", "/a", from("192.0.2.5"), at("2026-03-02T10:00:04.1Z")),                                    // allow
		rec(8, "GET", "/a", from("192.0.2.5"), at("2026-03-02T10:00:04.2Z")),                                    // newly blocked: rate limit + ban
		rec(9, "GET", "/a", from("192.0.2.5"), at("2026-03-02T10:00:09Z")),                                      // newly blocked: ban refusal
		&InvalidRecordError{Source: "t.jsonl", Format: FormatJSONL, Line: 10, Code: InvalidJSON, Detail: "JSON syntax error at byte 3"},
		rec(11, "GET", "/a", from("2001:db8::1"), at("2026-03-02T10:00:10Z")), // allow (IPv6 /64)
	)
	rep, err := Run(t.Context(), records, currentJudge(), candidateJudge(), DefaultRunConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := Totals{
		Records: 10, Requests: 10,
		BlockedCurrent: 3, BlockedCandidate: 5,
		NewlyBlocked: 3, NewlyAllowed: 1, CauseChanged: 1, Unchanged: 5,
		NewlyBlockedBans: 1, NewlyBlockedRateLimited: 1,
		BansCurrent: 0, BansCandidate: 1,
		Invalid: 1,
	}
	if rep.Totals != want {
		t.Errorf("totals\n got %+v\nwant %+v", rep.Totals, want)
	}
	if tt := rep.Totals; tt.NewlyBlocked+tt.NewlyAllowed+tt.CauseChanged+tt.Unchanged != tt.Requests {
		t.Error("the change kinds do not partition the requests")
	}
	dets := map[string][4]int{}
	for _, d := range rep.ByDetection {
		dets[d.Detection+"/"+d.RuleID+"/"+d.Refusal] = [4]int{d.Current, d.Candidate, d.NewlyBlocked, d.NewlyAllowed}
	}
	wantDets := map[string][4]int{
		"payload/sqli/":          {2, 1, 0, 0},
		"payload/sqli_grammar/":  {0, 1, 0, 0},
		"payload/xss/":           {0, 1, 1, 0},
		"payload/pattern/":       {1, 0, 0, 1},
		"rate_limit//rate_limit": {0, 1, 1, 0},
		"rate_limit//ban":        {0, 1, 1, 0},
	}
	if !reflect.DeepEqual(dets, wantDets) {
		t.Errorf("by detection\n got %v\nwant %v", dets, wantDets)
	}
	// Changes: four cells, each with its first example.
	if len(rep.Changes) != 5 {
		t.Fatalf("%d change cells: %+v", len(rep.Changes), rep.Changes)
	}
	cells := map[string]int{}
	for _, c := range rep.Changes {
		cells[c.Kind+" "+c.Current.String()+" -> "+c.Candidate.String()] = c.Count
		if len(c.Examples) != 1 {
			t.Errorf("%s: %d examples", c.Kind, len(c.Examples))
		}
	}
	wantCells := map[string]int{
		"cause_changed payload/sqli 403 -> payload/sqli_grammar 403": 1,
		"newly_blocked allow -> payload/xss 403":                     1,
		"newly_blocked allow -> rate_limit 429":                      1,
		"newly_blocked allow -> rate_limit 403 (ban)":                1,
		"newly_allowed payload/pattern 403 -> allow":                 1,
	}
	if !reflect.DeepEqual(cells, wantCells) {
		t.Errorf("changes\n got %v\nwant %v", cells, wantCells)
	}
	// Clients: the rate-limited one first; IPv6 grouped by /64.
	if rep.ByClient[0].Key != "192.0.2.5" || rep.ByClient[0].Requests != 4 || rep.ByClient[0].NewlyBlocked != 2 {
		t.Errorf("top client %+v", rep.ByClient[0])
	}
	found := false
	for _, c := range rep.ByClient {
		found = found || c.Key == "2001:db8::/64"
	}
	if !found {
		t.Errorf("no /64 client row: %+v", rep.ByClient)
	}
	if rep.Invalid.Count != 1 || rep.Invalid.Examples[0].Where != "t.jsonl:10" || rep.Inputs[0].Invalid != 1 || rep.Inputs[0].Records != 10 {
		t.Errorf("invalid %+v inputs %+v", rep.Invalid, rep.Inputs)
	}
	if code, _ := ExitStatus(rep, nil, DefaultGate()); code != ExitGate {
		t.Errorf("exit %d", code)
	}
}

func withBody(s string) func(*Record) { return func(r *Record) { r.Body = []byte(s) } }

func TestRunClock(t *testing.T) {
	t.Parallel()
	cfg := DefaultRunConfig()
	cfg.Interval = 250 * time.Millisecond
	var seen []*Record
	record := JudgeFunc(func(_ context.Context, r *Record) (Outcome, error) {
		seen = append(seen, r)
		return Outcome{}, nil
	})
	rep, err := Run(t.Context(), seq(
		rec(1, "GET", "/"), // Start
		rec(2, "GET", "/"), // Start + 250ms
		rec(3, "GET", "/", at("2026-03-02T10:00:05Z")), // recorded
		rec(4, "GET", "/", at("2026-03-02T10:00:02Z")), // 3 s back: judged at 10:00:05
		rec(5, "GET", "/"), // 10:00:05.25
		rec(6, "GET", "/", at("2026-03-02T10:00:05.1Z")), // 0.15 s back
	), record, JudgeFunc(func(context.Context, *Record) (Outcome, error) { return Outcome{}, nil }), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2026-01-01T00:00:00Z", "2026-01-01T00:00:00.25Z", "2026-03-02T10:00:05Z",
		"2026-03-02T10:00:05Z", "2026-03-02T10:00:05.25Z", "2026-03-02T10:00:05.25Z",
	}
	for i, r := range seen {
		if got := r.At.Format(time.RFC3339Nano); got != want[i] {
			t.Errorf("record %d at %s, want %s", i+1, got, want[i])
		}
	}
	c := rep.Clock
	if c.Recorded != 3 || c.Synthetic != 3 || c.OutOfOrder != 2 || c.MaxBackwardSeconds != 3 ||
		len(c.Examples) != 2 || c.Examples[0].Where != "t.jsonl:4" || !c.First.Equal(seen[0].At) || !c.Last.Equal(seen[5].At) {
		t.Errorf("clock %+v", c)
	}
	if !seen[0].TimeSynthetic || seen[2].TimeSynthetic {
		t.Error("TimeSynthetic")
	}
	// Synthetic clients: each record its own address, as wafeval does.
	if seen[0].ClientIP.String() != "198.18.0.0" || seen[5].ClientIP.String() != "198.18.0.5" || !seen[5].ClientIPSynthetic {
		t.Errorf("client IPs %v %v", seen[0].ClientIP, seen[5].ClientIP)
	}
	if got := synthAddr(1<<16 + 3).String(); got != "198.19.0.3" {
		t.Errorf("synthAddr wraps into 198.19: %s", got)
	}
	if got := synthAddr(1 << 17).String(); got != "198.18.0.0" {
		t.Errorf("synthAddr stays in 198.18.0.0/15: %s", got)
	}
}

func TestRunClientPolicies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy ClientIPPolicy
		want   []string
	}{
		{ClientIPEach, []string{"198.18.0.0", "192.0.2.9", "198.18.0.2"}},
		{ClientIPOne, []string{"198.18.0.1", "192.0.2.9", "198.18.0.1"}},
		{ClientIPKeep, []string{"invalid IP", "192.0.2.9", "invalid IP"}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			t.Parallel()
			cfg := DefaultRunConfig()
			cfg.ClientIPs = tc.policy
			var got []string
			j := JudgeFunc(func(_ context.Context, r *Record) (Outcome, error) {
				got = append(got, r.ClientIP.String())
				return Outcome{}, nil
			})
			rep, err := Run(t.Context(), seq(rec(1, "GET", "/"), rec(2, "GET", "/", from("192.0.2.9")), rec(3, "GET", "/")), j, JudgeFunc(allow), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v", got)
			}
			if len(rep.Notes) != 1 || rep.Notes[0].Count != 2 {
				t.Errorf("notes %+v", rep.Notes)
			}
		})
	}
}

func allow(context.Context, *Record) (Outcome, error) { return Outcome{}, nil }

func TestRunErrors(t *testing.T) {
	t.Parallel()
	t.Run("fatal input error returns the partial report", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("disk on fire")
		rep, err := Run(t.Context(), seq(rec(1, "GET", "/"), boom, rec(3, "GET", "/")), JudgeFunc(allow), JudgeFunc(allow), DefaultRunConfig())
		if !errors.Is(err, boom) || rep == nil || rep.Totals.Requests != 1 {
			t.Errorf("rep %+v err %v", rep, err)
		}
		if code, _ := ExitStatus(rep, err, DefaultGate()); code != ExitFailed {
			t.Errorf("exit %d", code)
		}
	})
	t.Run("judge errors are counted, not compared", func(t *testing.T) {
		t.Parallel()
		flaky := JudgeFunc(func(_ context.Context, r *Record) (Outcome, error) {
			if r.Line == 2 {
				return Outcome{}, errors.New("building request view: bad query")
			}
			return Outcome{Blocked: true, Status: 403, Detection: "payload"}, nil
		})
		rep, err := Run(t.Context(), seq(rec(1, "GET", "/"), rec(2, "GET", "/"), rec(3, "GET", "/")), JudgeFunc(allow), flaky, DefaultRunConfig())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Totals.Records != 3 || rep.Totals.Requests != 2 || rep.Totals.JudgeErrors != 1 || rep.Totals.NewlyBlocked != 2 ||
			rep.JudgeErrors.Examples[0] != (Problem{Where: "t.jsonl:2", Code: "candidate", Detail: "building request view: bad query"}) {
			t.Errorf("totals %+v errors %+v", rep.Totals, rep.JudgeErrors)
		}
		if code, _ := ExitStatus(rep, nil, Gate{MaxNewBlocks: 5}); code != ExitOK {
			t.Errorf("judge errors fail only a strict gate: exit %d", code)
		}
		if code, _ := ExitStatus(rep, nil, Gate{MaxNewBlocks: 5, Strict: true}); code != ExitFailed {
			t.Errorf("strict: exit %d", code)
		}
	})
	t.Run("cancelled context stops the run", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		n := 0
		stopper := JudgeFunc(func(context.Context, *Record) (Outcome, error) {
			n++
			if n == 2 {
				cancel()
			}
			return Outcome{}, nil
		})
		recs := []any{}
		for i := range 10 {
			recs = append(recs, rec(i+1, "GET", "/"))
		}
		rep, err := Run(ctx, seq(recs...), stopper, JudgeFunc(allow), DefaultRunConfig())
		if !errors.Is(err, context.Canceled) || rep.Totals.Requests != 1 || n != 2 {
			t.Errorf("err %v requests %d judged %d", err, rep.Totals.Requests, n)
		}
	})
	t.Run("config is validated", func(t *testing.T) {
		t.Parallel()
		cfg := DefaultRunConfig()
		cfg.Interval = 0
		cfg.ClientIPs = "many"
		cfg.Examples = -1
		_, err := Run(t.Context(), seq(), JudgeFunc(allow), JudgeFunc(allow), cfg)
		if err == nil || !strings.Contains(err.Error(), "interval") || !strings.Contains(err.Error(), "many") || !strings.Contains(err.Error(), "examples") {
			t.Errorf("err %v", err)
		}
		if _, err := Run(t.Context(), seq(), nil, JudgeFunc(allow), DefaultRunConfig()); err == nil {
			t.Error("nil judge accepted")
		}
	})
}

func TestRunBoundedTables(t *testing.T) {
	t.Parallel()
	cfg := DefaultRunConfig()
	cfg.MaxRoutes = 2
	cfg.MaxClients = 3
	cfg.TopRoutes = 10
	cfg.MaxCells = 1
	cfg.Examples = 2
	var recs []any
	for i := range 6 {
		recs = append(recs, rec(i+1, "GET", "/r"+string(rune('a'+i))+"/x?id=1", from("192.0.2."+string(rune('1'+i)))))
	}
	block := JudgeFunc(func(_ context.Context, r *Record) (Outcome, error) {
		return Outcome{Blocked: true, Status: 403, Detection: "payload", RuleID: r.Path()}, nil
	})
	rep, err := Run(t.Context(), seq(recs...), JudgeFunc(allow), block, cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{}
	for _, r := range rep.ByRoute {
		keys = append(keys, r.Key)
	}
	if !reflect.DeepEqual(keys, []string{"(other)", "GET /ra/x", "GET /rb/x"}) || rep.ByRoute[0].Requests != 4 {
		t.Errorf("routes %v", rep.ByRoute)
	}
	c := rep.Cardinality
	if c.Routes != 3 || c.RoutesOverflow != 4 || c.Clients != 4 || c.ClientsOverflow != 3 || c.CellsOverflow != 5 {
		t.Errorf("cardinality %+v", c)
	}
	if len(rep.Changes) != 1 || rep.Changes[0].Count != 1 || len(rep.Changes[0].Examples) != 1 {
		t.Errorf("changes %+v", rep.Changes)
	}
	// Detection rows are bounded by MaxCells too.
	if len(rep.ByDetection) != 2 || rep.ByDetection[0].Detection != "(other)" || rep.ByDetection[0].Candidate != 5 {
		t.Errorf("by detection %+v", rep.ByDetection)
	}
	if rep.Totals.NewlyBlocked != 6 {
		t.Errorf("totals still count everything: %+v", rep.Totals)
	}
}

func TestRouteKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, target string
		depth          int
		want           string
	}{
		{"GET", "/", 2, "GET /"},
		{"GET", "/api/users/42/orders?x=1", 2, "GET /api/users/*"},
		{"GET", "/api/users/42/orders", 3, "GET /api/users/{n}/*"},
		{"GET", "/api/users/", 2, "GET /api/users"}, // a trailing slash is the same route
		{"DELETE", "/v1/blobs/9f86d081884c7d659a2feaa0c55ad015", 3, "DELETE /v1/blobs/{hex}"},
		{"GET", "/o/123e4567-e89b-12d3-a456-426614174000", 2, "GET /o/{uuid}"},
		{"GET", "/" + strings.Repeat("x", 50), 2, "GET /{long}"},
		{"GET", "/caf\xc3\xa9", 1, "GET /{raw}"},
		{"OPTIONS", "*", 2, "OPTIONS *"},
		{"GET", "http://proxy.example/a/b/c", 1, "GET /a/*"},
		{"REALLYLONGUNREALMETHOD", "/", 1, "{method} /"},
	}
	for _, tc := range tests {
		if got := RouteKey(&Record{Method: tc.method, Target: tc.target}, tc.depth); got != tc.want {
			t.Errorf("RouteKey(%s %s, %d) = %q, want %q", tc.method, tc.target, tc.depth, got, tc.want)
		}
	}
	// A route function replaces the default.
	cfg := DefaultRunConfig()
	cfg.Route = func(r *Record) string { return "svc:" + r.Host }
	rep, err := Run(t.Context(), seq(rec(1, "GET", "/x", func(r *Record) { r.Host = "a" })), JudgeFunc(allow), JudgeFunc(allow), cfg)
	if err != nil || rep.ByRoute[0].Key != "svc:a" || !rep.Config.CustomRoutes {
		t.Errorf("custom route: %+v %v", rep.ByRoute, err)
	}
}

func TestHashClients(t *testing.T) {
	t.Parallel()
	cfg := DefaultRunConfig()
	cfg.HashClients = true
	cfg.HashKey = []byte("fixed key for the test")
	run := func() *Report {
		rep, err := Run(t.Context(), seq(rec(1, "GET", "/x", from("192.0.2.77"))), JudgeFunc(allow), JudgeFunc(func(context.Context, *Record) (Outcome, error) {
			return Outcome{Blocked: true, Status: 403, Detection: "ip"}, nil
		}), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	a, b := run(), run()
	var buf bytes.Buffer
	WriteJSON(&buf, a)
	if strings.Contains(buf.String(), "192.0.2.77") {
		t.Error("client address in a hashed report")
	}
	if !strings.HasPrefix(a.ByClient[0].Key, "client-") || a.ByClient[0].Key != b.ByClient[0].Key || a.Changes[0].Examples[0].Client != a.ByClient[0].Key {
		t.Errorf("hash %q vs %q", a.ByClient[0].Key, b.ByClient[0].Key)
	}
}

// goldenRun replays every fixture through the fake configurations.
func goldenRun(t *testing.T) *Report {
	t.Helper()
	in, err := Open([]string{"testdata/corpus.jsonl", "testdata/access.log", "testdata/chrome.har", "testdata/mitmproxy.har"}, DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	rep, err := Run(t.Context(), in.Records(), currentJudge(), candidateJudge(), DefaultRunConfig())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; rerun with -update and review the diff:\n%s", name, got)
	}
}

func TestGoldenJSON(t *testing.T) {
	rep := goldenRun(t)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden.json", buf.Bytes())
	// The schema is stable: every list is present even when empty.
	empty, err := Run(t.Context(), seq(), JudgeFunc(allow), JudgeFunc(allow), DefaultRunConfig())
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	WriteJSON(&buf, empty)
	for _, key := range []string{`"inputs": []`, `"changes": []`, `"by_route": []`, `"examples": []`, `"notes": []`, `"first": null`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("empty report lacks %s:\n%s", key, buf.String())
		}
	}
}

func TestGoldenText(t *testing.T) {
	rep := goldenRun(t)
	var buf bytes.Buffer
	if err := WriteText(&buf, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden.txt", buf.Bytes())
}

// TestReportMasksSecrets: no secret of the fixtures reaches either output.
func TestReportMasksSecrets(t *testing.T) {
	t.Parallel()
	in, err := Open([]string{"testdata/corpus.jsonl", "testdata/access.log", "testdata/chrome.har", "testdata/mitmproxy.har"}, DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	blockAll := JudgeFunc(func(context.Context, *Record) (Outcome, error) {
		return Outcome{Blocked: true, Status: 403, Detection: "payload", Location: "header:Authorization"}, nil
	})
	cfg := DefaultRunConfig()
	cfg.Examples = 100
	rep, err := Run(t.Context(), in.Records(), JudgeFunc(allow), blockAll, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.NewlyBlocked != rep.Totals.Requests || rep.Changes[0].Count != len(rep.Changes[0].Examples) {
		t.Fatalf("every request should be an example: %+v", rep.Totals)
	}
	var out bytes.Buffer
	WriteJSON(&out, rep)
	WriteText(&out, rep)
	for _, secret := range []string{
		"s3cr3t", "tok-abc", "YWxpY2U6aHVudGVyMg", "k-9999", "hunter2", "abc123", "zzz",
		"eyJhbGciOiJIUzI1NiJ9", "c5rf-t0ken-value", "k-123456", "abc.def",
		"UNION SELECT", // bodies are never shown
	} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("report contains %q", secret)
		}
	}
	for _, kept := range []string{"Bearer ***", "sid=***; cart=***", "access_token=***", "api_key=***&fields=name", "reset_token=***&step=2", `"body_bytes": 51`} {
		if !strings.Contains(out.String(), kept) {
			t.Errorf("report lacks %q", kept)
		}
	}
}

func TestRunShiftsLaterInputs(t *testing.T) {
	t.Parallel()
	var at2 []string
	j := JudgeFunc(func(_ context.Context, r *Record) (Outcome, error) {
		at2 = append(at2, r.At.Format("15:04:05.000"))
		return Outcome{}, nil
	})
	src := func(s string) func(*Record) { return func(r *Record) { r.Source = s } }
	rep, err := Run(t.Context(), seq(
		rec(1, "GET", "/", src("a.log"), at("2026-03-02T10:00:00Z")),
		rec(2, "GET", "/", src("a.log"), at("2026-03-02T10:00:01Z")),
		rec(1, "GET", "/", src("b.log")), // no time: one interval on
		rec(2, "GET", "/", src("b.log"), at("2026-03-02T09:00:00Z")),
		rec(3, "GET", "/", src("b.log"), at("2026-03-02T09:00:00.5Z")),
		rec(1, "GET", "/", src("c.log"), at("2026-03-02T11:00:00Z")), // later: not shifted
	), j, JudgeFunc(allow), DefaultRunConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10:00:00.000", "10:00:01.000", "10:00:01.100", "10:00:01.200", "10:00:01.700", "11:00:00.000"}
	if !reflect.DeepEqual(at2, want) {
		t.Errorf("at %v, want %v", at2, want)
	}
	if c := rep.Clock; c.OutOfOrder != 0 || len(c.Shifted) != 1 || c.Shifted[0].Source != "b.log" || c.Shifted[0].Seconds != 3601.2 {
		t.Errorf("clock %+v", c)
	}
}
