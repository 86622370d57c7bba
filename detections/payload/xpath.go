package payload

// RuleXPath is XPath injection: a location path with an explicit axis
// ("child::node()", "/descendant::*", "ancestor-or-self::") or an XPath
// function over the document root ("count(/*)", "name(/*[1])",
// "string-length(name(/*))"): the probes that walk an XML document
// through a query the application builds from input.
const RuleXPath = "xpath"

// xpathAnalyzer reads values for XPath axes and root-walking functions.
type xpathAnalyzer struct{}

func (xpathAnalyzer) Name() string { return "xpath" }

func (xpathAnalyzer) needs() uint64 { return clsColon | clsParen }

var xpathAxes = set("child", "descendant", "descendant-or-self", "parent", "ancestor", "ancestor-or-self",
	"following-sibling", "preceding-sibling", "following", "preceding", "attribute", "namespace", "self")

var xpathFunctions = newVocabWords([]string{"count(/", "name(/", "string(/", "local-name(/", "string-length(/"})

func (xpathAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsColon|clsParen) || in.Field.IsKey || in.Binary() {
		return Finding{}, false
	}
	f := in.Folded()
	if in.Has(clsColon) && in.foldedClasses()&clsLetters != 0 {
		for off := 0; ; {
			i := index(f[off:], "::")
			if i < 0 {
				break
			}
			i += off
			off = i + 2
			j := i
			for j > 0 && (isLetter(f[j-1]) || f[j-1] == '-') {
				j--
			}
			if !xpathAxes[str(f[j:i])] || j > 0 && isWordByte(f[j-1]) {
				continue
			}
			// A node test after the axis: a name, '*' or node().
			if k := i + 2; k < len(f) && (isLetter(f[k]) || f[k] == '*') {
				return Finding{Rule: RuleXPath, Score: ScoreCritical}, true
			}
		}
	}
	if in.Has(clsParen|clsSlash) && in.Classes()&(clsParen|clsSlash) == clsParen|clsSlash {
		for k := range xpathFunctions {
			fn := &xpathFunctions[k]
			if !in.mayContain(fn) {
				continue
			}
			if i := index(f, fn.w); i >= 0 && (i == 0 || !isWordByte(f[i-1])) {
				return Finding{Rule: RuleXPath, Score: ScoreCritical}, true
			}
		}
	}
	return Finding{}, false
}

var _ Analyzer = xpathAnalyzer{}
