package detections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Credential is what a request's token showed about who sends it, filled
// before the chain runs by a detection that implements Identifier (the jwt
// detection). Its claims count as an identity only when Verified.
type Credential struct {
	// Kind is "jwt".
	Kind string
	// ID is the token's hashed identity: it names the token in logs and
	// Redis; the token itself never leaves the request.
	ID string
	// Verified is set when the token's signature and claims were checked
	// with a configured key.
	Verified bool
	// Claim returns a claim of a verified token (nil otherwise).
	Claim func(name string) (string, bool)
	// Report is the identifier's own analysis, kept for its Inspect (one
	// parse per request).
	Report any
}

// Identifier is implemented by detections that establish the request's
// credential before the chain runs, because the shared state of other
// detections may be keyed by it (a per-user rate limit). Identify must not
// block on I/O longer than the detection's own budget.
type Identifier interface {
	Identify(ctx context.Context, r *Request)
}

// KeyPart is one element of a key: ip, ja4, ja3, header:<Name> or
// jwt:<claim>.
type KeyPart struct {
	Kind string // ip, ja4, ja3, header, jwt
	Name string // the header or claim name
}

// KeySpec says what a rate-limit bucket, an enumeration counter or a ban
// is keyed by: the client IP (the default, an empty spec or [ip]), or
// other identities, alone or combined. When a part cannot be resolved for
// a request (no verified token, no header), the request is keyed by its IP.
type KeySpec []KeyPart

// ParseKeySpec parses ["ip"], ["jwt:sub"], ["header:X-Api-Key", "ip"]...
func ParseKeySpec(parts []string) (KeySpec, error) {
	var out KeySpec
	var errs []error
	for i, p := range parts {
		kind, name, _ := strings.Cut(strings.TrimSpace(p), ":")
		switch kind {
		case "ip", "ja4", "ja3":
			if name != "" {
				errs = append(errs, fmt.Errorf("[%d]: %q takes no name", i, p))
			}
		case "header":
			if http.CanonicalHeaderKey(name) == "" || strings.ContainsAny(name, " \t:") {
				errs = append(errs, fmt.Errorf("[%d]: %q: want header:<Name>", i, p))
			}
			name = http.CanonicalHeaderKey(name)
		case "jwt":
			if name == "" || strings.ContainsAny(name, " \t") {
				errs = append(errs, fmt.Errorf("[%d]: %q: want jwt:<claim>, e.g. jwt:sub", i, p))
			}
		default:
			errs = append(errs, fmt.Errorf("[%d]: %q: want ip, ja4, ja3, header:<Name> or jwt:<claim>", i, p))
		}
		out = append(out, KeyPart{Kind: kind, Name: name})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// IsIP reports whether the spec is the client IP alone.
func (k KeySpec) IsIP() bool { return len(k) == 0 || (len(k) == 1 && k[0].Kind == "ip") }

// String renders the spec as configured ("jwt:sub+ip").
func (k KeySpec) String() string {
	if len(k) == 0 {
		return "ip"
	}
	parts := make([]string, len(k))
	for i, p := range k {
		parts[i] = p.Kind
		if p.Name != "" {
			parts[i] += ":" + p.Name
		}
	}
	return strings.Join(parts, "+")
}

// Subject returns the store subject of r under the spec: r.ClientKey for
// the IP alone (or when a part is missing), otherwise the hashed identity
// ("id:" and 32 hex digits), so no raw credential reaches Redis, logs or
// events. ok is false when it fell back to the IP.
func (k KeySpec) Subject(r *Request) (subject string, ok bool) {
	if k.IsIP() {
		return r.ClientKey, false
	}
	var values [4]string // no allocation for up to four parts
	vs := values[:0]
	for _, p := range k {
		v, found := p.value(r)
		if !found {
			return r.ClientKey, false
		}
		vs = append(vs, v)
	}
	return identityHash(k, vs), true
}

// identityHash is the one hash of an identity, used by Subject (values
// read from a request) and IdentitySubject (values an operator names), so
// an operator's ban by value hits the subject a request is keyed by: the
// domain string, the spec as configured, then each value after a zero
// byte; "id:" and the first 16 bytes in hex.
func identityHash(spec KeySpec, values []string) string {
	h := sha256.New()
	h.Write([]byte("rampart/identity/v1\x00"))
	h.Write([]byte(spec.String()))
	for _, v := range values {
		h.Write([]byte{0})
		h.Write([]byte(v))
	}
	var sum [32]byte
	return SubjectPrefix + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// SubjectPrefix marks hashed identities among store subjects (client keys
// are addresses or prefixes and never start with it).
const SubjectPrefix = "id:"

// IdentitySubject is Subject for values an operator names ("jwt:sub" and
// "alice"): the same hash, so an operator can ban an identity by value.
func IdentitySubject(spec KeySpec, values ...string) (string, error) {
	if spec.IsIP() || len(values) != len(spec) {
		return "", fmt.Errorf("identity %s needs %d values", spec, len(spec))
	}
	return identityHash(spec, values), nil
}

func (p KeyPart) value(r *Request) (string, bool) {
	switch p.Kind {
	case "ip":
		return r.ClientKey, true
	case "ja4":
		if r.TLS != nil && r.TLS.Fingerprint.JA4 != "" {
			return r.TLS.Fingerprint.JA4, true
		}
	case "ja3":
		if r.TLS != nil && r.TLS.Fingerprint.JA3Hash != "" {
			return r.TLS.Fingerprint.JA3Hash, true
		}
	case "header":
		if v := r.Header.Get(p.Name); v != "" {
			return v, true
		}
	case "jwt":
		if c := r.Credential; c != nil && c.Verified && c.Claim != nil {
			return c.Claim(p.Name)
		}
	}
	return "", false
}
