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
)

var fieldKindNames = [...]string{"path", "query", "cookie", "header", "form", "json", "multipart", "body"}

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

// Field is one piece of request data handed to payload analysers: a parameter
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

// Scope selects what WalkFields visits besides the path, query and body.
type Scope struct {
	// Headers lists header names (canonical form) whose values are inspected.
	Headers []string
	// CustomHeaders inspects every header whose name starts with "X-".
	CustomHeaders bool
	// Cookies inspects cookie names and values.
	Cookies bool
	// MaxFields bounds the number of fields visited per request, so a body
	// with a million tiny parameters costs bounded time. 0 means 10,000.
	MaxFields int
}

// FieldVisitor receives the fields of a request; VisitField returns false
// to stop the walk. The Field, and the strings in it, are only valid during
// the call: they may point into buffers the walk reuses.
type FieldVisitor interface {
	VisitField(f *Field) bool
}

// WalkFields calls fn for every field of r within scope, in a fixed order:
// path, query, cookies, headers, body. It stops when fn returns false. The
// Field passed to fn is reused between calls.
func (r *Request) WalkFields(scope *Scope, fn func(*Field) bool) {
	r.Walk(scope, funcVisitor(fn))
}

type funcVisitor func(*Field) bool

func (f funcVisitor) VisitField(fd *Field) bool { return f(fd) }

// Walk is WalkFields with a visitor: walking a request without a body costs
// no allocation when v is a pointer the caller already holds (a pooled
// scratch struct), which a capturing closure cannot offer.
func (r *Request) Walk(scope *Scope, v FieldVisitor) {
	w := walkerPool.Get().(*walker)
	w.v, w.n, w.max = v, 0, scope.MaxFields
	if w.max <= 0 {
		w.max = 10000
	}
	w.walk(r, scope)
	*w = walker{}
	walkerPool.Put(w)
}

var walkerPool = sync.Pool{New: func() any { return new(walker) }}

type walker struct {
	f   Field
	v   FieldVisitor
	n   int
	max int
}

// emit visits one field; it returns false when the walk must stop.
func (w *walker) emit(kind FieldKind, isKey bool, name, value string, urlEncoded, plus bool) bool {
	if value == "" {
		return true
	}
	w.n++
	if w.n > w.max {
		return false
	}
	w.f = Field{Kind: kind, IsKey: isKey, Name: name, Value: value, URLEncoded: urlEncoded, Plus: plus}
	return w.v.VisitField(&w.f)
}

func (w *walker) walk(r *Request, scope *Scope) {
	if !w.emit(FieldPath, false, "", r.RawPath, true, false) {
		return
	}
	if !w.walkPairs(FieldQuery, r.RawQuery) {
		return
	}
	if scope.Cookies {
		for _, line := range r.Header["Cookie"] {
			if !w.walkCookies(line) {
				return
			}
		}
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
	if len(r.Body) > 0 {
		w.walkBody(r)
	}
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
	w.n++
	if w.n > w.max {
		return
	}
	w.f = Field{Kind: FieldBody, Value: body, ContentType: mt}
	w.v.VisitField(&w.f)
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
		parts++
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
		w.n++
		if w.n > w.max {
			return true
		}
		w.f = Field{Kind: FieldMultipart, Name: name, Value: string(data), ContentType: ct}
		if !w.v.VisitField(&w.f) {
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
