package detections

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Request is the view of one HTTP request that every detection sees. The
// gateway builds it once per request: one parse and one body read, so every
// detection and the proxy see the same bytes. Derived views (query, cookies,
// JSON, forms) are computed lazily on first use and cached.
//
// A Request is used by one goroutine at a time (the chain is sequential and
// observers run after it), so the caches need no locking. Detections must
// treat every field as read-only.
type Request struct {
	ID        string
	ClientIP  netip.Addr
	ClientKey string // ClientKey(ClientIP, prefix), computed once by the gateway
	Method    string
	Host      string
	Path      string // decoded path
	RawPath   string // path as received, still percent-encoded
	RawQuery  string // query as received, without '?'
	Proto     string
	Header    http.Header
	// Body holds the buffered request body, nil when the request had none.
	// It is exactly the bytes that are forwarded upstream.
	Body     []byte
	Received time.Time
	// State is the shared per-client state the gateway fetched from the store
	// in one round trip before the chain ran. Nil when no detection asked for
	// state. See Querier.
	State *ClientState

	parsed      uint8
	query       url.Values
	cookies     []*http.Cookie
	mediaType   string
	mediaParams map[string]string
	json        any
	jsonErr     error
	form        url.Values
	multi       *multipart.Form
	multiErr    error
}

const (
	parsedQuery uint8 = 1 << iota
	parsedCookies
	parsedMedia
	parsedJSON
	parsedForm
	parsedMultipart
)

// Query returns the decoded query. Pairs that do not decode (bad escapes,
// semicolons) are left out here; payload inspection walks the raw query
// leniently so they are still inspected.
func (r *Request) Query() url.Values {
	if r.parsed&parsedQuery == 0 {
		r.parsed |= parsedQuery
		if r.RawQuery != "" {
			r.query, _ = url.ParseQuery(r.RawQuery)
		}
	}
	return r.query
}

// Cookies returns the request cookies, parsed once.
func (r *Request) Cookies() []*http.Cookie {
	if r.parsed&parsedCookies == 0 {
		r.parsed |= parsedCookies
		if len(r.Header["Cookie"]) > 0 {
			r.cookies = (&http.Request{Header: r.Header}).Cookies()
		}
	}
	return r.cookies
}

// MediaType returns the lower-case media type of the body ("" when absent or
// unparsable) and its parameters.
func (r *Request) MediaType() (string, map[string]string) {
	if r.parsed&parsedMedia == 0 {
		r.parsed |= parsedMedia
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, params, err := mime.ParseMediaType(ct)
			if err != nil {
				// Keep what precedes ';' so a sloppy header still selects a parser.
				mt, _, _ = strings.Cut(ct, ";")
				mt = strings.ToLower(strings.TrimSpace(mt))
			}
			r.mediaType, r.mediaParams = mt, params
		}
	}
	return r.mediaType, r.mediaParams
}

// IsJSON reports whether the body is declared as JSON (application/json or
// any +json type).
func (r *Request) IsJSON() bool {
	mt, _ := r.MediaType()
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// JSON decodes the body as JSON once and caches the result. Numbers are kept
// as json.Number. A body that is not valid JSON returns the error; callers
// fall back to inspecting the raw text.
func (r *Request) JSON() (any, error) {
	if r.parsed&parsedJSON == 0 {
		r.parsed |= parsedJSON
		if len(r.Body) == 0 {
			r.jsonErr = errEmptyBody
		} else {
			dec := json.NewDecoder(bytes.NewReader(r.Body))
			dec.UseNumber()
			r.jsonErr = dec.Decode(&r.json)
			if r.jsonErr == nil {
				if _, err := dec.Token(); err != io.EOF {
					r.json, r.jsonErr = nil, errTrailingData
				}
			}
		}
	}
	return r.json, r.jsonErr
}

// Form returns the fields of an application/x-www-form-urlencoded body, nil
// for other bodies. Undecodable pairs are left out (see Query).
func (r *Request) Form() url.Values {
	if r.parsed&parsedForm == 0 {
		r.parsed |= parsedForm
		if mt, _ := r.MediaType(); mt == "application/x-www-form-urlencoded" && len(r.Body) > 0 {
			r.form, _ = url.ParseQuery(string(r.Body))
		}
	}
	return r.form
}

// Multipart parses a multipart/form-data body once. File contents are not
// kept in memory beyond the already-buffered body.
func (r *Request) Multipart() (*multipart.Form, error) {
	if r.parsed&parsedMultipart == 0 {
		r.parsed |= parsedMultipart
		mt, params := r.MediaType()
		switch {
		case !strings.HasPrefix(mt, "multipart/"):
			r.multiErr = errNotMultipart
		case params["boundary"] == "":
			r.multiErr = errNoBoundary
		default:
			mr := multipart.NewReader(bytes.NewReader(r.Body), params["boundary"])
			// The body is already bounded by max_body_bytes; keep everything
			// in memory so no temporary files are written.
			r.multi, r.multiErr = mr.ReadForm(int64(len(r.Body)) + 1<<20)
		}
	}
	return r.multi, r.multiErr
}

// Close releases what Multipart may have allocated.
func (r *Request) Close() {
	if r.multi != nil {
		_ = r.multi.RemoveAll()
	}
}

type viewError string

func (e viewError) Error() string { return string(e) }

const (
	errEmptyBody    viewError = "empty body"
	errTrailingData viewError = "trailing data after JSON value"
	errNotMultipart viewError = "not a multipart body"
	errNoBoundary   viewError = "multipart body without boundary"
)

// FlattenJSON walks a decoded JSON value and calls fn for every object key and
// every scalar value, with the dotted path of the element ("a.b[2].c"). It
// stops early when fn returns false. Depth is bounded to keep hostile nesting
// cheap.
func FlattenJSON(v any, fn func(path string, isKey bool, s string) bool) {
	flatten(v, "", 0, fn)
}

const maxJSONDepth = 64

func flatten(v any, path string, depth int, fn func(string, bool, string) bool) bool {
	if depth > maxJSONDepth {
		return true
	}
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if !fn(p, true, k) {
				return false
			}
			if !flatten(e, p, depth+1, fn) {
				return false
			}
		}
	case []any:
		for i, e := range t {
			if !flatten(e, path+"["+strconv.Itoa(i)+"]", depth+1, fn) {
				return false
			}
		}
	case string:
		return fn(path, false, t)
	case json.Number:
		return fn(path, false, string(t))
	case bool:
		return fn(path, false, strconv.FormatBool(t))
	}
	return true
}

// Reset clears r for reuse from a pool.
func (r *Request) Reset() {
	r.Close()
	*r = Request{}
}
