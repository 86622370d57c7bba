package jwt

import (
	"encoding/base64"
	"strings"
)

// A malformed token is reported as jwt_malformed, which only monitors by
// default. Libraries that are less strict than Parse may still accept it,
// and read its header differently: with the padding or the standard
// alphabet decoded (eyJhbGciOiJub25lIn0=), or with the last (or first) of
// duplicate keys ({"alg":"HS256","alg":"none"}). lenientHeader reads the
// header as such libraries might, so that neither an unsigned token nor
// one naming its own key can hide behind a strictness finding.

// lenientFindings appends, with detail "malformed", jwt_alg_none and
// jwt_key_injection when a lenient reading of the header of raw (a token
// Parse found malformed) calls for them.
func (a *Analyzer) lenientFindings(raw string, out []Finding) []Finding {
	none, key := a.lenientHeader(raw)
	if none {
		out = append(out, finding(RuleAlgNone, "malformed"))
	}
	if key {
		out = append(out, finding(RuleKeyInjection, "malformed"))
	}
	return out
}

// lenientHeader reports whether a lenient reading of the header of raw
// names alg none in any of its alg members, and whether any of its jwk,
// jku, x5u or x5c members is one keyChecks flags (keyMember).
// The reading: '+' and '/' taken as '-' and '_', '=' and any other
// character outside base64 skipped, non-zero trailing bits accepted,
// duplicate keys and whatever follows the last complete member tolerated.
// Skipping a character never shifts the ones before it, so a decoder that
// stops at the padding or at a bad character reads a prefix of this, and
// sees no member this does not. Bounded as Parse is: nothing over
// lim.MaxTokenBytes is read, JSON nests at most lim.MaxJSONDepth.
func (a *Analyzer) lenientHeader(raw string) (none, key bool) {
	if len(raw) > a.lim.MaxTokenBytes {
		return false, false
	}
	hSeg, _, _ := strings.Cut(raw, ".")
	var stack [512]byte
	buf := stack[:0]
	if n := base64.RawURLEncoding.DecodedLen(len(hSeg)); n > len(stack) {
		buf = make([]byte, 0, n)
	}
	s := jscan{b: lenientDecode(buf, hSeg), maxDepth: a.lim.MaxJSONDepth, dupOK: true}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false, false
	}
	_ = s.object(1, func(k, val []byte) error {
		switch string(k) {
		case "alg":
			none = none || jsonKind(val) == '"' && isNoneVariant(string(stringBytes(val)))
		case "jwk", "jku", "x5u", "x5c":
			key = key || a.keyMember(string(k), val)
		}
		if none && key {
			return errStop
		}
		return nil
	})
	return none, key
}

// keyMember reports whether the header member k (jwk, jku, x5u or x5c)
// with value val is one keyChecks flags in a well-formed token: an
// embedded jwk object, an x5c array unless allow_x5c, a non-empty jku or
// x5u string whose URL key_url_hosts does not allow.
func (a *Analyzer) keyMember(k string, val []byte) bool {
	kind := jsonKind(val)
	switch k {
	case "jwk":
		return kind == '{'
	case "x5c":
		return kind == '[' && !a.cfg.AllowX5C
	}
	// Without key_url_hosts every URL is flagged: no need to copy it.
	return kind == '"' && len(val) > 2 && (len(a.cfg.KeyURLHosts) == 0 || !a.keyURLAllowed(string(stringBytes(val))))
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
