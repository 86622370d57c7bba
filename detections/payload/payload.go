// Package payload holds the payload detection: every field of a request
// (path, query, cookies, selected headers, form, multipart and JSON fields,
// raw text bodies) is normalised once and shown to a set of analysers; their
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

// AnalyzerConfig configures one analyser.
type AnalyzerConfig struct {
	// Mode is enforce (its findings count toward the score), monitor (its
	// findings are logged as would-block only) or off.
	Mode string `yaml:"mode"`
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
	// Rules are rule ids or analyser names to silence; empty means all.
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
	// Analyzers configures the built-in analysers by name; an analyser not
	// listed runs in enforce mode.
	Analyzers map[string]AnalyzerConfig `yaml:"analyzers"`
	// Exclusions silence rules per route and per field.
	Exclusions []Exclusion `yaml:"exclusions"`
	// MaxFields bounds the fields inspected per request.
	MaxFields int `yaml:"max_fields"`
	// SSRFAllowHosts are outbound hosts that URL-valued parameters may
	// point to without an ssrf finding, even when they are internal: exact
	// names ("billing.internal"), ".suffix" for a domain and its
	// subdomains, addresses or CIDR prefixes ("10.1.0.0/16").
	SSRFAllowHosts []string `yaml:"ssrf_allow_hosts"`
}

// DefaultConfig inspects everything with every analyser enforcing.
func DefaultConfig() Config {
	return Config{
		Headers:       []string{"User-Agent", "Referer"},
		CustomHeaders: true,
		Cookies:       true,
		Threshold:     ScoreCritical,
		MaxFields:     10000,
	}
}

type analyzerEntry struct {
	a       Analyzer
	monitor bool
	needs   uint64 // byte classes the analyser needs (see needer); 0: any field
}

// Detection is the payload detection.
type Detection struct {
	threshold  int
	scope      detections.Scope
	fields     []analyzerEntry
	requests   []analyzerEntry // analysers that also implement RequestAnalyzer
	exclusions []exclusion
}

// New builds the detection with the built-in analysers (see builtins) plus
// the pattern list.
func New(cfg Config) (*Detection, error) {
	return NewWith(cfg, builtins(cfg))
}

// NewWith builds the detection with the given analysers plus the pattern
// list; tests use it to plug in their own.
func NewWith(cfg Config, analyzers []Analyzer) (*Detection, error) {
	var errs []error
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
	known := map[string]bool{}
	for _, a := range analyzers {
		known[a.Name()] = true
		mode := detections.ModeEnforce
		if ac, ok := cfg.Analyzers[a.Name()]; ok && ac.Mode != "" {
			m, err := detections.ParseMode(ac.Mode)
			if err != nil {
				errs = append(errs, fmt.Errorf("payload.analyzers.%s.mode: %w", a.Name(), err))
				continue
			}
			mode = m
		}
		if mode == detections.ModeOff {
			continue
		}
		e := analyzerEntry{a: a, monitor: mode == detections.ModeMonitor}
		if n, ok := a.(needer); ok {
			e.needs = n.needs()
		}
		d.fields = append(d.fields, e)
		if _, ok := a.(RequestAnalyzer); ok {
			d.requests = append(d.requests, e)
		}
	}
	for n := range cfg.Analyzers {
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
			res.bestMonitor, res.monitorLoc = fd, location(f)
		}
		return
	}
	res.score += inc
	if fd.Score > res.best.Score {
		res.best, res.loc = fd, location(f)
	}
}

func location(f *detections.Field) string {
	if f == nil {
		return "request"
	}
	return f.Location()
}

// Inspect scores r and blocks when the score reaches the threshold.
func (d *Detection) Inspect(_ context.Context, r *detections.Request) (detections.Verdict, error) {
	s := scratchPool.Get().(*scratch)
	defer func() {
		s.d, s.excl, s.in.Request, s.in.Field = nil, nil, nil, nil
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

// VisitField shows one field to every analyser; it stops the walk once the
// score reaches the threshold.
func (s *scratch) VisitField(f *detections.Field) bool {
	s.in.reset(f)
	for _, e := range s.d.fields {
		if e.needs != 0 && !s.in.Has(e.needs) {
			continue
		}
		fd, ok := e.a.Analyze(&s.in)
		if !ok || excluded(s.excl, f, fd.Rule, e.a.Name()) {
			continue
		}
		s.res.add(fd, e.monitor, f)
		if s.res.score >= s.d.threshold {
			return false
		}
	}
	return true
}

type exclusion struct {
	path    string
	methods []string
	fields  []string
	rules   map[string]bool
}

func compileExclusion(x Exclusion) (exclusion, error) {
	ex := exclusion{path: x.Path, fields: x.Fields}
	if x.Path != "" && !strings.HasPrefix(x.Path, "/") {
		return ex, fmt.Errorf("path %q must start with /", x.Path)
	}
	for _, m := range x.Methods {
		ex.methods = append(ex.methods, strings.ToUpper(m))
	}
	if len(x.Rules) > 0 {
		ex.rules = map[string]bool{}
		for _, r := range x.Rules {
			ex.rules[r] = true
		}
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

// excluded reports whether a finding of rule (from analyser an) in field f
// (nil for request-level findings) is silenced.
func excluded(excl []exclusion, f *detections.Field, rule, an string) bool {
	for _, x := range excl {
		if x.rules != nil && !x.rules[rule] && !x.rules[an] {
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

var (
	_ detections.Detection    = (*Detection)(nil)
	_ detections.FieldVisitor = (*scratch)(nil)
)
