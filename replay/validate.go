package replay

import (
	"strings"
)

// The checks below mirror what net/http's server accepts, so a record the
// gateway could never have received (net/http answers 400 before any
// detection runs) is reported as invalid instead of being judged.

// validToken reports whether s is an RFC 9110 token (method, header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue rejects control bytes other than HTAB, as
// golang.org/x/net/http/httpguts.ValidHeaderFieldValue does.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// targetProblem returns why t cannot be a request-target, or "".
func targetProblem(t string) string {
	switch {
	case t == "":
		return "empty request-target"
	case t == "*":
		return ""
	case t[0] == '/':
	case strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://"):
	default:
		return "request-target must start with / (or be * or an absolute http URL)"
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= 0x20 || c == 0x7f {
			return "request-target contains a space or control byte"
		}
	}
	return ""
}

// normalizeProto maps the spellings exporters use to net/http's Proto.
func normalizeProto(p string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "http/1.1":
		return "HTTP/1.1", true
	case "http/1.0":
		return "HTTP/1.0", true
	case "http/0.9":
		return "HTTP/0.9", true
	case "http/2", "http/2.0", "h2", "h2c":
		return "HTTP/2.0", true
	case "http/3", "http/3.0", "h3":
		return "HTTP/3.0", true
	}
	return "", false
}

// checkHeaders validates names and values and moves Host into r.Host the
// way net/http does. It returns a problem description or "".
func checkHeaders(r *Record) string {
	hosts := 0
	for _, h := range r.Headers {
		if !validToken(h.Name) {
			return "header name is not a token"
		}
		if !validHeaderValue(h.Value) {
			return "value of header " + clip(h.Name, 64) + " contains control bytes"
		}
		if strings.EqualFold(h.Name, "Host") {
			hosts++
		}
	}
	if hosts == 0 {
		return ""
	}
	if hosts > 1 {
		return "more than one Host header (net/http answers 400)"
	}
	kept := r.Headers[:0]
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, "Host") {
			if r.Host == "" {
				r.Host = h.Value
			}
			continue
		}
		kept = append(kept, h)
	}
	r.Headers = kept
	r.note(NoteHostHeaderMoved)
	return ""
}

// clip shortens s to at most n bytes for messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
