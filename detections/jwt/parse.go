package jwt

import (
	"encoding/base64"
	"errors"
	"hash/maphash"
	"strings"
	"sync/atomic"
	"unsafe"
)

// Kind tells a signed token from an encrypted one.
type Kind uint8

// Token kinds.
const (
	KindJWS Kind = iota // three segments: header.payload.signature
	KindJWE             // five segments: header.key.iv.ciphertext.tag
)

// ErrNotJWT reports a value that is not a JWT at all (an opaque API key, a
// session id): no finding, the value is simply not ours.
var ErrNotJWT = errors.New("jwt: not a JWT")

// MalformedError reports a value that is meant as a JWT (its first segment
// decodes to a JSON object) but breaks the compact serialisation.
type MalformedError struct {
	// Reason is a stable snake_case word, e.g. "base64_padding" or
	// "header.json_duplicate_key". "too_large" means the token is over
	// the size limit.
	Reason string
}

func (e *MalformedError) Error() string { return "jwt: malformed token: " + e.Reason }

// reasonTooLarge is the MalformedError reason of an oversized token.
const reasonTooLarge = "too_large"

// Limits bound the work spent on one token.
type Limits struct {
	// MaxTokenBytes bounds the whole compact token.
	MaxTokenBytes int
	// MaxJSONDepth bounds the nesting of the header and claims objects.
	MaxJSONDepth int
}

// DefaultLimits are the limits of DefaultConfig.
func DefaultLimits() Limits { return Limits{MaxTokenBytes: 8 << 10, MaxJSONDepth: 16} }

// Header holds the JOSE header members the checks need.
type Header struct {
	Alg, Typ, Cty, Kid string
	// Jku and X5u are the key URLs, empty when absent.
	Jku, X5u string
	// JWK and X5C report an embedded key or certificate chain.
	JWK, X5C bool
	// Crit lists the critical extensions; HasCrit is set even when the
	// list is empty (which RFC 7515 forbids).
	Crit    []string
	HasCrit bool
	// B64Set and B64 carry RFC 7797's unencoded-payload flag.
	B64Set, B64 bool
	// Enc, Zip and P2C are the JWE members that matter for abuse.
	Enc, Zip string
	P2C      int64

	alg alg
}

// NumericDate is a JWT time claim in seconds since the epoch.
type NumericDate struct {
	Set  bool
	Unix int64
}

// Claims holds the registered claims the checks need; Claim reads others.
type Claims struct {
	Iss, Sub string
	Aud      []string
	Exp      NumericDate
	Nbf      NumericDate
	Iat      NumericDate

	raw  []byte
	aud1 [1]string
}

// Claim returns a top-level claim as a string: a JSON string decoded, a
// number as written, a boolean as "true" or "false". Objects, arrays,
// null and absent claims return false.
func (c *Claims) Claim(name string) (string, bool) {
	var out string
	var ok bool
	_ = walkObject(c.raw, 64, func(key, val []byte) error {
		if string(key) != name {
			return nil
		}
		switch jsonKind(val) {
		case '"':
			out, ok = string(stringBytes(val)), true
		case '0', 't', 'f':
			out, ok = string(val), true
		}
		return errStop
	})
	return out, ok
}

// errStop ends a walk early.
const errStop jsonError = "stop"

// Token is a parsed compact JWS or JWE. Its fields are read-only.
type Token struct {
	// Raw is the token as received. Never log it: use Identity.
	Raw    string
	Kind   Kind
	Header Header
	// Claims is empty for a JWE, whose payload is encrypted.
	Claims Claims
	// Signature is the decoded signature of a JWS.
	Signature []byte

	payloadEnd int
}

// SigningInput returns the bytes a JWS signature covers:
// BASE64URL(header) "." BASE64URL(payload).
func (t *Token) SigningInput() string { return t.Raw[:t.payloadEnd] }

// SignatureSegment returns the encoded signature segment.
func (t *Token) SignatureSegment() string {
	if t.Kind != KindJWS {
		return ""
	}
	return t.Raw[t.payloadEnd+1:]
}

// LooksLikeJWT reports whether s is meant as a JWT: it has a dot and its
// first segment starts with the base64 of '{' (optionally after JSON
// whitespace). It reads a few bytes of s and allocates nothing.
func LooksLikeJWT(s string) bool {
	if first := strings.IndexByte(s, '.'); first < 4 {
		return false
	}
	// Decode the first four characters leniently: this is only a
	// classification, the strict decoding comes later.
	var q [4]byte
	for i := range q {
		c := s[i]
		switch c {
		case '+':
			c = '-'
		case '/':
			c = '_'
		}
		q[i] = c
	}
	var out [3]byte
	if _, err := base64.RawURLEncoding.Decode(out[:], q[:]); err != nil {
		return false
	}
	for _, c := range out {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// Parse parses a compact JWS strictly, or the protected header of a
// compact JWE. It returns ErrNotJWT for values that are not meant as JWTs
// and a *MalformedError for those that are but break the rules:
//   - more than lim.MaxTokenBytes bytes ("too_large");
//   - not exactly three (JWS) or five (JWE) segments ("segments");
//   - padding, the standard alphabet, other characters or non-canonical
//     trailing bits in a segment ("base64_padding", "base64_alphabet",
//     "base64_char", "base64_bits");
//   - a header or claims set that is not one JSON object, holds duplicate
//     keys, invalid UTF-8 or escapes, or nests deeper than
//     lim.MaxJSONDepth ("header.json_*", "claims.json_*");
//   - a registered member of the wrong type ("header.alg_type", ...).
func Parse(raw string, lim Limits) (*Token, error) {
	if !LooksLikeJWT(raw) {
		return nil, ErrNotJWT
	}
	if len(raw) > lim.MaxTokenBytes {
		return nil, &MalformedError{Reason: reasonTooLarge}
	}
	var dots [5]int
	n := 0
	for i := 0; ; {
		j := strings.IndexByte(raw[i:], '.')
		if j < 0 {
			break
		}
		if n == len(dots) {
			return nil, &MalformedError{Reason: "segments"}
		}
		dots[n] = i + j
		n++
		i += j + 1
	}
	switch n {
	case 2:
		return parseJWS(raw, dots[0], dots[1], lim)
	case 4:
		return parseJWE(raw, dots[:4], lim)
	}
	return nil, &MalformedError{Reason: "segments"}
}

func parseJWS(raw string, d1, d2 int, lim Limits) (*Token, error) {
	hSeg, pSeg, sSeg := raw[:d1], raw[d1+1:d2], raw[d2+1:]
	for _, seg := range [...]string{hSeg, pSeg, sSeg} {
		if r := checkSegment(seg); r != "" {
			return nil, &MalformedError{Reason: r}
		}
	}
	enc := b64
	hn, pn := enc.DecodedLen(len(hSeg)), enc.DecodedLen(len(pSeg))
	buf := make([]byte, hn+pn+enc.DecodedLen(len(sSeg)))
	t := &Token{Raw: raw, Kind: KindJWS, payloadEnd: d2}
	hdr, err := decodeSegment(buf[:0:hn], hSeg)
	if err != nil {
		return nil, err
	}
	pay, err := decodeSegment(buf[hn:hn:hn+pn], pSeg)
	if err != nil {
		return nil, err
	}
	if t.Signature, err = decodeSegment(buf[hn+pn:hn+pn], sSeg); err != nil {
		return nil, err
	}
	if r := parseHeader(&t.Header, hdr, lim.MaxJSONDepth); r != "" {
		return nil, &MalformedError{Reason: "header." + r}
	}
	if r := parseClaims(&t.Claims, pay, lim.MaxJSONDepth); r != "" {
		return nil, &MalformedError{Reason: "claims." + r}
	}
	return t, nil
}

// parseJWE parses the protected header only: the other segments are
// checked for their alphabet but never decoded, as the gateway holds no
// decryption key.
func parseJWE(raw string, dots []int, lim Limits) (*Token, error) {
	hSeg := raw[:dots[0]]
	segs := [...]string{hSeg, raw[dots[0]+1 : dots[1]], raw[dots[1]+1 : dots[2]], raw[dots[2]+1 : dots[3]], raw[dots[3]+1:]}
	for _, seg := range segs {
		if r := checkSegment(seg); r != "" {
			return nil, &MalformedError{Reason: r}
		}
	}
	hdr, err := decodeSegment(make([]byte, 0, base64.RawURLEncoding.DecodedLen(len(hSeg))), hSeg)
	if err != nil {
		return nil, err
	}
	t := &Token{Raw: raw, Kind: KindJWE, payloadEnd: dots[1]}
	if r := parseHeader(&t.Header, hdr, lim.MaxJSONDepth); r != "" {
		return nil, &MalformedError{Reason: "header." + r}
	}
	return t, nil
}

// segClass classifies bytes for checkSegment: 0 base64url, else the
// reason.
var segClass = func() (t [256]uint8) {
	for i := range t {
		t[i] = 3
	}
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = 0
	}
	t['='], t['+'], t['/'] = 1, 2, 2
	return t
}()

var segReasons = [...]string{1: "base64_padding", 2: "base64_alphabet", 3: "base64_char"}

// checkSegment names the first character class that base64url without
// padding (RFC 7515 §2) does not allow.
func checkSegment(seg string) string {
	for i := 0; i < len(seg); i++ {
		if c := segClass[seg[i]]; c != 0 {
			return segReasons[c]
		}
	}
	if len(seg)%4 == 1 {
		return "base64_length"
	}
	return ""
}

// b64 is the one encoding of JWS segments: base64url, no padding, zero
// trailing bits.
var b64 = base64.RawURLEncoding.Strict()

// decodeSegment decodes seg into dst's spare capacity. The strict decoder
// refuses non-zero trailing bits, so each token has one encoding.
func decodeSegment(dst []byte, seg string) ([]byte, error) {
	out, err := b64.AppendDecode(dst, bytesView(seg))
	if err != nil {
		return nil, &MalformedError{Reason: "base64_bits"}
	}
	return out, nil
}

// bytesView views s as bytes without copying. The decoder only reads
// its input, so the string's immutability is kept.
func bytesView(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

func parseHeader(h *Header, b []byte, maxDepth int) string {
	var bad string
	err := walkObject(b, maxDepth, func(key, val []byte) error {
		kind := jsonKind(val)
		switch string(key) {
		case "alg":
			if kind != '"' {
				bad = "alg_type"
				return errStop
			}
			h.Alg = internAlg(stringBytes(val))
			h.alg = parseAlg(h.Alg)
		case "typ", "cty", "kid", "jku", "x5u", "enc", "zip":
			if kind != '"' {
				bad = string(key) + "_type"
				return errStop
			}
			v := stringBytes(val)
			switch string(key) {
			case "typ":
				h.Typ = internTyp(v)
			case "cty":
				h.Cty = internTyp(v)
			case "kid":
				h.Kid = intern(v)
			case "jku":
				h.Jku = string(v)
			case "x5u":
				h.X5u = string(v)
			case "enc":
				h.Enc = string(v)
			case "zip":
				h.Zip = string(v)
			}
		case "jwk":
			// An embedded key is a finding whatever its shape.
			h.JWK = true
			if kind != '{' {
				bad = "jwk_type"
				return errStop
			}
		case "x5c":
			h.X5C = true
			if kind != '[' {
				bad = "x5c_type"
				return errStop
			}
		case "crit":
			h.HasCrit = true
			crit, ok := stringArray(val, maxDepth)
			if !ok {
				bad = "crit_type"
				return errStop
			}
			h.Crit = crit
		case "b64":
			if kind != 't' && kind != 'f' {
				bad = "b64_type"
				return errStop
			}
			h.B64Set, h.B64 = true, kind == 't'
		case "p2c":
			if kind != '0' {
				bad = "p2c_type"
				return errStop
			}
			h.P2C = numericDate(val)
		}
		return nil
	})
	if bad != "" {
		return bad
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func parseClaims(c *Claims, b []byte, maxDepth int) string {
	var bad string
	err := walkObject(b, maxDepth, func(key, val []byte) error {
		kind := jsonKind(val)
		switch string(key) {
		case "iss", "sub":
			if kind != '"' {
				bad = string(key) + "_type"
				return errStop
			}
			if key[0] == 'i' {
				c.Iss = intern(stringBytes(val))
			} else {
				c.Sub = string(stringBytes(val))
			}
		case "aud":
			switch kind {
			case '"':
				// The common single audience lives in the Token itself.
				c.aud1[0] = intern(stringBytes(val))
				c.Aud = c.aud1[:]
			case '[':
				aud, ok := stringArray(val, maxDepth)
				if !ok {
					bad = "aud_type"
					return errStop
				}
				c.Aud = aud
			default:
				bad = "aud_type"
				return errStop
			}
		case "exp", "nbf", "iat":
			if kind != '0' {
				bad = string(key) + "_type"
				return errStop
			}
			d := NumericDate{Set: true, Unix: numericDate(val)}
			switch key[0] {
			case 'e':
				c.Exp = d
			case 'n':
				c.Nbf = d
			default:
				c.Iat = d
			}
		}
		return nil
	})
	if bad != "" {
		return bad
	}
	if err != nil {
		return err.Error()
	}
	c.raw = b
	return ""
}

// maxArrayStrings bounds aud and crit lists.
const maxArrayStrings = 64

// stringArray decodes a validated JSON array of strings.
func stringArray(val []byte, maxDepth int) ([]string, bool) {
	if jsonKind(val) != '[' {
		return nil, false
	}
	s := jscan{b: val, maxDepth: maxDepth}
	s.i = 1
	var out []string
	for {
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' && len(out) == 0 {
			return out, true
		}
		if s.i >= len(s.b) || s.b[s.i] != '"' || len(out) == maxArrayStrings {
			return nil, false
		}
		start := s.i
		if _, _, err := s.str(); err != nil {
			return nil, false
		}
		out = append(out, string(stringBytes(s.b[start:s.i])))
		s.ws()
		if s.i >= len(s.b) {
			return nil, false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			return out, true
		default:
			return nil, false
		}
	}
}

// internTable holds recent issuer, kid and audience strings: they repeat
// across nearly every request, so parsing them need not allocate. A slot
// is overwritten on collision; the table is bounded whatever the input.
var (
	internTable [1024]atomic.Pointer[string]
	internSeed  = maphash.MakeSeed()
)

// maxInterned is the longest string interned.
const maxInterned = 256

func intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxInterned {
		return string(b)
	}
	slot := &internTable[maphash.Bytes(internSeed, b)%uint64(len(internTable))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}

// internTyp returns constants for the common typ and cty values.
func internTyp(b []byte) string {
	switch string(b) {
	case "JWT":
		return "JWT"
	case "jwt":
		return "jwt"
	case "at+jwt":
		return "at+jwt"
	case "application/at+jwt":
		return "application/at+jwt"
	}
	return string(b)
}

// typMatches compares media types as RFC 7515 §4.1.9 says: case-insensitive,
// with the "application/" prefix optional.
func typMatches(got, want string) bool {
	return strings.EqualFold(trimApplication(got), trimApplication(want))
}

func trimApplication(s string) string {
	const p = "application/"
	if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
		return s[len(p):]
	}
	return s
}
