// Package replay runs recorded HTTP traffic through two gateway
// configurations and reports exactly what would change.
//
// The package owns everything around the judgement of one request: it reads
// recordings (corpus JSON lines, HAR 1.2, nginx/Apache combined logs, plain
// or gzip), gives each record a place on a simulated clock, sends every
// record in order to a current and a candidate Judge, and builds a Report
// (text or JSON) plus a CI exit status. It imports nothing from the rest of
// the repository: the engine that judges a request under one configuration
// implements Judge.
package replay

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Format names an input format.
type Format string

// Input formats. FormatAuto detects the format from the content.
const (
	FormatAuto     Format = "auto"
	FormatJSONL    Format = "jsonl"
	FormatHAR      Format = "har"
	FormatCombined Format = "combined"
)

// ParseFormat reads a -format flag value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatAuto, FormatJSONL, FormatHAR, FormatCombined:
		return f, nil
	case "":
		return FormatAuto, nil
	case "json", "ndjson":
		return FormatJSONL, nil
	case "nginx", "apache", "clf", "common":
		return FormatCombined, nil
	}
	return "", fmt.Errorf("replay: unknown format %q (want auto, jsonl, har or combined)", s)
}

// Header is one request header field, with its name as it was sent.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Record is one recorded request.
//
// Readers fill the request and provenance fields; Run fills At (and ClientIP
// when the recording has none and the policy synthesises one) before the
// record reaches a Judge. A Judge must not modify the record: both judges see
// the same value.
type Record struct {
	// Method is the request method, verbatim.
	Method string
	// Target is the request-target as it was received: origin-form
	// ("/path?query", bytes as sent), "*", or absolute-form for proxy
	// requests. HAR URLs are reduced to their path and query.
	Target string
	// Proto is "HTTP/1.0", "HTTP/1.1", "HTTP/2.0" or "HTTP/3.0".
	Proto string
	// Host is the Host header or :authority; empty when unrecorded. As in
	// net/http, it is not repeated in Headers.
	Host string
	// Headers are the header fields in order, names as sent. Pseudo-headers
	// (":path") are never included.
	Headers []Header
	// Body is the request body; nil when none was recorded.
	Body []byte
	// ClientIP is the client address as the recording saw it (the TCP peer of
	// the server that wrote the log, or a JSONL client_ip); invalid when
	// unknown. A recorded X-Forwarded-For stays among Headers, so the engine
	// can apply its own trust policy.
	ClientIP netip.Addr
	// Time is the recorded arrival time; zero when unrecorded.
	Time time.Time
	// Status is the status the recorded server answered, 0 when unknown.
	// It may already reflect a block by whatever was running then.
	Status int

	// ID is the record's id (JSONL "id"), when present.
	ID string
	// Label is the record's label (JSONL "expect": attack or benign), when
	// present; the report breaks results down by it.
	Label string

	// Format is the format the record was read from.
	Format Format
	// Source is the input name, usually the file path.
	Source string
	// Line is the 1-based line the record starts on (for HAR, the line of
	// the entry's opening brace).
	Line int
	// Entry is the 1-based index in log.entries (HAR only).
	Entry int
	// Notes are stable codes for what the reader had to reconstruct or
	// could not carry over (see NoteText).
	Notes []string

	// At is the simulated arrival instant, set by Run: never earlier than
	// the previous record's At (see RunConfig).
	At time.Time
	// TimeSynthetic reports that the recording had no time and At was
	// derived from the previous record.
	TimeSynthetic bool
	// ClientIPSynthetic reports that ClientIP was assigned by Run.
	ClientIPSynthetic bool
}

// Where returns "source:line", with the HAR entry index when there is one.
func (r *Record) Where() string { return where(r.Source, r.Line, r.Entry) }

func where(source string, line, entry int) string {
	s := source + ":" + strconv.Itoa(line)
	if entry > 0 {
		s += " (entry " + strconv.Itoa(entry) + ")"
	}
	return s
}

// HeaderValue returns the first value of the named header (case-insensitive).
func (r *Record) HeaderValue(name string) (string, bool) {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// Path returns the path of Target: without the query, and without scheme and
// authority for an absolute-form target.
func (r *Record) Path() string {
	p, _ := splitTarget(r.Target)
	return p
}

// RawQuery returns the query of Target, without the "?" (bytes as sent).
func (r *Record) RawQuery() string {
	_, q := splitTarget(r.Target)
	return q
}

func splitTarget(t string) (path, query string) {
	if i := strings.Index(t, "://"); i > 0 && !strings.HasPrefix(t, "/") {
		rest := t[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			t = "/"
		} else {
			t = rest[j:]
			if t[0] == '?' {
				t = "/" + t
			}
		}
	}
	if i := strings.IndexByte(t, '?'); i >= 0 {
		return t[:i], t[i+1:]
	}
	return t, ""
}

func (r *Record) note(code string) {
	for _, n := range r.Notes {
		if n == code {
			return
		}
	}
	r.Notes = append(r.Notes, code)
}

// Invalid-record codes: stable identifiers of why a record was refused.
const (
	InvalidJSON        = "json"         // not valid JSON, or a field of the wrong type
	InvalidTooLarge    = "too_large"    // line or entry over ReadConfig.MaxRecordBytes
	InvalidMethod      = "method"       // missing or not an RFC 9110 token
	InvalidTarget      = "target"       // missing, or not a request-target net/http accepts
	InvalidURL         = "url"          // HAR url not an absolute http(s) URL
	InvalidHeader      = "header"       // name not a token, value with control bytes, repeated Host
	InvalidBody        = "body"         // body_b64 / base64 postData not base64, or body and body_b64 both set
	InvalidTime        = "time"         // unparsable timestamp
	InvalidClientIP    = "client_ip"    // unparsable client_ip
	InvalidProto       = "proto"        // not HTTP/x.y
	InvalidStatus      = "status"       // not a 3-digit status
	InvalidRequestLine = "request_line" // combined: "$request" is not METHOD TARGET PROTO
	InvalidLogLine     = "log_line"     // combined: not the combined/common layout
	InvalidEntry       = "entry"        // HAR: an entry that is not an object
)

// InvalidRecordError reports one record that could not be read. It is not
// fatal: the reader moves on to the next record, and Run counts it in the
// report's invalid section with its line number.
type InvalidRecordError struct {
	Source string
	Format Format
	Line   int
	Entry  int
	Code   string // one of the Invalid* codes
	Detail string // human-readable; never contains a header, cookie or body value
}

// Error describes the record by place, format and code.
func (e *InvalidRecordError) Error() string {
	return fmt.Sprintf("%s: invalid %s record (%s): %s", where(e.Source, e.Line, e.Entry), e.Format, e.Code, e.Detail)
}

// Note codes: what a reader reconstructed or could not carry over for one
// record. The report counts them.
const (
	NoteHostHeaderMoved     = "host_header_moved"     // a Host header became Record.Host, as net/http does
	NoteHARPseudoHeaders    = "har_pseudo_headers"    // HTTP/2-3 pseudo-headers dropped (:authority became Host)
	NoteHARCookieFromArray  = "har_cookie_from_array" // no Cookie header: rebuilt from request.cookies
	NoteHARQueryFromParams  = "har_query_from_params" // url had no query: rebuilt from request.queryString
	NoteHARBodyFromParams   = "har_body_from_params"  // postData had no text: form body rebuilt from params
	NoteHARMultipartNoText  = "har_multipart_no_text" // multipart postData without text: body left empty
	NoteHARBodyMissing      = "har_body_missing"      // bodySize > 0 but no postData (exporter dropped it)
	NoteHARNoHTTPVersion    = "har_no_http_version"   // httpVersion empty: HTTP/1.1 assumed
	NoteLogRemoteNotIP      = "log_remote_not_ip"     // combined: $remote_addr is not an IP (e.g. HostnameLookups)
	NoteLogNoUserAgent      = "log_no_user_agent"     // common log format line: User-Agent unknown, not absent
	NoteLogForwardedFor     = "log_forwarded_for"     // combined: a trailing X-Forwarded-For field became a header
	noteClientIPSynthetic   = "client_ip_synthetic"
	noteClientUnknownPolicy = "client_ip_unknown"
)

// NoteText describes a note code for the report.
func NoteText(code string) string {
	switch code {
	case NoteHostHeaderMoved:
		return "Host header moved to the request's host, as net/http does"
	case NoteHARPseudoHeaders:
		return "HTTP/2-3 pseudo-headers dropped (:authority used as Host)"
	case NoteHARCookieFromArray:
		return "no Cookie header: rebuilt from request.cookies"
	case NoteHARQueryFromParams:
		return "url without query: query rebuilt from request.queryString"
	case NoteHARBodyFromParams:
		return "postData without text: form body rebuilt from postData.params"
	case NoteHARMultipartNoText:
		return "multipart postData without text: body left empty, body checks see nothing"
	case NoteHARBodyMissing:
		return "bodySize > 0 but no postData (the exporter dropped the body)"
	case NoteHARNoHTTPVersion:
		return "httpVersion empty: HTTP/1.1 assumed"
	case NoteLogRemoteNotIP:
		return "$remote_addr is not an IP address: client unknown"
	case NoteLogNoUserAgent:
		return "common log format line: User-Agent unknown (not the same as absent)"
	case NoteLogForwardedFor:
		return "trailing X-Forwarded-For field kept as a header"
	case noteClientIPSynthetic:
		return "no client IP: synthetic address from 198.18.0.0/15"
	case noteClientUnknownPolicy:
		return "no client IP and client_ips=keep: judged without a client address"
	}
	return code
}
