package jwt

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This is a strict JSON (RFC 8259) scanner for the header and claims
// objects. encoding/json is not used because it silently keeps the last of
// duplicate keys and turns invalid UTF-8 into U+FFFD: two parsers reading
// {"alg":"RS256","alg":"none"} differently is exactly the kind of gap a
// token is crafted for (RFC 7515 §4 and RFC 7519 §4 let a recipient reject
// duplicates; we do). The scanner is linear in its input, bounded in
// depth and in keys per object, and allocates only for escaped keys and
// for objects with many keys.

// jsonError is the reason a JSON text was rejected; it becomes the detail
// of a jwt_malformed finding.
type jsonError string

func (e jsonError) Error() string { return string(e) }

const (
	errJSONSyntax    jsonError = "json_syntax"
	errJSONDepth     jsonError = "json_depth"
	errJSONDuplicate jsonError = "json_duplicate_key"
	errJSONControl   jsonError = "json_control_char"
	errJSONUTF8      jsonError = "json_utf8"
	errJSONEscape    jsonError = "json_escape"
	errJSONKeys      jsonError = "json_too_many_keys"
	errJSONTrailing  jsonError = "json_trailing_data"
	errJSONNotObject jsonError = "json_not_object"
)

// maxObjectKeys bounds the members of one object. An 8 KiB token cannot
// hold many more; the bound keeps duplicate detection cheap.
const maxObjectKeys = 1024

// smallKeys is how many keys of an object are compared pairwise (on the
// stack) before a map takes over: OIDC tokens have 10 to 30 claims.
const smallKeys = 32

type jscan struct {
	b        []byte
	i        int
	maxDepth int
	// dupOK accepts duplicate keys: the lenient reading of a malformed
	// header (lenientHeader), never a token that is accepted.
	dupOK bool
}

// walkObject validates that b is exactly one JSON object and calls fn for
// each top-level member with its unescaped key and its raw value. Nested
// values are validated (syntax, depth, duplicate keys) but not decoded.
// The key slice is only valid during the call.
func walkObject(b []byte, maxDepth int, fn func(key, val []byte) error) error {
	s := jscan{b: b, maxDepth: maxDepth}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return errJSONNotObject
	}
	if err := s.object(1, fn); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return errJSONTrailing
	}
	return nil
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jscan) object(depth int, fn func(key, val []byte) error) error {
	if depth > s.maxDepth {
		return errJSONDepth
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var small [smallKeys][]byte
	var big map[string]struct{}
	n := 0
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errJSONSyntax
		}
		raw, esc, err := s.str()
		if err != nil {
			return err
		}
		key := raw
		if esc {
			key = unescape(nil, raw)
		}
		if n++; n > maxObjectKeys {
			return errJSONKeys
		}
		switch {
		case s.dupOK:
		case n <= smallKeys:
			for _, k := range small[:n-1] {
				if bytes.Equal(k, key) {
					return errJSONDuplicate
				}
			}
			small[n-1] = key
		default:
			if big == nil {
				big = make(map[string]struct{}, 2*smallKeys)
				for _, k := range small {
					big[string(k)] = struct{}{}
				}
			}
			if _, dup := big[string(key)]; dup {
				return errJSONDuplicate
			}
			big[string(key)] = struct{}{}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errJSONSyntax
		}
		s.i++
		s.ws()
		start := s.i
		if err := s.value(depth); err != nil {
			return err
		}
		if fn != nil {
			if err := fn(key, s.b[start:s.i]); err != nil {
				return err
			}
		}
		s.ws()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// value skips one value that sits inside a container at depth.
func (s *jscan) value(depth int) error {
	if s.i >= len(s.b) {
		return errJSONSyntax
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth+1, nil)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, _, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return errJSONSyntax
}

func (s *jscan) array(depth int) error {
	if depth > s.maxDepth {
		return errJSONDepth
	}
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func (s *jscan) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return errJSONSyntax
	}
	s.i += len(lit)
	return nil
}

func (s *jscan) number() error {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return errJSONSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return errJSONSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return errJSONSyntax
		}
	}
	s.i = i
	return nil
}

// str scans a string at s.i (a '"') and returns its raw content and
// whether it holds escapes. Escapes are validated here, including
// surrogate pairing (RFC 7493 forbids lone surrogates), so unescape cannot
// fail.
func (s *jscan) str() (raw []byte, esc bool, err error) {
	s.i++
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(raw) {
				return nil, false, errJSONUTF8
			}
			return raw, esc, nil
		case c == '\\':
			esc = true
			if err := s.escape(); err != nil {
				return nil, false, err
			}
		case c < 0x20:
			return nil, false, errJSONControl
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			s.i++
		}
	}
	return nil, false, errJSONSyntax
}

// escape validates the escape at s.i (a '\') and moves past it.
func (s *jscan) escape() error {
	if s.i+1 >= len(s.b) {
		return errJSONSyntax
	}
	switch s.b[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return nil
	case 'u':
		r, ok := hex4(s.b, s.i+2)
		if !ok {
			return errJSONEscape
		}
		s.i += 6
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return errJSONEscape
		case r >= 0xD800 && r <= 0xDBFF:
			if s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
				return errJSONEscape
			}
			lo, ok := hex4(s.b, s.i+2)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return errJSONEscape
			}
			s.i += 6
		}
		return nil
	}
	return errJSONEscape
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// unescape appends the decoded form of a string already validated by str.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			if r >= 0xD800 && r <= 0xDBFF {
				lo, _ := hex4(raw, i+8)
				r = utf16.DecodeRune(r, lo)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// jsonKind classifies a raw value by its first byte.
func jsonKind(val []byte) byte {
	if len(val) == 0 {
		return 0
	}
	switch c := val[0]; {
	case c == '"', c == '{', c == '[', c == 't', c == 'f', c == 'n':
		return c
	default:
		return '0'
	}
}

// stringBytes returns the decoded content of a validated JSON string.
func stringBytes(val []byte) []byte {
	raw := val[1 : len(val)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	return unescape(make([]byte, 0, len(raw)), raw)
}

// maxNumericDate clamps NumericDates so that sums and differences of them
// cannot overflow: 2^50 seconds is 35 million years.
const maxNumericDate = 1 << 50

// numericDate parses a validated JSON number as whole seconds, truncating
// fractions (RFC 7519 allows them) and clamping to ±maxNumericDate.
func numericDate(val []byte) int64 {
	neg := val[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	var n int64
	for ; i < len(val) && val[i] >= '0' && val[i] <= '9'; i++ {
		if n < maxNumericDate {
			n = n*10 + int64(val[i]-'0')
		}
	}
	if i < len(val) && (val[i] == 'e' || val[i] == 'E' || val[i] == '.') && bytes.ContainsAny(val[i:], "eE") {
		f, _ := strconv.ParseFloat(string(val), 64)
		switch {
		case math.IsNaN(f), f >= maxNumericDate:
			return maxNumericDate
		case f <= -maxNumericDate:
			return -maxNumericDate
		}
		return int64(f)
	}
	n = min(n, maxNumericDate)
	if neg {
		return -n
	}
	return n
}
