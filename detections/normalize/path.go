package normalize

import "unicode/utf8"

// Path returns decoded (the result of Decode) as a canonical path for
// traversal and file-inclusion checks: ASCII lower case; '\', the Unicode
// slash look-alikes (U+2215, U+2216, U+2044, U+FF0F, U+FF3C, ...) and the
// hex spellings "0x2f" and "0x5c" become '/'; the dot look-alikes (U+FF0E,
// U+2024, U+FE52) and "0x2e" become '.'; a NUL ends a segment (it
// truncates the name in C, so what precedes it names the file) and other
// control bytes disappear;
// bytes that are not text (invalid UTF-8, the orphan lead bytes of the
// IIS-era "%c0%9v" and "%c1%1c" separators), private-use code points and
// invalid percent escapes left by Decode ("%c0%qf") read as separators, as
// do "2f" and "5c" in a value that climbs with them ("..2fetc2fpasswd",
// escapes whose '%' was stripped), and
// runs of separators collapse to one '/'. Everything else is kept. The
// result is valid until the next call of Path.
func (b *Buffer) Path(decoded []byte) []byte {
	src := decoded
	if len(src) > MaxInput {
		src = src[:MaxInput]
	}
	// "..2fetc2fpasswd": escapes whose '%' was stripped. Once a climb is
	// spelled so, every "2f" and "5c" of the value is a separator.
	stripped := strippedClimb(src)
	dst := b.path[:0]
	sep := func() {
		if len(dst) == 0 || dst[len(dst)-1] != '/' {
			dst = append(dst, '/')
		}
	}
	for i := 0; i < len(src); {
		c := src[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(src[i:])
			switch {
			case r == 0x2215, r == 0x2216, r == 0x2044, r == 0x29f5, r == 0x29f8, r == 0x29f9, r == 0xfe68, r == 0xff0f, r == 0xff3c:
				sep()
			case r == 0xff0e, r == 0x2024, r == 0xfe52:
				dst = append(dst, '.')
			case r == utf8.RuneError, r >= 0xe000 && r <= 0xf8ff, r >= 0xfff0:
				// Bytes that are not text (invalid UTF-8, orphan C0/C1
				// lead bytes left by IIS-era "%c0%9v" separators) and
				// private-use or special code points: to the lenient
				// decoders these spellings target, a separator.
				sep()
			default:
				dst = append(dst, src[i:i+n]...)
			}
			i += n
			continue
		}
		switch {
		case c == '/' || c == '\\':
			sep()
		case c == '0' && i+3 < len(src) && (src[i+1]|0x20) == 'x' && src[i+2] == '2' && (src[i+3]|0x20) == 'e':
			dst = append(dst, '.')
			i += 3
		case c == '0' && i+3 < len(src) && (src[i+1]|0x20) == 'x' && ((src[i+2] == '2' && (src[i+3]|0x20) == 'f') || (src[i+2] == '5' && (src[i+3]|0x20) == 'c')):
			sep()
			i += 3
		case c == '%' && i+2 < len(src) && isAlnum(src[i+1]) && isAlnum(src[i+2]):
			// Decode left this escape alone, so it is not valid hex: to a
			// lenient decoder it is one unknown byte.
			sep()
			i += 2
		case stripped && (c == '2' && i+1 < len(src) && src[i+1]|0x20 == 'f' || c == '5' && i+1 < len(src) && src[i+1]|0x20 == 'c'):
			sep()
			i++
		case c == 0:
			// A NUL ends the name for C code ("boot.ini%00.htm" opens
			// boot.ini).
			sep()
		case c < 0x20 || c == 0x7f:
		case 'A' <= c && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		default:
			dst = append(dst, c)
		}
		i++
	}
	b.path = dst
	return dst
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// strippedClimb reports ".." followed by "2f" or "5c".
func strippedClimb(s []byte) bool {
	for i := 0; i+3 < len(s); i++ {
		if s[i] == '.' && s[i+1] == '.' && (s[i+2] == '2' && s[i+3]|0x20 == 'f' || s[i+2] == '5' && s[i+3]|0x20 == 'c') {
			return true
		}
	}
	return false
}
