package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections"
)

// Rule ids of the CRLF injection analyzer.
const (
	// RuleCRLF is a line break followed by a header ("%0d%0aSet-Cookie:"),
	// a status line or a second blank line: HTTP response splitting or
	// header injection. In the path, parameter names, query values,
	// cookies and headers any line break followed by a header-shaped line
	// counts; in bodies, where text has line breaks, the header must be
	// one that changes a response or a request.
	RuleCRLF = "crlf"
	// RuleCRLFRequest is an HTTP request line inside a value ("GET /x
	// HTTP/1.1"): request smuggling through a proxy that splits lines.
	RuleCRLFRequest = "crlf_request"
)

// crlfAnalyzer reads values after decoding, where "%0d%0a", "&#13;&#10;"
// and "\r\n" escapes have become line breaks.
type crlfAnalyzer struct{}

func (crlfAnalyzer) Name() string { return "crlf" }

func (crlfAnalyzer) needs() uint64 { return clsNewline | clsSpace }

func (crlfAnalyzer) Analyze(in *Input) (Finding, bool) {
	if in.Field.Kind == detections.FieldBody && isXMLField(in) {
		// The data of an XML document, not its markup: an attribute value
		// with "&#13;&#10;Set-Cookie:" is copied somewhere.
		var fd Finding
		found := false
		xmlChunks(in, in.Field.Value, func(c string) bool {
			sub := in.Sub(c)
			sub.subField.Kind = detections.FieldForm
			fd, found = crlfCheck(sub)
			return !found
		})
		return fd, found
	}
	return crlfCheck(in)
}

func crlfCheck(in *Input) (Finding, bool) {
	if !in.Has(clsNewline) && in.Classes()&(clsSpace|clsSlash) != clsSpace|clsSlash {
		return Finding{}, false
	}
	d := in.Decoded()
	if len(d) < 4 || in.Binary() {
		return Finding{}, false
	}
	// Batch APIs (multipart/mixed, OData $batch) carry request lines in
	// their bodies by design.
	if k := in.Field.Kind; k != detections.FieldBody && k != detections.FieldMultipart && requestLine(d) {
		return Finding{Rule: RuleCRLFRequest, Score: ScoreCritical}, true
	}
	if bytes.IndexByte(d, '\n') < 0 && bytes.IndexByte(d, '\r') < 0 {
		return Finding{}, false
	}
	strict := false
	switch in.Field.Kind {
	case detections.FieldPath, detections.FieldSegment:
		// A line break has no place in a path.
		return Finding{Rule: RuleCRLF, Score: ScoreCritical}, true
	case detections.FieldQuery, detections.FieldCookie, detections.FieldHeader:
		strict = true
	case detections.FieldBody:
		// A raw body is never copied into a header, and MIME-like text
		// has header lines of its own.
		return Finding{}, false
	}
	if in.Field.IsKey && strict {
		// Nor in a query parameter or cookie name.
		return Finding{Rule: RuleCRLF, Score: ScoreCritical}, true
	}
	for i := 0; i < len(d); i++ {
		if d[i] != '\r' && d[i] != '\n' {
			continue
		}
		j := i + 1
		for j < len(d) && (d[j] == '\r' || d[j] == '\n') {
			j++
		}
		if j >= len(d) {
			break
		}
		if hasPrefixFold(d[j:], "http/1.") || hasPrefixFold(d[j:], "http/2") {
			return Finding{Rule: RuleCRLF, Score: ScoreCritical}, true
		}
		if strict && j-i >= 2 && blankLine(d[i:j]) {
			// An empty line ends the headers: what follows is a body the
			// attacker writes ("%0d%0a%0d%0a<html>").
			return Finding{Rule: RuleCRLF, Score: ScoreCritical}, true
		}
		k := j
		for k < len(d) && (isAlnum(d[k]) || d[k] == '-' || d[k] == '_') {
			k++
		}
		name := d[j:k]
		for k < len(d) && (d[k] == ' ' || d[k] == '\t' || d[k] == '\r') {
			k++
		}
		if len(name) == 0 || k >= len(d) || d[k] != ':' {
			i = j - 1
			continue
		}
		// Text has "Note:" lines too (browsers send textarea line breaks
		// as CRLF); an injection names a header HTTP knows, or an X- one.
		if sensitiveHeader(name) || strict && (httpHeader(name) || len(name) > 2 && name[0]|0x20 == 'x' && name[1] == '-') {
			return Finding{Rule: RuleCRLF, Score: ScoreCritical}, true
		}
		i = j - 1
	}
	return Finding{}, false
}

// lowerName lower-cases a header name of at most 32 bytes into buf, without
// allocating; ok is false for longer names (no standard header is longer).
func lowerName(buf *[32]byte, name []byte) ([]byte, bool) {
	if len(name) > len(buf) {
		return nil, false
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(name)], true
}

// sensitiveHeader reports headers whose injection changes a response or a
// request: cookies, redirects, content framing, caching, CORS.
func sensitiveHeader(name []byte) bool {
	var buf [32]byte
	lower, ok := lowerName(&buf, name)
	if !ok {
		return false
	}
	switch string(lower) {
	case "set-cookie", "cookie", "location", "refresh", "content-type", "content-length",
		"transfer-encoding", "content-disposition", "content-security-policy", "x-xss-protection",
		"access-control-allow-origin", "access-control-allow-credentials", "cache-control", "host",
		"connection", "link", "x-forwarded-for", "x-forwarded-host", "authorization", "remote-addr":
		return true
	}
	return false
}

// httpHeader reports the other standard request and response headers.
func httpHeader(name []byte) bool {
	var buf [32]byte
	lower, ok := lowerName(&buf, name)
	if !ok {
		return false
	}
	switch string(lower) {
	case "accept", "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "content-encoding",
		"content-language", "content-location", "content-range", "date", "etag", "expires", "if-match",
		"if-modified-since", "if-none-match", "keep-alive", "last-modified", "origin", "p3p", "pragma",
		"proxy-authenticate", "range", "referer", "retry-after", "server", "strict-transport-security",
		"te", "trailer", "upgrade", "user-agent", "vary", "via", "warning", "www-authenticate",
		"x-frame-options", "set-cookie2", "access-control-allow-methods", "access-control-allow-headers":
		return true
	}
	return false
}

// httpMethods that start a request line.
var httpMethods = []string{"get ", "post ", "head ", "put ", "delete ", "options ", "patch ", "connect ", "trace "}

// requestLine reports "METHOD target HTTP/x.y" anywhere in d.
func requestLine(d []byte) bool {
	for off := 0; ; {
		i := indexFold(d[off:], "http/")
		if i < 0 {
			return false
		}
		i += off
		off = i + 5
		if i+5 >= len(d) || !isDigit(d[i+5]) || i < 6 || d[i-1] != ' ' {
			continue
		}
		// Walk back over the target to the method.
		t := i - 1
		for t > 0 && d[t-1] != ' ' && d[t-1] != '\n' && d[t-1] != '\r' {
			t--
		}
		if t == i-1 || (d[t] != '/' && !hasPrefixFold(d[t:], "http") && d[t] != '*') || t < 2 || d[t-1] != ' ' {
			continue
		}
		m := t - 1
		for m > 0 && isLetter(d[m-1]) {
			m--
		}
		for _, hm := range httpMethods {
			if t-m == len(hm) && hasPrefixFold(d[m:], hm) {
				return true
			}
		}
	}
}

// indexFold returns the index of the lower-case sub in s, ignoring ASCII
// case, or -1.
func indexFold(s []byte, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if hasPrefixFold(s[i:], sub) {
			return i
		}
	}
	return -1
}

// blankLine reports a run of line breaks holding the empty line that ends
// HTTP headers, CRLF CRLF. Bare LF LF is how text separates paragraphs.
func blankLine(b []byte) bool {
	return bytes.Contains(b, []byte("\r\n\r\n"))
}
