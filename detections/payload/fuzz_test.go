package payload

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/normalize"
)

// fuzzBudget bounds the time of one Inspect in the fuzzers: hostile input
// must not buy quadratic work.
const fuzzBudget = time.Second

// fuzzSeeds are the values of the testdata cases and of a few hostile
// shapes.
func fuzzSeeds(tb testing.TB) []string {
	seeds := []string{
		"", "'", "<", "${", "$(", "../", "%c0%ae", "\r\n", "{{7*7}}", "() {", "<!ENTITY", "__proto__",
		")(cn=*", "http://127.1/", "unix:a|http://x", "\\u003c", strings.Repeat("${", 300), strings.Repeat("(", 1000),
		strings.Repeat("../", 500), strings.Repeat("'", 2000), strings.Repeat("<a ", 500),
	}
	files, _ := filepath.Glob("testdata/*/*.txt")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, "="); i >= 0 && strings.HasPrefix(line, "GET ") {
				if v, err := url.QueryUnescape(line[i+1:]); err == nil {
					seeds = append(seeds, v)
				}
			}
		}
	}
	return seeds
}

// FuzzInspect runs the whole detection on fuzzed requests: no panic, and
// every request inspected within fuzzBudget.
func FuzzInspect(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add("GET", "/search?q="+url.QueryEscape(s), s, s, "application/x-www-form-urlencoded", "v="+url.QueryEscape(s))
	}
	f.Add("POST", "/", "", "", "application/json", `{"a":{"$where":"x"},"__proto__":{}}`)
	f.Add("POST", "/", "", "", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a;b\"\r\n\r\nx\r\n--b--")
	f.Add("POST", "/", "", "", "application/xml", `<!DOCTYPE a [<!ENTITY b SYSTEM "x">]><a>&b;</a>`)
	d, err := New(DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, target, header, cookie, contentType, body string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // net/http answers 400 before the gateway sees it
		}
		h := http.Header{"User-Agent": {header}, "X-Custom": {header}, "Cookie": {cookie}, "Content-Type": {contentType}, "Range": {header}}
		r := &detections.Request{Method: method, Header: h, Path: u.Path, RawPath: u.EscapedPath(), RawQuery: u.RawQuery}
		if body != "" {
			r.Body = []byte(body)
		}
		start := time.Now()
		v, err := d.Inspect(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > fuzzBudget {
			t.Fatalf("Inspect took %v", el)
		}
		if v.Action == detections.ActionBlock && (v.Rule == "" || v.Location == "" || v.Score < ScoreCritical) {
			t.Fatalf("incomplete block verdict %+v", v)
		}
	})
}

// FuzzAnalyzers shows fuzzed values to every analyzer as every kind of
// field, keys included.
func FuzzAnalyzers(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint8(0))
	}
	analyzers := builtins(DefaultConfig())
	kinds := []detections.FieldKind{detections.FieldPath, detections.FieldQuery, detections.FieldCookie,
		detections.FieldHeader, detections.FieldForm, detections.FieldJSON, detections.FieldMultipart, detections.FieldBody}
	f.Fuzz(func(t *testing.T, value string, sel uint8) {
		kind := kinds[int(sel)%len(kinds)]
		field := &detections.Field{Kind: kind, IsKey: sel&0x80 != 0, Name: "f", Value: value,
			URLEncoded: kind <= detections.FieldQuery || kind == detections.FieldForm,
			Plus:       kind == detections.FieldQuery || kind == detections.FieldForm}
		if sel&0x40 != 0 {
			field.ContentType = "application/xml"
		}
		var buf normalize.Buffer
		in := Input{buf: &buf}
		in.startRequest(&detections.Request{Method: "POST", Header: http.Header{}, Body: []byte(value)})
		for _, a := range analyzers {
			in.reset(field)
			start := time.Now()
			fd, ok := a.Analyze(&in)
			if el := time.Since(start); el > fuzzBudget {
				t.Fatalf("%s took %v", a.Name(), el)
			}
			if ok && (fd.Rule == "" || fd.Score <= 0 || fd.Score > ScoreCritical) {
				t.Fatalf("%s: bad finding %+v", a.Name(), fd)
			}
		}
	})
}

// decoderSeeds are inputs of the XSS decoders below: CSS comments and
// escapes, UTF-7 runs, CDATA sections, and broken forms of each.
var decoderSeeds = []string{
	`x:expr/**/ession(alert(1))`, `\6a\61vascript:`, `\000065`, `\`, `/*`, `/**/`, `a\ b`, `\ffffff`,
	`+ADw-script+AD4-`, `+AD`, `+`, `+-`, `+49-`, `+AGEAYgBj-`, `+//8-`,
	`<![cdata[<]]>script<![cdata[>]]>`, `<![cdata[`, `]]>`, `<![cdata[<![cdata[x]]>]]>`,
}

// FuzzCSSNormal: CSS normalisation never grows its input and leaves CSS
// without escapes or comments alone.
func FuzzCSSNormal(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := cssNormal(nil, []byte(s))
		if len(out) > len(s) {
			t.Fatalf("cssNormal(%q) grew to %q", s, out)
		}
		if !strings.Contains(s, "/*") && !strings.Contains(s, `\`) && string(out) != s {
			t.Fatalf("cssNormal(%q) = %q, changed text without escapes", s, out)
		}
	})
}

// FuzzUTF7Markup: UTF-7 decoding only replaces runs by shorter ASCII.
func FuzzUTF7Markup(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := utf7Markup([]byte(s))
		if out == nil {
			return
		}
		if !strings.Contains(s, "+") {
			t.Fatalf("utf7Markup(%q) changed a value without '+'", s)
		}
		if len(out) >= len(s) {
			t.Fatalf("utf7Markup(%q) = %q, not shorter", s, out)
		}
	})
}

// FuzzStripCDATA: removing CDATA markers keeps every other byte in order.
func FuzzStripCDATA(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := stripCDATA(nil, []byte(s))
		if len(out) > len(s) {
			t.Fatalf("stripCDATA(%q) grew to %q", s, out)
		}
		if !strings.Contains(s, "<![cdata[") && string(out) != s {
			t.Fatalf("stripCDATA(%q) = %q without a marker", s, out)
		}
	})
}

// FuzzDataURI: the base64 content of data: URIs is decoded and inspected
// within the fuzz budget, whatever surrounds it.
func FuzzDataURI(f *testing.F) {
	// The seeds that are data: URIs carrying a script must be found.
	scripts := map[string]bool{"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==": true} // <script>alert(1)</script>
	for s := range scripts {
		f.Add(s)
	}
	for _, s := range []string{"data:;base64,", "x;base64 ,AAAA", "data:a/b;base64,#####", strings.Repeat("data:x;base64,QUJD;", 200)} {
		f.Add(s)
	}
	a := newBase64Analyzer()
	f.Fuzz(func(t *testing.T, s string) {
		field := &detections.Field{Kind: detections.FieldJSON, Name: "u", Value: s}
		var buf normalize.Buffer
		in := Input{buf: &buf}
		in.startRequest(&detections.Request{Method: "POST", Header: http.Header{}})
		in.reset(field)
		start := time.Now()
		_, ok := a.dataURI(&in)
		if el := time.Since(start); el > fuzzBudget {
			t.Fatalf("dataURI took %v", el)
		}
		if scripts[s] && !ok {
			t.Fatalf("dataURI(%q) found nothing", s)
		}
	})
}
