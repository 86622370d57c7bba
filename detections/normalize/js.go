package normalize

import (
	"bytes"
	"unicode/utf8"
)

// JSUnescape appends src to dst with JavaScript and JSON string escapes
// decoded: \uXXXX, \u{X...} (up to six hex digits) and \xXX. Other
// backslashes are kept, so Windows paths and regular expressions survive. It
// reports whether anything changed.
func JSUnescape(dst, src []byte) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		j := bytes.IndexByte(src[i:], '\\')
		if j < 0 {
			return append(dst, src[i:]...), changed
		}
		dst = append(dst, src[i:i+j]...)
		i += j
		c := src[i]
		if c != '\\' || i+3 >= len(src) {
			dst = append(dst, c)
			continue
		}
		switch src[i+1] {
		case 'u', 'U':
			if i+5 < len(src) {
				if r, ok := Hex4(src[i+2 : i+6]); ok {
					dst = appendRune(dst, r)
					i += 5
					changed = true
					continue
				}
			}
			if src[i+2] == '{' {
				j, r := i+3, rune(0)
				for j < len(src) && j-i-3 < 6 {
					v, ok := Unhex(src[j])
					if !ok {
						break
					}
					r = r<<4 | rune(v)
					j++
				}
				if j > i+3 && j < len(src) && src[j] == '}' {
					dst = appendRune(dst, r)
					i = j
					changed = true
					continue
				}
			}
		case 'x', 'X':
			if h, ok := Unhex(src[i+2]); ok {
				if l, ok := Unhex(src[i+3]); ok {
					dst = append(dst, h<<4|l)
					i += 3
					changed = true
					continue
				}
			}
		}
		dst = append(dst, c)
	}
	return dst, changed
}

// appendRune appends r as UTF-8; surrogates and out-of-range values become
// U+FFFD, as a JavaScript engine would render a lone surrogate.
func appendRune(dst []byte, r rune) []byte {
	if r > utf8.MaxRune {
		r = utf8.RuneError
	}
	return utf8.AppendRune(dst, r)
}
