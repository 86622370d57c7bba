package replay

import (
	"strings"
)

// RouteKey names r's route with bounded cardinality: the method and the
// first depth path segments, with identifier-like segments replaced
// ("{n}" all digits, "{uuid}", "{hex}" 16+ hex digits, "{long}" over 40
// bytes, "{raw}" with control or non-ASCII bytes), and "/*" when the path
// goes deeper. GET /api/users/42/orders is "GET /api/users/*" at depth 2
// and "GET /api/users/{n}/*" at depth 3.
func RouteKey(r *Record, depth int) string {
	method := r.Method
	if len(method) > 16 || !validToken(method) {
		method = "{method}"
	}
	if r.Target == "*" {
		return method + " *"
	}
	path := r.Path()
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte(' ')
	n := 0
	for i, s := range segs {
		if n == depth {
			if i < len(segs) && !(i == len(segs)-1 && s == "") {
				b.WriteString("/*")
			}
			break
		}
		b.WriteByte('/')
		b.WriteString(routeSegment(s))
		n++
	}
	return b.String()
}

func routeSegment(s string) string {
	switch {
	case s == "":
		return ""
	case len(s) > 40:
		return "{long}"
	case allBytes(s, isDigit):
		return "{n}"
	case isUUID(s):
		return "{uuid}"
	case len(s) >= 16 && allBytes(s, isHex):
		return "{hex}"
	}
	// Control bytes and other oddities stay out of the table's keys.
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return "{raw}"
		}
	}
	return s
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F') }

func allBytes(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return s != ""
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}
