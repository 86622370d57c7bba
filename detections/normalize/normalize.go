// Package normalize turns request data into the canonical text that payload
// analysers match against, undoing the encodings attackers use to slip a
// payload past a filter. Every step is bounded in passes and in input size,
// and works in caller-owned buffers so clean input costs no allocation.
package normalize

import (
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxPasses bounds repeated URL decoding: "%2525252e" needs several passes,
// but a hostile value must not cost more than this many.
const MaxPasses = 4

// MaxInput bounds the bytes of one value that are normalised; the rest is
// ignored. Bodies are already capped by max_body_bytes; this keeps one huge
// field from dominating the request's inspection time.
const MaxInput = 256 << 10

// Buffer holds scratch space reused between calls on one goroutine. The zero
// value is ready to use. Slices returned by its methods alias the buffer and
// are valid until the next call.
type Buffer struct {
	a, b, c []byte
}

// Decode returns s with URL escapes (%XX, %uXXXX), HTML character
// references, overlong UTF-8 and NUL bytes undone, repeating URL decoding
// until nothing changes or MaxPasses is reached. When plus is set, '+' means
// a space (query strings and form bodies). Case is preserved.
func (b *Buffer) Decode(s string, plus bool) []byte {
	if len(s) > MaxInput {
		s = s[:MaxInput]
	}
	b.a = append(b.a[:0], s...)
	for pass := 0; pass < MaxPasses; pass++ {
		var changed bool
		b.b, changed = URLDecode(b.b[:0], b.a, plus && pass == 0)
		b.a, b.b = b.b, b.a
		if !changed {
			break
		}
	}
	var changed bool
	b.b, changed = HTMLUnescape(b.b[:0], b.a)
	if changed {
		b.a, b.b = b.b, b.a
	}
	b.b, changed = FixOverlong(b.b[:0], b.a)
	if changed {
		b.a, b.b = b.b, b.a
	}
	return b.a
}

// Fold returns src lower-cased (Unicode NFKC first when src is not ASCII, so
// fullwidth and compatibility forms fold to ASCII), with NUL and other ASCII
// control bytes removed and whitespace runs collapsed to one space. The
// result uses the Buffer's third slice, so it may be called on the result of
// Decode.
func (b *Buffer) Fold(src []byte) []byte {
	ascii := true
	for _, c := range src {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		b.c = norm.NFKC.Append(b.c[:0], src...)
		src = append(b.b[:0], b.c...)
		b.b = src
	}
	dst := b.c[:0]
	space := false
	for i := 0; i < len(src); {
		c := src[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
				if !space {
					dst = append(dst, ' ')
					space = true
				}
				continue
			case c < 0x20 || c == 0x7f:
				continue // NUL and control bytes split keywords in some parsers
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			space = false
			continue
		}
		r, n := utf8.DecodeRune(src[i:])
		i += n
		if r == 0xa0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200a) || r == 0x2028 || r == 0x2029 || r == 0x202f || r == 0x205f || r == 0x3000 {
			if !space {
				dst = append(dst, ' ')
				space = true
			}
			continue
		}
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, src[i-1])
		} else {
			dst = utf8.AppendRune(dst, toLower(r))
		}
		space = false
	}
	b.c = dst
	return dst
}

func toLower(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	return unicodeLower(r)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// URLDecode appends src to dst with %XX and %uXXXX escapes decoded and, when
// plus is set, '+' turned into a space. Invalid escapes are kept literally
// (lenient, like most servers). It reports whether anything changed.
func URLDecode(dst, src []byte, plus bool) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '+' && plus:
			dst = append(dst, ' ')
			changed = true
		case c == '%' && i+2 < len(src):
			if h, ok := unhex(src[i+1]); ok {
				if l, ok := unhex(src[i+2]); ok {
					dst = append(dst, h<<4|l)
					i += 2
					changed = true
					continue
				}
			}
			if (src[i+1] == 'u' || src[i+1] == 'U') && i+5 < len(src) {
				if r, ok := hex4(src[i+2 : i+6]); ok {
					dst = utf8.AppendRune(dst, r)
					i += 5
					changed = true
					continue
				}
			}
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst, changed
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// FixOverlong appends src to dst with overlong UTF-8 encodings of ASCII
// (C0 AE, E0 80 AE, F0 80 80 AE for '.') replaced by the ASCII byte they
// spell; Go's UTF-8 decoder rejects them, but some servers historically did
// not. It reports whether anything changed.
func FixOverlong(dst, src []byte) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case (c == 0xc0 || c == 0xc1) && i+1 < len(src) && src[i+1]&0xc0 == 0x80:
			dst = append(dst, (c&0x1f)<<6|src[i+1]&0x3f)
			i++
			changed = true
		case c == 0xe0 && i+2 < len(src) && src[i+1]&0xe0 == 0x80 && src[i+2]&0xc0 == 0x80:
			dst = append(dst, (src[i+1]&0x3f)<<6|src[i+2]&0x3f)
			i += 2
			changed = true
		case c == 0xf0 && i+3 < len(src) && src[i+1]&0xf0 == 0x80 && src[i+2]&0xc0 == 0x80 && src[i+3]&0xc0 == 0x80:
			dst = append(dst, (src[i+2]&0x3f)<<6|src[i+3]&0x3f)
			i += 3
			changed = true
		default:
			dst = append(dst, c)
		}
	}
	return dst, changed
}

// HTMLUnescape appends src to dst with numeric character references
// (&#60; &#x3c;, with or without ';', leading zeros allowed) and the common
// named references decoded. It reports whether anything changed.
func HTMLUnescape(dst, src []byte) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '&' || i+2 >= len(src) {
			dst = append(dst, c)
			continue
		}
		if src[i+1] == '#' {
			j := i + 2
			hex := j < len(src) && (src[j] == 'x' || src[j] == 'X')
			if hex {
				j++
			}
			start := j
			var r rune
			for j < len(src) && j-start < 10 {
				d := src[j]
				if v, ok := unhex(d); ok && (hex || d <= '9') {
					if hex {
						r = r<<4 | rune(v)
					} else {
						r = r*10 + rune(d-'0')
					}
					j++
					continue
				}
				break
			}
			if j > start && r < 0x110000 {
				if j < len(src) && src[j] == ';' {
					j++
				}
				if r == 0 {
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				i = j - 1
				changed = true
				continue
			}
			dst = append(dst, c)
			continue
		}
		if r, n := namedEntity(src[i+1:]); n > 0 {
			dst = utf8.AppendRune(dst, r)
			i += n
			changed = true
			continue
		}
		dst = append(dst, c)
	}
	return dst, changed
}

// namedEntities are the references that matter for markup and script
// injection; a full HTML5 table is not needed to undo evasion.
var namedEntities = []struct {
	name string
	r    rune
}{
	{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''},
	{"colon;", ':'}, {"lpar;", '('}, {"rpar;", ')'}, {"sol;", '/'}, {"bsol;", '\\'},
	{"tab;", '\t'}, {"newline;", '\n'}, {"nbsp;", ' '}, {"period;", '.'},
	{"grave;", '`'}, {"semi;", ';'}, {"equals;", '='}, {"excl;", '!'},
	{"num;", '#'}, {"percnt;", '%'}, {"lsqb;", '['}, {"rsqb;", ']'},
	{"lcub;", '{'}, {"rcub;", '}'}, {"vert;", '|'}, {"dollar;", '$'},
	{"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"amp", '&'},
}

func namedEntity(s []byte) (rune, int) {
	for _, e := range namedEntities {
		if len(s) >= len(e.name) && equalFoldASCII(s[:len(e.name)], e.name) {
			return e.r, len(e.name)
		}
	}
	return 0, 0
}

func equalFoldASCII(b []byte, s string) bool {
	for i := 0; i < len(s); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
