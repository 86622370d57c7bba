// Package normalize turns request data into the canonical text that payload
// analyzers match against, undoing the encodings attackers use to slip a
// payload past a filter. Every step is bounded in passes and in input size,
// and works in caller-owned buffers so clean input costs no allocation.
//
// The pipeline, in the order Buffer applies it:
//
//  1. Decode: URL escapes (%XX, %uXXXX, repeatedly), HTML and XML character
//     references, JavaScript escapes (\uXXXX, \u{...}, \xXX), then overlong
//     UTF-8, repeated until nothing changes or MaxPasses rounds are done.
//  2. Fold: Unicode NFKC, lower case, control bytes removed, whitespace runs
//     collapsed.
//  3. Forms for one kind of analyzer, each computed only when asked for:
//     SQL (comments removed from the folded text), Path (separators and dot
//     look-alikes canonicalised) and Base64 (the text inside a value that is
//     plainly base64).
package normalize

import (
	"bytes"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// MaxPasses bounds repeated decoding: "%2525252e" needs several passes, but
// a hostile value must not cost more than this many.
const MaxPasses = 4

// MaxInput bounds the bytes of one value that are normalised; the rest is
// ignored. Bodies are already capped by max_body_bytes; this keeps one huge
// field from dominating the request's inspection time.
const MaxInput = 256 << 10

// Buffer holds scratch space reused between calls on one goroutine. The zero
// value is ready to use. Slices returned by its methods alias the buffer (or,
// for clean input, the argument) and are valid until the next call of the
// same method; callers must not modify them.
type Buffer struct {
	a, b, c []byte
	sql     []byte
	path    []byte
	b64     []byte
	// it lives in the Buffer because a norm.Iter escapes to the heap: kept
	// here, it is allocated once with the Buffer instead of once per call.
	it norm.Iter
}

// Decode returns s with URL escapes (%XX, %uXXXX), HTML and XML character
// references, JavaScript escapes and overlong UTF-8 undone, repeating until
// nothing changes or MaxPasses rounds are done. When plus is set, '+' means
// a space (query strings and form bodies) in the first round. Case is
// preserved. Input that holds nothing to decode is returned as is, without a
// copy.
func (b *Buffer) Decode(s string, plus bool) []byte {
	if len(s) > MaxInput {
		s = s[:MaxInput]
	}
	if !needsDecode(s, plus) {
		return unsafe.Slice(unsafe.StringData(s), len(s))
	}
	b.a = append(b.a[:0], s...)
	for pass := 0; pass < MaxPasses; pass++ {
		var changed, any bool
		// Each step runs only when its introducer is present: most values
		// need one kind of decoding, not all four.
		for i := 0; i < MaxPasses && (bytes.IndexByte(b.a, '%') >= 0 || plus && pass == 0 && i == 0); i++ {
			b.b, changed = URLDecode(b.b[:0], b.a, plus && pass == 0 && i == 0)
			if !changed {
				break
			}
			b.a, b.b, any = b.b, b.a, true
		}
		if bytes.IndexByte(b.a, '&') >= 0 {
			if b.b, changed = HTMLUnescape(b.b[:0], b.a); changed {
				b.a, b.b, any = b.b, b.a, true
			}
		}
		if bytes.IndexByte(b.a, '\\') >= 0 {
			if b.b, changed = JSUnescape(b.b[:0], b.a); changed {
				b.a, b.b, any = b.b, b.a, true
			}
		}
		if hasOverlongLead(b.a) {
			if b.b, changed = FixOverlong(b.b[:0], b.a); changed {
				b.a, b.b, any = b.b, b.a, true
			}
		}
		if !any || !needsDecode(unsafe.String(unsafe.SliceData(b.a), len(b.a)), false) {
			break
		}
	}
	return b.a
}

// decodeIntroducers marks the bytes that start something Decode undoes:
// 1 always, 2 only when '+' means a space.
var decodeIntroducers = func() (t [256]uint8) {
	for _, c := range []byte{'%', '&', '\\', 0xc0, 0xc1, 0xe0, 0xf0, 0xf8, 0xfc} {
		t[c] = 1
	}
	t['+'] = 2
	return t
}()

// NeedsDecode reports whether Decode(s, plus) would change s.
func NeedsDecode(s string, plus bool) bool { return needsDecode(s, plus) }

func hasOverlongLead(b []byte) bool {
	for _, c := range b {
		if c >= 0xc0 && decodeIntroducers[c] == 1 {
			return true
		}
	}
	return false
}

// needsDecode reports whether s holds anything Decode would change: an
// escape introducer or a lead byte of an overlong sequence.
func needsDecode(s string, plus bool) bool {
	var want uint8 = 1
	if plus {
		want = 3
	}
	for i := 0; i < len(s); i++ {
		if decodeIntroducers[s[i]]&want != 0 {
			return true
		}
	}
	return false
}

// Fold returns src lower-cased (Unicode NFKC first when src is not ASCII, so
// fullwidth and compatibility forms fold to ASCII), typographic quotes and
// primes turned into ASCII quotes, with NUL and other ASCII control bytes
// removed and whitespace runs collapsed to one space. The
// result uses the Buffer's third slice, so it may be called on the result of
// Decode.
func (b *Buffer) Fold(src []byte) []byte {
	if len(src) > MaxInput {
		src = src[:MaxInput]
	}
	// ASCII fast path: one table lookup per byte into a buffer sized once.
	if cap(b.c) < len(src) {
		b.c = make([]byte, 0, len(src)+len(src)/4)
	}
	dst := b.c[:len(src)]
	n := 0
	space := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c >= utf8.RuneSelf {
			b.c = dst[:n]
			return b.foldSlow(src, i, space)
		}
		switch t := foldASCII[c]; t {
		case foldSpace:
			if !space {
				dst[n] = ' '
				n++
				space = true
			}
		case foldDrop:
		default:
			dst[n] = t
			n++
			space = false
		}
	}
	b.c = dst[:n]
	return b.c
}

const (
	foldDrop  = 0x00 // control bytes: removed
	foldSpace = 0x01 // whitespace: collapsed
)

// foldASCII maps an ASCII byte to its folded form, foldDrop or foldSpace.
var foldASCII = func() (t [utf8.RuneSelf]byte) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = byte(c)
		if 'A' <= c && c <= 'Z' {
			t[c] = byte(c + 'a' - 'A')
		}
	}
	for _, c := range []byte{' ', '\t', '\n', '\r', '\v', '\f'} {
		t[c] = foldSpace
	}
	return t
}()

// foldSlow folds src from the first non-ASCII byte at i on, with the
// ASCII prefix already in b.c.
func (b *Buffer) foldSlow(src []byte, i int, space bool) []byte {
	if norm.NFKC.QuickSpan(src) < len(src) {
		// Most non-ASCII text is in NFKC already; only compatibility
		// forms (fullwidth letters, ligatures, superscripts) need this.
		// An Iter, unlike Form.Append, needs no allocation per call.
		b.it.Init(norm.NFKC, src)
		nf := b.b[:0]
		for !b.it.Done() {
			nf = append(nf, b.it.Next()...)
		}
		b.b = nf
		// Start over on the normalised text.
		src, i, space = nf, 0, false
		b.c = b.c[:0]
	}
	dst := b.c
	for i < len(src) {
		c := src[i]
		if c < utf8.RuneSelf {
			i++
			switch t := foldASCII[c]; t {
			case foldSpace:
				if !space {
					dst = append(dst, ' ')
					space = true
				}
			case foldDrop:
			default:
				dst = append(dst, t)
				space = false
			}
			continue
		}
		r, n := utf8.DecodeRune(src[i:])
		i += n
		if isUnicodeSpace(r) {
			if !space {
				dst = append(dst, ' ')
				space = true
			}
			continue
		}
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, src[i-1])
		case r == 0x2018 || r == 0x2019 || r == 0x201b || r == 0x2032 || r == 0x02bc:
			// Typographic single quotes and the prime: the best-fit
			// mappings of legacy code pages turn them into '\''.
			dst = append(dst, '\'')
		case r == 0x201c || r == 0x201d || r == 0x201f || r == 0x2033:
			dst = append(dst, '"')
		default:
			dst = utf8.AppendRune(dst, toLower(r))
		}
		space = false
	}
	b.c = dst
	return dst
}

func isUnicodeSpace(r rune) bool {
	return r == 0x85 || r == 0xa0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200a) || r == 0x2028 || r == 0x2029 || r == 0x202f || r == 0x205f || r == 0x3000
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

// Unhex returns the value of one hexadecimal digit.
func Unhex(c byte) (byte, bool) {
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
// plus is set, '+' turned into a space; "%X%Y" (an escape whose nibbles a
// stray '%' splits) decodes as %XY. Invalid escapes are kept literally
// (lenient, like most servers). It reports whether anything changed.
func URLDecode(dst, src []byte, plus bool) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		// Copy the run up to the next escape (or '+') in one go.
		var j int
		if plus {
			j = bytes.IndexAny(src[i:], "%+")
		} else {
			j = bytes.IndexByte(src[i:], '%')
		}
		if j < 0 {
			return append(dst, src[i:]...), changed
		}
		dst = append(dst, src[i:i+j]...)
		i += j
		c := src[i]
		switch {
		case c == '+' && plus:
			dst = append(dst, ' ')
			changed = true
		case c == '%' && i+2 < len(src):
			if h, ok := Unhex(src[i+1]); ok {
				if l, ok := Unhex(src[i+2]); ok {
					dst = append(dst, h<<4|l)
					i += 2
					changed = true
					continue
				}
				// "%2%f": the nibbles of one escape split by a second
				// '%' ("%%32%%66" once decoded), which decoders that skip
				// a stray '%' read as "%2f".
				if src[i+2] == '%' && i+3 < len(src) {
					if l, ok := Unhex(src[i+3]); ok {
						dst = append(dst, h<<4|l)
						i += 3
						changed = true
						continue
					}
				}
			}
			if (src[i+1] == 'u' || src[i+1] == 'U') && i+5 < len(src) {
				if r, ok := Hex4(src[i+2 : i+6]); ok {
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

// Hex4 decodes four hexadecimal digits (the XXXX of %uXXXX or \uXXXX).
func Hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		v, ok := Unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// FixOverlong appends src to dst with overlong UTF-8 encodings of ASCII
// punctuation, digits and controls (C0 AE, E0 80 AE, F0 80 80 AE,
// F8 80 80 80 AE, FC 80 80 80 80 AE for '.') replaced by the byte they
// spell; Go's UTF-8 decoder rejects them, but some servers historically did
// not. Overlong letters are left alone (see below). It reports whether
// anything changed.
func FixOverlong(dst, src []byte) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		var n int
		switch c {
		case 0xc0, 0xc1:
			n = 1
		case 0xe0:
			n = 2
		case 0xf0:
			n = 3
		case 0xf8:
			n = 4
		case 0xfc:
			n = 5
		}
		if n == 0 || i+n >= len(src) || !overlongTail(src[i+1:i+1+n], c) {
			dst = append(dst, c)
			continue
		}
		// The last two bytes carry the ASCII value; the ones between are
		// 0x80 padding.
		last := src[i+n]
		var v byte
		if n == 1 {
			v = (c&0x1f)<<6 | last&0x3f
		} else {
			v = (src[i+n-1]&0x3f)<<6 | last&0x3f
		}
		if 'a' <= v|0x20 && v|0x20 <= 'z' {
			// Decoders disagree on overlong letters: strict ones reject
			// them, lenient ones read "%c1%af" as 'o' or as '/'. Left as
			// they are, they read as junk (a separator in Path).
			dst = append(dst, c)
			continue
		}
		dst = append(dst, v)
		i += n
		changed = true
	}
	return dst, changed
}

// overlongTail reports whether tail (the bytes after lead byte c) are the
// continuation bytes of an overlong encoding of an ASCII byte.
func overlongTail(tail []byte, c byte) bool {
	for _, t := range tail {
		if t&0xc0 != 0x80 {
			return false
		}
	}
	switch len(tail) {
	case 1:
		return true
	case 2:
		return tail[0]&0xe0 == 0x80 // E0 80..9F: value < 0x800
	default:
		// F0 80 80 xx and longer: every byte but the last two is 0x80, and
		// the second-last carries at most one bit so the value is ASCII.
		for _, t := range tail[:len(tail)-2] {
			if t != 0x80 {
				return false
			}
		}
		return tail[len(tail)-2]&0x3e == 0
	}
}

// HTMLUnescape appends src to dst with numeric character references
// (&#60; &#x3c;, with or without ';', leading zeros allowed) and the common
// named references (including the five XML ones) decoded. It reports
// whether anything changed.
func HTMLUnescape(dst, src []byte) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		j := bytes.IndexByte(src[i:], '&')
		if j < 0 {
			return append(dst, src[i:]...), changed
		}
		dst = append(dst, src[i:i+j]...)
		i += j
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
				if v, ok := Unhex(d); ok && (hex || d <= '9') {
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

// entitiesByLetter indexes namedEntities by first letter: most '&' are
// query separators followed by a parameter name, and each should cost a
// look at one short list.
var entitiesByLetter = func() (idx [26][]int) {
	for i, e := range namedEntities {
		idx[e.name[0]-'a'] = append(idx[e.name[0]-'a'], i)
	}
	return idx
}()

func namedEntity(s []byte) (rune, int) {
	if len(s) == 0 {
		return 0, 0
	}
	c := s[0] | 0x20
	if c < 'a' || c > 'z' {
		return 0, 0
	}
	for _, k := range entitiesByLetter[c-'a'] {
		e := &namedEntities[k]
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
