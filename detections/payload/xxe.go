package payload

import "bytes"

// Rule ids of the XML external entity analyzer.
const (
	// RuleXXE is an XML document type that declares entities (pointing
	// outside the document with SYSTEM or PUBLIC identifiers, parameter
	// entities, or internal ones, which probe the parser), an external
	// DTD, an XInclude, or an entity expansion bomb.
	RuleXXE = "xxe"
)

// maxDecl bounds the bytes of one markup declaration that are read.
const maxDecl = 2048

// xxeAnalyzer reads the DOCTYPE of XML documents. Any document type with
// an internal subset that declares external or parameter entities is an
// attack: an API has no use for them. A DOCTYPE naming a public W3C DTD
// (XHTML pages) is allowed.
type xxeAnalyzer struct{}

func (xxeAnalyzer) Name() string { return "xxe" }

func (xxeAnalyzer) needs() uint64 { return clsLT | clsSemi }

// htmlEntities are the named references a value may hold as text; any
// other name alone is a reference to an entity some DTD must declare.
var htmlEntities = set("nbsp", "amp", "lt", "gt", "quot", "apos", "copy", "reg", "trade", "hellip", "mdash", "ndash",
	"laquo", "raquo", "lsquo", "rsquo", "ldquo", "rdquo", "euro", "pound", "yen", "cent", "deg", "times", "divide",
	"middot", "bull", "sect", "para", "plusmn", "micro", "frac12", "frac14", "frac34", "shy", "hearts", "star")

// entityProbe reports a value that is nothing but a reference to an
// undeclared entity, general ("&xxe;") or parameter ("%xxe;"): the probe
// of a document whose DTD is sent elsewhere.
func entityProbe(v string) bool {
	if len(v) < 4 || len(v) > 40 || (v[0] != '&' && v[0] != '%') || v[len(v)-1] != ';' {
		return false
	}
	name := v[1 : len(v)-1]
	for i := 0; i < len(name); i++ {
		if !isWordByte(name[i]) && name[i] != '-' && name[i] != '.' {
			return false
		}
	}
	if !isLetter(name[0]) {
		return false
	}
	return v[0] == '%' || !htmlEntities[lowerString(name)]
}

func (xxeAnalyzer) Analyze(in *Input) (Finding, bool) {
	if in.Classes()&(clsAmp|clsPercent) != 0 && in.Has(clsSemi) && entityProbe(str(in.Decoded())) {
		return Finding{Rule: RuleXXE, Score: ScoreCritical}, true
	}
	if !in.Has(clsLT) || in.Classes()&(clsLT|clsBang) != clsLT|clsBang && !in.Has(clsColon) {
		return Finding{}, false
	}
	f := in.Folded()
	if len(f) < 10 || bytes.IndexByte(f, '<') < 0 {
		return Finding{}, false
	}
	if contains(f, "xinclude") && contains(f, ":include") {
		return Finding{Rule: RuleXXE, Score: ScoreCritical}, true
	}
	entities := 0
	for off := 0; ; {
		i := index(f[off:], "<!entity")
		if i < 0 {
			break
		}
		i += off
		off = i + 8
		entities++
		// A declaration is short; bound it so that a value of unclosed
		// declarations costs linear time.
		end := bytes.IndexByte(f[i:min(len(f), i+maxDecl)], '>')
		if end < 0 {
			end = min(len(f)-i, maxDecl)
		}
		decl := f[i : i+end]
		if containsWord(decl, "system") || containsWord(decl, "public") || hasPrefix(f[skipSpace(f, i+8):], "%") {
			return Finding{Rule: RuleXXE, Score: ScoreCritical}, true
		}
		// Entities defined by other entities, repeated: a billion laughs.
		if bytes.Count(decl, []byte("&")) >= 2 {
			return Finding{Rule: RuleXXE, Score: ScoreCritical}, true
		}
	}
	if entities > 0 {
		// An internal entity alone expands to text the document names,
		// harmless by itself; but no API's documents declare entities,
		// and a request that does probes the parser.
		return Finding{Rule: RuleXXE, Score: ScoreCritical}, true
	}
	// An external DTD: <!DOCTYPE x SYSTEM "...">.
	if i := index(f, "<!doctype"); i >= 0 {
		// The first DOCTYPE only (a document has one), read whole: once,
		// so however long, in linear time.
		end := bytes.IndexByte(f[i:], '>')
		if end < 0 {
			end = len(f) - i
		}
		decl := f[i : i+end]
		if containsWord(decl, "system") && !contains(decl, "about:legacy-compat") {
			return Finding{Rule: RuleXXE, Score: ScoreCritical}, true
		}
	}
	return Finding{}, false
}
