package detections

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"sync"
	"unsafe"
)

// FieldKind says where in the request a Field was found.
type FieldKind uint8

// The places payload inspection looks at.
const (
	FieldPath FieldKind = iota
	FieldQuery
	FieldCookie
	FieldHeader
	FieldForm
	FieldJSON
	FieldMultipart
	FieldBody
	// FieldSegment is one segment of the path (between slashes), still
	// percent-encoded: applications read path segments as parameters
	// ("/api/items/{id}"), so they are inspected like parameters too.
	FieldSegment
)

var fieldKindNames = [...]string{"path", "query", "cookie", "header", "form", "json", "multipart", "body", "segment"}

// String returns the stable name of the kind, used in logs and config.
func (k FieldKind) String() string {
	if int(k) < len(fieldKindNames) {
		return fieldKindNames[k]
	}
	return "unknown"
}

// ParseFieldKind maps a config name back to a FieldKind.
func ParseFieldKind(s string) (FieldKind, bool) {
	for i, n := range fieldKindNames {
		if n == s {
			return FieldKind(i), true
		}
	}
	return 0, false
}

// Field is one piece of request data handed to payload analyzers: a parameter
// name or value, a header, a cookie, the path or a raw body.
type Field struct {
	Kind FieldKind
	// IsKey is true when Value is a parameter or object-key name rather than
	// a value.
	IsKey bool
	// Name is the parameter, header or cookie name ("" for the path and a raw
	// body). It is safe to log; Value never is.
	Name string
	// Value is the text as received. For FieldPath, FieldQuery and FieldForm
	// it is still percent-encoded (URLEncoded reports it).
	Value string
	// URLEncoded is true when Value comes from an URL or a form body, where
	// %XX escapes apply and '+' means a space (except in the path).
	URLEncoded bool
	// Plus is true when '+' means a space (query and form).
	Plus bool
	// ContentType is the media type for FieldBody and file parts.
	ContentType string
}

// Location is "kind" or "kind:name"; it names where a match was found
// without revealing the value.
func (f *Field) Location() string {
	if f.Name == "" {
		return f.Kind.String()
	}
	return f.Kind.String() + ":" + f.Name
}

// Scope selects what WalkFields visits besides the path, query and body,
// and bounds the walk. A bound the walk reaches is never silent: a visitor
// that implements LimitVisitor is told which one (see WalkLimit).
type Scope struct {
	// Headers lists header names (canonical form) whose values are inspected.
	Headers []string
	// CustomHeaders inspects every header whose name starts with "X-".
	CustomHeaders bool
	// Cookies inspects cookie names and values.
	Cookies bool
	// MaxFields bounds the number of fields visited per request, so a body
	// with a million tiny parameters costs bounded time. 0 means
	// DefaultMaxFields.
	MaxFields int
	// MaxDepth bounds the nesting of JSON values that are visited. 0 means
	// DefaultMaxDepth.
	MaxDepth int
	// MaxParts bounds the parts of a multipart body that are read. 0 means
	// DefaultMaxParts.
	MaxParts int
	// MaxValueBytes bounds the bytes of one field's value; a longer value
	// is visited cut to this length. 0 means DefaultMaxValueBytes.
	MaxValueBytes int
}

// The bounds of a Scope left at zero.
const (
	DefaultMaxFields     = 10000
	DefaultMaxDepth      = 64
	DefaultMaxParts      = 1000
	DefaultMaxValueBytes = 1 << 20
)

// WalkLimit names a bound of a Scope that a walk reached.
type WalkLimit uint8

// The bounds a walk can reach. Their names are stable snake_case ids, the
// Scope field they come from in config spelling.
const (
	// WalkLimitFields: more fields than MaxFields; the walk stops there.
	WalkLimitFields WalkLimit = 1 + iota
	// WalkLimitDepth: JSON nested deeper than MaxDepth; the deeper values are
	// not visited, the walk goes on.
	WalkLimitDepth
	// WalkLimitParts: a multipart body with more parts than MaxParts; the
	// parts after it are not read.
	WalkLimitParts
	// WalkLimitValue: a value longer than MaxValueBytes; it is visited cut to
	// that length.
	WalkLimitValue
)

var limitNames = [...]string{"", "max_fields", "max_depth", "max_parts", "max_value_bytes"}

// String returns "max_fields", "max_depth", "max_parts" or
// "max_value_bytes".
func (l WalkLimit) String() string {
	if int(l) < len(limitNames) && l > 0 {
		return limitNames[l]
	}
	return "unknown"
}

// FieldVisitor receives the fields of a request; VisitField returns false
// to stop the walk. The Field, and the strings in it, are only valid during
// the call: they may point into buffers the walk reuses.
type FieldVisitor interface {
	VisitField(f *Field) bool
}

// LimitVisitor is optionally implemented by a FieldVisitor that must know
// when the walk reaches a bound of its Scope, so that what the bound leaves
// out is never ignored silently. VisitLimit is called at most once per
// limit and walk, at the point where the limit is reached; returning false
// stops the walk.
type LimitVisitor interface {
	VisitLimit(l WalkLimit) bool
}

// WalkFields calls fn for every field of r within scope, in a fixed order:
// path, path segments, headers, cookies, query, body. It stops when fn
// returns false. The Field passed to fn is reused between calls.
func (r *Request) WalkFields(scope *Scope, fn func(*Field) bool) {
	r.Walk(scope, funcVisitor(fn))
}

type funcVisitor func(*Field) bool

func (f funcVisitor) VisitField(fd *Field) bool { return f(fd) }

// Walk is WalkFields with a visitor: walking a request without a body costs
// no allocation when v is a pointer the caller already holds (a pooled
// scratch struct), which a capturing closure cannot offer.
//
// The headers and cookies come before the query and the body: they are
// bounded by the server's header limit, while the query and the body are
// where a client can pile up fields, so a flood of junk parameters can
// never push a header out of the walk.
func (r *Request) Walk(scope *Scope, v FieldVisitor) {
	w := walkerPool.Get().(*walker)
	w.v, w.n = v, 0
	w.lv, _ = v.(LimitVisitor)
	w.maxFields = orDefault(scope.MaxFields, DefaultMaxFields)
	w.maxDepth = orDefault(scope.MaxDepth, DefaultMaxDepth)
	w.maxParts = orDefault(scope.MaxParts, DefaultMaxParts)
	w.maxValue = orDefault(scope.MaxValueBytes, DefaultMaxValueBytes)
	w.walk(r, scope)
	path, str := w.jsonPath[:0], w.jsonStr[:0]
	if cap(path)+cap(str) > maxPooledBuffers {
		path, str = nil, nil // a huge document's buffers are not kept
	}
	*w = walker{jsonPath: path, jsonStr: str}
	walkerPool.Put(w)
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

var walkerPool = sync.Pool{New: func() any { return new(walker) }}

// maxPooledBuffers bounds the JSON buffers a pooled walker keeps.
const maxPooledBuffers = 64 << 10

type walker struct {
	f         Field
	v         FieldVisitor
	lv        LimitVisitor
	n         int
	maxFields int
	maxDepth  int
	maxParts  int
	maxValue  int
	reported  uint8 // limits already reported, 1 << WalkLimit
	stopped   bool  // the visitor or a limit stopped the walk
	// jsonPath and jsonStr are the JSON scanner's buffers, kept with the
	// pooled walker.
	jsonPath, jsonStr []byte
}

// limit reports l once; it returns false when the walk must stop.
func (w *walker) limit(l WalkLimit) bool {
	if w.reported&(1<<l) != 0 {
		return !w.stopped
	}
	w.reported |= 1 << l
	if w.lv != nil && !w.lv.VisitLimit(l) {
		w.stopped = true
	}
	return !w.stopped
}

// count counts one more field; it returns false when the field is past
// MaxFields (the limit is reported and the walk stops).
func (w *walker) count() bool {
	if w.stopped {
		return false
	}
	w.n++
	if w.n > w.maxFields {
		w.limit(WalkLimitFields)
		w.stopped = true
		return false
	}
	return true
}

// visit shows w.f to the visitor, cutting its value to MaxValueBytes.
func (w *walker) visit() bool {
	if len(w.f.Value) > w.maxValue {
		if !w.limit(WalkLimitValue) {
			return false
		}
		w.f.Value = w.f.Value[:w.maxValue]
	}
	if !w.v.VisitField(&w.f) {
		w.stopped = true
	}
	return !w.stopped
}

// emit visits one field; it returns false when the walk must stop.
func (w *walker) emit(kind FieldKind, isKey bool, name, value string, urlEncoded, plus bool) bool {
	if value == "" {
		return !w.stopped
	}
	if !w.count() {
		return false
	}
	w.f = Field{Kind: kind, IsKey: isKey, Name: name, Value: value, URLEncoded: urlEncoded, Plus: plus}
	return w.visit()
}

func (w *walker) walk(r *Request, scope *Scope) {
	if !w.emit(FieldPath, false, "", r.RawPath, true, false) || !w.walkSegments(r.RawPath) {
		return
	}
	for _, h := range scope.Headers {
		for _, v := range r.Header[h] {
			if !w.emit(FieldHeader, false, h, v, false, false) {
				return
			}
		}
	}
	if scope.CustomHeaders {
		for name, vs := range r.Header {
			if len(name) < 3 || (name[0] != 'X' && name[0] != 'x') || name[1] != '-' || isForwardingHeader(name) {
				continue
			}
			for _, v := range vs {
				if !w.emit(FieldHeader, false, name, v, false, false) {
					return
				}
			}
		}
	}
	if scope.Cookies {
		for _, line := range r.Header["Cookie"] {
			if !w.walkCookies(line) {
				return
			}
		}
	}
	if !w.walkPairs(FieldQuery, r.RawQuery) {
		return
	}
	if len(r.Body) > 0 {
		w.walkBody(r)
	}
}

// walkSegments visits the segments of a path of more than one segment, or
// of one segment that holds an escape, "/api/items/%27%20or%201=1" being
// "api", "items" and "%27%20or%201=1", but not the plain short ones (see
// plainSegment).
func (w *walker) walkSegments(p string) bool {
	if len(p) < 2 {
		return true
	}
	rest := p[1:]
	if strings.IndexByte(rest, '/') < 0 && strings.IndexByte(rest, '%') < 0 {
		return true // "/index.html": the path field said it all
	}
	for rest != "" {
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if plainSegment(seg) {
			continue
		}
		if !w.emit(FieldSegment, false, "", seg, true, false) {
			return false
		}
	}
	return true
}

// plainSegment reports a short segment of letters, digits and ".-_~"
// ("v2", "products", "4711", "index.html"): the path field has shown it
// already, and as a parameter it holds nothing an analyzer reads. Longer
// ones may be base64.
func plainSegment(s string) bool {
	if len(s) >= 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// isForwardingHeader reports headers the gateway itself sets or rewrites;
// they carry addresses and ids, not user input worth scoring.
func isForwardingHeader(name string) bool {
	switch name {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "X-Request-Id":
		return true
	}
	return false
}

// walkPairs visits key=value pairs of an URL-encoded string leniently: it
// splits on '&' and ';' and never drops a pair for a bad escape, because the
// upstream's parser may be more forgiving than Go's.
func (w *walker) walkPairs(kind FieldKind, s string) bool {
	for s != "" {
		var pair string
		i := strings.IndexAny(s, "&;")
		if i < 0 {
			pair, s = s, ""
		} else {
			pair, s = s[:i], s[i+1:]
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if !w.emit(kind, true, k, k, true, true) {
			return false
		}
		if !w.emit(kind, false, k, v, true, true) {
			return false
		}
	}
	return true
}

func (w *walker) walkCookies(line string) bool {
	for line != "" {
		var part string
		part, line, _ = strings.Cut(line, ";")
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if !w.emit(FieldCookie, true, k, k, false, false) {
			return false
		}
		if !w.emit(FieldCookie, false, k, v, false, false) {
			return false
		}
	}
	return true
}

func (w *walker) walkBody(r *Request) {
	// The body is never modified after it is buffered, so a string view of
	// it is safe and avoids copying up to max_body_bytes.
	body := unsafe.String(unsafe.SliceData(r.Body), len(r.Body))
	mt, params := r.MediaType()
	switch {
	case r.IsJSON():
		if w.walkJSON(r.Body) {
			return
		}
	case mt == "application/x-www-form-urlencoded":
		w.walkPairs(FieldForm, body)
		return
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		if w.walkMultipart(r.Body, params["boundary"]) {
			return
		}
	case !inspectableMedia(mt):
		return
	}
	// Malformed JSON or multipart, or a text body: inspect the raw text.
	if !w.count() {
		return
	}
	w.f = Field{Kind: FieldBody, Value: body, ContentType: mt}
	w.visit()
}

// walkMultipart visits part names, file names and the contents of non-file
// parts. It returns false when the body is not a well-formed multipart body,
// so the caller inspects it as raw text.
func (w *walker) walkMultipart(body []byte, boundary string) bool {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	parts := 0
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return parts > 0
		}
		if err != nil {
			return false
		}
		if parts++; parts > w.maxParts {
			w.limit(WalkLimitParts)
			return true
		}
		name, filename := partNames(p)
		if !w.emit(FieldMultipart, true, name, name, false, false) {
			return true
		}
		if fn := filename; fn != "" {
			if !w.emit(FieldMultipart, false, name+".filename", fn, false, false) {
				return true
			}
		}
		for _, h := range []string{"Content-Type", "Content-Transfer-Encoding"} {
			if v := p.Header.Get(h); v != "" {
				if !w.emit(FieldMultipart, false, name+"."+textproto.CanonicalMIMEHeaderKey(h), v, false, false) {
					return true
				}
			}
		}
		ct := p.Header.Get("Content-Type")
		if filename != "" && !inspectableMedia(strings.ToLower(ct)) {
			continue
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return false
		}
		if !w.count() {
			return true
		}
		w.f = Field{Kind: FieldMultipart, Name: name, Value: string(data), ContentType: ct}
		if !w.visit() {
			return true
		}
	}
}

// partNames returns a part's form name and its file name as sent: Go's
// FileName() strips directories ("../../etc/passwd" becomes "passwd"),
// which is right for saving a file and wrong for inspecting one.
func partNames(p *multipart.Part) (name, filename string) {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return p.FormName(), p.FileName()
	}
	return params["name"], params["filename"]
}

// inspectableMedia reports whether a body of this media type is text worth
// scanning. Binary uploads (images, archives, protobuf) are skipped: scanning
// them finds nothing but false positives.
func inspectableMedia(mt string) bool {
	if mt == "" {
		return true
	}
	mt, _, _ = strings.Cut(mt, ";")
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "/xml"), strings.HasSuffix(mt, "+xml"),
		strings.HasSuffix(mt, "/json"), strings.HasSuffix(mt, "+json"),
		strings.HasSuffix(mt, "javascript"), strings.HasSuffix(mt, "x-www-form-urlencoded"),
		strings.HasSuffix(mt, "graphql"), strings.HasSuffix(mt, "yaml"), strings.HasSuffix(mt, "csv"):
		return true
	}
	return false
}
