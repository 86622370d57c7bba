package replay

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// jsonlRecord is one line of the corpus record format
// (shared/corpus/README.md, read by shared/tools/wafeval), plus the optional
// fields a recording needs: client_ip, time, host, proto and status. Fields
// the replay does not use (source, category, payload, …) are ignored.
type jsonlRecord struct {
	ID       string     `json:"id"`
	Expect   string     `json:"expect"`
	Method   string     `json:"method"`
	Path     string     `json:"path"`
	Headers  [][]string `json:"headers"`
	Body     *string    `json:"body"`
	BodyB64  *string    `json:"body_b64"`
	ClientIP string     `json:"client_ip"`
	Time     string     `json:"time"`
	Host     string     `json:"host"`
	Proto    string     `json:"proto"`
	Status   int        `json:"status"`
}

type jsonlDecoder struct {
	lines *lineReader
	name  string
}

func (d *jsonlDecoder) invalid(code, detail string) *InvalidRecordError {
	return &InvalidRecordError{Source: d.name, Format: FormatJSONL, Line: d.lines.line, Code: code, Detail: detail}
}

func (d *jsonlDecoder) next() (*Record, error) {
	line, err := d.lines.record(d.invalid)
	if err != nil {
		return nil, err
	}
	return d.decode(line)
}

func (d *jsonlDecoder) decode(line []byte) (*Record, error) {
	var j jsonlRecord
	if err := jsonv2.Unmarshal(line, &j, jsonv2.MatchCaseInsensitiveNames(true), jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)); err != nil {
		return nil, d.invalid(InvalidJSON, jsonProblem(err))
	}
	r := &Record{
		Method: j.Method,
		Target: j.Path,
		Proto:  "HTTP/1.1",
		Host:   j.Host,
		ID:     j.ID,
		Label:  j.Expect,
		Status: j.Status,
		Format: FormatJSONL,
		Source: d.name,
		Line:   d.lines.line,
	}
	if !validToken(r.Method) {
		return nil, d.invalid(InvalidMethod, "method missing or not a token")
	}
	if p := targetProblem(r.Target); p != "" {
		return nil, d.invalid(InvalidTarget, "path: "+p)
	}
	if j.Proto != "" {
		p, ok := normalizeProto(j.Proto)
		if !ok {
			return nil, d.invalid(InvalidProto, "proto is not HTTP/x.y")
		}
		r.Proto = p
	}
	if j.Status != 0 && (j.Status < 100 || j.Status > 999) {
		return nil, d.invalid(InvalidStatus, "status is not a 3-digit code")
	}
	if len(j.Headers) > 0 {
		r.Headers = make([]Header, len(j.Headers))
		for i, h := range j.Headers {
			if len(h) != 2 {
				return nil, d.invalid(InvalidHeader, "header "+strconv.Itoa(i+1)+" is not a [name, value] pair")
			}
			r.Headers[i] = Header{Name: h[0], Value: h[1]}
		}
	}
	if p := checkHeaders(r); p != "" {
		return nil, d.invalid(InvalidHeader, p)
	}
	switch {
	case j.Body != nil && j.BodyB64 != nil:
		return nil, d.invalid(InvalidBody, "both body and body_b64 are set")
	case j.Body != nil:
		r.Body = []byte(*j.Body)
	case j.BodyB64 != nil:
		b, err := base64.StdEncoding.DecodeString(*j.BodyB64)
		if err != nil {
			return nil, d.invalid(InvalidBody, "body_b64 is not standard base64")
		}
		r.Body = b
	}
	if j.ClientIP != "" {
		a, err := netip.ParseAddr(j.ClientIP)
		if err != nil {
			return nil, d.invalid(InvalidClientIP, "client_ip is not an IP address")
		}
		r.ClientIP = a.Unmap().WithZone("")
	}
	if j.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, j.Time)
		if err != nil {
			return nil, d.invalid(InvalidTime, "time is not RFC 3339")
		}
		r.Time = t
	}
	return r, nil
}

// jsonProblem describes a decoding error without quoting the input (a value
// could be a secret). It reads the errors of encoding/json (HAR) and of
// github.com/go-json-experiment/json (JSON lines) alike.
func jsonProblem(err error) string {
	var (
		syn  *json.SyntaxError
		syn2 *jsontext.SyntacticError
		typ  *json.UnmarshalTypeError
		sem  *jsonv2.SemanticError
	)
	switch {
	case errors.As(err, &syn):
		return "JSON syntax error at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &syn2):
		return "JSON syntax error at byte " + strconv.FormatInt(syn2.ByteOffset, 10)
	case errors.As(err, &typ):
		f := typ.Field
		if f == "" {
			f = "record"
		}
		return "field " + f + ": JSON " + typ.Value + " where " + typeName(typ.Type.String()) + " expected"
	case errors.As(err, &sem) && sem.GoType != nil:
		f := strings.ReplaceAll(strings.TrimPrefix(string(sem.JSONPointer), "/"), "/", ".")
		if f == "" {
			f = "record"
		}
		return "field " + f + ": JSON " + kindName(sem.JSONKind) + " where " + typeName(sem.GoType.String()) + " expected"
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}

// kindName names a JSON value's kind as encoding/json's errors do.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "bool"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}

func typeName(t string) string {
	switch t {
	case "string", "*string":
		return "a string"
	case "int":
		return "a number"
	case "[][]string", "[]string":
		return "an array of strings"
	}
	return t
}
