package replay

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The combined log layout, shared by nginx's predefined "combined" format
// and Apache's "combined" LogFormat:
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//
// The common log format (no referer or user agent) is read too. Trailing
// quoted fields are ignored, except a fourth one that holds a list of IP
// addresses: nginx's stock "main" format ends with "$http_x_forwarded_for",
// which is kept as an X-Forwarded-For header.
//
// Quoted fields are unescaped the way the servers escape them: nginx writes
// '"', '\' and bytes outside 0x20-0x7e as \xXX; Apache writes \" and \\,
// C-style \n, \t, … and \xhh for other non-printable bytes.

const logTimeLayout = "02/Jan/2006:15:04:05 -0700"

type logLine struct {
	remote    string
	time      time.Time
	request   string
	status    int
	referer   string
	userAgent string
	hasUA     bool // false: common log format
	xff       string
}

var errLogLayout = errors.New("not the combined or common log layout")

// parseLogLine splits one line; a layout error is errLogLayout wrapped with
// the part that failed.
func parseLogLine(s string) (logLine, error) {
	var l logLine
	fail := func(what string) (logLine, error) {
		return logLine{}, &layoutError{what: what}
	}
	sp := strings.IndexByte(s, ' ')
	if sp <= 0 {
		return fail("no $remote_addr")
	}
	l.remote = s[:sp]
	s = s[sp+1:]
	// $remote_user may in principle contain spaces; the time is the first
	// bracketed field.
	lb := strings.Index(s, " [")
	if lb < 0 {
		return fail("no [$time_local]")
	}
	s = s[lb+2:]
	rb := strings.IndexByte(s, ']')
	if rb < 0 {
		return fail("no [$time_local]")
	}
	t, err := time.Parse(logTimeLayout, s[:rb])
	if err != nil {
		return fail("time is not dd/Mon/yyyy:hh:mm:ss ±hhmm")
	}
	l.time = t
	s = s[rb+1:]
	if !strings.HasPrefix(s, ` "`) {
		return fail(`no "$request"`)
	}
	req, rest, ok := quoted(s[1:])
	if !ok {
		return fail(`unterminated "$request"`)
	}
	l.request = req
	s = rest
	fields := strings.SplitN(strings.TrimLeft(s, " "), " ", 3)
	if len(fields) < 2 {
		return fail("no $status $body_bytes_sent")
	}
	if len(fields[0]) != 3 {
		return fail("$status is not 3 digits")
	}
	st, err := strconv.Atoi(fields[0])
	if err != nil || st < 100 {
		return fail("$status is not 3 digits")
	}
	l.status = st
	if b := fields[1]; b != "-" {
		if _, err := strconv.ParseUint(b, 10, 64); err != nil {
			return fail("$body_bytes_sent is not a number")
		}
	}
	if len(fields) == 2 {
		return l, nil // common log format
	}
	s = strings.TrimLeft(fields[2], " ")
	var q []string
	for len(q) < 4 && strings.HasPrefix(s, `"`) {
		v, rest, ok := quoted(s)
		if !ok {
			return fail("unterminated quoted field")
		}
		q = append(q, v)
		s = strings.TrimLeft(rest, " ")
	}
	switch len(q) {
	case 0:
		return l, nil // common log format with extra unquoted fields
	case 1:
		return fail(`"$http_referer" without "$http_user_agent"`)
	}
	l.referer, l.userAgent, l.hasUA = q[0], q[1], true
	if len(q) > 2 && isIPList(q[2]) {
		l.xff = q[2]
	}
	return l, nil
}

type layoutError struct{ what string }

func (e *layoutError) Error() string { return errLogLayout.Error() + ": " + e.what }
func (e *layoutError) Unwrap() error { return errLogLayout }

// quoted reads a quoted field starting at s[0] == '"' and returns its
// unescaped value and what follows the closing quote.
func quoted(s string) (val, rest string, ok bool) {
	if s == "" || s[0] != '"' {
		return "", s, false
	}
	var b strings.Builder
	escaped := false // b holds the value so far; otherwise s[1:i] does
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			if !escaped {
				return s[1:i], s[i+1:], true // the common case: no copy
			}
			return b.String(), s[i+1:], true
		case '\\':
			if !escaped {
				b.WriteString(s[1:i])
				escaped = true
			}
			if i+1 >= len(s) {
				return "", s, false
			}
			i++
			switch e := s[i]; e {
			case 'x':
				if i+2 < len(s) {
					if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
						b.WriteByte(byte(v))
						i += 2
						continue
					}
				}
				b.WriteString(`\x`)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'v':
				b.WriteByte('\v')
			case 'f':
				b.WriteByte('\f')
			case 'b':
				b.WriteByte('\b')
			default: // \" and \\ (Apache), and anything else verbatim
				b.WriteByte(e)
			}
		default:
			if escaped {
				b.WriteByte(c)
			}
		}
	}
	return "", s, false
}

// isIPList reports whether v looks like an X-Forwarded-For value.
func isIPList(v string) bool {
	if v == "" || v == "-" {
		return false
	}
	for p := range strings.SplitSeq(v, ",") {
		p = strings.TrimSpace(p)
		if _, err := netip.ParseAddr(p); err != nil {
			if _, err := netip.ParseAddrPort(p); err != nil {
				return false
			}
		}
	}
	return true
}

type combinedDecoder struct {
	lines *lineReader
	name  string
}

func (d *combinedDecoder) invalid(code, detail string) *InvalidRecordError {
	return &InvalidRecordError{Source: d.name, Format: FormatCombined, Line: d.lines.line, Code: code, Detail: detail}
}

func (d *combinedDecoder) next() (*Record, error) {
	line, err := d.lines.record(d.invalid)
	if err != nil {
		return nil, err
	}
	return d.decode(string(line))
}

func (d *combinedDecoder) decode(line string) (*Record, error) {
	l, err := parseLogLine(line)
	if err != nil {
		var le *layoutError
		if errors.As(err, &le) {
			return nil, d.invalid(InvalidLogLine, le.Error())
		}
		return nil, d.invalid(InvalidLogLine, errLogLayout.Error())
	}
	r := &Record{
		Time:   l.time,
		Status: l.status,
		Format: FormatCombined,
		Source: d.name,
		Line:   d.lines.line,
	}
	if a, err := netip.ParseAddr(l.remote); err == nil {
		r.ClientIP = a.Unmap().WithZone("")
	} else {
		r.note(NoteLogRemoteNotIP)
	}
	// "$request" is METHOD SP request-target SP HTTP-version. A target with
	// a space (nginx logs the raw line of a request it refused) makes the
	// first and last spaces the separators.
	first := strings.IndexByte(l.request, ' ')
	last := strings.LastIndexByte(l.request, ' ')
	switch {
	case l.request == "" || l.request == "-":
		return nil, d.invalid(InvalidRequestLine, "empty request line (the server refused the connection's bytes)")
	case first < 0:
		return nil, d.invalid(InvalidRequestLine, "request line is not METHOD TARGET PROTO")
	case first == last:
		// HTTP/0.9 "GET /": no version.
		r.Method, r.Target, r.Proto = l.request[:first], l.request[first+1:], "HTTP/0.9"
	default:
		p, ok := normalizeProto(l.request[last+1:])
		if !ok {
			return nil, d.invalid(InvalidRequestLine, "request line does not end in HTTP/x.y")
		}
		r.Method, r.Target, r.Proto = l.request[:first], l.request[first+1:last], p
	}
	if !validToken(r.Method) {
		return nil, d.invalid(InvalidMethod, "method is not a token")
	}
	if p := targetProblem(r.Target); p != "" {
		return nil, d.invalid(InvalidTarget, p)
	}
	if l.hasUA {
		if l.userAgent != "-" && l.userAgent != "" {
			r.Headers = append(r.Headers, Header{Name: "User-Agent", Value: l.userAgent})
		}
		if l.referer != "-" && l.referer != "" {
			r.Headers = append(r.Headers, Header{Name: "Referer", Value: l.referer})
		}
	} else {
		r.note(NoteLogNoUserAgent)
	}
	if l.xff != "" {
		r.Headers = append(r.Headers, Header{Name: "X-Forwarded-For", Value: l.xff})
		r.note(NoteLogForwardedFor)
	}
	if p := checkHeaders(r); p != "" {
		return nil, d.invalid(InvalidHeader, p)
	}
	return r, nil
}
