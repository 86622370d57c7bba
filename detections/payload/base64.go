package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections/normalize"
)

// base64Analyzer looks inside values that are plainly base64 and decode to
// text (see normalize.Buffer.Base64), and inside the data: URIs of any
// value ("data:text/html;base64,..."): applications decode such content, so
// a payload can hide there. The decoded text goes through the same
// pipeline and is shown to the analyzers whose findings rest on structure
// (markup that runs script, paths to system files, shell grammar, code,
// lookups, templates, entities). CRLF and URL checks stay out, because
// decoded telemetry (JSON with quotes, URLs and line breaks) is what base64
// values usually hold; for the same reason SQL injection counts only when
// the SQL analyzer is certain, and never in decoded JSON. Findings keep the
// inner analyzer's rule id.
type base64Analyzer struct {
	inner []Analyzer
}

func newBase64Analyzer() *base64Analyzer {
	return &base64Analyzer{inner: []Analyzer{
		phpAnalyzer{}, javaAnalyzer{}, xssAnalyzer{}, traversalAnalyzer{}, sensitiveFilesAnalyzer{}, cmdiAnalyzer{},
		log4shellAnalyzer{}, sstiAnalyzer{}, xxeAnalyzer{}, shellshockAnalyzer{}, ssiAnalyzer{}, nodejsAnalyzer{},
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
const b64Classes = clsUpper | clsX | clsLetters | clsPlus | clsSlash | clsEq | clsDash | clsUnderscore | clsSpace | clsNewline

func (a *base64Analyzer) Analyze(in *Input) (Finding, bool) {
	if in.Field.IsKey || len(in.Field.Value) < 16 {
		return Finding{}, false
	}
	if in.Classes()&^b64Classes != 0 {
		// Not base64 as a whole; a data: URI may carry some
		// ("data:text/html;base64,PHNjcmlwdD4...").
		if in.Classes()&(clsColon|clsSemi|clsComma) == clsColon|clsSemi|clsComma {
			return a.dataURI(in)
		}
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
	if best.Score < ScoreCritical && !jsonLike(b) {
		// SQL only counts in full: decoded text has quotes and
		// punctuation by nature, and only an injection that the grammar
		// or libinjection confirms is one.
		if f, ok := (sqliAnalyzer{}).Analyze(sub); ok && f.Score >= ScoreCritical {
			best = f
		}
	}
	return best, best.Score > 0
}

// jsonLike reports text that starts like a JSON object or array: decoded
// telemetry, whose quotes and commas read as SQL to a tokenizer.
func jsonLike(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// dataURI inspects the base64 content of the data: URIs in a value.
func (a *base64Analyzer) dataURI(in *Input) (Finding, bool) {
	d := in.Decoded()
	for off := 0; off < len(d); {
		i := indexFold(d[off:], "base64")
		if i < 0 {
			break
		}
		i += off
		off = i + 6
		j := i + 6
		for j < len(d) && (d[j] == ' ' || d[j] == '\n' || d[j] == '\r' || d[j] == '\t') {
			j++
		}
		if j >= len(d) || d[j] != ',' || !bytes.Contains(d[max(0, i-64):i], []byte("data:")) {
			continue
		}
		j++
		k := j
		for k < len(d) && (isAlnum(d[k]) || d[k] == '+' || d[k] == '/' || d[k] == '=' || d[k] == '-' || d[k] == '_') {
			k++
		}
		if k-j < 8 {
			continue
		}
		var buf normalize.Buffer
		b := buf.Base64(d[j:k])
		if b == nil {
			continue
		}
		sub := in.Sub(str(b))
		sub.subField.URLEncoded, sub.subField.Plus = false, false
		for _, x := range a.inner {
			if f, ok := x.Analyze(sub); ok && f.Score >= ScoreCritical {
				return f, true
			}
		}
	}
	return Finding{}, false
}
