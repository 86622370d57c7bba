package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampartgw/rampart/replay"
)

// replayCorpus is the development corpus, next to the repository checkout.
const replayCorpus = "../../../shared/corpus/dev.jsonl.gz"

// writeFile writes content to a new file in a test directory.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newEngine builds the replay engine of a configuration given as YAML
// ("" for the defaults).
func newEngine(t testing.TB, name, yaml string) *replayEngine {
	t.Helper()
	return newEngineWith(t, name, yaml, engineOptions{upstream: upstreamStatus{def: 200}, recordedStatus: true})
}

func newEngineWith(t testing.TB, name, yaml string, o engineOptions) *replayEngine {
	t.Helper()
	path := ""
	if yaml != "" {
		path = writeFile(t, name+".yaml", yaml)
	}
	e, err := newReplayEngineFile(path, name, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// readRecords reads every valid record of the files.
func readRecords(t testing.TB, paths ...string) []*replay.Record {
	t.Helper()
	in, err := replay.Open(paths, replay.DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out []*replay.Record
	for r, err := range in.Records() {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// judged is one record as both configurations decided it.
type judged struct {
	rec             replay.Record
	current, cand   replay.Outcome
	currentDecision replay.Decision
	candDecision    replay.Decision
}

// replayAll runs records through both engines with replay.Run and returns
// the report and every record's outcomes, in order.
func replayAll(t *testing.T, records iter.Seq2[*replay.Record, error], cur, cand *replayEngine, cfg replay.RunConfig) (*replay.Report, []judged) {
	t.Helper()
	var out []judged
	current := replay.JudgeFunc(func(ctx context.Context, r *replay.Record) (replay.Outcome, error) {
		o, err := cur.Judge(ctx, r)
		out = append(out, judged{rec: *r, current: o, currentDecision: o.Decision()})
		return o, err
	})
	candidate := replay.JudgeFunc(func(ctx context.Context, r *replay.Record) (replay.Outcome, error) {
		o, err := cand.Judge(ctx, r)
		j := &out[len(out)-1]
		j.cand, j.candDecision = o, o.Decision()
		return o, err
	})
	rep, err := replay.Run(t.Context(), records, current, candidate, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep, out
}

// jsonlInput is records written as corpus JSON lines.
func jsonlInput(t *testing.T, lines []string) iter.Seq2[*replay.Record, error] {
	t.Helper()
	in, err := replay.NewInput("test.jsonl", strings.NewReader(strings.Join(lines, "\n")), replay.DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	return in.Records()
}

const browserUA = "Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0"

// jsonlLine is one corpus record with a client address and, unless at is
// zero, a recorded time.
func jsonlLine(id, method, target, client string, at time.Time) string {
	m := map[string]any{"id": id, "method": method, "path": target, "client_ip": client,
		"headers": [][2]string{{"User-Agent", browserUA}, {"Accept", "application/json"}}}
	if !at.IsZero() {
		m["time"] = at.Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestReplayCorpusAnalyzerOff replays the whole development corpus (about
// 20 s under -race) through the defaults and a candidate with the xss analyser off: the requests whose
// current block is an xss rule are exactly the ones that change (allowed,
// or blocked by another analyser), and nothing else changes.
func TestReplayCorpusAnalyzerOff(t *testing.T) {
	if _, err := os.Stat(replayCorpus); err != nil {
		t.Skipf("development corpus not found at %s (it lives in the shared/ folder next to the checkout): %v", replayCorpus, err)
	}
	const analyzer = "xss"
	family := func(d replay.Decision) bool {
		return d.Blocked && d.Detection == "payload" &&
			(d.RuleID == analyzer || strings.HasPrefix(d.RuleID, analyzer+"_") || strings.HasPrefix(d.RuleID, analyzer+"-"))
	}
	o := engineOptions{upstream: upstreamStatus{def: 200}, recordedStatus: true, share: new(requestShare)}
	cur := newEngineWith(t, "current", "", o)
	cand := newEngineWith(t, "candidate", "detections:\n  payload:\n    analyzers:\n      "+analyzer+": {mode: off}\n", o)
	in, err := replay.Open([]string{replayCorpus}, replay.DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rep, out := replayAll(t, in.Records(), cur, cand, replay.DefaultRunConfig())

	var inFamily, changed int
	for _, j := range out {
		switch {
		case family(j.currentDecision):
			inFamily++
			if j.candDecision == j.currentDecision || family(j.candDecision) {
				t.Errorf("%s: %v under both: the %s analyser is off in the candidate", j.rec.Where(), j.currentDecision, analyzer)
			}
			if j.candDecision.Blocked && j.candDecision.Detection != "payload" {
				t.Errorf("%s: candidate %v, want allow or another payload rule", j.rec.Where(), j.candDecision)
			}
			changed++
		case j.candDecision != j.currentDecision:
			t.Errorf("%s: %v -> %v: only %s blocks may change", j.rec.Where(), j.currentDecision, j.candDecision, analyzer)
		}
	}
	tot := rep.Totals
	if inFamily < 100 || tot.NewlyBlocked != 0 || tot.NewlyAllowed+tot.CauseChanged != changed || tot.Invalid != 0 || tot.JudgeErrors != 0 {
		t.Errorf("%d current %s blocks; totals %+v", inFamily, analyzer, tot)
	}
	for _, row := range rep.ByDetection {
		if family(replay.Decision{Blocked: true, Detection: row.Detection, RuleID: row.RuleID}) && (row.Candidate != 0 || row.NewlyAllowed == 0 && row.Current > 0 && tot.CauseChanged == 0) {
			t.Errorf("by detection: %+v", row)
		}
	}
	t.Logf("%d requests, %d blocked by %s now: %d newly allowed, %d blocked by another rule", tot.Requests, inFamily, analyzer, tot.NewlyAllowed, tot.CauseChanged)
}

// gcra is the generic cell rate algorithm (virtual scheduling, ITU-T
// I.371): emission interval T = period/rate, tolerance tau = (burst-1)*T.
// A request at t conforms unless t < TAT - tau; a conforming one moves TAT
// to max(t, TAT) + T. Times are integer nanoseconds.
type gcra struct {
	t, tau int64
	tat    map[string]int64
}

func newGCRA(rate, burst int, period time.Duration) *gcra {
	t := int64(period) / int64(rate)
	return &gcra{t: t, tau: int64(burst-1) * t, tat: map[string]int64{}}
}

// conforms reports whether a request of client at time at conforms, and
// how far at is from the boundary.
func (g *gcra) conforms(client string, at int64) (bool, int64) {
	tat, ok := g.tat[client]
	if !ok {
		tat = at
	}
	margin := at - (tat - g.tau)
	if margin < 0 {
		return false, -margin
	}
	g.tat[client] = max(at, tat) + g.t
	return true, margin
}

// TestReplayRateLimitGCRA replays recorded bursts of two clients under a
// generous current limit and a tight candidate one: the candidate refuses
// exactly the requests the GCRA definition says do not conform.
func TestReplayRateLimitGCRA(t *testing.T) {
	const rate, burst, period = 4, 3, time.Second
	cur := newEngine(t, "current", "detections:\n  rate_limit: {rate: 1000, burst: 1000, period: 1s, ban_after: 0}\n")
	cand := newEngine(t, "candidate", fmt.Sprintf("detections:\n  rate_limit: {rate: %d, burst: %d, period: %v, ban_after: 0, status: 429}\n", rate, burst, period))

	// Two clients, each in bursts and pauses; the gaps come from a fixed
	// sequence, so the run repeats.
	model := newGCRA(rate, burst, period)
	base := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	clients := []string{"203.0.113.7", "2001:db8::7"}
	next := [2]time.Time{base, base.Add(13 * time.Millisecond)}
	var lines []string
	want := map[string]bool{} // id -> refused
	seed := uint32(7)
	for i := 0; i < 240; i++ {
		c := i % 2
		seed = seed*1664525 + 1013904223
		gap := time.Duration(seed>>8%120_000+3000) * time.Microsecond // 3..123 ms
		if seed>>16&15 == 0 {
			gap += 1500 * time.Millisecond // a pause
		}
		at := next[c].Add(gap)
		ok, margin := model.conforms(clients[c], at.UnixNano())
		if margin < int64(20*time.Microsecond) {
			// The stores count time in float seconds at microsecond
			// resolution: a request this close to a boundary could go
			// either way.
			t.Fatalf("request %d at a GCRA boundary (margin %v): pick another seed", i, time.Duration(margin))
		}
		next[c] = at
		id := fmt.Sprintf("r%03d", i)
		want[id] = !ok
		lines = append(lines, jsonlLine(id, "GET", fmt.Sprintf("/api/items?page=%d", i), clients[c], at))
	}
	// The records are written in time order, as a log would have them.
	sortLinesByTime(t, lines)

	rep, out := replayAll(t, jsonlInput(t, lines), cur, cand, replay.DefaultRunConfig())
	refused := 0
	for _, j := range out {
		if j.current.Blocked {
			t.Errorf("%s: the current limit refused %v", j.rec.ID, j.current)
		}
		wantRefused := want[j.rec.ID]
		got := j.cand
		if got.Blocked != wantRefused {
			t.Errorf("%s at %s: candidate blocked=%v, GCRA says refused=%v", j.rec.ID, j.rec.At.Format("15:04:05.000"), got.Blocked, wantRefused)
			continue
		}
		if wantRefused {
			refused++
			if got.Detection != "rate_limit" || !got.RateLimited || got.Status != 429 || got.Banned {
				t.Errorf("%s: %+v, want a rate_limit 429", j.rec.ID, got)
			}
		}
	}
	if refused < 40 || rep.Totals.NewlyBlocked != refused || rep.Totals.NewlyBlockedRateLimited != refused || rep.Totals.Requests != len(lines) {
		t.Errorf("%d refused by the model; totals %+v", refused, rep.Totals)
	}
}

// sortLinesByTime orders JSON lines by their time field.
func sortLinesByTime(t *testing.T, lines []string) {
	t.Helper()
	at := func(l string) time.Time {
		var v struct{ Time time.Time }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		return v.Time
	}
	for i := 1; i < len(lines); i++ { // insertion sort: stable, small
		for j := i; j > 0 && at(lines[j]).Before(at(lines[j-1])); j-- {
			lines[j], lines[j-1] = lines[j-1], lines[j]
		}
	}
}

// TestReplayBanAndEscalation hammers past ban_after on the simulated clock
// (records without times, -interval apart): the client is banned, refused
// as banned until the ban's simulated expiry, let through at that instant,
// and banned for twice as long the second time.
func TestReplayBanAndEscalation(t *testing.T) {
	cur := newEngine(t, "current", "detections:\n  rate_limit: {rate: 1000, burst: 1000, period: 1s}\n")
	cand := newEngine(t, "candidate", `
detections:
  rate_limit: {rate: 1, burst: 1, period: 1s, ban_after: 3, ban_for: 10s, status: 429}
bans:
  escalation: {factor: 2, max: 1h, memory: 1h}
`)
	const n = 320 // 0 .. 31.9 s, 100 ms apart
	var lines []string
	for i := range n {
		lines = append(lines, jsonlLine(fmt.Sprintf("r%03d", i), "GET", "/api/search?q=x", "198.51.100.9", time.Time{}))
	}
	cfg := replay.DefaultRunConfig()
	cfg.Interval = 100 * time.Millisecond
	rep, out := replayAll(t, jsonlInput(t, lines), cur, cand, cfg)

	type want struct {
		blocked, banned, rateLimited bool
		banFor                       time.Duration
	}
	allow := want{}
	refused := want{blocked: true, rateLimited: true}
	ban := func(d time.Duration) want { return want{blocked: true, rateLimited: true, banFor: d} }
	banned := want{blocked: true, banned: true}
	// Ordered rows: from record index (inclusive) on, until the next row.
	// GCRA with rate 1/s and burst 1 admits one request a second; the
	// third refusal within a period bans; a ban lapses at its expiry, and
	// the second one is escalated (factor 2).
	rows := []struct {
		from int
		want want
	}{
		{0, allow},                   // 0.0 s: the bucket is full
		{1, refused},                 // 0.1, 0.2 s: refusals 1 and 2
		{3, ban(10 * time.Second)},   // 0.3 s: refusal 3 = ban_after: banned until 10.3 s
		{4, banned},                  // 0.4 .. 10.2 s
		{103, allow},                 // 10.3 s: the ban's expiry; the bucket has refilled
		{104, refused},               // 10.4, 10.5 s
		{106, ban(20 * time.Second)}, // 10.6 s: second ban, escalated: until 30.6 s
		{107, banned},                // 10.7 .. 30.5 s
		{306, allow},                 // 30.6 s: expiry
		{307, refused},               // 30.7, 30.8 s
		{309, ban(40 * time.Second)}, // 30.9 s: third ban
		{310, banned},
	}
	if len(out) != n {
		t.Fatalf("%d records judged", len(out))
	}
	row := 0
	for i, j := range out {
		for row+1 < len(rows) && i >= rows[row+1].from {
			row++
		}
		w := rows[row].want
		got := j.cand
		if j.current.Blocked || got.Blocked != w.blocked || got.Banned != w.banned || got.RateLimited != w.rateLimited || got.BanFor != w.banFor {
			t.Errorf("record %d at +%v: %+v, want %+v", i, j.rec.At.Sub(replay.DefaultStart), got, w)
			continue
		}
		if w.banned && (got.Detection != "rate_limit" || got.Status != 403) {
			t.Errorf("record %d: refused as banned by %q with %d, want rate_limit's ban and 403", i, got.Detection, got.Status)
		}
	}
	if rep.Totals.BansCandidate != 3 || rep.Totals.BansCurrent != 0 {
		t.Errorf("totals %+v", rep.Totals)
	}
}

// TestReplayEnumerationFromRecordedStatus replays a combined log whose
// upstream answered 404: the fake upstream answers the recorded status,
// so enumeration counts it and bans as it would have.
func TestReplayEnumerationFromRecordedStatus(t *testing.T) {
	var log strings.Builder
	for i := range 8 {
		status := 404
		if i == 0 {
			status = 200
		}
		fmt.Fprintf(&log, "192.0.2.44 - - [02/Mar/2026:10:00:%02d +0000] \"GET /api/users/%d HTTP/1.1\" %d 12 \"-\" \"%s\"\n", i, i, status, browserUA)
	}
	in, err := replay.NewInput("access.log", strings.NewReader(log.String()), replay.DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Generous rate limits: eight requests in eight seconds from one client
	// would hit the default 5 a minute.
	const limit = "  rate_limit: {rate: 1000, burst: 1000, period: 1s}\n"
	cur := newEngine(t, "current", "detections:\n"+limit)
	cand := newEngine(t, "candidate", "detections:\n"+limit+"  enumeration: {limit: 3, window: 1m, ban_for: 1m}\n")
	rep, out := replayAll(t, in.Records(), cur, cand, replay.DefaultRunConfig())
	// Current (limit 5): 404s at 1..5 count 1..5, the fifth bans; 6, 7 are
	// refused. Candidate (limit 3): the third 404 (record 3) bans.
	for i, j := range out {
		wantCur, wantCand := i >= 6, i >= 4
		if j.current.Blocked != wantCur || j.cand.Blocked != wantCand {
			t.Errorf("record %d: current %+v, candidate %+v", i, j.current, j.cand)
		}
		if j.cand.Blocked && (!j.cand.Banned || j.cand.Detection != "enumeration") {
			t.Errorf("record %d: candidate %+v, want a ban by enumeration", i, j.cand)
		}
		if !j.cand.Blocked && j.cand.Status != j.rec.Status {
			t.Errorf("record %d: upstream answered %d, recorded %d", i, j.cand.Status, j.rec.Status)
		}
	}
	if rep.Totals.NewlyBlocked != 2 || rep.Totals.NewlyBlockedBans != 2 {
		t.Errorf("totals %+v", rep.Totals)
	}
}

// TestReplayTrustedProxies: a recorded peer that the configuration trusts
// is judged by its X-Forwarded-For, as at run time.
func TestReplayTrustedProxies(t *testing.T) {
	const limit = "detections:\n  rate_limit: {rate: 1, burst: 1, period: 1m, ban_after: 0}\n"
	direct := newEngine(t, "direct", limit)
	trusting := newEngine(t, "trusting", "trusted_proxies: [10.0.0.0/8]\n"+limit)
	var log strings.Builder
	for i, client := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		fmt.Fprintf(&log, "10.0.0.5 - - [02/Mar/2026:10:00:0%d +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"%s\" \"%s\"\n", i, browserUA, client)
	}
	in, err := replay.NewInput("access.log", strings.NewReader(log.String()), replay.DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	_, out := replayAll(t, in.Records(), direct, trusting, replay.DefaultRunConfig())
	for i, j := range out {
		// Direct: every request comes from the balancer, one client.
		if j.current.Blocked != (i > 0) || j.cand.Blocked {
			t.Errorf("record %d: direct %+v, trusting %+v", i, j.current, j.cand)
		}
	}
}

// TestReplayRequestShape: what the gateway sees is what net/http's server
// would have handed it, and net/http's own refusals are judged as such.
func TestReplayRequestShape(t *testing.T) {
	e := newEngine(t, "e", "max_header_bytes: 4096\n")
	at := replay.DefaultStart
	tests := []struct {
		name string
		rec  replay.Record
		want replay.Outcome
	}{
		{"plain", replay.Record{Method: "GET", Target: "/a?b=c", Headers: []replay.Header{{Name: "user-agent", Value: browserUA}}}, replay.Outcome{Status: 200}},
		{"recorded status", replay.Record{Method: "GET", Target: "/gone", Status: 410}, replay.Outcome{Status: 410}},
		{"bad escape", replay.Record{Method: "GET", Target: "/%zz"}, replay.Outcome{Blocked: true, Status: 400, Detection: "gateway", Reason: "bad_request", RuleID: "request_target"}},
		{"headers too large", replay.Record{Method: "GET", Target: "/", Headers: []replay.Header{{Name: "X-Big", Value: strings.Repeat("a", 9000)}}},
			replay.Outcome{Blocked: true, Status: 431, Detection: "gateway", Reason: "header_too_large", RuleID: "max_header_bytes"}},
		{"body too large", replay.Record{Method: "POST", Target: "/", Body: bytes.Repeat([]byte("a"), 2<<20)},
			replay.Outcome{Blocked: true, Status: 413, Detection: "gateway", Reason: "request_too_large", RuleID: "max_body_bytes"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.rec.At = at.Add(time.Duration(i) * time.Minute)
			tc.rec.ClientIP = netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
			tc.rec.Proto = "HTTP/1.1"
			got, err := e.Judge(t.Context(), &tc.rec)
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}

	// The header map is shared by both engines of a replay: judging must
	// leave it as parsed.
	share := new(requestShare)
	o := engineOptions{upstream: upstreamStatus{def: 200}, share: share}
	a, b := newEngineWith(t, "a", "", o), newEngineWith(t, "b", "", o)
	r := &replay.Record{Method: "POST", Target: "/x", Proto: "HTTP/1.1", At: at, ClientIP: netip.MustParseAddr("192.0.2.9"),
		Headers: []replay.Header{{Name: "X-Forwarded-For", Value: "1.2.3.4"}, {Name: "Connection", Value: "keep-alive"}, {Name: "content-type", Value: "text/plain"}}, Body: []byte("hello")}
	if _, err := a.Judge(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	fresh := parseRecord(r, r.ClientIP)
	if fmt.Sprint(share.parsed.header) != fmt.Sprint(fresh.header) {
		t.Fatalf("the shared header changed: %v, parsed %v", share.parsed.header, fresh.header)
	}
	if got := fresh.header.Get("Content-Length"); got != "5" {
		t.Errorf("Content-Length %q", got)
	}
	if _, err := b.Judge(t.Context(), r); err != nil {
		t.Fatal(err)
	}
}

func TestParseUpstreamStatus(t *testing.T) {
	u, err := parseUpstreamStatus("404, /api/=200,/api/admin/=403")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/": 404, "/api/x": 200, "/api/admin/x": 403, "/apix": 404} {
		if got := u.status(path); got != want {
			t.Errorf("%s: %d, want %d", path, got, want)
		}
	}
	for _, bad := range []string{"99", "/x=700", "x=200", "abc"} {
		if _, err := parseUpstreamStatus(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// replayCmd runs "gateway replay args..." through run, as main does.
func replayCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(t.Context(), append([]string{"replay"}, args...), func(string) (string, bool) { return "", false }, &o, &e, nil)
	return o.String(), e.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// TestReplayFixtures replays the HAR and combined-log fixtures of package
// replay end to end: every format is read, its capability notes are in
// the report, and the candidate's changes show.
func TestReplayFixtures(t *testing.T) {
	cand := writeFile(t, "cand.yaml", "detections:\n  payload: {mode: off}\n")
	files := []string{"../../replay/testdata/access.log", "../../replay/testdata/chrome.har.gz", "../../replay/testdata/mitmproxy.har"}
	stdout, stderr, err := replayCmd(t, append([]string{"-candidate", cand, "-o", "json", "-max-new-blocks", "0"}, files...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep replay.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	formats := map[replay.Format]int{}
	for _, in := range rep.Inputs {
		formats[in.Format] += in.Records
	}
	if formats[replay.FormatCombined] == 0 || formats[replay.FormatHAR] == 0 {
		t.Errorf("inputs %+v", rep.Inputs)
	}
	notJudged := map[replay.Format]string{}
	for _, c := range rep.Capabilities {
		for _, l := range c.NotJudged {
			notJudged[c.Format] += l.Detection + ":" + l.Scope + ";"
		}
	}
	if !strings.Contains(notJudged[replay.FormatCombined], "payload, crs:body") || !strings.Contains(notJudged[replay.FormatHAR], "ip:") {
		t.Errorf("capabilities %v", notJudged)
	}
	// The logged XSS in a query (access.log line 4) is blocked by the
	// defaults and let through with payload off.
	found := false
	for _, c := range rep.Changes {
		for _, ex := range c.Examples {
			if ex.Where == "../../replay/testdata/access.log:4" && c.Kind == replay.ChangeNewlyAllowed && c.Current.Detection == "payload" {
				found = true
			}
		}
	}
	if !found || rep.Totals.NewlyBlocked != 0 || rep.Totals.NewlyAllowed == 0 || rep.Totals.JudgeErrors != 0 {
		t.Errorf("totals %+v, changes %+v", rep.Totals, rep.Changes)
	}
	t.Logf("%d requests, %d invalid; newly allowed %d", rep.Totals.Requests, rep.Totals.Invalid, rep.Totals.NewlyAllowed)

	// The text report says the same, capability notes first.
	text, _, err := replayCmd(t, append([]string{"-candidate", cand}, files...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"What these inputs cannot show", "combined lacks: body", "har lacks: client IP", "newly_allowed"} {
		if !strings.Contains(text, s) {
			t.Errorf("text report without %q", s)
		}
	}
}

// TestReplayExitStatus: the gate through run, as main calls it (the
// binary's status: TestReplayBinaryExitStatus).
func TestReplayExitStatus(t *testing.T) {
	var lines []string
	for i := range 6 {
		lines = append(lines, jsonlLine(fmt.Sprintf("r%d", i), "GET", "/api/items", "203.0.113.50", time.Time{}))
	}
	lines = append(lines, `{"id":"broken"`)
	input := writeFile(t, "in.jsonl", strings.Join(lines, "\n")+"\n")
	// The defaults admit 5 requests a minute: the candidate's limit of 2
	// newly blocks the 3rd to 5th (the 6th is refused by both).
	cand := writeFile(t, "cand.yaml", "detections:\n  rate_limit: {rate: 2, burst: 2, period: 1m}\n")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"gate fails", []string{"-max-new-blocks", "2"}, 1},
		{"within the gate", []string{"-max-new-blocks", "3"}, 0},
		{"no gate", []string{"-max-new-blocks", "-1"}, 0},
		{"strict: an invalid record", []string{"-max-new-blocks", "3", "-strict"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := replayCmd(t, append(append([]string{"-candidate", cand}, tc.args...), input)...)
			if got := exitCode(err); got != tc.code {
				t.Errorf("exit %d (%v), want %d\n%s", got, err, tc.code, stderr)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no candidate", []string{input}},
		{"no input", []string{"-candidate", cand}},
		{"missing input", []string{"-candidate", cand, "no-such-file.jsonl"}},
		{"invalid candidate", []string{"-candidate", writeFile(t, "bad.yaml", "detections:\n  rate_limit: {rate: 0}\n"), input}},
		{"bad flag", []string{"-o", "xml", "-candidate", cand, input}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, stderr, err := replayCmd(t, tc.args...); exitCode(err) != 2 {
				t.Errorf("exit %d (%v), want 2\n%s", exitCode(err), err, stderr)
			}
		})
	}

}

// TestReplayInvalidRecords: invalid records are counted, with their line
// numbers, in both report formats.
func TestReplayInvalidRecords(t *testing.T) {
	input := writeFile(t, "mixed.jsonl", strings.Join([]string{
		jsonlLine("ok1", "GET", "/", "192.0.2.1", time.Time{}),
		`{"id":"no-method","path":"/"}`,
		`not json`,
		jsonlLine("ok2", "GET", "/b", "192.0.2.1", time.Time{}),
		`{"id":"bad-ip","method":"GET","path":"/","client_ip":"300.1.1.1"}`,
	}, "\n"))
	stdout, _, err := replayCmd(t, "-candidate", writeFile(t, "same.yaml", ""), "-o", "json", input)
	if err != nil {
		t.Fatal(err)
	}
	var rep replay.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, p := range rep.Invalid.Examples {
		where = append(where, filepath.Base(p.Where)+" "+p.Code)
	}
	if got := strings.Join(where, ", "); rep.Invalid.Count != 3 || got != "mixed.jsonl:2 method, mixed.jsonl:3 json, mixed.jsonl:5 client_ip" || rep.Totals.Requests != 2 {
		t.Errorf("invalid %d: %s; totals %+v", rep.Invalid.Count, got, rep.Totals)
	}
	text, _, err := replayCmd(t, "-candidate", writeFile(t, "same.yaml", ""), input)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"mixed.jsonl:2", "mixed.jsonl:3", "mixed.jsonl:5"} {
		if !strings.Contains(text, line) {
			t.Errorf("text report without %s", line)
		}
	}
}

// replayCPUTime is the process's user and system CPU time.
func replayCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// candidateXSSOff is the benchmarks' candidate: the defaults with one
// payload analyser off.
const candidateXSSOff = "detections:\n  payload:\n    analyzers:\n      xss: {mode: off}\n"

// BenchmarkReplay measures the replay on one core (run it with -cpu 1):
// one op is one pass over the records, in corpus order, judged by both
// configurations (the defaults against a candidate with one payload
// analyser off) with the report being built (replay.Run), on engines built
// fresh for the pass (outside the timer), as a replay run starts: their
// stores, and the payload detection's clean-value cache, begin empty, so
// what is measured is what the recording itself repeats. get is the
// corpus's bodiless GETs, corpus the whole corpus.
func BenchmarkReplay(b *testing.B) {
	if _, err := os.Stat(replayCorpus); err != nil {
		b.Skipf("development corpus not found at %s (it lives in the shared/ folder next to the checkout): %v", replayCorpus, err)
	}
	all := readRecords(b, replayCorpus)
	var gets []*replay.Record
	for _, r := range all {
		if r.Method == "GET" && len(r.Body) == 0 {
			gets = append(gets, r)
		}
	}
	// get-uncached is get with the payload detection's clean-value cache
	// off in both configurations: every header and cookie analysed every
	// time.
	const uncached = "detections:\n  payload:\n    clean_cache: 0\n"
	for _, bc := range []struct {
		name      string
		records   []*replay.Record
		cur, cand string
	}{
		{"get", gets, "", candidateXSSOff},
		{"get-uncached", gets, uncached, uncached + "    analyzers:\n      xss: {mode: off}\n"},
		{"corpus", all, "", candidateXSSOff},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var scratch replay.Record
			records := func(yield func(*replay.Record, error) bool) {
				for _, r := range bc.records {
					scratch = *r
					if !yield(&scratch, nil) {
						return
					}
				}
			}
			b.ReportAllocs()
			var cpu time.Duration
			n := 0
			for b.Loop() {
				b.StopTimer()
				o := engineOptions{upstream: upstreamStatus{def: 200}, recordedStatus: true, share: new(requestShare)}
				cur := newEngineWith(b, "current", bc.cur, o)
				cand := newEngineWith(b, "candidate", bc.cand, o)
				b.StartTimer()
				cpu0 := replayCPUTime()
				rep, err := replay.Run(context.Background(), records, cur, cand, replay.DefaultRunConfig())
				if err != nil {
					b.Fatal(err)
				}
				cpu += replayCPUTime() - cpu0
				if rep.Totals.Requests != len(bc.records) {
					b.Fatalf("%d requests judged, %d sent", rep.Totals.Requests, len(bc.records))
				}
				n += len(bc.records)
			}
			// Wall-clock and CPU rates: a loaded, shared machine stretches
			// wall time, not CPU time.
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(n)/cpu.Seconds(), "req/cpu-s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/request")
		})
	}
}
