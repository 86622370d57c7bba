package payload

import "bytes"

// Rule ids of the XML external entity analyser.
const (
	// RuleXXE is an XML document type that declares entities pointing
	// outside the document (SYSTEM or PUBLIC identifiers, parameter
	// entities), an external DTD, an XInclude, or an entity expansion
	// bomb.
	RuleXXE = "xxe"
)

// xxeAnalyzer reads the DOCTYPE of XML documents. Any document type with
// an internal subset that declares external or parameter entities is an
// attack: an API has no use for them. A DOCTYPE naming a public W3C DTD
// (XHTML pages) is allowed.
type xxeAnalyzer struct{}

func (xxeAnalyzer) Name() string { return "xxe" }

func (xxeAnalyzer) needs() uint64 { return clsLT }

func (xxeAnalyzer) Analyze(in *Input) (Finding, bool) {
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
		end := bytes.IndexByte(f[i:], '>')
		if end < 0 {
			end = len(f) - i
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
		return Finding{Rule: RuleXXE, Score: ScoreError}, true
	}
	// An external DTD: <!DOCTYPE x SYSTEM "...">.
	if i := index(f, "<!doctype"); i >= 0 {
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
