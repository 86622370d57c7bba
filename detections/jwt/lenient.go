package jwt

import (
	"encoding/base64"
	"strings"
)

// A malformed token is reported as jwt_malformed, which only monitors by
// default. Libraries that are less strict than Parse may still accept it,
// and read its alg differently: with the padding or the standard alphabet
// decoded (eyJhbGciOiJub25lIn0=), or with the last (or first) of duplicate
// keys ({"alg":"HS256","alg":"none"}). lenientAlgNone reads the header as
// such libraries might, so that an unsigned token cannot hide behind a
// strictness finding.

// lenientAlgNone reports whether a lenient reading of the header of raw,
// a token Parse found malformed, names alg none in any of its alg members.
// The reading: '+' and '/' taken as '-' and '_', '=' and any other
// character outside base64 skipped, non-zero trailing bits accepted,
// duplicate keys and whatever follows the last complete member tolerated.
// Skipping a character never shifts the ones before it, so a decoder that
// stops at the padding or at a bad character reads a prefix of this, and
// sees no alg member this does not. Bounded as Parse is: nothing over
// lim.MaxTokenBytes is read, JSON nests at most lim.MaxJSONDepth.
func lenientAlgNone(raw string, lim Limits) bool {
	if len(raw) > lim.MaxTokenBytes {
		return false
	}
	hSeg, _, _ := strings.Cut(raw, ".")
	var stack [512]byte
	buf := stack[:0]
	if n := base64.RawURLEncoding.DecodedLen(len(hSeg)); n > len(stack) {
		buf = make([]byte, 0, n)
	}
	return algNoneIn(lenientDecode(buf, hSeg), lim.MaxJSONDepth)
}

// lenientDecode decodes seg into dst's spare capacity, reading either
// base64 alphabet and skipping any other character.
func lenientDecode(dst []byte, seg string) []byte {
	var q [4]byte
	n := 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c == '+':
			c = '-'
		case c == '/':
			c = '_'
		case segClass[c] != 0:
			continue
		}
		q[n] = c
		if n++; n == len(q) {
			dst = decodeQuantum(dst, q[:])
			n = 0
		}
	}
	if n > 1 {
		// One leftover character holds less than a byte: dropped.
		dst = decodeQuantum(dst, q[:n])
	}
	return dst
}

func decodeQuantum(dst []byte, q []byte) []byte {
	var out [3]byte
	n, _ := base64.RawURLEncoding.Decode(out[:], q) // q is in the alphabet
	return append(dst, out[:n]...)
}

// algNoneIn reports whether any top-level alg member of the JSON object
// in b, up to where it stops being one, is a none variant.
func algNoneIn(b []byte, maxDepth int) bool {
	s := jscan{b: b, maxDepth: maxDepth, dupOK: true}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	found := false
	_ = s.object(1, func(key, val []byte) error {
		if string(key) == "alg" && jsonKind(val) == '"' && isNoneVariant(string(stringBytes(val))) {
			found = true
			return errStop
		}
		return nil
	})
	return found
}
