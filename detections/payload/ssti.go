package payload

import (
	"bytes"
	"strings"
)

// RuleSSTI is server-side template injection: an expression inside
// template delimiters ({{ }}, ${ }, #{ }, *{ }, <%= %>, {% %}) that only a
// probe or an exploit writes: arithmetic on literals ("{{7*7}}"), Python
// object-model walks (__class__, __mro__, __globals__), Java and
// JavaScript reflection (getClass(), T(java.lang.Runtime),
// constructor.constructor), or calls that run commands.
const RuleSSTI = "ssti"

// sstiAnalyzer looks inside template delimiters only, so unexpanded macros
// ("{{UUID}}", "${AD_WIDTH}", "#{user.id}") and ordinary braces pass.
type sstiAnalyzer struct{}

func (sstiAnalyzer) Name() string { return "ssti" }

func (sstiAnalyzer) needs() uint64 { return clsBrace | clsBracket | clsPercent | clsHash | clsAt }

// templateOpeners and their closers.
var templateDelims = []struct{ open, close string }{
	{"{{", "}}"}, {"${", "}"}, {"#{", "}"}, {"*{", "}"}, {"@{", "}"}, {"<%=", "%>"}, {"<%", "%>"},
	{"{%", "%}"}, {"[[", "]]"}, {"{#", "#}"}, {"<#", ">"}, {"[#", "]"}, {"{$", "}"}, {"@(", ")"}, {"{", "}"},
}

// templateGlobals are the objects template engines hand to every template
// (Jinja2's self, request and config, Twig's _self and app): an expression
// that is one of them alone dumps the engine's internals.
var templateGlobals = set("self", "_self", "request", "config", "app", "settings", "smarty", "this", "dump()",
	"request.environ", "self.__dict__", "g")

// sstiExploit are fragments of template exploits: object-model walks,
// reflection, and the functions they end in.
var sstiExploit = []string{
	"__class__", "__mro__", "__subclasses__", "__globals__", "__builtins__", "__import__", "__init__",
	"__base__", "__bases__", "__getattribute__", "__dict__", "__self__", "mro()", "subclasses()",
	"getclass(", ".forname(", "classloader", "t(java.", "java.lang.", "runtime", "processbuilder",
	"getruntime", "constructor.constructor", "constructor(", "process.mainmodule", "require(",
	"child_process", "popen(", "os.system", "self._", "request.application", "config.items",
	"lipsum.", "cycler.", "joiner.", "namespace.", "url_for.", "get_flashed_messages", "freemarker.",
	"objectconstructor", "new(", "?new(", "execute(", "exec(", "eval(", "system(", "passthru(",
	"_self.env", "registerundefinedfiltercallback", "getfilter(", "{php}", "smarty.", "$smarty",
	"#set(", "#foreach", "velocitycontext", ".getmethod(", ".invoke(", "setaccessible",
	"|attr(", "|filter(", "|map(", "dump(", "app.request", "|reduce(", "|sort(", "registerundefined",
}

func (sstiAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsBrace|clsBracket|clsPercent|clsHash) && in.Classes()&(clsAt|clsParen) != clsAt|clsParen {
		return Finding{}, false
	}
	if !templateOpener(in.Decoded()) {
		return Finding{}, false
	}
	f := in.Folded()
	if len(f) < 4 {
		return Finding{}, false
	}
	// Bare braces are JSON and prose: only the unmistakable fragments
	// count inside them, so look for those once over the whole value.
	strong := contains(f, "__") || contains(f, "getclass(") || contains(f, "t(java.") ||
		contains(f, "constructor.constructor") || contains(f, "getruntime")
	// Per delimiter, where the last body whose fragments were looked for
	// ended.
	var read [16]int
	for k, dl := range templateDelims {
		bare := dl.open == "{"
		if bare && !strong {
			continue
		}
		for off := 0; off < len(f); {
			i := index(f[off:], dl.open)
			if i < 0 {
				break
			}
			i += off
			off = i + len(dl.open)
			start := off
			body := f[off:min(len(f), off+512)]
			end := index(body, dl.close)
			if end < 0 {
				end = min(len(body), 256)
				// No closer: the openers that follow inside this window
				// see the same text; skip half of it, as log4shellScan
				// does, so unclosed openers cost linear time.
				off += end / 2
			}
			if end == 0 {
				continue
			}
			body = body[:end]
			if !bare && literalArithmetic(body) {
				return Finding{Rule: RuleSSTI, Score: ScoreCritical}, true
			}
			if dl.open == "@(" {
				continue // Razor: arithmetic only; "@(" is prose otherwise
			}
			if !bare && templateGlobals[str(bytes.TrimSpace(body))] {
				return Finding{Rule: RuleSSTI, Score: ScoreCritical}, true
			}
			if (dl.open == "{%" || dl.open == "{{") && templateLoop(body) {
				return Finding{Rule: RuleSSTI, Score: ScoreCritical}, true
			}
			if !bare && literalMethodCall(body) {
				return Finding{Rule: RuleSSTI, Score: ScoreCritical}, true
			}
			if start+end == read[k] {
				// The body of an opener inside the last body read, ending
				// at the same byte: a part of that body, holding no
				// fragment it lacks.
				continue
			}
			read[k] = start + end
			for _, x := range sstiExploit {
				if (!bare || exploitStrong(x)) && contains(body, x) {
					return Finding{Rule: RuleSSTI, Score: ScoreCritical}, true
				}
			}
		}
	}
	return Finding{}, false
}

// templateOpener reports a two-character template opener ("{{", "${",
// "#{", "*{", "@{", "<%", "{%", "[[", "{#", "<#", "[#"), or "__" (a Python
// object-model walk) in a value with a brace: one pass before any folding.
func templateOpener(d []byte) bool {
	for i := 0; i+1 < len(d); i++ {
		c, n := d[i], d[i+1]
		switch {
		case n == '{' && (c == '{' || c == '$' || c == '#' || c == '*' || c == '@'):
			return true
		case c == '{' && n == '$', c == '@' && n == '(':
			return true
		case c == '<' && (n == '%' || n == '#'):
			return true
		case c == '{' && (n == '%' || n == '#'):
			return true
		case c == '[' && (n == '[' || n == '#'):
			return true
		case c == '_' && n == '_':
			return bytes.IndexByte(d, '{') >= 0
		}
	}
	return false
}

// literalMethodCall reports an expression that calls a method of a string
// literal ("{{'a'.toUpperCase()}}", "${\"x\".concat(1)}"): a probe for
// which engine evaluates it, as templates call methods of their data, not
// of constants.
func literalMethodCall(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '\'' && b[0] != '"' {
		return false
	}
	end := bytes.IndexByte(b[1:], b[0])
	if end < 0 {
		return false
	}
	i := end + 2
	if i >= len(b) || b[i] != '.' {
		return false
	}
	j := i + 1
	for j < len(b) && (isWordByte(b[j])) {
		j++
	}
	return j > i+1 && j < len(b) && b[j] == '('
}

// templateLoop reports a template loop over the engine's objects: "for
// key, value in config.iteritems()", "for c in [1,2,3]".
func templateLoop(b []byte) bool {
	b = bytes.TrimSpace(b)
	if !hasPrefix(b, "for ") {
		return false
	}
	i := index(b, " in ")
	return i > 4 && i+4 < len(b)
}

// exploitStrong are the fragments that count even in bare braces.
func exploitStrong(x string) bool {
	return strings.HasPrefix(x, "__") || x == "getclass(" || x == "t(java." || x == "constructor.constructor" || x == "getruntime"
}

// literalArithmetic reports an expression of number (or quoted number)
// literals and arithmetic operators with at least one operator: the
// "{{7*7}}", "${7*'7'}", "<%= 7 * 7 %>" probes.
func literalArithmetic(b []byte) bool {
	ops, nums := 0, 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case isDigit(c):
			nums++
			for i+1 < len(b) && (isDigit(b[i+1]) || b[i+1] == '.') {
				i++
			}
		case c == '*' || c == '+' || c == '-' || c == '/' || c == '%':
			ops++
		case c == ' ' || c == '\'' || c == '"' || c == '(' || c == ')':
		default:
			return false
		}
	}
	return ops > 0 && nums >= 2
}
