package payload

import (
	"bytes"
	"strings"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/normalize"
)

// RuleProtocolEncoding is an URL-encoded value that decodes to a NUL byte,
// to bytes that cannot start UTF-8 (overlong C0/C1 forms, F5-FF), to
// fullwidth forms through %uFFxx, or that spells ASCII letters with \u or
// \x escapes: encodings no browser produces, used to make a filter and an
// application read different text.
const RuleProtocolEncoding = "protocol_encoding"

// encodingAnalyzer checks how the URL-encoded values of the query, forms,
// cookies and headers decode.
type encodingAnalyzer struct{}

func (encodingAnalyzer) Name() string { return RuleProtocolEncoding }

// Analyze checks how URL-encoded values decode.
func (encodingAnalyzer) Analyze(in *Input) (Finding, bool) {
	f := in.Field
	switch f.Kind {
	case detections.FieldQuery, detections.FieldForm, detections.FieldCookie, detections.FieldHeader:
	default:
		return Finding{}, false
	}
	v := f.Value
	if strings.IndexByte(v, '%') < 0 && strings.IndexByte(v, '\\') < 0 || in.Binary() {
		return Finding{}, false
	}
	if f.Kind != detections.FieldHeader && f.Kind != detections.FieldCookie {
		if overlongEscape(v) {
			return Finding{Rule: RuleProtocolEncoding, Score: ScoreCritical}, true
		}
		if fullwidthEscape(v) {
			return Finding{Rule: RuleProtocolEncoding, Score: ScoreCritical}, true
		}
		if (f.Kind == detections.FieldQuery || f.Kind == detections.FieldForm) && escapedLetter(v) {
			return Finding{Rule: RuleProtocolEncoding, Score: ScoreCritical}, true
		}
	}
	// NUL truncates strings in C and splits keywords for filters.
	if bytes.IndexByte(in.Decoded(), 0) >= 0 {
		return Finding{Rule: RuleProtocolEncoding, Score: ScoreCritical}, true
	}
	return Finding{}, false
}

// overlongEscape reports a percent-encoded overlong lead (C0, C1) or an
// overlong three- or four-byte form (E0 80-9F, F0 80-8F). Other bytes that
// are not UTF-8 (Latin-1 "%FC" for "ü") are how old sites encode text.
func overlongEscape(v string) bool {
	for i := 0; i+2 < len(v); i++ {
		if v[i] != '%' {
			continue
		}
		h, ok1 := normalize.Unhex(v[i+1])
		l, ok2 := normalize.Unhex(v[i+2])
		if !ok1 || !ok2 {
			continue
		}
		b := h<<4 | l
		switch {
		case b == 0xc0 || b == 0xc1:
			return true
		case (b == 0xe0 || b == 0xf0) && i+5 < len(v) && v[i+3] == '%':
			h2, ok3 := normalize.Unhex(v[i+4])
			if ok3 && h2 == 8 || b == 0xe0 && ok3 && h2 == 9 {
				return true
			}
		}
	}
	return false
}

// fullwidthEscape reports %uFFxx: fullwidth and halfwidth forms, which
// NFKC folds back to ASCII and IIS decodes as ASCII.
func fullwidthEscape(v string) bool {
	for i := 0; i+5 < len(v); i++ {
		if v[i] == '%' && (v[i+1] == 'u' || v[i+1] == 'U') && (v[i+2]|0x20 == 'f') && (v[i+3]|0x20 == 'f') {
			return true
		}
	}
	return false
}

// escapedLetter reports \uXXXX or \xXX escapes of ASCII letters in the
// URL-decoded value (the shared Decode has undone them already, so the
// percent escapes are undone here, within a small bound): JSON
// serialisers escape markup characters, never letters.
func escapedLetter(raw string) bool {
	check := func(s []byte) bool {
		for i := 0; i+3 < len(s); i++ {
			if s[i] != '\\' {
				continue
			}
			var hexs []byte
			switch s[i+1] {
			case 'u', 'U':
				if i+5 >= len(s) || s[i+2] != '0' || s[i+3] != '0' {
					continue
				}
				hexs = s[i+4 : i+6]
			case 'x', 'X':
				hexs = s[i+2 : i+4]
			default:
				continue
			}
			h, ok1 := normalize.Unhex(hexs[0])
			l, ok2 := normalize.Unhex(hexs[1])
			if ok1 && ok2 && isLetter(h<<4|l) {
				return true
			}
		}
		return false
	}
	var buf [512]byte
	out := buf[:0]
	for i := 0; i < len(raw) && len(out) < len(buf); i++ {
		c := raw[i]
		if c == '%' && i+2 < len(raw) {
			if h, ok := normalize.Unhex(raw[i+1]); ok {
				if l, ok := normalize.Unhex(raw[i+2]); ok {
					out = append(out, h<<4|l)
					i += 2
					continue
				}
			}
		}
		out = append(out, c)
	}
	return check(out)
}

var _ Analyzer = encodingAnalyzer{}
