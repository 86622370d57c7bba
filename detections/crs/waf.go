package crs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/types"
)

// part is one step of the WAF configuration: inline directives of the
// detection's own, or one operator rule file.
type part struct {
	text  string // inline directives; "" for a file
	path  string // the file, absolute
	shown string // the file as the operator named it (or as its glob matched)
	key   string // the config key that named it
}

// wafPlan is the ordered configuration New compiles; diagnose replays
// prefixes of it to find the line of a broken rule file.
type wafPlan struct {
	parts []part
}

// plan lays out the configuration: engine base, CRS setup and
// initialisation, the operator's rules, the CRS request rules, the
// operator's after-CRS rules, then the settings the detection owns (so no
// rule file can turn the engine on, an audit log or a debug log on, or
// change the limits) and the exclusions.
func plan(cfg Config) (*wafPlan, error) {
	p := &wafPlan{}
	p.inline("Include @coraza.conf-recommended\n" + owned(cfg))
	if cfg.CoreRuleSet {
		p.inline(fmt.Sprintf(`Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,tag:'OWASP_CRS',setvar:tx.blocking_paranoia_level=%[1]d"
SecAction "id:900001,phase:1,pass,t:none,nolog,tag:'OWASP_CRS',setvar:tx.detection_paranoia_level=%[1]d"
SecAction "id:900110,phase:1,pass,t:none,nolog,tag:'OWASP_CRS',setvar:tx.inbound_anomaly_score_threshold=%[2]d,setvar:tx.outbound_anomaly_score_threshold=4"
`, cfg.ParanoiaLevel, cfg.AnomalyThreshold))
	}
	var errs []error
	if cfg.CoreRuleSet {
		// The operator's rules come after the CRS initialisation, so they
		// see its variables and a rule that adds to the anomaly score is
		// not reset by it, and before the attack rules and the blocking
		// evaluation, so runtime exclusions and scores apply.
		p.inline("Include @owasp_crs/REQUEST-901-INITIALIZATION.conf\n")
	}
	if err := p.files("rules", cfg.Rules); err != nil {
		errs = append(errs, err)
	}
	if cfg.CoreRuleSet {
		// Request rules only: the gateway streams responses, so the
		// RESPONSE-* files would never run.
		p.inline("Include @owasp_crs/REQUEST-90[2-9]*.conf\nInclude @owasp_crs/REQUEST-9[1-9]*.conf\n")
	}
	if err := p.files("rules_after_crs", cfg.RulesAfterCRS); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(owned(cfg))
	// No silent limit: arguments past max_args are dropped by Coraza, so
	// a request that has them is refused instead of partly inspected.
	fmt.Fprintf(&b, "SecRule ARGUMENTS_LIMIT_REACHED \"@eq 1\" \"id:%d,phase:2,deny,status:400,log,t:none,severity:'CRITICAL',msg:'Too many arguments (max_args)',tag:'rampart'\"\n", RuleArgsLimit)
	for _, id := range cfg.ExcludeRules {
		fmt.Fprintf(&b, "SecRuleRemoveById %d\n", id)
	}
	p.inline(b.String())
	return p, nil
}

// owned are the engine settings the detection decides.
func owned(cfg Config) string {
	limit := cfg.MaxBodyBytes
	if limit == 0 {
		limit = maxBody
	}
	// The in-memory limit equals the body limit: the body is in memory
	// already, and Coraza would otherwise spill it to a temporary file.
	return fmt.Sprintf(`SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecRequestBodyLimit %[1]d
SecRequestBodyInMemoryLimit %[1]d
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess Off
SecAuditEngine Off
SecDebugLogLevel 0
SecArgumentsLimit %[2]d
`, limit, cfg.MaxArgs)
}

func (p *wafPlan) inline(text string) { p.parts = append(p.parts, part{text: text}) }

// files expands the operator's paths and globs. A path or glob that names
// no file is an error: a typo must not load nothing.
func (p *wafPlan) files(key string, globs []string) error {
	var errs []error
	for i, g := range globs {
		var matches []string
		if strings.ContainsAny(g, "*?[") {
			m, err := filepath.Glob(g)
			if err != nil {
				errs = append(errs, fmt.Errorf("crs.%s[%d]: %q: %w", key, i, g, err))
				continue
			}
			if len(m) == 0 {
				errs = append(errs, fmt.Errorf("crs.%s[%d]: %q matches no file", key, i, g))
				continue
			}
			matches = m
		} else {
			matches = []string{g}
		}
		for _, m := range matches {
			fi, err := os.Stat(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("crs.%s[%d]: %w", key, i, err))
				continue
			}
			if fi.IsDir() {
				errs = append(errs, fmt.Errorf("crs.%s[%d]: %s is a directory (use a glob such as %s/*.conf)", key, i, m, m))
				continue
			}
			abs, err := filepath.Abs(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("crs.%s[%d]: %w", key, i, err))
				continue
			}
			p.parts = append(p.parts, part{path: abs, shown: m, key: key})
		}
	}
	return errors.Join(errs...)
}

// build compiles every part. It returns the ids of the rules loaded.
func (p *wafPlan) build(override map[string][]byte) (coraza.WAF, map[int]bool, error) {
	return p.buildUpTo(len(p.parts), override)
}

// buildUpTo compiles parts[:upto], with override replacing some files'
// content.
func (p *wafPlan) buildUpTo(upto int, override map[string][]byte) (coraza.WAF, map[int]bool, error) {
	ids := map[int]bool{}
	cfg := experimental.WAFConfigWithRuleObserver(
		coraza.NewWAFConfig().WithRootFS(rootFS{override: override}),
		func(r types.RuleMetadata) { ids[r.ID()] = true })
	for _, pt := range p.parts[:upto] {
		if pt.path != "" {
			cfg = cfg.WithDirectivesFromFile(pt.path)
		} else {
			cfg = cfg.WithDirectives(pt.text)
		}
	}
	waf, err := coraza.NewWAF(cfg)
	if err != nil {
		return nil, nil, err
	}
	return waf, ids, nil
}

// diagnose turns the error of the full build into one naming the operator
// file and line at fault. Coraza's parser names neither, so it replays the
// configuration: it finds the shortest failing prefix of the parts; when
// that part is an operator file, the fault is in it, and when it is the
// detection's own (a CRS file that clashes with an operator's rule id,
// say), the fault is in the operator file without which that prefix
// compiles. Then it finds the shortest failing prefix of that file's
// directives. Both searches bisect; this runs only when start-up fails
// anyway.
func (p *wafPlan) diagnose(full error) error {
	fails := func(upto int, override map[string][]byte) error {
		w, _, err := p.buildUpTo(upto, override)
		if w != nil {
			closeWAF(w)
		}
		return err
	}
	// parts[:lo] compiles, parts[:hi] does not.
	lo, hi := 0, len(p.parts)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(mid, nil) != nil {
			hi = mid
		} else {
			lo = mid
		}
	}
	bad := -1
	if p.parts[hi-1].path != "" {
		bad = hi - 1
	} else {
		for i := range p.parts[:hi-1] {
			if pt := p.parts[i]; pt.path != "" && fails(hi, map[string][]byte{pt.path: nil}) == nil {
				bad = i
				break
			}
		}
	}
	if bad < 0 {
		return fmt.Errorf("crs: compiling rules: %s", trimCoraza(full))
	}
	f := p.parts[bad]
	src, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("crs.%s: %s: %w", f.key, f.shown, err)
	}
	dirs := directives(string(src))
	prefix := func(k int) map[string][]byte {
		if k == 0 {
			return map[string][]byte{f.path: nil}
		}
		return map[string][]byte{f.path: []byte(dirs[k-1].through)}
	}
	// With the file cut to its first k directives, parts[:hi] compiles for
	// k = dl and not for k = dh.
	dl, dh := 0, len(dirs)
	last := fails(hi, prefix(dh))
	if last == nil || fails(hi, prefix(0)) != nil {
		// The file fails only whole (an unbalanced backtick block, say).
		return fmt.Errorf("crs.%s: %s: %s", f.key, f.shown, trimCoraza(full))
	}
	for dh-dl > 1 {
		mid := (dl + dh) / 2
		if err := fails(hi, prefix(mid)); err != nil {
			dh, last = mid, err
		} else {
			dl = mid
		}
	}
	return fmt.Errorf("crs.%s: %s:%d: %s", f.key, f.shown, dirs[dh-1].line, trimCoraza(last))
}

// trimCoraza drops the wrapping Coraza adds at each layer, which says
// nothing the message does not.
func trimCoraza(err error) string {
	s := err.Error()
	for _, p := range []string{"invalid WAF config from file: ", "invalid WAF config from string: ", "failed to parse string: "} {
		for strings.HasPrefix(s, p) {
			s = strings.TrimPrefix(s, p)
		}
	}
	return s
}

// directive is one logical SecLang directive of a file: the line it starts
// on and the file's text up to and including its last line.
type directive struct {
	line    int
	through string
}

// directives splits src the way the SecLang parser reads it: blank and
// '#' lines are skipped, a trailing '\' continues a directive on the next
// line, and a line ending in '`' opens a block that a line starting with
// '`' closes.
func directives(src string) []directive {
	var out []directive
	lines := strings.SplitAfter(src, "\n")
	start, inBlock, cont := 0, false, false
	offset := 0
	for i, raw := range lines {
		offset += len(raw)
		l := strings.TrimSpace(raw)
		if l == "" || l[0] == '#' {
			continue
		}
		if !inBlock && !cont {
			start = i + 1
		}
		switch {
		case !inBlock && l[len(l)-1] == '`':
			inBlock = true
			continue
		case inBlock && l[0] == '`':
			inBlock = false
		case inBlock:
			continue
		}
		if l[len(l)-1] == '\\' {
			cont = true
			continue
		}
		cont = false
		out = append(out, directive{line: start, through: src[:offset]})
	}
	return out
}
