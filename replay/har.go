package replay

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/, mirrored at
// github.com/ahmadnassri/har-spec): log.entries[].request carries method,
// url, httpVersion, headers, cookies, queryString and postData{mimeType,
// params, text}; entries[].startedDateTime is the request's start. The
// entry's serverIPAddress is the address of the *server* the browser or
// proxy connected to, never the client's, so a HAR has no client address.
//
// The file is one JSON object that can be hundreds of megabytes, so it is
// not decoded whole: a small scanner walks the top-level object to
// log.entries and hands each entry, bounded by MaxRecordBytes, to
// encoding/json. An oversized or malformed entry is reported and skipped;
// only a broken structure around the entries is fatal.

type harEntry struct {
	StartedDateTime string     `json:"startedDateTime"`
	Request         harRequest `json:"request"`
	Response        struct {
		Status int `json:"status"`
	} `json:"response"`
}

type harRequest struct {
	Method      string       `json:"method"`
	URL         string       `json:"url"`
	HTTPVersion string       `json:"httpVersion"`
	Headers     []harNV      `json:"headers"`
	Cookies     []harNV      `json:"cookies"`
	QueryString []harNV      `json:"queryString"`
	PostData    *harPostData `json:"postData"`
	BodySize    int64        `json:"bodySize"`
}

type harNV struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harPostData struct {
	MimeType string  `json:"mimeType"`
	Text     string  `json:"text"`
	Params   []harNV `json:"params"`
	// Encoding is not in HAR 1.2's postData (it is in content); some
	// exporters add "base64" for binary bodies, as content does.
	Encoding string `json:"encoding"`
}

type harDecoder struct {
	name  string
	br    *bufio.Reader
	max   int
	line  int
	entry int
	state int // harStart, harEntries, harDone
	buf   []byte
}

const (
	harStart = iota
	harInEntries
	harDone
)

func newHARDecoder(name string, br *bufio.Reader, max int) *harDecoder {
	return &harDecoder{name: name, br: br, max: max, line: 1}
}

var errHARStructure = errors.New("not a HAR file")

func (d *harDecoder) structural(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", errHARStructure, d.line, fmt.Sprintf(format, args...))
}

func (d *harDecoder) next() (*Record, error) {
	switch d.state {
	case harDone:
		return nil, io.EOF
	case harStart:
		found, err := d.findEntries()
		if err != nil {
			return nil, err
		}
		if !found {
			d.state = harDone
			return nil, io.EOF
		}
		d.state = harInEntries
		c, err := d.skipSpace()
		if err != nil {
			return nil, err
		}
		if c == ']' {
			d.state = harDone
			return nil, io.EOF
		}
		d.br.UnreadByte()
	default:
		c, err := d.skipSpace()
		if err != nil {
			return nil, err
		}
		switch c {
		case ']':
			d.state = harDone
			return nil, io.EOF
		case ',':
		default:
			return nil, d.structural("expected , or ] after entry %d", d.entry)
		}
	}
	c, err := d.skipSpace()
	if err != nil {
		return nil, err
	}
	d.entry++
	line := d.line
	if c != '{' {
		if err := d.skipValue(c); err != nil {
			return nil, err
		}
		return nil, d.invalid(line, InvalidEntry, "entry is not an object")
	}
	raw, tooLarge, err := d.capture()
	if err != nil {
		return nil, err
	}
	if tooLarge {
		return nil, d.invalid(line, InvalidTooLarge, "entry longer than "+strconv.Itoa(d.max)+" bytes")
	}
	return d.decode(raw, line)
}

func (d *harDecoder) invalid(line int, code, detail string) *InvalidRecordError {
	return &InvalidRecordError{Source: d.name, Format: FormatHAR, Line: line, Entry: d.entry, Code: code, Detail: detail}
}

// findEntries walks {"log": {…, "entries": [ and stops after the '['.
func (d *harDecoder) findEntries() (bool, error) {
	c, err := d.skipSpace()
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			return false, d.structural("empty input")
		}
		return false, err
	}
	if c != '{' {
		return false, d.structural("expected a JSON object")
	}
	sawLog := false
	for {
		key, end, err := d.nextKey()
		if err != nil {
			return false, err
		}
		if end {
			if !sawLog {
				return false, d.structural("no log object")
			}
			return false, nil
		}
		c, err := d.skipSpace()
		if err != nil {
			return false, err
		}
		if key != "log" {
			if err := d.skipValue(c); err != nil {
				return false, err
			}
			continue
		}
		sawLog = true
		if c != '{' {
			return false, d.structural("log is not an object")
		}
		for {
			key, end, err := d.nextKey()
			if err != nil {
				return false, err
			}
			if end {
				return false, nil // a log without entries: no records
			}
			c, err := d.skipSpace()
			if err != nil {
				return false, err
			}
			if key == "entries" {
				if c != '[' {
					return false, d.structural("log.entries is not an array")
				}
				return true, nil
			}
			if err := d.skipValue(c); err != nil {
				return false, err
			}
		}
	}
}

// nextKey reads `"key":` (after an optional ','), or reports the end of the
// object.
func (d *harDecoder) nextKey() (key string, end bool, err error) {
	c, err := d.skipSpace()
	if err != nil {
		return "", false, err
	}
	if c == ',' {
		if c, err = d.skipSpace(); err != nil {
			return "", false, err
		}
	}
	if c == '}' {
		return "", true, nil
	}
	if c != '"' {
		return "", false, d.structural("expected an object key")
	}
	raw, err := d.readString(256)
	if err != nil {
		return "", false, err
	}
	if err := json.Unmarshal(raw, &key); err != nil {
		return "", false, d.structural("bad object key")
	}
	if c, err = d.skipSpace(); err != nil {
		return "", false, err
	}
	if c != ':' {
		return "", false, d.structural("expected : after key")
	}
	return key, false, nil
}

func (d *harDecoder) readByte() (byte, error) {
	c, err := d.br.ReadByte()
	if err == io.EOF {
		return 0, io.ErrUnexpectedEOF
	}
	if c == '\n' {
		d.line++
	}
	return c, err
}

func (d *harDecoder) skipSpace() (byte, error) {
	for {
		c, err := d.readByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c, nil
	}
}

// readString reads the rest of a string whose opening quote was consumed and
// returns it quoted (for json.Unmarshal); longer than max is structural.
func (d *harDecoder) readString(max int) ([]byte, error) {
	out := []byte{'"'}
	esc := false
	for {
		c, err := d.readByte()
		if err != nil {
			return nil, err
		}
		if len(out) > max {
			return nil, d.structural("object key longer than %d bytes", max)
		}
		out = append(out, c)
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			return out, nil
		}
	}
}

// skipValue skips a value whose first byte c was consumed.
func (d *harDecoder) skipValue(c byte) error {
	switch c {
	case '{', '[':
		_, err := d.scanNested(nil)
		return err
	case '"':
		esc := false
		for {
			c, err := d.readByte()
			if err != nil {
				return err
			}
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				return nil
			}
		}
	}
	// A number, true, false or null: up to the next delimiter.
	for {
		c, err := d.br.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch c {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return d.br.UnreadByte()
		}
	}
}

// capture reads the rest of an object whose '{' was consumed, keeping at
// most max bytes; past that it keeps scanning to the end without buffering.
func (d *harDecoder) capture() (raw []byte, tooLarge bool, err error) {
	d.buf = append(d.buf[:0], '{')
	tooLarge, err = d.scanNested(&d.buf)
	return d.buf, tooLarge, err
}

// scanNested scans to the end of an object or array whose opening byte was
// consumed, tracking strings so brackets inside them do not count. With dst
// it appends the bytes, up to d.max. It works on the reader's buffer a chunk
// at a time, since a byte-at-a-time ReadByte costs more than the JSON
// decoding of what it finds.
func (d *harDecoder) scanNested(dst *[]byte) (tooLarge bool, err error) {
	depth := 1
	inStr, esc := false, false
	for {
		if _, err := d.br.Peek(1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return tooLarge, err
		}
		chunk, _ := d.br.Peek(d.br.Buffered())
		i := 0
	scan:
		for ; i < len(chunk); i++ {
			c := chunk[i]
			if c == '\n' {
				d.line++
			}
			if inStr {
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '"':
					inStr = false
				}
				continue
			}
			switch c {
			case '"':
				inStr = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					i++
					break scan
				}
			}
		}
		if dst != nil && !tooLarge {
			if len(*dst)+i > d.max {
				tooLarge = true
			} else {
				*dst = append(*dst, chunk[:i]...)
			}
		}
		d.br.Discard(i)
		if depth == 0 {
			return tooLarge, nil
		}
	}
}

func (d *harDecoder) decode(raw []byte, line int) (*Record, error) {
	var e harEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, d.invalid(line, InvalidJSON, jsonProblem(err))
	}
	q := e.Request
	r := &Record{
		Method: q.Method,
		Status: e.Response.Status,
		Format: FormatHAR,
		Source: d.name,
		Line:   line,
		Entry:  d.entry,
	}
	if !validToken(r.Method) {
		return nil, d.invalid(line, InvalidMethod, "request.method missing or not a token")
	}
	target, host, err := harTarget(q.URL)
	if err != nil {
		return nil, d.invalid(line, InvalidURL, err.Error())
	}
	if !strings.Contains(target, "?") && len(q.QueryString) > 0 {
		target += "?" + encodePairs(q.QueryString)
		r.note(NoteHARQueryFromParams)
	}
	if p := targetProblem(target); p != "" {
		return nil, d.invalid(line, InvalidTarget, p)
	}
	r.Target = target
	switch p, ok := normalizeProto(q.HTTPVersion); {
	case ok:
		r.Proto = p
	case strings.TrimSpace(q.HTTPVersion) == "":
		r.Proto = "HTTP/1.1"
		r.note(NoteHARNoHTTPVersion)
	default:
		return nil, d.invalid(line, InvalidProto, "request.httpVersion is not an HTTP version")
	}
	authority := ""
	for _, h := range q.Headers {
		if strings.HasPrefix(h.Name, ":") {
			// HTTP/2 and HTTP/3 exports (Chrome) list pseudo-headers; the
			// gateway's net/http server never shows them as headers.
			if strings.EqualFold(h.Name, ":authority") {
				authority = h.Value
			}
			r.note(NoteHARPseudoHeaders)
			continue
		}
		r.Headers = append(r.Headers, Header(h))
	}
	if p := checkHeaders(r); p != "" {
		return nil, d.invalid(line, InvalidHeader, p)
	}
	if r.Host == "" {
		r.Host = authority
	}
	if r.Host == "" {
		r.Host = host
	}
	if _, ok := r.HeaderValue("Cookie"); !ok && len(q.Cookies) > 0 {
		parts := make([]string, len(q.Cookies))
		for i, c := range q.Cookies {
			parts[i] = c.Name + "=" + c.Value
		}
		r.Headers = append(r.Headers, Header{Name: "Cookie", Value: strings.Join(parts, "; ")})
		if !validHeaderValue(r.Headers[len(r.Headers)-1].Value) {
			return nil, d.invalid(line, InvalidHeader, "request.cookies contain control bytes")
		}
		r.note(NoteHARCookieFromArray)
	}
	if pd := q.PostData; pd != nil {
		switch {
		case strings.EqualFold(pd.Encoding, "base64"):
			b, err := base64.StdEncoding.DecodeString(pd.Text)
			if err != nil {
				return nil, d.invalid(line, InvalidBody, "postData.text marked base64 is not base64")
			}
			r.Body = b
		case pd.Text != "":
			r.Body = []byte(pd.Text)
		case len(pd.Params) > 0 && strings.HasPrefix(strings.ToLower(pd.MimeType), "multipart/"):
			r.note(NoteHARMultipartNoText)
		case len(pd.Params) > 0:
			r.Body = []byte(encodePairs(pd.Params))
			r.note(NoteHARBodyFromParams)
		}
	} else if q.BodySize > 0 {
		r.note(NoteHARBodyMissing)
	}
	if s := strings.TrimSpace(e.StartedDateTime); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, d.invalid(line, InvalidTime, "startedDateTime is not ISO 8601 with a zone")
		}
		r.Time = t
	}
	return r, nil
}

// harTarget splits an absolute URL into request-target (path and query, as
// written) and host, dropping any fragment.
func harTarget(raw string) (target, host string, err error) {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", errors.New("request.url is not an absolute URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ws", "wss":
	default:
		return "", "", errors.New("request.url scheme is not http or https")
	}
	// Keep the bytes as written rather than u.RequestURI(), which
	// re-encodes.
	rest := raw[strings.Index(raw, "://")+3:]
	j := strings.IndexAny(rest, "/?")
	switch {
	case j < 0:
		target = "/"
	case rest[j] == '?':
		target = "/" + rest[j:]
	default:
		target = rest[j:]
	}
	return target, u.Host, nil
}

// encodePairs rebuilds an application/x-www-form-urlencoded string. HAR
// exporters disagree on whether params are decoded, so values that already
// look encoded (no byte that would need escaping) are kept as they are.
func encodePairs(ps []harNV) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(formEscape(p.Name))
		b.WriteByte('=')
		b.WriteString(formEscape(p.Value))
	}
	return b.String()
}

func formEscape(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '&' || c == '=' || c == '#' || c == '+' {
			return url.QueryEscape(s)
		}
	}
	return s
}
