package replay

import (
	"net/url"
	"strings"
)

// Masked replaces a secret value in the report.
const Masked = "***"

// sensitiveParts are name fragments whose values the report never shows,
// in header names and in query parameter names alike.
var sensitiveParts = []string{"token", "secret", "key", "session", "auth", "pass", "credential", "signature", "jwt"}

// IsSensitiveName reports whether values of a header or parameter with this
// name are masked: Authorization, Proxy-Authorization, Cookie, Set-Cookie,
// X-Api-Key, and any name containing token, secret, key, session, auth,
// pass, credential, signature or jwt (case-insensitive). Over-masking is the
// safe direction: a report is read by more people than the traffic was.
func IsSensitiveName(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key":
		return true
	}
	for _, p := range sensitiveParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

// MaskHeader returns the value to show for a header: cookie names with
// masked values, the scheme of an Authorization header with its credentials
// masked, Masked for other sensitive headers, a Referer with sensitive query
// values masked, and any other value unchanged.
func MaskHeader(name, value string) string {
	switch strings.ToLower(name) {
	case "cookie":
		return MaskCookie(value)
	case "set-cookie":
		n, _, _ := strings.Cut(value, "=")
		return strings.TrimSpace(n) + "=" + Masked
	case "authorization", "proxy-authorization":
		if scheme, _, ok := strings.Cut(strings.TrimSpace(value), " "); ok && validToken(scheme) {
			return scheme + " " + Masked
		}
		return Masked
	case "referer", "origin":
		return MaskTarget(value)
	}
	if IsSensitiveName(name) {
		return Masked
	}
	return value
}

// MaskCookie keeps the cookie names of a Cookie header and masks every
// value: "a=***; b=***".
func MaskCookie(v string) string {
	parts := strings.Split(v, ";")
	for i, p := range parts {
		n, _, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok {
			parts[i] = n + "=" + Masked
		} else {
			parts[i] = Masked
		}
	}
	return strings.Join(parts, "; ")
}

// MaskTarget masks the values of sensitive query parameters in a
// request-target or URL ("/cb?code=1&access_token=***"); everything else is
// kept byte for byte, because the values are the evidence a reviewer needs.
func MaskTarget(t string) string {
	base, query, ok := strings.Cut(t, "?")
	if !ok || query == "" {
		return t
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	pairs := strings.Split(query, "&")
	changed := false
	for i, p := range pairs {
		rawName, _, hasValue := strings.Cut(p, "=")
		if !hasValue {
			continue
		}
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			name = rawName
		}
		if IsSensitiveName(name) {
			pairs[i] = rawName + "=" + Masked
			changed = true
		}
	}
	if !changed {
		return t
	}
	out := base + "?" + strings.Join(pairs, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}
