package payload

// base64Analyzer looks inside values that are plainly base64 and decode to
// text (see normalize.Buffer.Base64): applications decode such parameters,
// so a payload can hide there. The decoded text goes through the same
// pipeline and is shown to the analysers whose findings rest on structure
// (markup that runs script, paths to system files, shell grammar, lookups,
// templates, entities); SQL, CRLF and URL checks stay out, because decoded
// telemetry (JSON with quotes, URLs and line breaks) is what base64 values
// usually hold. Findings keep the inner analyser's rule id.
type base64Analyzer struct {
	inner []Analyzer
}

func newBase64Analyzer() *base64Analyzer {
	return &base64Analyzer{inner: []Analyzer{
		xssAnalyzer{}, traversalAnalyzer{}, cmdiAnalyzer{}, log4shellAnalyzer{},
		sstiAnalyzer{}, xxeAnalyzer{}, shellshockAnalyzer{},
	}}
}

func (a *base64Analyzer) Name() string { return "base64" }

// hasB64Marker reports a digit or a symbol of the base64 alphabets: text
// long enough to matter almost always encodes to one, while long words and
// CamelCase identifiers have none.
func hasB64Marker(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; isDigit(c) || c == '+' || c == '/' || c == '=' || c == '-' || c == '_' {
			return true
		}
	}
	return false
}

func hexOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// b64Classes are the classes of the base64 alphabets (digits and
// lower-case letters have none).
const b64Classes = clsUpper | clsX | clsPlus | clsSlash | clsEq | clsDash | clsUnderscore | clsSpace | clsNewline

func (a *base64Analyzer) Analyze(in *Input) (Finding, bool) {
	if in.Field.IsKey || len(in.Field.Value) < 16 || in.Classes()&^b64Classes != 0 {
		return Finding{}, false
	}
	if hexOnly(in.Field.Value) || !hasB64Marker(in.Field.Value) {
		// Ids and hashes: hex is not how anything is smuggled.
		return Finding{}, false
	}
	b := in.Base64()
	if b == nil {
		return Finding{}, false
	}
	sub := in.Sub(str(b))
	sub.subField.URLEncoded, sub.subField.Plus = false, false
	var best Finding
	for _, x := range a.inner {
		if f, ok := x.Analyze(sub); ok && f.Score > best.Score {
			best = f
		}
	}
	return best, best.Score > 0
}
