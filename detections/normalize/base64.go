package normalize

import (
	"encoding/base64"
	"unicode/utf8"
)

// Base64 bounds: shorter values are ids and hashes, not smuggled payloads;
// longer ones are uploads, and decoding them costs more than it finds.
const (
	MinBase64 = 16
	MaxBase64 = 16 << 10
)

// Base64 returns the text inside src when src is plainly base64 (standard or
// URL-safe alphabet, not mixed, correct length and padding, at least one
// digit or upper-case letter and one lower-case letter) and decodes to
// printable UTF-8 text; otherwise nil. Random tokens, hashes and binary
// blobs decode to bytes that are not text, so they are left alone. The
// result is valid until the next call of Base64.
func (b *Buffer) Base64(src []byte) []byte {
	// Trailing padding and surrounding space are allowed; nothing else.
	for len(src) > 0 && (src[len(src)-1] == ' ' || src[len(src)-1] == '\n' || src[len(src)-1] == '\r') {
		src = src[:len(src)-1]
	}
	if len(src) < MinBase64 || len(src) > MaxBase64 {
		return nil
	}
	n := len(src)
	pad := 0
	for pad < 2 && n > 0 && src[n-1] == '=' {
		n--
		pad++
	}
	var std, url, lower, other bool
	for _, c := range src[:n] {
		switch {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			other = true
		case c == '+' || c == '/':
			std = true
		case c == '-' || c == '_':
			url = true
		default:
			return nil
		}
	}
	if !lower || !other || (std && url) || n%4 == 1 || (pad > 0 && (n+pad)%4 != 0) {
		return nil
	}
	enc := base64.RawStdEncoding
	if url {
		enc = base64.RawURLEncoding
	}
	need := enc.DecodedLen(n)
	if cap(b.b64) < need {
		b.b64 = make([]byte, need)
	}
	out := b.b64[:need]
	m, err := enc.Decode(out, src[:n])
	if err != nil {
		return nil
	}
	out = out[:m]
	if !printable(out) {
		return nil
	}
	return out
}

// printable reports whether b is valid UTF-8 text: no control bytes other
// than tab, CR and LF, and no replacement characters.
func printable(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError {
			return false
		}
		i += n
	}
	return true
}
