package payload

import (
	"bytes"
	"io"
	"mime/multipart"
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// Rule ids of the protocol analyzer: requests that no browser or HTTP
// library sends, shaped to make the gateway and the upstream disagree on
// what the request says.
const (
	// RuleProtocolMethod is a method outside GET, HEAD, POST, PUT, PATCH,
	// DELETE and OPTIONS (TRACE, CONNECT, WebDAV, invented or malformed
	// methods).
	RuleProtocolMethod = "protocol_method"
	// RuleProtocolContentType is a Content-Type that does not parse as
	// "type/subtype; name=value", carries a boundary on a type that is not
	// multipart, or declares its charset twice.
	RuleProtocolContentType = "protocol_content_type"
	// RuleProtocolCharset is a body (or Accept) charset in which ASCII
	// does not mean ASCII (UTF-7, UTF-16/32, EBCDIC) or that no library
	// knows; legacy multibyte charsets are a weak signal.
	RuleProtocolCharset = "protocol_charset"
	// RuleProtocolMultipart is a multipart body built to be parsed two
	// ways: quotes, semicolons, equals signs or backslashes inside part
	// names and file names, a Content-Transfer-Encoding, a part or
	// _charset_ declaring a forbidden charset.
	RuleProtocolMultipart = "protocol_multipart"
	// RuleProtocolRange is a Range header with inverted or excessive
	// ranges (the "Apache Killer" denial of service), or the obsolete
	// Request-Range header.
	RuleProtocolRange = "protocol_range"
	// RuleProtocolHeader is a request header that only attacks send:
	// Proxy (httpoxy), X-Middleware-Subrequest, WebDAV If and Lock-Token,
	// Content-Range or Content-Encoding without a body, an oversized
	// Accept-Encoding, an empty User-Agent or Accept (weak).
	RuleProtocolHeader = "protocol_header"
	// RuleProtocolBody is a GET or HEAD request with a body: a cache
	// poisoning and smuggling vector.
	RuleProtocolBody = "protocol_body"
	// RuleProtocolCookie is an RFC 2109 "$Version" cookie attribute, which
	// makes cookie parsers disagree on quoted values.
	RuleProtocolCookie = "protocol_cookie"
	// RuleProtocolLimit is an inspection limit reached (too many fields,
	// JSON nested too deep, too many multipart parts, a value too long,
	// too many text nodes in an XML value):
	// what lies beyond the limit is not inspected, so reaching it is a
	// finding of its own. The verdict's Location names the limit
	// ("limit:max_fields"). It is configured as analyzers.protocol_limit.
	RuleProtocolLimit = "protocol_limit"
)

// protocolAnalyzer checks the request as a whole: its method, framing
// headers, charsets and multipart structure. The encodings of single
// values are the protocol_encoding analyzer's (encoding.go).
type protocolAnalyzer struct {
	maxParts int // multipart parts whose headers are checked
}

func (protocolAnalyzer) Name() string { return "protocol" }

// AnalyzeRequest returns the strongest request-level finding.
func (a protocolAnalyzer) AnalyzeRequest(r *detections.Request) (Finding, bool) {
	var best Finding
	keep := func(f Finding, ok bool) {
		if ok && f.Score > best.Score {
			best = f
		}
	}
	switch r.Method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
	default:
		return Finding{Rule: RuleProtocolMethod, Score: ScoreCritical}, true
	}
	h := r.Header
	if len(r.Body) > 0 && (r.Method == "GET" || r.Method == "HEAD") {
		keep(Finding{Rule: RuleProtocolBody, Score: ScoreCritical}, true)
	}
	if v := h["Content-Type"]; len(v) > 0 && strings.TrimSpace(v[0]) != "" {
		keep(checkContentType(v[0], len(r.Body) > 0))
	}
	for _, a := range h["Accept"] {
		keep(checkAcceptCharset(a))
	}
	keep(checkHeaders(r))
	if best.Score >= ScoreCritical {
		return best, true
	}
	if mt, params := r.MediaType(); strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" && len(r.Body) > 0 {
		keep(checkMultipart(r.Body, params["boundary"], a.maxParts))
	}
	return best, best.Score > 0
}

func checkHeaders(r *detections.Request) (Finding, bool) {
	h := r.Header
	for _, v := range h["Range"] {
		if !validRange(v) {
			return Finding{Rule: RuleProtocolRange, Score: ScoreCritical}, true
		}
	}
	if _, ok := h["Request-Range"]; ok {
		return Finding{Rule: RuleProtocolRange, Score: ScoreCritical}, true
	}
	for _, name := range []string{"Proxy", "X-Middleware-Subrequest", "If", "Lock-Token"} {
		if _, ok := h[name]; ok {
			return Finding{Rule: RuleProtocolHeader, Score: ScoreCritical}, true
		}
	}
	if len(r.Body) == 0 {
		if _, ok := h["Content-Range"]; ok {
			return Finding{Rule: RuleProtocolHeader, Score: ScoreCritical}, true
		}
		if _, ok := h["Content-Encoding"]; ok {
			return Finding{Rule: RuleProtocolHeader, Score: ScoreCritical}, true
		}
	}
	for _, v := range h["Accept-Encoding"] {
		if len(v) > 100 {
			return Finding{Rule: RuleProtocolHeader, Score: ScoreCritical}, true
		}
	}
	for _, line := range h["Cookie"] {
		if cookieAttribute(line) {
			return Finding{Rule: RuleProtocolCookie, Score: ScoreCritical}, true
		}
	}
	// Header values are never URL-decoded by HTTP, but applications that
	// copy a header into a response often decode it first.
	for name, vs := range h {
		if name == "Cookie" || name == "Referer" {
			continue
		}
		for _, v := range vs {
			if encodedHeaderBreak(v) {
				return Finding{Rule: RuleCRLF, Score: ScoreCritical}, true
			}
		}
	}
	if v, ok := h["User-Agent"]; ok && len(v) > 0 && strings.TrimSpace(v[0]) == "" {
		return Finding{Rule: RuleProtocolHeader, Score: ScoreNotice}, true
	}
	if v, ok := h["Accept"]; ok && len(v) > 0 && strings.TrimSpace(v[0]) == "" {
		return Finding{Rule: RuleProtocolHeader, Score: ScoreNotice}, true
	}
	return Finding{}, false
}

// encodedHeaderBreak reports "%0d" or "%0a" followed by a header-shaped
// "Name:" in a header value.
func encodedHeaderBreak(v string) bool {
	for off := 0; ; {
		i := strings.IndexByte(v[off:], '%')
		if i < 0 {
			return false
		}
		i += off
		off = i + 1
		if i+2 >= len(v) || v[i+1] != '0' || (v[i+2]|0x20 != 'a' && v[i+2]|0x20 != 'd') {
			continue
		}
		j := i + 3
		for j+2 < len(v) && v[j] == '%' && v[j+1] == '0' && (v[j+2]|0x20 == 'a' || v[j+2]|0x20 == 'd') {
			j += 3
		}
		k := j
		for k < len(v) && (isAlnum(v[k]) || v[k] == '-') {
			k++
		}
		if k > j && k < len(v) && v[k] == ':' {
			return true
		}
	}
}

// cookieAttribute reports an RFC 2109 attribute ($Version, $Path,
// $Domain, $Port) in a Cookie line.
func cookieAttribute(line string) bool {
	for line != "" {
		var part string
		part, line, _ = strings.Cut(line, ";")
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "$version", "$path", "$domain", "$port":
			return true
		}
	}
	return false
}

// maxRanges bounds the byte ranges of one request; PDF readers ask for
// dozens, the "Apache Killer" for hundreds.
const maxRanges = 50

// validRange rejects byte ranges that only a denial of service asks for:
// an inverted range ("5-0"), or more than maxRanges. Other malformed
// values are ignored by servers, and so here.
func validRange(v string) bool {
	unit, set, ok := strings.Cut(strings.TrimSpace(v), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return true
	}
	n := 0
	for set != "" {
		var r string
		r, set, _ = strings.Cut(set, ",")
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if n++; n > maxRanges {
			return false
		}
		a, b, ok := strings.Cut(r, "-")
		a, b = strings.TrimSpace(a), strings.TrimSpace(b)
		if ok && a != "" && b != "" && allDigits(a) && allDigits(b) && (len(a) > len(b) || len(a) == len(b) && a > b) {
			return false
		}
	}
	return true
}

// allDigits reports a non-empty run of ASCII digits.
func allDigits[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return len(s) > 0
}

// checkContentType parses a Content-Type strictly: a token/token media
// type, then "; name=value" parameters with token or quoted-string values,
// blanks around the separators allowed.
func checkContentType(ct string, body bool) (Finding, bool) {
	mt, rest, ok := mediaTypeToken(ct)
	if !ok {
		return Finding{Rule: RuleProtocolContentType, Score: ScoreCritical}, true
	}
	charsets := 0
	var charset string
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		if rest[0] != ';' {
			return Finding{Rule: RuleProtocolContentType, Score: ScoreCritical}, true
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if rest == "" {
			break // a trailing ';' is sloppy but harmless
		}
		name, value, tail, ok := mediaParam(rest)
		if !ok {
			return Finding{Rule: RuleProtocolContentType, Score: ScoreCritical}, true
		}
		rest = tail
		switch {
		case strings.EqualFold(name, "charset"):
			charsets++
			charset = value
		case strings.EqualFold(name, "boundary"):
			if !strings.HasPrefix(mt, "multipart/") {
				return Finding{Rule: RuleProtocolContentType, Score: ScoreCritical}, true
			}
			if strings.Contains(value, "charset") {
				return Finding{Rule: RuleProtocolContentType, Score: ScoreCritical}, true
			}
		}
	}
	if charsets > 1 {
		return Finding{Rule: RuleProtocolContentType, Score: ScoreCritical}, true
	}
	if charsets == 1 && body {
		return checkCharset(charset)
	}
	return Finding{}, false
}

// mediaTypeToken reads "type/subtype" at the start of ct and returns it
// ("multipart/" for any multipart type) and the rest.
func mediaTypeToken(ct string) (string, string, bool) {
	ct = strings.TrimLeft(ct, " \t")
	i := 0
	for i < len(ct) && isToken(ct[i]) {
		i++
	}
	if i == 0 || i >= len(ct) || ct[i] != '/' {
		return "", "", false
	}
	j := i + 1
	for j < len(ct) && isToken(ct[j]) {
		j++
	}
	if j == i+1 {
		return "", "", false
	}
	mt := ct[:j]
	if strings.HasPrefix(strings.ToLower(mt[:min(len(mt), 10)]), "multipart/") {
		mt = "multipart/"
	}
	return mt, ct[j:], true
}

// mediaParam reads "name=value" at the start of s.
func mediaParam(s string) (name, value, rest string, ok bool) {
	i := 0
	for i < len(s) && isToken(s[i]) {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != '=' {
		return "", "", "", false
	}
	name, s = s[:i], s[i+1:]
	if s == "" {
		return "", "", "", false
	}
	if s[0] == '"' {
		for j := 1; j < len(s); j++ {
			switch s[j] {
			case '\\':
				j++
			case '"':
				return name, s[1:j], s[j+1:], true
			}
		}
		return "", "", "", false
	}
	// Unquoted values: tokens, plus what RFC 2046 allows in boundaries
	// and what media-type values ("type=application/json") hold.
	j := 0
	for j < len(s) && (isToken(s[j]) || strings.IndexByte("/:()+,?=", s[j]) >= 0) {
		j++
	}
	if j == 0 {
		return "", "", "", false
	}
	return name, s[:j], s[j:], true
}

// isToken reports RFC 9110 token characters.
func isToken(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// checkCharset classifies a charset label.
func checkCharset(cs string) (Finding, bool) {
	cs = strings.Trim(strings.TrimSpace(cs), `"'`)
	var buf [32]byte
	if len(cs) > len(buf) {
		return Finding{Rule: RuleProtocolCharset, Score: ScoreCritical}, true
	}
	lower := buf[:len(cs)]
	for i := 0; i < len(cs); i++ {
		c := cs[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch str(lower) {
	case "utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin1", "iso-8859-15",
		"windows-1252", "cp1252":
		return Finding{}, false
	case "gbk", "gb2312", "gb18030", "big5", "shift_jis", "shift-jis", "sjis", "euc-jp", "euc-kr",
		"iso-2022-jp", "koi8-r", "windows-1251", "windows-1250", "iso-8859-2", "iso-8859-5":
		// Legacy charsets of real sites, some of which hide ASCII bytes
		// inside multibyte characters.
		return Finding{Rule: RuleProtocolCharset, Score: ScoreWarning}, true
	}
	return Finding{Rule: RuleProtocolCharset, Score: ScoreCritical}, true
}

// checkAcceptCharset checks charset parameters inside Accept: asking for a
// response in EBCDIC or UTF-16 hides it from response inspection.
func checkAcceptCharset(a string) (Finding, bool) {
	for off := 0; ; {
		i := indexFoldString(a[off:], "charset=")
		if i < 0 {
			return Finding{}, false
		}
		i += off + len("charset=")
		off = i
		j := i
		for j < len(a) && a[j] != ',' && a[j] != ';' && a[j] != ' ' {
			j++
		}
		if f, ok := checkCharset(a[i:j]); ok && f.Score >= ScoreCritical {
			return f, true
		}
	}
}

func indexFoldString(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// checkMultipart reads the raw part headers, before a MIME library
// interprets their quoting, up to maxParts parts: the field walk reports a
// body with more as a protocol_limit finding.
func checkMultipart(body []byte, boundary string, maxParts int) (Finding, bool) {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for n := 0; n < maxParts; n++ {
		p, err := mr.NextRawPart()
		if err != nil {
			return Finding{}, false
		}
		if _, ok := p.Header["Content-Transfer-Encoding"]; ok {
			return Finding{Rule: RuleProtocolMultipart, Score: ScoreCritical}, true
		}
		if cd := p.Header.Get("Content-Disposition"); cd != "" && ambiguousDisposition(cd) {
			return Finding{Rule: RuleProtocolMultipart, Score: ScoreCritical}, true
		}
		if ct := p.Header.Get("Content-Type"); ct != "" {
			if i := indexFoldString(ct, "charset"); i >= 0 {
				v := ct[i+len("charset"):]
				v = strings.TrimLeft(v, " \t=")
				if j := strings.IndexAny(v, "; \t"); j >= 0 {
					v = v[:j]
				}
				if _, ok := checkCharset(v); ok {
					// Browsers never label a part's charset; a legacy
					// multibyte one there hides ASCII from the parser.
					return Finding{Rule: RuleProtocolMultipart, Score: ScoreCritical}, true
				}
			}
		}
		if p.FormName() == "_charset_" {
			v, _ := io.ReadAll(io.LimitReader(p, 64))
			if f, ok := checkCharset(string(bytes.TrimSpace(v))); ok {
				return Finding{Rule: RuleProtocolMultipart, Score: f.Score}, true
			}
		}
	}
	return Finding{}, false
}

// ambiguousDisposition reports a name or filename parameter whose quoted
// value holds characters that end a parameter in other parsers: ';', '=',
// '"' (escaped), '\' or a control byte, or an unterminated quote.
func ambiguousDisposition(cd string) bool {
	for _, param := range []string{"name=", "filename="} {
		for off := 0; ; {
			i := indexFoldString(cd[off:], param)
			if i < 0 {
				break
			}
			i += off
			off = i + len(param)
			if i > 0 && isToken(cd[i-1]) {
				continue // "filename=" inside "xfilename=", or "name=" inside "filename="
			}
			v := cd[off:]
			if v == "" || v[0] != '"' {
				continue
			}
			for j := 1; j < len(v); j++ {
				switch c := v[j]; {
				case c == '"':
					j = len(v)
				case c == ';' && htmlEntityEnd(v[:j]):
					// "&auml;" or "&#228;": how old browsers sent non-ASCII names.
				case c == '\\', c == ';', c == '=', c < 0x20:
					return true
				}
				if j == len(v)-1 && v[j] != '"' {
					return true
				}
			}
		}
	}
	return false
}

// htmlEntityEnd reports whether s ends with "&name" or "&#digits", so a
// ';' after it closes a character reference.
func htmlEntityEnd(s string) bool {
	i := len(s)
	for i > 0 && (isAlnum(s[i-1]) || s[i-1] == '#') {
		i--
	}
	return i > 0 && i < len(s) && s[i-1] == '&'
}

// Analyze is never called: the protocol analyzer reads the request as a
// whole (see requestOnly).
func (protocolAnalyzer) Analyze(*Input) (Finding, bool) { return Finding{}, false }

func (protocolAnalyzer) requestOnly() {}

var _ requestOnly = protocolAnalyzer{}
