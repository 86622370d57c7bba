// Package crs holds the optional crs detection: the OWASP Core Rule Set
// (embedded from the coraza-coreruleset module) and the operator's own
// ModSecurity (SecLang) rule files, such as a virtual patch published for a
// new CVE, evaluated by the Coraza WAF engine.
//
// It is a detection like any other: the gateway builds one request view,
// Inspect feeds one Coraza transaction from it (no second body read, no
// network), and the chain decides whether a block is enforced or only
// monitored. Coraza itself runs in DetectionOnly mode and never writes a
// response; the gateway writes every response.
//
// Only the request phases run (1 and 2, then logging): the gateway streams
// upstream responses to the client without buffering them, so the CRS
// response rules (RESPONSE-95x data leakages, 959 and 980) are not loaded.
//
// Cost: Coraza evaluates a few hundred regular-expression rules over every
// argument, header and cookie, so a small request costs about a
// millisecond of CPU and a 1 KiB JSON body about 15 ms at paranoia level 1,
// with thousands of allocations: some two hundred times the built-in
// payload analysers (see BenchmarkInspect and README.md). It is off by
// default.
package crs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampartgw/rampart/detections"
)

const name = "crs"

// Reasons of a crs block. They are stable ids: logged and counted.
const (
	// ReasonAnomaly: the CRS inbound anomaly score reached the threshold
	// (rule 949110, or 949111 with early blocking).
	ReasonAnomaly = "crs_anomaly"
	// ReasonRule: a rule with its own disruptive action (deny, drop,
	// redirect) matched, typically an operator's virtual patch.
	ReasonRule = "crs_rule"
	// ReasonBodyError: the body did not parse as its Content-Type says
	// (Coraza's recommended rules 200002 and 200003), so the CRS could not
	// see its arguments.
	ReasonBodyError = "crs_body_error"
	// ReasonLimit: more arguments than max_args; the ones past the limit
	// would not have been inspected (rule 489001).
	ReasonLimit = "crs_limit"
)

// RuleArgsLimit is the id of the detection's own rule that blocks a request
// with more than max_args arguments. Ids 489000-489999 are reserved for the
// detection's own rules.
const RuleArgsLimit = 489001

// Config configures the crs detection (YAML key detections.crs).
type Config struct {
	// ParanoiaLevel is the CRS paranoia level, 1 to 4: higher levels load
	// more rules and catch more, at the price of more false positives.
	// Blocking and detection levels are the same.
	ParanoiaLevel int `yaml:"paranoia_level"`
	// AnomalyThreshold is the CRS inbound anomaly score threshold
	// (critical rules score 5, error 4, warning 3, notice 2).
	AnomalyThreshold int `yaml:"anomaly_threshold"`
	// CoreRuleSet loads the OWASP CRS embedded in the binary; false loads
	// only the operator's rule files.
	CoreRuleSet bool `yaml:"core_rule_set"`
	// Rules are the operator's SecLang rule files (file paths or globs),
	// loaded after the CRS setup and initialisation (REQUEST-901) and
	// before the CRS attack rules: a virtual patch with deny, a rule that
	// adds to the anomaly score (setvar:tx.inbound_anomaly_score_pl1=+…),
	// or a runtime exclusion (ctl:ruleRemoveTargetById…).
	Rules []string `yaml:"rules"`
	// RulesAfterCRS are rule files loaded after the CRS, for start-up
	// tuning of CRS rules (SecRuleUpdateTargetById, SecRuleRemoveByTag).
	RulesAfterCRS []string `yaml:"rules_after_crs"`
	// ExcludeRules are rule ids removed after everything is loaded.
	ExcludeRules []int `yaml:"exclude_rules"`
	// MaxBodyBytes bounds the body bytes shown to Coraza; 0 shows all
	// that the gateway buffered (the gateway's max_body_bytes). A longer
	// body is inspected up to the bound only.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxArgs is Coraza's argument limit (query, body and path arguments,
	// each counted on its own). A request with more is blocked with
	// crs_limit rather than partly inspected.
	MaxArgs int `yaml:"max_args"`
}

// DefaultConfig is the CRS at paranoia level 1 with its default threshold.
func DefaultConfig() Config {
	return Config{ParanoiaLevel: 1, AnomalyThreshold: 5, CoreRuleSet: true, MaxArgs: 1000}
}

// maxBody is Coraza's hard limit on a request body.
const maxBody = 1 << 30

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.ParanoiaLevel < 1 || c.ParanoiaLevel > 4 {
		errs = append(errs, fmt.Errorf("crs.paranoia_level: %d is not 1 to 4", c.ParanoiaLevel))
	}
	if c.AnomalyThreshold < 1 {
		errs = append(errs, fmt.Errorf("crs.anomaly_threshold: %d must be > 0", c.AnomalyThreshold))
	}
	if !c.CoreRuleSet && len(c.Rules) == 0 && len(c.RulesAfterCRS) == 0 {
		errs = append(errs, errors.New("crs: core_rule_set is false and no rules are given: nothing to run"))
	}
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > maxBody {
		errs = append(errs, fmt.Errorf("crs.max_body_bytes: %d is not 0 to %d", c.MaxBodyBytes, maxBody))
	}
	if c.MaxArgs < 1 {
		errs = append(errs, fmt.Errorf("crs.max_args: %d must be > 0", c.MaxArgs))
	}
	for _, id := range c.ExcludeRules {
		switch {
		case id <= 0:
			errs = append(errs, fmt.Errorf("crs.exclude_rules: %d is not a rule id", id))
		case id/1000 == 901 || id/1000 == 949:
			// Removing the initialisation or the blocking evaluation turns
			// the whole rule set into a silent no-op.
			errs = append(errs, fmt.Errorf("crs.exclude_rules: %d is part of the CRS initialisation or blocking evaluation; use mode: monitor or off instead", id))
		case id/1000 == RuleArgsLimit/1000:
			errs = append(errs, fmt.Errorf("crs.exclude_rules: %d is the detection's own rule; raise max_args instead", id))
		}
	}
	for _, key := range []struct {
		name  string
		globs []string
	}{{"rules", c.Rules}, {"rules_after_crs", c.RulesAfterCRS}} {
		for i, g := range key.globs {
			if strings.TrimSpace(g) == "" {
				errs = append(errs, fmt.Errorf("crs.%s[%d]: empty path", key.name, i))
			} else if _, err := filepath.Match(g, ""); err != nil {
				errs = append(errs, fmt.Errorf("crs.%s[%d]: %q: %w", key.name, i, g, err))
			}
		}
	}
	return errors.Join(errs...)
}

// CRS is the crs detection. It is safe for concurrent use: the compiled
// WAF is shared, each Inspect runs its own transaction.
type CRS struct {
	waf     coraza.WAF
	txs     experimental.WAFWithOptions // the same WAF, for transactions with a request id
	maxBody int
	rules   int
}

// New compiles the WAF: Coraza's recommended base configuration, the CRS
// (unless CoreRuleSet is false) at the configured paranoia level and
// threshold, and the operator's rule files. A rule file that does not
// compile is an error naming the file and line.
func New(cfg Config) (*CRS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := plan(cfg)
	if err != nil {
		return nil, err
	}
	waf, ids, err := p.build(nil)
	if err != nil {
		return nil, p.diagnose(err)
	}
	var errs []error
	for _, id := range cfg.ExcludeRules {
		if !ids[id] {
			errs = append(errs, fmt.Errorf("crs.exclude_rules: rule %d is not loaded", id))
		}
	}
	if err := errors.Join(errs...); err != nil {
		closeWAF(waf)
		return nil, err
	}
	wo, ok := waf.(experimental.WAFWithOptions)
	if !ok {
		closeWAF(waf)
		return nil, fmt.Errorf("crs: coraza WAF %T cannot start a transaction with options", waf)
	}
	c := &CRS{waf: waf, txs: wo, maxBody: cfg.MaxBodyBytes, rules: len(ids)}
	if rc, ok := waf.(experimental.WAFWithRules); ok {
		c.rules = rc.RulesCount()
	}
	if err := c.probe(); err != nil {
		closeWAF(waf)
		return nil, err
	}
	return c, nil
}

// Name returns "crs".
func (c *CRS) Name() string { return name }

// Rules returns how many rules are loaded (a chain counts once).
func (c *CRS) Rules() int { return c.rules }

// Close releases the compiled patterns the WAF caches. A config reload
// that replaces the detection calls it once the old chain is idle.
func (c *CRS) Close() error {
	closeWAF(c.waf)
	return nil
}

func closeWAF(w coraza.WAF) {
	if cl, ok := w.(experimental.WAFCloser); ok {
		_ = cl.Close()
	}
}

// The parts of a Coraza transaction that the public types.Transaction does
// not expose but *corazawaf.Transaction has: the interruption that
// DetectionOnly records instead of enforcing, and the TX collection with
// the anomaly score. probe checks at start-up that they are there.
type (
	detectionOnly interface {
		DetectionOnlyInterruption() *types.Interruption
	}
	txState interface {
		Variables() plugintypes.TransactionVariables
	}
)

func (c *CRS) probe() error {
	tx := c.waf.NewTransaction()
	defer func() { _ = tx.Close() }()
	if _, ok := tx.(detectionOnly); !ok {
		return fmt.Errorf("crs: coraza transaction %T does not report DetectionOnly interruptions", tx)
	}
	if _, ok := tx.(txState); !ok {
		return fmt.Errorf("crs: coraza transaction %T does not expose its variables", tx)
	}
	return nil
}

// Inspect runs one Coraza transaction over r's request view. A panic or an
// error inside Coraza is returned as an error, so the chain fails open and
// counts it.
func (c *CRS) Inspect(ctx context.Context, r *detections.Request) (detections.Verdict, error) {
	if err := ctx.Err(); err != nil {
		return detections.Allow, fmt.Errorf("crs: %w", err)
	}
	tx := c.txs.NewTransactionWithOptions(experimental.Options{ID: r.ID, Context: ctx})
	v, err := c.run(ctx, tx, r)
	if cerr := finish(tx); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return detections.Allow, err
	}
	return v, nil
}

// run feeds tx the request view and reads the verdict.
func (c *CRS) run(ctx context.Context, tx types.Transaction, r *detections.Request) (v detections.Verdict, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = detections.Allow, fmt.Errorf("crs: coraza panicked: %v\n%s", p, debug.Stack())
		}
	}()
	if tx.IsRuleEngineOff() {
		return detections.Allow, nil
	}
	client := ""
	if r.ClientIP.IsValid() {
		client = r.ClientIP.String()
	}
	tx.ProcessConnection(client, 0, "", 0)
	uri := r.RawPath
	if uri == "" {
		uri = r.Path
	}
	if r.RawQuery != "" {
		uri += "?" + r.RawQuery
	}
	proto := r.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	tx.ProcessURI(uri, r.Method, proto)
	if r.Host != "" {
		// net/http moves Host out of the header map; the CRS checks it.
		tx.AddRequestHeader("Host", r.Host)
	}
	// Sorted, so the matched rules and the logged location do not depend
	// on map order.
	var keys [32]string
	names := keys[:0]
	for k := range r.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, hv := range r.Header[k] {
			tx.AddRequestHeader(k, hv)
		}
	}
	body := r.Body
	if len(body) > 0 && len(r.Header["Content-Length"]) == 0 && len(r.Header["Transfer-Encoding"]) == 0 {
		// A chunked body the gateway buffered: tell the CRS its length,
		// as the request the gateway forwards does.
		tx.AddRequestHeader("Content-Length", strconv.Itoa(len(body)))
	}
	tx.ProcessRequestHeaders()
	if err := ctx.Err(); err != nil {
		// Coraza cannot stop inside a phase, but the request budget is
		// checked between the two: the body phase is the expensive one.
		return detections.Allow, fmt.Errorf("crs: after the header phase: %w", err)
	}
	if c.maxBody > 0 && len(body) > c.maxBody {
		body = body[:c.maxBody]
	}
	if len(body) > 0 && tx.IsRequestBodyAccessible() {
		if _, _, err := tx.WriteRequestBody(body); err != nil {
			return detections.Allow, fmt.Errorf("crs: writing request body: %w", err)
		}
	}
	if _, err := tx.ProcessRequestBody(); err != nil {
		return detections.Allow, fmt.Errorf("crs: processing request body: %w", err)
	}
	return verdict(tx), nil
}

// finish runs the logging phase and returns tx to Coraza's pool.
func finish(tx types.Transaction) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("crs: coraza panicked closing a transaction: %v", p)
		}
	}()
	tx.ProcessLogging()
	if err := tx.Close(); err != nil {
		return fmt.Errorf("crs: closing transaction: %w", err)
	}
	return nil
}

// verdict reads what tx would have done with the engine on.
func verdict(tx types.Transaction) detections.Verdict {
	it := tx.Interruption() // an operator's ctl:ruleEngine=On
	if it == nil {
		it = tx.(detectionOnly).DetectionOnlyInterruption()
	}
	if it == nil {
		return detections.Allow
	}
	var cause, best types.MatchedRule
	for _, mr := range tx.MatchedRules() {
		md := mr.Rule()
		id := md.ID()
		if id == it.RuleID && cause == nil {
			cause = mr
		}
		if evaluation(id) || md.Severity() == types.RuleSeverityUnset {
			continue
		}
		// Lower is more severe; the first of equals is the earliest match.
		if best == nil || md.Severity() < best.Rule().Severity() {
			best = mr
		}
	}
	v := detections.Block(reason(it.RuleID))
	v.Score = score(tx)
	pick := best
	if !evaluation(it.RuleID) || best == nil {
		// A rule that blocks on its own is the finding itself.
		pick = cause
	}
	v.Rule = strconv.Itoa(it.RuleID)
	if pick != nil {
		v.Rule = strconv.Itoa(pick.Rule().ID())
		v.Location = location(pick)
	}
	return v
}

// evaluation reports whether id is a CRS blocking-evaluation rule, which
// only sums up the other rules' findings.
func evaluation(id int) bool { return id/1000 == 949 }

func reason(id int) string {
	switch {
	case evaluation(id):
		return ReasonAnomaly
	case id == 200002 || id == 200003:
		return ReasonBodyError
	case id == RuleArgsLimit:
		return ReasonLimit
	}
	return ReasonRule
}

// score is the CRS blocking inbound anomaly score (0 without the CRS).
func score(tx types.Transaction) int {
	vs := tx.(txState).Variables().TX().Get("blocking_inbound_anomaly_score")
	if len(vs) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(vs[0])
	return n
}

// maxLocation bounds the logged location: an argument or header name is
// chosen by the client.
const maxLocation = 64

// location is the first matched variable of mr, "ARGS:q" or
// "REQUEST_HEADERS:User-Agent": its name, never its value.
func location(mr types.MatchedRule) string {
	for _, md := range mr.MatchedDatas() {
		if md.ChainLevel() != 0 {
			continue
		}
		loc := md.Variable().Name()
		if k := md.Key(); k != "" {
			loc += ":" + k
		}
		if len(loc) > maxLocation {
			loc = loc[:maxLocation]
		}
		return loc
	}
	return ""
}

var _ detections.Detection = (*CRS)(nil)
