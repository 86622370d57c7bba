package detections_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rampartgw/rampart/detections"
)

type walked struct {
	kind  detections.FieldKind
	key   bool
	name  string
	value string
}

func walk(r *detections.Request, scope *detections.Scope) []walked {
	var out []walked
	r.WalkFields(scope, func(f *detections.Field) bool {
		// Field strings are only valid during the call: copy them.
		out = append(out, walked{f.Kind, f.IsKey, strings.Clone(f.Name), strings.Clone(f.Value)})
		return true
	})
	return out
}

func has(ws []walked, kind detections.FieldKind, key bool, name, value string) bool {
	for _, w := range ws {
		if w.kind == kind && w.key == key && w.name == name && w.value == value {
			return true
		}
	}
	return false
}

var viewCases = []struct {
	name, rawQuery, contentType, body string
	want                              []walked
}{
	{"query pairs, lenient", "a=1&b=%zz&c;d=4&&e", "", "", []walked{
		{detections.FieldQuery, true, "a", "a"}, {detections.FieldQuery, false, "a", "1"},
		{detections.FieldQuery, false, "b", "%zz"}, {detections.FieldQuery, true, "c", "c"}, {detections.FieldQuery, false, "d", "4"},
		{detections.FieldQuery, true, "e", "e"},
	}},
	{"nested JSON flattened", "", "application/json", `{"a":{"b":[1,{"c":"deep"}]},"__proto__":{"x":true}}`, []walked{
		{detections.FieldJSON, false, "a.b[1].c", "deep"}, {detections.FieldJSON, true, "a.b[1].c", "c"},
		{detections.FieldJSON, true, "__proto__", "__proto__"}, {detections.FieldJSON, false, "a.b[0]", "1"},
		{detections.FieldJSON, false, "__proto__.x", "true"},
	}},
	{"malformed JSON is raw text", "", "application/json", `{"a": "evil`, []walked{
		{detections.FieldBody, false, "", `{"a": "evil`},
	}},
	{"form body", "", "application/x-www-form-urlencoded", "user=bob&pass=%27or%201%3D1", []walked{
		{detections.FieldForm, false, "pass", "%27or%201%3D1"}, {detections.FieldForm, true, "user", "user"},
	}},
	{"multipart fields and file names", "", "multipart/form-data; boundary=XX",
		"--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../etc/passwd\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XX--\r\n",
		[]walked{{detections.FieldMultipart, false, "title", "hello"}, {detections.FieldMultipart, false, "f.filename", "../../etc/passwd"}}},
	{"broken multipart is raw text", "", "multipart/form-data; boundary=XX", "--XX\r\nno headers end", []walked{
		{detections.FieldBody, false, "", "--XX\r\nno headers end"},
	}},
	{"binary body skipped", "", "image/png", "\x89PNG....", nil},
	{"text body raw", "", "text/xml", "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>", []walked{
		{detections.FieldBody, false, "", "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"},
	}},
}

func viewRequest(rawQuery, contentType, body string) *detections.Request {
	r := &detections.Request{Method: "POST", RawPath: "/p/a%2fth", Path: "/p/a/th", RawQuery: rawQuery, Header: http.Header{}}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	r.Header.Set("Cookie", "session=abc; theme=dark")
	r.Header.Set("User-Agent", "ua-value")
	r.Header.Set("X-Custom", "custom-value")
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

var fullScope = &detections.Scope{Headers: []string{"User-Agent"}, CustomHeaders: true, Cookies: true}

func TestWalkFields(t *testing.T) {
	t.Parallel()
	for _, tc := range viewCases {
		t.Run(tc.name, func(t *testing.T) {
			ws := walk(viewRequest(tc.rawQuery, tc.contentType, tc.body), fullScope)
			for _, w := range tc.want {
				if !has(ws, w.kind, w.key, w.name, w.value) {
					t.Errorf("missing %+v in %+v", w, ws)
				}
			}
			for _, common := range []walked{
				{detections.FieldPath, false, "", "/p/a%2fth"},
				{detections.FieldCookie, false, "session", "abc"},
				{detections.FieldHeader, false, "User-Agent", "ua-value"},
				{detections.FieldHeader, false, "X-Custom", "custom-value"},
			} {
				if !has(ws, common.kind, common.key, common.name, common.value) {
					t.Errorf("missing %+v", common)
				}
			}
			for _, w := range ws {
				if w.name == "X-Forwarded-For" {
					t.Error("forwarding header inspected")
				}
			}
		})
	}
}

func TestWalkFieldsBounded(t *testing.T) {
	t.Parallel()
	q := strings.Repeat("a=1&", 50000)
	n := len(walk(viewRequest(q, "", ""), &detections.Scope{MaxFields: 100}))
	if n != 100 {
		t.Errorf("walked %d fields, want the cap of 100", n)
	}
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	r := viewRequest("", "application/json", deep)
	walk(r, fullScope) // must not blow the stack
}

type counter struct{ n int }

func (c *counter) VisitField(f *detections.Field) bool { c.n += len(f.Value); return true }

func TestWalkNoAllocs(t *testing.T) {
	r := viewRequest("page=2&sort=desc", "", "")
	scope := &detections.Scope{Headers: []string{"User-Agent", "Referer"}, CustomHeaders: true, Cookies: true}
	c := &counter{}
	allocs := testing.AllocsPerRun(100, func() { r.Walk(scope, c) })
	if allocs != 0 {
		t.Errorf("walking a bodiless request allocates %.0f times", allocs)
	}
}

func FuzzRequestView(f *testing.F) {
	for _, tc := range viewCases {
		f.Add(tc.rawQuery, tc.contentType, tc.body)
	}
	f.Add("a[$ne]=1", "application/json", `[{"a":[[[{"b":null}]]]}, 1e999]`)
	f.Add("", "multipart/form-data; boundary=\"a\"", "--a\r\n\r\n--a--")
	f.Fuzz(func(t *testing.T, rawQuery, contentType, body string) {
		r := viewRequest(rawQuery, contentType, body)
		n := 0
		r.WalkFields(&detections.Scope{Headers: []string{"User-Agent"}, CustomHeaders: true, Cookies: true, MaxFields: 1000}, func(f *detections.Field) bool {
			n++
			if f.Kind == detections.FieldBody && len(f.Value) > len(body) {
				t.Fatalf("raw body field longer than the body")
			}
			return true
		})
		if n > 1000 {
			t.Fatalf("walked %d fields past the cap", n)
		}
		r.Reset()
	})
}

func FuzzClientKey(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "fe80::1%eth0", "::", "0.0.0.0"} {
		f.Add(s, 64)
	}
	f.Fuzz(func(t *testing.T, s string, bits int) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		bits = bits%129 + 0
		if bits < 0 {
			bits = -bits
		}
		key := detections.ClientKey(a, bits)
		p, err := detections.ParseClientKey(key)
		if err != nil {
			t.Fatalf("key %q of %s does not parse back: %v", key, s, err)
		}
		if !p.Contains(a.Unmap().WithZone("")) {
			t.Fatalf("key %q does not cover %s", key, s)
		}
	})
}

// BenchmarkRequestView parses and walks a request view: a bodiless GET with
// a query and cookies, and a POST with a 1 KiB JSON body.
func BenchmarkRequestView(b *testing.B) {
	body := `{"user":{"name":"Ada Lovelace","email":"ada@example.org","roles":["admin","dev"],"prefs":{"theme":"dark","lang":"en-GB"}},` +
		`"items":[{"sku":"A-1","qty":2,"price":19.99},{"sku":"B-22","qty":1,"price":5.5}],"note":"` + strings.Repeat("lorem ipsum ", 60) + `"}`
	c := &counter{}
	scope := &detections.Scope{Headers: []string{"User-Agent", "Referer"}, CustomHeaders: true, Cookies: true}
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := viewRequest("page=2&sort=desc&q=shoes", "", "")
			r.Walk(scope, c)
		}
	})
	b.Run("json-1KiB", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			r := viewRequest("", "application/json", body)
			r.Walk(scope, c)
		}
	})
}

// FuzzJSONWalk checks the streaming JSON walker against encoding/json: every
// key and scalar that a full decode finds, the walker visits with the same
// path (it may visit more: duplicate keys, which encoding/json collapses).
func FuzzJSONWalk(f *testing.F) {
	for _, s := range []string{`{"a":{"b":[1,{"c":"deep"}]},"__proto__":{"x":true}}`, `["\u0041\ud83d\ude00",null,-1.5e3]`,
		`{"a\"b":"c\\d","e":{"f":[[],{}]}}`, `"just a string"`, `{"k":"v","k":"w"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := viewRequest("", "application/json", body)
		got := map[string]bool{}
		r.WalkFields(&detections.Scope{MaxFields: 100000}, func(fd *detections.Field) bool {
			if fd.Kind == detections.FieldJSON {
				got[fmt.Sprintf("%v|%s|%s", fd.IsKey, fd.Name, fd.Value)] = true
			}
			return true
		})
		v, err := decodeJSON(body)
		if err != nil || !utf8.ValidString(body) {
			return // encoding/json rewrites invalid UTF-8; the walker keeps the bytes
		}
		flattenJSON(v, "", 0, func(path string, isKey bool, s string) {
			if k := fmt.Sprintf("%v|%s|%s", isKey, path, s); s != "" && !got[k] { // empty strings carry nothing to inspect
				t.Fatalf("walker missed %q in %q", k, body)
			}
		})
	})
}

// decodeJSON is the reference the walker is checked against: one JSON
// value, numbers kept as text, nothing after it.
func decodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// flattenJSON calls fn for every key and scalar of v with its dotted path,
// down to the walker's default depth.
func flattenJSON(v any, path string, depth int, fn func(path string, isKey bool, s string)) {
	if depth > detections.DefaultMaxDepth {
		return
	}
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			p := k
			if path != "" {
				p = path + "." + k
			}
			fn(p, true, k)
			flattenJSON(e, p, depth+1, fn)
		}
	case []any:
		for i, e := range t {
			flattenJSON(e, path+"["+strconv.Itoa(i)+"]", depth+1, fn)
		}
	case string:
		fn(path, false, t)
	case json.Number:
		fn(path, false, string(t))
	case bool:
		fn(path, false, strconv.FormatBool(t))
	}
}

// limitCounter counts fields and records the limits reported.
type limitCounter struct {
	n      int
	limits []detections.WalkLimit
}

func (c *limitCounter) VisitField(*detections.Field) bool { c.n++; return true }
func (c *limitCounter) VisitLimit(l detections.WalkLimit) bool {
	c.limits = append(c.limits, l)
	return true
}

// FuzzWalkLimits: with small bounds, the walk never visits more fields
// than MaxFields, reports max_fields whenever the request has more, and
// reports each limit at most once.
func FuzzWalkLimits(f *testing.F) {
	for _, tc := range viewCases {
		f.Add(tc.rawQuery, tc.contentType, tc.body, uint8(3))
	}
	f.Add("a=1&b=2&c=3&d=4", "application/json", `[[[[[[1]]]]]]`, uint8(2))
	f.Add("", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--b--", uint8(1))
	f.Fuzz(func(t *testing.T, rawQuery, contentType, body string, bound uint8) {
		n := int(bound%8) + 1
		scope := &detections.Scope{Cookies: true, MaxFields: n * 3, MaxDepth: n, MaxParts: n, MaxValueBytes: n * 8}
		r := viewRequest(rawQuery, contentType, body)
		all := &limitCounter{}
		r.Walk(&detections.Scope{Cookies: true, MaxFields: 1 << 20, MaxDepth: 1 << 20, MaxParts: 1 << 20, MaxValueBytes: 1 << 30}, all)
		c := &limitCounter{}
		r.Walk(scope, c)
		if c.n > scope.MaxFields {
			t.Fatalf("visited %d fields, max %d", c.n, scope.MaxFields)
		}
		seen := map[detections.WalkLimit]bool{}
		for _, l := range c.limits {
			if seen[l] {
				t.Fatalf("limit %v reported twice", l)
			}
			seen[l] = true
		}
		if all.n > scope.MaxFields && c.n == scope.MaxFields && !seen[detections.WalkLimitFields] && !seen[detections.WalkLimitParts] && !seen[detections.WalkLimitDepth] {
			t.Fatalf("%d fields walked silently past max_fields=%d", all.n, scope.MaxFields)
		}
	})
}
