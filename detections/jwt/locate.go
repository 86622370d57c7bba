package jwt

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// Source says where a candidate token was found.
type Source uint8

// Token sources.
const (
	SourceBearer Source = iota // a bearer header, e.g. Authorization: Bearer
	SourceHeader               // a header whose whole value is the token
	SourceCookie
	SourceQuery
)

// String returns "bearer", "header", "cookie" or "query".
func (s Source) String() string {
	switch s {
	case SourceBearer:
		return "bearer"
	case SourceHeader:
		return "header"
	case SourceCookie:
		return "cookie"
	}
	return "query"
}

// Candidate is a value found where tokens are carried that looks like a
// JWT (LooksLikeJWT). It may still be malformed; Analyze decides.
type Candidate struct {
	Source Source
	// Name is the configured header, cookie or parameter name.
	Name string
	// Value is the token. Never log it: use Identity.
	Value string
}

// LocationConfig says where tokens are looked for.
type LocationConfig struct {
	// BearerHeaders carry "Bearer <token>" (scheme case-insensitive, RFC
	// 9110 §11.1); a value without a scheme is taken whole. Other schemes
	// (Basic, Digest) are ignored.
	BearerHeaders []string `yaml:"bearer_headers"`
	// Headers carry the bare token, e.g. X-Access-Token.
	Headers []string `yaml:"headers"`
	// Cookies are cookie names (case-sensitive).
	Cookies []string `yaml:"cookies"`
	// Query are query parameter names.
	Query []string `yaml:"query"`
}

// DefaultLocationConfig looks where the common frameworks and OAuth
// (RFC 6750 §2) put access tokens.
func DefaultLocationConfig() LocationConfig {
	return LocationConfig{
		BearerHeaders: []string{"Authorization"},
		Cookies:       []string{"access_token", "id_token", "jwt"},
		Query:         []string{"access_token", "token", "jwt"},
	}
}

// maxCandidates bounds the tokens taken from one request, so a request
// with a thousand cookies costs a scan, not a thousand parses. Only
// distinct values that look like a JWT count: opaque values and repeats
// cannot push a token out.
const maxCandidates = 8

// Locator finds candidate tokens in requests. Build it once; it is safe
// for concurrent use.
type Locator struct {
	bearer, headers []string // canonical header keys
	cookies, query  []string
}

// NewLocator prepares cfg: header names are canonicalised once here so
// that Locate does not allocate.
func NewLocator(cfg LocationConfig) *Locator {
	l := &Locator{cookies: cfg.Cookies, query: cfg.Query}
	for _, h := range cfg.BearerHeaders {
		l.bearer = append(l.bearer, textproto.CanonicalMIMEHeaderKey(h))
	}
	for _, h := range cfg.Headers {
		l.headers = append(l.headers, textproto.CanonicalMIMEHeaderKey(h))
	}
	return l
}

// Locate appends to dst the candidates of a request (its headers, with the
// Cookie header, and its raw query without '?'): the distinct values that
// look like a JWT (LooksLikeJWT), first place first, at most eight. It
// allocates nothing when there is none, nor when dst has room; values are
// substrings of the input except for percent-encoded query values.
func (l *Locator) Locate(h http.Header, rawQuery string, dst []Candidate) []Candidate {
	dst, _ = l.locate(h, rawQuery, dst)
	return dst
}

// locate is Locate that also reports whether a further distinct token-like
// value was left out because the cap was reached.
func (l *Locator) locate(h http.Header, rawQuery string, dst []Candidate) ([]Candidate, bool) {
	n := len(dst)
	ok := true
	for _, name := range l.bearer {
		for _, v := range h[name] {
			if tok, found := bearerToken(v); found {
				if dst, ok = addCandidate(dst, n, SourceBearer, name, tok); !ok {
					return dst, true
				}
			}
		}
	}
	for _, name := range l.headers {
		for _, v := range h[name] {
			if tok := trimOWS(v); tok != "" {
				if t, found := bearerToken(tok); found {
					tok = t
				}
				if dst, ok = addCandidate(dst, n, SourceHeader, name, tok); !ok {
					return dst, true
				}
			}
		}
	}
	if len(l.cookies) > 0 {
		for _, line := range h["Cookie"] {
			if dst, ok = l.cookieCandidates(line, dst, n); !ok {
				return dst, true
			}
		}
	}
	if len(l.query) > 0 && rawQuery != "" {
		if dst, ok = l.queryCandidates(rawQuery, dst, n); !ok {
			return dst, true
		}
	}
	return dst, false
}

// addCandidate appends a candidate to dst (whose first n entries are the
// caller's) unless it does not look like a JWT or is already there. It
// returns false, without appending, when a new value finds dst full: the
// scan can stop, something was left out. (A collector struct behind a
// pointer would be simpler, but makes dst escape.)
func addCandidate(dst []Candidate, n int, src Source, name, val string) ([]Candidate, bool) {
	if !LooksLikeJWT(val) {
		return dst, true
	}
	for i := n; i < len(dst); i++ {
		if dst[i].Value == val {
			return dst, true
		}
	}
	if len(dst)-n >= maxCandidates {
		return dst, false
	}
	return append(dst, Candidate{Source: src, Name: name, Value: val}), true
}

// bearerToken extracts the credentials of "Bearer <token>", or a value
// without any scheme.
func bearerToken(v string) (string, bool) {
	v = trimOWS(v)
	if v == "" {
		return "", false
	}
	sp := strings.IndexAny(v, " \t")
	if sp < 0 {
		return v, !strings.EqualFold(v, "bearer")
	}
	if !strings.EqualFold(v[:sp], "bearer") {
		return "", false
	}
	tok := trimOWS(v[sp:])
	return tok, tok != ""
}

func trimOWS(s string) string { return strings.Trim(s, " \t") }

// cookieCandidates adds the configured cookies of one Cookie line; false
// means dst is full.
func (l *Locator) cookieCandidates(line string, dst []Candidate, n int) ([]Candidate, bool) {
	for line != "" {
		var part string
		part, line, _ = strings.Cut(line, ";")
		name, val, ok := strings.Cut(trimOWS(part), "=")
		if !ok {
			continue
		}
		for _, want := range l.cookies {
			if name == want {
				val = trimOWS(val)
				if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
					val = val[1 : len(val)-1]
				}
				if val != "" {
					var room bool
					if dst, room = addCandidate(dst, n, SourceCookie, want, val); !room {
						return dst, false
					}
				}
				break
			}
		}
	}
	return dst, true
}

// queryCandidates adds the configured query parameters; false means dst
// is full.
func (l *Locator) queryCandidates(q string, dst []Candidate, n int) ([]Candidate, bool) {
	for q != "" {
		var pair string
		if i := strings.IndexAny(q, "&;"); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			pair, q = q, ""
		}
		key, val, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(key, "%+") {
			// An encoded name (access%5Ftoken) is still that parameter
			// upstream; decoding allocates, so only then.
			k, err := url.QueryUnescape(key)
			if err != nil {
				continue
			}
			key = k
		}
		for _, want := range l.query {
			if key == want {
				if strings.ContainsAny(val, "%+") {
					v, err := url.QueryUnescape(val)
					if err != nil {
						break
					}
					val = v
				}
				if val != "" {
					var room bool
					if dst, room = addCandidate(dst, n, SourceQuery, want, val); !room {
						return dst, false
					}
				}
				break
			}
		}
	}
	return dst, true
}
