package payload

import "bytes"

// RuleSSI is a server-side include directive ("<!--#exec cmd=...-->",
// "<!--#include virtual=...-->", "<!--#echo var=...-->") or an Edge Side
// Includes tag ("<esi:include src=...>", "<esi:vars>"): a server or a CDN
// that parses what it serves runs them.
const RuleSSI = "ssi"

// ssiAnalyzer reads markup for SSI directives and ESI tags; an ordinary
// HTML comment ("<!-- note -->") has neither.
type ssiAnalyzer struct{}

func (ssiAnalyzer) Name() string { return "ssi" }

func (ssiAnalyzer) needs() uint64 { return clsLT }

var ssiDirectives = set("exec", "include", "echo", "config", "printenv", "set", "fsize", "flastmod", "if", "elif", "else", "endif")

var esiTags = set("include", "vars", "debug", "inline", "choose", "when", "otherwise", "try", "attempt", "except",
	"comment", "remove", "assign", "eval", "function", "param", "text")

func (ssiAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsLT) || in.Binary() {
		return Finding{}, false
	}
	f := in.Folded()
	for off := 0; ; {
		i := bytes.IndexByte(f[off:], '<')
		if i < 0 {
			return Finding{}, false
		}
		i += off
		off = i + 1
		rest := f[i+1:]
		switch {
		case hasPrefix(rest, "!--#"):
			j := skipSpace(rest, 4)
			if ssiDirectives[str(wordAt(rest, j))] {
				return Finding{Rule: RuleSSI, Score: ScoreCritical}, true
			}
		case hasPrefix(rest, "!--esi"):
			return Finding{Rule: RuleSSI, Score: ScoreCritical}, true
		case hasPrefix(rest, "esi:"), hasPrefix(rest, "/esi:"):
			j := 4
			if rest[0] == '/' {
				j = 5
			}
			if esiTags[str(wordAt(rest, j))] {
				return Finding{Rule: RuleSSI, Score: ScoreCritical}, true
			}
		}
	}
}

var _ Analyzer = ssiAnalyzer{}
