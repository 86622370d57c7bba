package replay

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ClientIPPolicy says what client address a record without one gets.
type ClientIPPolicy string

// Client-address policies. The synthetic addresses come from
// 198.18.0.0/15 (RFC 2544, benchmarking), as shared/tools/wafeval uses.
const (
	// ClientIPEach gives record i (0-based, counting valid records) the
	// address 198.18.0.0 + i, wrapping after 131,072 records: every request
	// is its own client, as wafeval sends the corpus. Per-client limits
	// then do not fire on unrelated records.
	ClientIPEach ClientIPPolicy = "each"
	// ClientIPOne gives every such record 198.18.0.1: one client, as a HAR
	// recorded in one browser is.
	ClientIPOne ClientIPPolicy = "one"
	// ClientIPKeep leaves the address invalid; the Judge decides.
	ClientIPKeep ClientIPPolicy = "keep"
)

// DefaultStart is the simulated time of the first record when it has no
// recorded time and RunConfig.Start is zero: fixed, so runs are repeatable.
var DefaultStart = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// RunConfig configures Run.
//
// The simulated clock: a record with a recorded time arrives at that time; a
// record without one arrives Interval after the previous record (the first
// at Start). Records stay in input order, the order the recording server saw
// them finish, because a replay must present requests in the order the
// judges' state evolves. A recorded time earlier than the previous record's
// (nginx writes $time_local when a request ends, so a slow request logs
// after a fast later one) is judged at the previous record's time, so the
// clock never runs backwards, and it is counted in Clock.OutOfOrder with
// examples and the largest step back. No reordering window is needed: the
// skew is the request duration, and it is reported.
//
// Inputs are replayed one after another. An input whose first recorded time
// is earlier than the clock (another day's log, a HAR after a corpus) is
// shifted forward as a whole, to one Interval after the previous record, so
// its own spacing, which is what rate limits see, is kept; Clock.Shifted
// lists the shifts. Logs of several replicas covering the same period must
// be merged by time before the replay.
type RunConfig struct {
	Start    time.Time
	Interval time.Duration
	// ClientIPs is the policy for records without a client address.
	ClientIPs ClientIPPolicy
	// Route names a request's route for the by-route table; nil uses
	// RouteKey(r, RouteDepth). Results are clipped to 200 bytes.
	Route      func(*Record) string
	RouteDepth int
	// MaxRoutes, MaxClients and MaxCells bound the distinct routes, clients
	// and change cells (and detection rows) tracked; past them requests are
	// counted under "(other)" (see Cardinality).
	MaxRoutes  int
	MaxClients int
	MaxCells   int
	// TopRoutes and TopClients are how many rows the report keeps.
	TopRoutes  int
	TopClients int
	// Examples is how many examples each change cell keeps.
	Examples int
	// ProblemExamples is how many invalid records, out-of-order records and
	// judge errors the report lists (each; all are counted).
	ProblemExamples int
	// HashClients replaces client addresses in the report by a keyed hash
	// ("client-1a2b3c4d5e6f"), for reports shared outside the team.
	// HashKey is the key; nil draws a random one per run.
	HashClients bool
	HashKey     []byte
	// Progress, when set, is told about every record (see NewProgress).
	Progress *Progress
}

// DefaultRunConfig returns the defaults.
func DefaultRunConfig() RunConfig {
	return RunConfig{
		Start:           DefaultStart,
		Interval:        100 * time.Millisecond,
		ClientIPs:       ClientIPEach,
		RouteDepth:      2,
		MaxRoutes:       1000,
		MaxClients:      100000,
		MaxCells:        1000,
		TopRoutes:       20,
		TopClients:      10,
		Examples:        3,
		ProblemExamples: 20,
	}
}

// Validate reports every problem of c.
func (c RunConfig) Validate() error {
	var errs []error
	if c.Interval <= 0 || c.Interval > 24*time.Hour {
		errs = append(errs, fmt.Errorf("replay: interval %v is not in (0, 24h]", c.Interval))
	}
	switch c.ClientIPs {
	case ClientIPEach, ClientIPOne, ClientIPKeep:
	default:
		errs = append(errs, fmt.Errorf("replay: client IP policy %q is not each, one or keep", c.ClientIPs))
	}
	if c.Route == nil && (c.RouteDepth < 1 || c.RouteDepth > 8) {
		errs = append(errs, fmt.Errorf("replay: route depth %d is not in [1, 8]", c.RouteDepth))
	}
	for _, b := range []struct {
		name string
		v    int
		min  int
	}{
		{"max routes", c.MaxRoutes, 1}, {"max clients", c.MaxClients, 1}, {"max cells", c.MaxCells, 1},
		{"top routes", c.TopRoutes, 0}, {"top clients", c.TopClients, 0},
		{"examples", c.Examples, 0}, {"problem examples", c.ProblemExamples, 0},
	} {
		if b.v < b.min {
			errs = append(errs, fmt.Errorf("replay: %s %d is below %d", b.name, b.v, b.min))
		}
	}
	return errors.Join(errs...)
}

// Run sends every record to current and then candidate, in order, and
// compares their outcomes. Invalid records (*InvalidRecordError from the
// sequence) are counted and listed, never silently skipped. Any other error
// from the sequence, or the context ending, stops the run: Run then returns
// the report so far together with the error.
func Run(ctx context.Context, records iter.Seq2[*Record, error], current, candidate Judge, cfg RunConfig) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if current == nil || candidate == nil {
		return nil, errors.New("replay: both judges are required")
	}
	b := newBuilder(cfg)
	defer cfg.Progress.Finish()
	if cfg.HashClients && len(b.hashKey) == 0 {
		b.hashKey = make([]byte, 32)
		rand.Read(b.hashKey)
	}
	for rec, err := range records {
		cfg.Progress.Record()
		if err != nil {
			var inv *InvalidRecordError
			if errors.As(err, &inv) {
				b.invalid(inv)
				continue
			}
			return b.finish(), fmt.Errorf("reading records: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return b.finish(), err
		}
		b.prepare(rec)
		co, cerr := current.Judge(ctx, rec)
		do, derr := candidate.Judge(ctx, rec)
		if err := ctx.Err(); err != nil {
			return b.finish(), err
		}
		if cerr != nil || derr != nil {
			b.judgeError(rec, cerr, derr)
			continue
		}
		b.add(rec, co, do)
	}
	return b.finish(), nil
}

type cellKey struct{ cur, cand Decision }

type detKey struct{ detection, rule, refusal string }

type builder struct {
	cfg     RunConfig
	rep     Report
	hashKey []byte

	inputs     map[string]*InputSummary
	inputOrder []string
	cells      map[cellKey]*Change
	dets       map[detKey]*DetectionRow
	routes     map[string]*Row
	clients    map[string]*Row
	labels     map[string]*Row
	notes      map[string]int
	invalidBy  map[string]int
	judgeErrBy map[string]int

	index  int
	first  time.Time
	prevAt time.Time
	source string        // the input being read
	shift  time.Duration // added to its recorded times
	rebase bool          // its first recorded time is still to come
}

func newBuilder(cfg RunConfig) *builder {
	b := &builder{
		cfg:        cfg,
		hashKey:    cfg.HashKey,
		inputs:     map[string]*InputSummary{},
		cells:      map[cellKey]*Change{},
		dets:       map[detKey]*DetectionRow{},
		routes:     map[string]*Row{},
		clients:    map[string]*Row{},
		labels:     map[string]*Row{},
		notes:      map[string]int{},
		invalidBy:  map[string]int{},
		judgeErrBy: map[string]int{},
	}
	start := cfg.Start
	if start.IsZero() {
		start = DefaultStart
	}
	b.rep = Report{
		Schema: SchemaVersion,
		Config: ReportConfig{
			Start:             start,
			IntervalSeconds:   cfg.Interval.Seconds(),
			ClientIPs:         cfg.ClientIPs,
			RouteDepth:        cfg.RouteDepth,
			CustomRoutes:      cfg.Route != nil,
			HashedClients:     cfg.HashClients,
			ExamplesPerChange: cfg.Examples,
		},
	}
	if cfg.Route != nil {
		b.rep.Config.RouteDepth = 0
	}
	return b
}

func (b *builder) input(source string, f Format) *InputSummary {
	in, ok := b.inputs[source]
	if !ok {
		in = &InputSummary{Source: source, Format: f}
		b.inputs[source] = in
		b.inputOrder = append(b.inputOrder, source)
	}
	return in
}

func (b *builder) invalid(e *InvalidRecordError) {
	b.input(e.Source, e.Format).Invalid++
	b.rep.Totals.Invalid++
	b.invalidBy[e.Code]++
	if len(b.rep.Invalid.Examples) < b.cfg.ProblemExamples {
		b.rep.Invalid.Examples = append(b.rep.Invalid.Examples, Problem{
			Where: where(e.Source, e.Line, e.Entry), Code: e.Code, Detail: e.Detail,
		})
	}
}

// prepare places r on the simulated clock and gives it a client address.
func (b *builder) prepare(r *Record) {
	b.input(r.Source, r.Format).Records++
	b.rep.Totals.Records++
	c := &b.rep.Clock
	if r.Source != b.source {
		b.source, b.shift, b.rebase = r.Source, 0, true
	}
	prev := b.prevAt
	if b.index == 0 {
		prev = b.rep.Config.Start
	}
	switch {
	case r.Time.IsZero():
		r.TimeSynthetic = true
		c.Synthetic++
		if b.index == 0 {
			r.At = prev
		} else {
			r.At = prev.Add(b.cfg.Interval)
		}
	default:
		c.Recorded++
		if b.rebase {
			// The first recorded time of an input that starts before the
			// clock: shift the whole input so it follows the previous one
			// with its own spacing intact.
			b.rebase = false
			if b.index > 0 && r.Time.Before(prev) {
				b.shift = prev.Add(b.cfg.Interval).Sub(r.Time)
				c.Shifted = append(c.Shifted, Shift{Source: r.Source, Seconds: b.shift.Seconds()})
			}
		}
		t := r.Time.Add(b.shift)
		if b.index > 0 && t.Before(prev) {
			c.OutOfOrder++
			if back := prev.Sub(t).Seconds(); back > c.MaxBackwardSeconds {
				c.MaxBackwardSeconds = back
			}
			if len(c.Examples) < b.cfg.ProblemExamples {
				c.Examples = append(c.Examples, ClockExample{Where: r.Where(), Time: r.Time, Previous: prev})
			}
			t = prev
		}
		r.At = t
	}
	b.prevAt = r.At
	if b.index == 0 {
		b.first = r.At
	}
	if !r.ClientIP.IsValid() {
		switch b.cfg.ClientIPs {
		case ClientIPEach:
			r.ClientIP = synthAddr(b.index)
			r.ClientIPSynthetic = true
			b.notes[noteClientIPSynthetic]++
		case ClientIPOne:
			r.ClientIP = synthAddr(1)
			r.ClientIPSynthetic = true
			b.notes[noteClientIPSynthetic]++
		default:
			b.notes[noteClientUnknownPolicy]++
		}
	}
	for _, n := range r.Notes {
		b.notes[n]++
	}
	b.index++
}

func synthAddr(i int) netip.Addr {
	n := uint32(i) % (1 << 17)
	return netip.AddrFrom4([4]byte{198, 18 + byte(n>>16), byte(n >> 8), byte(n)})
}

func (b *builder) judgeError(r *Record, cerr, derr error) {
	b.rep.Totals.JudgeErrors++
	for _, e := range []struct {
		side string
		err  error
	}{{"current", cerr}, {"candidate", derr}} {
		if e.err == nil {
			continue
		}
		b.judgeErrBy[e.side]++
		if len(b.rep.JudgeErrors.Examples) < b.cfg.ProblemExamples {
			b.rep.JudgeErrors.Examples = append(b.rep.JudgeErrors.Examples, Problem{
				Where: r.Where(), Code: e.side, Detail: clip(e.err.Error(), 200),
			})
		}
	}
}

func (b *builder) add(r *Record, co, do Outcome) {
	t := &b.rep.Totals
	t.Requests++
	cd, dd := co.Decision(), do.Decision()
	kind := ""
	switch {
	case !cd.Blocked && dd.Blocked:
		kind = ChangeNewlyBlocked
		t.NewlyBlocked++
		switch dd.Refusal {
		case RefusalBan:
			t.NewlyBlockedBans++
		case RefusalRateLimit:
			t.NewlyBlockedRateLimited++
		}
	case cd.Blocked && !dd.Blocked:
		kind = ChangeNewlyAllowed
		t.NewlyAllowed++
	case cd != dd:
		kind = ChangeCauseChanged
		t.CauseChanged++
	default:
		t.Unchanged++
	}
	if cd.Blocked {
		t.BlockedCurrent++
	}
	if dd.Blocked {
		t.BlockedCandidate++
	}
	if co.Blocked && co.BanFor > 0 {
		t.BansCurrent++
	}
	if do.Blocked && do.BanFor > 0 {
		t.BansCandidate++
	}

	if cd.Blocked {
		row := b.det(cd)
		row.Current++
		if kind == ChangeNewlyAllowed {
			row.NewlyAllowed++
		}
	}
	if dd.Blocked {
		row := b.det(dd)
		row.Candidate++
		if kind == ChangeNewlyBlocked {
			row.NewlyBlocked++
		}
	}

	route := b.routeOf(r)
	client := b.clientOf(r.ClientIP)
	countRow(b.row(b.routes, route, b.cfg.MaxRoutes, &b.rep.Cardinality.RoutesOverflow), cd, dd, kind)
	countRow(b.row(b.clients, client, b.cfg.MaxClients, &b.rep.Cardinality.ClientsOverflow), cd, dd, kind)
	if r.Label != "" {
		countRow(b.row(b.labels, clip(r.Label, 64), 100, nil), cd, dd, kind)
	}

	if kind == "" {
		return
	}
	k := cellKey{cd, dd}
	cell, ok := b.cells[k]
	if !ok {
		if len(b.cells) >= b.cfg.MaxCells {
			b.rep.Cardinality.CellsOverflow++
			return
		}
		cell = &Change{Kind: kind, Current: cd, Candidate: dd}
		b.cells[k] = cell
	}
	cell.Count++
	if len(cell.Examples) < b.cfg.Examples {
		cell.Examples = append(cell.Examples, example(r, route, client, co, do))
	}
}

func (b *builder) det(d Decision) *DetectionRow {
	k := detKey{d.Detection, d.RuleID, d.Refusal}
	row, ok := b.dets[k]
	if !ok {
		if len(b.dets) >= b.cfg.MaxCells {
			k = detKey{detection: other}
			if row, ok = b.dets[k]; ok {
				return row
			}
		}
		row = &DetectionRow{Detection: k.detection, RuleID: k.rule, Refusal: k.refusal}
		b.dets[k] = row
	}
	return row
}

const other = "(other)"

func (b *builder) row(m map[string]*Row, key string, max int, overflow *int) *Row {
	row, ok := m[key]
	if ok {
		return row
	}
	if len(m) >= max {
		if overflow != nil {
			*overflow++
		}
		key = other
		if row, ok = m[key]; ok {
			return row
		}
	}
	row = &Row{Key: key}
	m[key] = row
	return row
}

func countRow(row *Row, cd, dd Decision, kind string) {
	row.Requests++
	if cd.Blocked {
		row.BlockedCurrent++
	}
	if dd.Blocked {
		row.BlockedCandidate++
	}
	switch kind {
	case ChangeNewlyBlocked:
		row.NewlyBlocked++
	case ChangeNewlyAllowed:
		row.NewlyAllowed++
	case ChangeCauseChanged:
		row.CauseChanged++
	}
}

func (b *builder) routeOf(r *Record) string {
	if b.cfg.Route != nil {
		return clip(b.cfg.Route(r), 200)
	}
	return RouteKey(r, b.cfg.RouteDepth)
}

// clientOf groups clients as the gateway does: an IPv4 address, or the /64
// of an IPv6 address.
func (b *builder) clientOf(a netip.Addr) string {
	var s string
	switch {
	case !a.IsValid():
		return "(unknown)"
	case a.Is4():
		s = a.String()
	default:
		p, _ := a.Prefix(64)
		s = p.String()
	}
	if b.cfg.HashClients {
		m := hmac.New(sha256.New, b.hashKey)
		m.Write([]byte(s))
		return "client-" + hex.EncodeToString(m.Sum(nil)[:6])
	}
	return s
}

const (
	exampleHeaders    = 32
	exampleValueBytes = 160
)

func example(r *Record, route, client string, co, do Outcome) Example {
	e := Example{
		Where:       r.Where(),
		ID:          clip(r.ID, 128),
		Label:       clip(r.Label, 64),
		At:          r.At,
		Client:      client,
		Route:       route,
		RequestLine: r.Method + " " + clip(MaskTarget(r.Target), 400) + " " + r.Proto,
		Host:        clip(r.Host, 255),
		Headers:     []Header{},
		BodyBytes:   len(r.Body),
		Current:     side(co),
		Candidate:   side(do),
	}
	if !r.Time.IsZero() {
		t := r.Time
		e.Time = &t
	}
	for i, h := range r.Headers {
		if i == exampleHeaders {
			e.Headers = append(e.Headers, Header{Name: "…", Value: fmt.Sprintf("%d more headers", len(r.Headers)-i)})
			break
		}
		e.Headers = append(e.Headers, Header{Name: h.Name, Value: clip(MaskHeader(h.Name, h.Value), exampleValueBytes)})
	}
	return e
}

func side(o Outcome) Side {
	s := Side{Decision: o.Decision()}
	if o.Blocked {
		s.Reason = clip(o.Reason, 64)
		s.Location = clip(o.Location, 128)
		s.BanForSeconds = o.BanFor.Seconds()
	}
	return s
}

func (b *builder) finish() *Report {
	rep := b.rep
	rep.Inputs = []InputSummary{}
	formats := map[Format]bool{}
	rep.Capabilities = []Capability{}
	for _, s := range b.inputOrder {
		in := b.inputs[s]
		rep.Inputs = append(rep.Inputs, *in)
		if !formats[in.Format] {
			formats[in.Format] = true
			rep.Capabilities = append(rep.Capabilities, CapabilityOf(in.Format))
		}
	}
	if b.index > 0 {
		first, last := b.first, b.prevAt
		rep.Clock.First, rep.Clock.Last = &first, &last
	}
	if rep.Clock.Examples == nil {
		rep.Clock.Examples = []ClockExample{}
	}
	if rep.Clock.Shifted == nil {
		rep.Clock.Shifted = []Shift{}
	}

	rep.Changes = []Change{}
	for _, c := range b.cells {
		rep.Changes = append(rep.Changes, *c)
	}
	kindRank := map[string]int{ChangeNewlyBlocked: 0, ChangeNewlyAllowed: 1, ChangeCauseChanged: 2}
	slices.SortFunc(rep.Changes, func(a, c Change) int {
		return cmp.Or(
			cmp.Compare(c.Count, a.Count),
			cmp.Compare(kindRank[a.Kind], kindRank[c.Kind]),
			compareDecisions(a.Current, c.Current),
			compareDecisions(a.Candidate, c.Candidate),
		)
	})

	rep.ByDetection = []DetectionRow{}
	for _, d := range b.dets {
		rep.ByDetection = append(rep.ByDetection, *d)
	}
	slices.SortFunc(rep.ByDetection, func(a, c DetectionRow) int {
		return cmp.Or(
			cmp.Compare(c.NewlyBlocked+c.NewlyAllowed, a.NewlyBlocked+a.NewlyAllowed),
			cmp.Compare(c.Current+c.Candidate, a.Current+a.Candidate),
			strings.Compare(a.Detection, c.Detection),
			strings.Compare(a.RuleID, c.RuleID),
			strings.Compare(a.Refusal, c.Refusal),
		)
	})

	rep.Cardinality.Routes = len(b.routes)
	rep.Cardinality.Clients = len(b.clients)
	rep.ByRoute = topRows(b.routes, b.cfg.TopRoutes)
	rep.ByClient = topRows(b.clients, b.cfg.TopClients)
	rep.ByLabel = topRows(b.labels, len(b.labels))
	slices.SortFunc(rep.ByLabel, func(a, c Row) int { return strings.Compare(a.Key, c.Key) })

	rep.Invalid.Count = rep.Totals.Invalid
	rep.Invalid.ByCode = codeCounts(b.invalidBy)
	if rep.Invalid.Examples == nil {
		rep.Invalid.Examples = []Problem{}
	}
	rep.JudgeErrors.Count = rep.Totals.JudgeErrors
	rep.JudgeErrors.ByCode = codeCounts(b.judgeErrBy)
	if rep.JudgeErrors.Examples == nil {
		rep.JudgeErrors.Examples = []Problem{}
	}
	rep.Notes = []NoteCount{}
	for code, n := range b.notes {
		rep.Notes = append(rep.Notes, NoteCount{Code: code, Count: n, Text: NoteText(code)})
	}
	slices.SortFunc(rep.Notes, func(a, c NoteCount) int { return strings.Compare(a.Code, c.Code) })
	return &rep
}

func compareDecisions(a, b Decision) int {
	if a.Blocked != b.Blocked {
		if !a.Blocked {
			return -1
		}
		return 1
	}
	return cmp.Or(
		strings.Compare(a.Detection, b.Detection),
		strings.Compare(a.RuleID, b.RuleID),
		cmp.Compare(a.Status, b.Status),
		strings.Compare(a.Refusal, b.Refusal),
	)
}

func topRows(m map[string]*Row, n int) []Row {
	rows := make([]Row, 0, len(m))
	for _, r := range m {
		rows = append(rows, *r)
	}
	slices.SortFunc(rows, func(a, c Row) int {
		return cmp.Or(
			cmp.Compare(c.NewlyBlocked+c.NewlyAllowed+c.CauseChanged, a.NewlyBlocked+a.NewlyAllowed+a.CauseChanged),
			cmp.Compare(c.BlockedCandidate+c.BlockedCurrent, a.BlockedCandidate+a.BlockedCurrent),
			cmp.Compare(c.Requests, a.Requests),
			strings.Compare(a.Key, c.Key),
		)
	})
	if len(rows) > n {
		rows = rows[:n]
	}
	return rows
}

func codeCounts(m map[string]int) []CodeCount {
	out := make([]CodeCount, 0, len(m))
	for c, n := range m {
		out = append(out, CodeCount{Code: c, Count: n})
	}
	slices.SortFunc(out, func(a, c CodeCount) int {
		return cmp.Or(cmp.Compare(c.Count, a.Count), strings.Compare(a.Code, c.Code))
	})
	return out
}
