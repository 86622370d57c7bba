// Package payload holds the payload detection: every field of a request
// (path, query, cookies, selected headers, form, multipart and JSON fields,
// raw text bodies) is normalised once and shown to a set of analyzers; their
// findings add up to an anomaly score, and the request is blocked when the
// score reaches the threshold.
package payload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/normalize"
)

const name = "payload"

// ReasonMalicious is the reason of a payload block.
const ReasonMalicious = "malicious_payload"

// AnalyzerConfig configures one analyzer.
type AnalyzerConfig struct {
	// Mode is enforce (its findings count toward the score; the zero
	// value), monitor (its findings are logged as would-block only) or off.
	Mode detections.Mode `yaml:"mode"`
}

// Exclusion silences rules for some requests or fields, so a false positive
// is tuned away without switching a detection off (a CMS "content" field
// that legitimately carries HTML, say).
type Exclusion struct {
	// Path is a path prefix the exclusion applies to; "" means every path.
	Path string `yaml:"path"`
	// Methods limits the exclusion to these methods; empty means all.
	Methods []string `yaml:"methods"`
	// Fields are locations as logged ("json:post.content", "query:q",
	// "header:Referer") or bare names ("content") matching any kind; a
	// trailing '*' matches a prefix. Empty means every field.
	Fields []string `yaml:"fields"`
	// Rules are rule ids or analyzer names to silence; empty means all. An
	// entry also silences the rules whose id it prefixes with '_'
	// ("protocol" covers "protocol_range" and "protocol_limit", "xss"
	// covers "xss_script" found inside base64). The kebab-case spellings
	// of earlier versions ("proto-pollution") are accepted.
	Rules []string `yaml:"rules"`
}

// Config configures the payload detection.
type Config struct {
	// Patterns is the prototype's malicious-payload list: literals, globs or
	// "re:" regular expressions, matched case-insensitively after
	// normalisation.
	Patterns []string `yaml:"patterns"`
	// Headers are the request headers whose values are inspected.
	Headers []string `yaml:"headers"`
	// CustomHeaders also inspects every X-* header.
	CustomHeaders bool `yaml:"custom_headers"`
	// Cookies inspects cookie names and values.
	Cookies bool `yaml:"cookies"`
	// Threshold is the anomaly score at which a request is blocked.
	Threshold int `yaml:"threshold"`
	// Analyzers configures the built-in analyzers by name; an analyzer not
	// listed runs in enforce mode. Names are snake_case; the kebab-case
	// spellings of earlier versions ("proto-pollution") are accepted.
	// "protocol_limit" configures the inspection limits' finding.
	Analyzers map[string]AnalyzerConfig `yaml:"analyzers"`
	// Exclusions silence rules per route and per field.
	Exclusions []Exclusion `yaml:"exclusions"`
	// MaxFields bounds the fields inspected per request; MaxDepth the
	// nesting of JSON values, MaxParts the parts of a multipart body and
	// MaxValueBytes one value. Reaching one is itself a protocol_limit
	// finding (critical: the request is blocked unless protocol_limit is
	// set to monitor or off), because what lies beyond is not inspected.
	// 0 means the default.
	MaxFields     int `yaml:"max_fields"`
	MaxDepth      int `yaml:"max_depth"`
	MaxParts      int `yaml:"max_parts"`
	MaxValueBytes int `yaml:"max_value_bytes"`
	// SSRFAllowHosts are outbound hosts that URL-valued parameters may
	// point to without an ssrf finding, even when they are internal: exact
	// names ("billing.internal"), ".suffix" for a domain and its
	// subdomains, addresses or CIDR prefixes ("10.1.0.0/16").
	SSRFAllowHosts []string `yaml:"ssrf_allow_hosts"`
	// CleanCache is how many header and cookie values found clean are
	// remembered (rounded up to a power of two; 8 bytes each), so that the
	// values every request repeats are analysed once; 0 turns it off. A
	// value's score depends on the value, its name and the configuration
	// only, so a remembered value scores what it scored the first time.
	CleanCache int `yaml:"clean_cache"`
}

// DefaultConfig inspects everything with every analyzer enforcing.
func DefaultConfig() Config {
	return Config{
		Headers:       []string{"User-Agent", "Referer"},
		CustomHeaders: true,
		Cookies:       true,
		Threshold:     ScoreCritical,
		MaxFields:     detections.DefaultMaxFields,
		MaxDepth:      detections.DefaultMaxDepth,
		MaxParts:      detections.DefaultMaxParts,
		MaxValueBytes: detections.DefaultMaxValueBytes,
		CleanCache:    DefaultCleanCache,
	}
}

type analyzerEntry struct {
	a       Analyzer
	monitor bool
	needs   uint64 // byte classes the analyzer needs (see needer); 0: any field
}

// Detection is the payload detection.
type Detection struct {
	threshold  int
	scope      detections.Scope
	fields     []analyzerEntry
	requests   []analyzerEntry // analyzers that also implement RequestAnalyzer
	exclusions []exclusion
	limitMode  detections.Mode // of the protocol_limit findings
	clean      *cleanCache     // nil: off
}

// New builds the detection with the built-in analyzers (see builtins) plus
// the pattern list.
func New(cfg Config) (*Detection, error) {
	return NewWith(cfg, builtins(cfg))
}

// NewWith builds the detection with the given analyzers plus the pattern
// list; tests use it to plug in their own.
func NewWith(cfg Config, analyzers []Analyzer) (*Detection, error) {
	var errs []error
	if _, err := loadVocabulary(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Threshold <= 0 {
		errs = append(errs, fmt.Errorf("payload.threshold: %d must be > 0", cfg.Threshold))
	}
	d := &Detection{threshold: cfg.Threshold}
	d.scope = detections.Scope{CustomHeaders: cfg.CustomHeaders, Cookies: cfg.Cookies, MaxFields: cfg.MaxFields}
	for _, h := range cfg.Headers {
		d.scope.Headers = append(d.scope.Headers, http.CanonicalHeaderKey(h))
	}
	if len(cfg.Patterns) > 0 {
		set, err := detections.CompilePatterns(cfg.Patterns)
		if err != nil {
			errs = append(errs, fmt.Errorf("payload.patterns: %w", err))
		} else {
			analyzers = append([]Analyzer{&patternAnalyzer{set: set}}, analyzers...)
		}
	}
	for _, n := range []int{cfg.MaxFields, cfg.MaxDepth, cfg.MaxParts, cfg.MaxValueBytes} {
		if n < 0 {
			errs = append(errs, errors.New("payload: max_fields, max_depth, max_parts and max_value_bytes must be >= 0"))
			break
		}
	}
	switch {
	case cfg.CleanCache < 0 || cfg.CleanCache > maxCleanCache:
		errs = append(errs, fmt.Errorf("payload.clean_cache: %d must be between 0 (off) and %d", cfg.CleanCache, maxCleanCache))
	default:
		d.clean = newCleanCache(cfg.CleanCache)
	}
	d.scope.MaxDepth, d.scope.MaxParts, d.scope.MaxValueBytes = cfg.MaxDepth, cfg.MaxParts, cfg.MaxValueBytes
	modes := map[string]detections.Mode{}
	for n, ac := range cfg.Analyzers {
		id := canonicalID(n)
		if _, dup := modes[id]; dup {
			errs = append(errs, fmt.Errorf("payload.analyzers: %q configured twice", id))
		}
		modes[id] = ac.Mode
	}
	known := map[string]bool{RuleProtocolLimit: true}
	d.limitMode = modes[RuleProtocolLimit]
	for _, a := range analyzers {
		known[a.Name()] = true
		mode := modes[a.Name()]
		if mode > detections.ModeOff {
			errs = append(errs, fmt.Errorf("payload.analyzers.%s.mode: unknown mode %v", a.Name(), mode))
			continue
		}
		if mode == detections.ModeOff {
			continue
		}
		e := analyzerEntry{a: a, monitor: mode == detections.ModeMonitor}
		if n, ok := a.(needer); ok {
			e.needs = n.needs()
		}
		if _, ok := a.(requestOnly); !ok {
			d.fields = append(d.fields, e)
		}
		if _, ok := a.(RequestAnalyzer); ok {
			d.requests = append(d.requests, e)
		}
	}
	for n := range modes {
		if !known[n] {
			errs = append(errs, fmt.Errorf("payload.analyzers: unknown analyzer %q", n))
		}
	}
	for i, x := range cfg.Exclusions {
		ex, err := compileExclusion(x)
		if err != nil {
			errs = append(errs, fmt.Errorf("payload.exclusions[%d]: %w", i, err))
			continue
		}
		d.exclusions = append(d.exclusions, ex)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// Name returns "payload".
func (d *Detection) Name() string { return name }

// scratch is the per-request working state, pooled so that inspecting a
// clean request allocates nothing. It is also the field visitor, so the
// walk needs no closure.
type scratch struct {
	buf  normalize.Buffer
	in   Input
	res  result
	d    *Detection
	excl []exclusion
	win  detections.Field // a window of a long value
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// result accumulates the findings of one request.
type result struct {
	score, monitorScore int
	best, bestMonitor   Finding
	loc, monitorLoc     string
	rules               [16]ruleScore
	nrules              int
}

// ruleScore is the highest score a rule has added so far in one request.
type ruleScore struct {
	rule  string
	score int
}

// add records a finding in field f (nil for a request-level finding). A
// rule id counts once per request, with its highest score: the same weak
// signal repeated in many fields (a packed format, a list of similar
// values) is one piece of evidence, and only different evidence adds up.
// The location string is built only for the strongest finding, so scoring
// allocates nothing on its own.
func (res *result) add(fd Finding, monitor bool, f *detections.Field) {
	res.addAt(fd, monitor, f, "")
}

// addAt is add with the location given (loc != "") rather than taken from
// f.
func (res *result) addAt(fd Finding, monitor bool, f *detections.Field, loc string) {
	inc := fd.Score
	found := false
	for i := 0; i < res.nrules; i++ {
		if rs := &res.rules[i]; rs.rule == fd.Rule {
			inc = max(0, fd.Score-rs.score)
			rs.score = max(rs.score, fd.Score)
			found = true
			break
		}
	}
	if !found && res.nrules < len(res.rules) {
		res.rules[res.nrules] = ruleScore{fd.Rule, fd.Score}
		res.nrules++
	}
	if monitor {
		res.monitorScore += inc
		if fd.Score > res.bestMonitor.Score {
			res.bestMonitor, res.monitorLoc = fd, location(f, loc)
		}
		return
	}
	res.score += inc
	if fd.Score > res.best.Score {
		res.best, res.loc = fd, location(f, loc)
	}
}

func location(f *detections.Field, loc string) string {
	switch {
	case loc != "":
		return loc
	case f == nil:
		return "request"
	}
	return f.Location()
}

// Inspect scores r and blocks when the score reaches the threshold.
func (d *Detection) Inspect(_ context.Context, r *detections.Request) (detections.Verdict, error) {
	s := scratchPool.Get().(*scratch)
	defer func() {
		s.d, s.excl, s.in.Request, s.in.Field, s.win = nil, nil, nil, nil, detections.Field{}
		scratchPool.Put(s)
	}()
	s.in.buf = &s.buf
	s.in.startRequest(r)
	s.res, s.d = result{}, d
	s.excl = d.routeExclusions(r)
	res := &s.res

	for _, e := range d.requests {
		if f, ok := e.a.(RequestAnalyzer).AnalyzeRequest(r); ok && !excluded(s.excl, nil, f.Rule, e.a.Name()) {
			res.add(f, e.monitor, nil)
		}
	}
	if res.score < d.threshold {
		r.Walk(&d.scope, s)
	}
	switch {
	case res.score >= d.threshold:
		v := detections.Block(ReasonMalicious)
		v.Rule, v.Location, v.Score = res.best.Rule, res.loc, res.score
		return v, nil
	case res.score+res.monitorScore >= d.threshold:
		v := detections.Verdict{Action: detections.ActionMonitor, Reason: ReasonMalicious}
		v.Rule, v.Location, v.Score = res.bestMonitor.Rule, res.monitorLoc, res.score+res.monitorScore
		return v, nil
	}
	return detections.Allow, nil
}

// windowOverlap is how much consecutive windows of a long value share: a
// payload up to this long lies whole in one of them.
const windowOverlap = 8 << 10

// VisitField shows one field to every analyzer; it stops the walk once the
// score reaches the threshold. A value longer than the normaliser's input
// bound is shown in overlapping windows of that size, so no part of it
// goes uninspected.
func (s *scratch) VisitField(f *detections.Field) bool {
	if len(f.Value) <= normalize.MaxInput {
		return s.visit(f)
	}
	v := f.Value
	s.win = *f
	for off := 0; ; off += normalize.MaxInput - windowOverlap {
		end := min(len(v), off+normalize.MaxInput)
		s.win.Value = v[off:end]
		if !s.visit(&s.win) {
			return false
		}
		if end == len(v) {
			return true
		}
	}
}

func (s *scratch) visit(f *detections.Field) bool {
	var key uint64
	if c := s.d.clean; c != nil && cacheable(f) {
		if key = c.key(f); c.has(key) {
			return true
		}
	}
	s.in.reset(f)
	found := false
	for _, e := range s.d.fields {
		if e.needs != 0 && !s.in.Has(e.needs) {
			continue
		}
		fd, ok := e.a.Analyze(&s.in)
		if !ok {
			continue
		}
		found = true
		if excluded(s.excl, f, fd.Rule, e.a.Name()) {
			continue
		}
		s.res.add(fd, e.monitor, f)
		if s.res.score >= s.d.threshold {
			return false
		}
	}
	if s.in.limit != "" {
		// An analyzer stopped at a bound of its own (the text nodes of
		// an XML document): a limit like the walk's.
		found = true
		if !s.limit(s.in.limit) {
			return false
		}
	}
	if key != 0 && !found {
		s.d.clean.add(key)
	}
	return true
}

type exclusion struct {
	path    string
	methods []string
	fields  []string
	rules   []string // canonical ids; nil means every rule
}

// silences reports whether x names the rule or its analyzer an, or is a
// prefix of the rule's id ("protocol" for "protocol_range").
func (x *exclusion) silences(rule, an string) bool {
	if x.rules == nil {
		return true
	}
	for _, r := range x.rules {
		if r == rule || r == an || len(rule) > len(r) && rule[len(r)] == '_' && rule[:len(r)] == r {
			return true
		}
	}
	return false
}

func compileExclusion(x Exclusion) (exclusion, error) {
	ex := exclusion{path: x.Path, fields: x.Fields}
	if x.Path != "" && !strings.HasPrefix(x.Path, "/") {
		return ex, fmt.Errorf("path %q must start with /", x.Path)
	}
	for _, m := range x.Methods {
		ex.methods = append(ex.methods, strings.ToUpper(m))
	}
	for _, r := range x.Rules {
		ex.rules = append(ex.rules, canonicalID(r))
	}
	if x.Path == "" && len(x.Methods) == 0 && len(x.Fields) == 0 && len(x.Rules) == 0 {
		return ex, errors.New("an exclusion must name a path, methods, fields or rules")
	}
	return ex, nil
}

// routeExclusions returns the exclusions whose path and method match r. It
// allocates only when some exclusion applies.
func (d *Detection) routeExclusions(r *detections.Request) []exclusion {
	var out []exclusion
	for _, x := range d.exclusions {
		if x.path != "" && !strings.HasPrefix(r.Path, x.path) {
			continue
		}
		if len(x.methods) > 0 && !containsString(x.methods, r.Method) {
			continue
		}
		out = append(out, x)
	}
	return out
}

func containsString(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// excluded reports whether a finding of rule (from analyzer an) in field f
// (nil for request-level findings) is silenced.
func excluded(excl []exclusion, f *detections.Field, rule, an string) bool {
	for i := range excl {
		x := &excl[i]
		if !x.silences(rule, an) {
			continue
		}
		if len(x.fields) == 0 {
			return true
		}
		if f == nil {
			continue
		}
		for _, p := range x.fields {
			if fieldMatches(p, f) {
				return true
			}
		}
	}
	return false
}

func fieldMatches(p string, f *detections.Field) bool {
	name := f.Name
	if kind, rest, ok := strings.Cut(p, ":"); ok {
		if kind != f.Kind.String() {
			return false
		}
		p = rest
	}
	if strings.HasSuffix(p, "*") {
		return strings.HasPrefix(name, p[:len(p)-1])
	}
	return name == p
}

// VisitLimit scores an inspection limit the walk reached: a protocol_limit
// finding located "limit:<name>" (limit:max_fields, limit:max_depth,
// limit:max_parts, limit:max_value_bytes; limit:max_xml_chunks is the
// analyzers' bound on the text nodes of an XML value, scored the same way
// by visit), so the gateway's events and metrics can tell the limits apart
// by the verdict's Location. The walk stops at max_fields and max_parts,
// whatever the mode: what lies beyond is exactly what the limit is there
// not to read.
func (s *scratch) VisitLimit(l detections.WalkLimit) bool {
	return s.limit(limitLocations[l])
}

// limit scores an inspection limit reached, located loc, and reports
// whether the walk goes on.
func (s *scratch) limit(loc string) bool {
	if s.d.limitMode == detections.ModeOff {
		return true
	}
	fd := Finding{Rule: RuleProtocolLimit, Score: ScoreCritical}
	if !excluded(s.excl, nil, fd.Rule, RuleProtocolLimit) {
		s.res.addAt(fd, s.d.limitMode == detections.ModeMonitor, nil, loc)
	}
	return s.res.score < s.d.threshold
}

// limitLocations are the verdict locations of the limits, built once so
// that reporting one allocates nothing.
var limitLocations = func() map[detections.WalkLimit]string {
	m := map[detections.WalkLimit]string{}
	for _, l := range []detections.WalkLimit{detections.WalkLimitFields, detections.WalkLimitDepth, detections.WalkLimitParts, detections.WalkLimitValue} {
		m[l] = "limit:" + l.String()
	}
	return m
}()

// canonicalID turns a configured analyzer name or rule id into its
// snake_case form: earlier versions spelled them in kebab case, and renamed
// ids map to their successors.
func canonicalID(s string) string {
	s = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	if n, ok := renamedIDs[s]; ok {
		return n
	}
	return s
}

// renamedIDs maps rule ids that changed beyond their spelling to the ids
// that replace them.
var renamedIDs = map[string]string{
	"protocol_restricted_file": RuleSensitiveFile,
}

// requestOnly is implemented by analyzers that only look at the request as
// a whole: the detection never calls their Analyze.
type requestOnly interface {
	RequestAnalyzer
	requestOnly()
}

var (
	_ detections.Detection    = (*Detection)(nil)
	_ detections.FieldVisitor = (*scratch)(nil)
	_ detections.LimitVisitor = (*scratch)(nil)
)
