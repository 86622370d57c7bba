package payload

import (
	"bytes"

	"github.com/corazawaf/libinjection-go"
)

// Rule ids of the cross-site scripting analyzer.
const (
	// RuleXSS is libinjection's verdict: markup that runs script (a
	// dangerous tag, an event-handler attribute, a script URL in an
	// attribute) in one of the five HTML contexts it tries.
	RuleXSS = "xss"
	// RuleXSSMarkup is libinjection's verdict without a construct that runs
	// script on its own (styled HTML, random blobs): a weak signal.
	RuleXSSMarkup = "xss_markup"
	// RuleXSSScheme is a javascript: or vbscript: URL that calls something
	// ("javascript:alert(1)"), as a value of its own.
	RuleXSSScheme = "xss_scheme"
	// RuleXSSScript is script that breaks out of a JavaScript string or
	// expression to call a sink ("';alert(1)//"), calls one as a statement
	// or a callback ("}alert(1);{", "[1].find(alert)"), or reaches it
	// through a computed member of the global object
	// ("top['al'+'ert'](1)").
	RuleXSSScript = "xss_script"
	// RuleXSSProbe is a value that is nothing but an escaped '<' or '>'
	// ("&#x3C;", "\u003c", "%3C" sent encoded twice): a probe for which
	// decoding the application applies before it reflects a value.
	RuleXSSProbe = "xss_probe"
)

// xssAnalyzer asks libinjection's HTML5 tokenizer whether the folded value
// would run script when reflected into a page, in the five contexts it
// tries. libinjection needs a tag or an attribute assignment to find
// anything and allocates on every call, so only values with a '<' that
// opens a tag or an assignment to a script-capable attribute reach it. Its
// verdict counts in full when an independent construct that runs script
// confirms it (see xssConfirmed); otherwise it is a weak signal, because
// the tokenizer also flags styled HTML and random blobs. Structural checks
// cover what it misses: event handlers it does not know, <script> it
// cannot tokenise, script URLs and breaking out of a JavaScript string. In
// XML documents only the text nodes and attribute values are read: the
// tags are the application's own structure.
type xssAnalyzer struct{}

func (xssAnalyzer) Name() string { return "xss" }

func (xssAnalyzer) needs() uint64 { return xssMask }

// xssMask: markup, an attribute assignment, a script URL or a quote to
// break out of a string.
const xssMask = clsLT | clsEq | clsColon | clsQuote | clsParen

func (xssAnalyzer) Analyze(in *Input) (Finding, bool) {
	if len(in.Field.Value) < 3 || !in.Has(xssMask) || in.Binary() {
		return Finding{}, false
	}
	if isXMLField(in) {
		var fd Finding
		found := false
		xmlChunks(in, in.Field.Value, func(c string) bool {
			fd, found = xssCheck(in.Sub(c))
			return !found
		})
		return fd, found
	}
	return xssCheck(in)
}

func xssCheck(in *Input) (Finding, bool) {
	f := in.Folded()
	if len(f) < 3 {
		if xssProbe(in) {
			return Finding{Rule: RuleXSSProbe, Score: ScoreCritical}, true
		}
		return Finding{}, false
	}
	// Each check needs a character of its own; on the folded form's
	// classes the ones that cannot match cost nothing.
	fc := in.foldedClasses()
	if fc&clsLT != 0 && tagStart(f) || fc&clsEq != 0 && attrCandidate(f) {
		if libinjection.IsXSS(str(f)) {
			if xssConfirmed(f) {
				return Finding{Rule: RuleXSS, Score: ScoreCritical}, true
			}
			if fd, ok := xssEvasions(in, f); ok {
				return fd, ok
			}
			return in.weak(Finding{Rule: RuleXSSMarkup, Score: ScoreWarning})
		}
	}
	if fc&(clsLT|clsEq) != 0 && markupRunsScript(f) {
		return Finding{Rule: RuleXSS, Score: ScoreCritical}, true
	}
	if fc&clsColon != 0 && scriptURL(f) {
		return Finding{Rule: RuleXSSScheme, Score: ScoreCritical}, true
	}
	if fc&(clsParen|clsQuote) != 0 && jsBreakout(f) {
		return Finding{Rule: RuleXSSScript, Score: ScoreCritical}, true
	}
	return xssEvasions(in, f)
}

// tagStart reports a '<' that opens markup: followed by a letter, '/',
// '!' or '?'. "1 < 2" and "<$20" open nothing, so libinjection (which
// allocates on every call) is not asked about them.
func tagStart(f []byte) bool {
	for off := 0; ; {
		i := bytes.IndexByte(f[off:], '<')
		if i < 0 {
			return false
		}
		i += off
		if i+1 < len(f) && (isLetter(f[i+1]) || f[i+1] == '/' || f[i+1] == '!' || f[i+1] == '?' || f[i+1] == '%' || f[i+1] >= 0x80) {
			return true
		}
		off = i + 1
	}
}

// attrCandidate reports an assignment to an attribute that can run script:
// an event handler (on...=) or one of the URL and style attributes, after a
// quote, space or slash that could close the attribute before it.
func attrCandidate(f []byte) bool {
	for i := 1; i < len(f); i++ {
		if f[i] != '=' {
			continue
		}
		j := i
		for j > 0 && f[j-1] == ' ' {
			j--
		}
		k := j
		for k > 0 && (isLetter(f[k-1]) || f[k-1] == '-' || f[k-1] == ':') {
			k--
		}
		if k == j {
			continue
		}
		name := f[k:j]
		if k > 0 && f[k-1] != ' ' && f[k-1] != '"' && f[k-1] != '\'' && f[k-1] != '/' && f[k-1] != '`' {
			continue
		}
		if len(name) > 4 && name[0] == 'o' && name[1] == 'n' {
			return true
		}
		switch str(name) {
		case "style", "src", "href", "action", "formaction", "background", "srcdoc", "data", "xlink:href",
			"poster", "dynsrc", "lowsrc", "codebase", "xmlns", "values", "from", "to", "by", "attributename", "srcset":
			return true
		}
	}
	return false
}

// scriptURL reports a javascript:, vbscript: or livescript: URL whose body
// calls a function ("javascript:alert(1)", "javascript://%0aalert(1)");
// "javascript:void(0)" placeholders and "javascript:3.2.2" version strings
// are not script URLs worth blocking.
func scriptURL(f []byte) bool {
	for off := 0; ; {
		i := index(f[off:], "script:")
		if i < 0 {
			return false
		}
		i += off
		off = i + 1
		// The scheme: letters before "script", spaces allowed (browsers
		// drop tabs and newlines inside a scheme; Fold made them spaces).
		p := i
		var letters [4]byte
		n := 0
		for p > 0 && n < 4 && (isLetter(f[p-1]) || f[p-1] == ' ') {
			p--
			if f[p] != ' ' {
				letters[3-n] = f[p]
				n++
			}
		}
		scheme := string(letters[4-n:])
		if !(scheme == "java" || scheme == "vb" || scheme == "live") {
			continue
		}
		if p > 0 && isWordByte(f[p-1]) {
			continue
		}
		if rest := f[i+len("script:"):]; callsSomething(rest[:min(len(rest), 256)]) {
			return true
		}
	}
}

// callsSomething reports a call "name(" or "name`" other than void(...),
// or a computed call "x[y](" / "f()(".
func callsSomething(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '(' && s[i] != '`' {
			continue
		}
		j := i
		for j > 0 && s[j-1] == ' ' {
			j--
		}
		if j > 0 && (s[j-1] == ']' || s[j-1] == ')') {
			return true
		}
		k := j
		for k > 0 && (isWordByte(s[k-1]) || s[k-1] == '$' || s[k-1] == '.') {
			k--
		}
		if k < j && !equalLower(s[k:j], "void") {
			return true
		}
	}
	return false
}

// jsSinks are the calls an injected script makes to prove or use execution.
var jsSinks = []string{"alert", "prompt", "confirm", "eval", "settimeout", "setinterval", "function",
	"fetch", "import", "atob", "document.write", "document.cookie", "document.location", "window.location",
	"location.href", "string.fromcharcode", "constructor"}

// jsBreakout reports a quote that closes a JavaScript string followed by an
// operator or separator and a sink call: "';alert(1)//", "'-prompt(1)-'",
// "\";confirm`1`", or a value that is itself a sink call of a call
// ("eval(atob(...))"). A quote followed by prose never matches.
func jsBreakout(f []byte) bool {
	if len(f) > 0 && sinkStart[f[0]] && sinkCallAt(f, 0) {
		if i := bytes.IndexByte(f, '('); i > 0 && i+1 < len(f) && (isLetter(f[i+1]) || f[i+1] == '\'' || f[i+1] == '"' || f[i+1] == '`' || isDigit(f[i+1])) {
			return true
		}
	}
	for i := 0; i < len(f); i++ {
		if f[i] != '\'' && f[i] != '"' && f[i] != '`' {
			continue
		}
		j := i + 1
		ops := 0
		for j < len(f) && ops < 4 {
			c := f[j]
			if c == ';' || c == '-' || c == '+' || c == '*' || c == '/' || c == '|' || c == '&' || c == ',' || c == ')' || c == '}' || c == '^' || c == '%' || c == '<' || c == '>' || c == '=' || c == '?' || c == ':' || c == '!' || c == '~' {
				ops++
				j++
				continue
			}
			if c == ' ' {
				j++
				continue
			}
			break
		}
		if ops == 0 || j >= len(f) {
			continue
		}
		if sinkStart[f[j]] && sinkCallAt(f, j) {
			return true
		}
	}
	return false
}

// sinkStart marks the first bytes of the sinks and of the prefixes
// sinkCallAt accepts before them.
var sinkStart = func() (t [256]bool) {
	for _, s := range jsSinks {
		t[s[0]] = true
	}
	for _, p := range []string{"window.", "top.", "self.", "parent.", "this."} {
		t[p[0]] = true
	}
	return t
}()

// sinkCallAt reports whether a sink name followed by '(' or '`' starts at i
// (window. and top. prefixes and bracket access allowed).
func sinkCallAt(f []byte, i int) bool {
	for _, p := range []string{"window.", "top.", "self.", "parent.", "this."} {
		if hasPrefix(f[i:], p) {
			i += len(p)
			break
		}
	}
	for _, s := range jsSinks {
		if !hasPrefix(f[i:], s) {
			continue
		}
		j := skipSpace(f, i+len(s))
		if j+2 < len(f) && f[j] == '?' && f[j+1] == '.' {
			j += 2 // optional chaining: "confirm?.(1)"
		}
		if j < len(f) && (f[j] == '(' || f[j] == '`') {
			return true
		}
		if s == "document.cookie" || s == "document.location" || s == "window.location" || s == "location.href" {
			return true
		}
	}
	return false
}

// nestedScriptTag reports a tag name that becomes "script" once a filter
// strips "script" from it, once or over up to four passes ("<scrscriptipt>",
// "<scrscrscriptiptipt>").
func nestedScriptTag(f []byte) bool {
	const rounds = 4
	var buf [6 * (rounds + 1)]byte
	e := 0
	for e < len(f) && isLetter(f[e]) {
		if e == len(buf) {
			return false // too long to shrink to "script" in as many passes
		}
		buf[e] = f[e]
		e++
	}
	if e < 12 {
		return false
	}
	name := buf[:e]
	for r := 0; r < rounds; r++ {
		// An inner "script": one the name does not start with.
		i := index(name[1:], "script")
		if i < 0 {
			return false
		}
		i++
		name = append(name[:i], name[i+6:]...)
		if string(name) == "script" {
			return true
		}
	}
	return false
}

// markupRunsScript reports markup that runs script whatever libinjection's
// tokenizer makes of the rest of the value: a <script> element, or an
// element with an event-handler attribute (any on...= name, including the
// browser-specific ones missing from libinjection's list), or an event
// handler assigned a call after the attribute was broken out of
// ("\" onfocus=alert(1) autofocus ").
func markupRunsScript(f []byte) bool {
	tag := false
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case c == '<':
			j := i + 1
			for j < len(f) && (f[j] == ' ' || f[j] == '/') {
				j++
			}
			if j < len(f) && isLetter(f[j]) {
				tag = true
				if hasPrefix(f[j:], "script") && (j+6 == len(f) || f[j+6] == ' ' || f[j+6] == '>' || f[j+6] == '/') {
					return true
				}
				if nestedScriptTag(f[j:]) {
					return true
				}
			}
		case c == 'o' && i+1 < len(f) && f[i+1] == 'n' && eventHandlerAt(f, i):
			eq := bytes.IndexByte(f[i:], '=') + i
			v := skipSpace(f, eq+1)
			for v < len(f) && (f[v] == '"' || f[v] == '\'' || f[v] == '`') {
				v++
			}
			if v >= len(f) {
				continue
			}
			if tag || callsSomething(f[v:min(len(f), v+64)]) {
				return true
			}
		}
	}
	return false
}
