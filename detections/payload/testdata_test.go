package payload_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// TestTestdata runs the cases in testdata/<analyzer>/*.txt against the
// default configuration. A file holds cases separated by a line of
// "==========". A case is an HTTP request: the request line ("GET /x?q=1"),
// header lines, a blank line and the body (lines joined with CRLF for
// multipart bodies, LF otherwise; no trailing newline); then a line of
// "----------" and the expected verdict: "allow", "block" (any rule), or
// "block <rule>" with an optional location ("block sqli query:q"). Lines
// starting with "#" before the request line are comments; the last one
// names the case. A comment "#! exclude path=/cms/ fields=json:doc
// rules=cmdi" runs the case with that exclusion added to the defaults
// (fields and rules are comma-separated; each key is optional).
func TestTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	dets := map[string]*payload.Detection{}
	detection := func(t *testing.T, excl []payload.Exclusion) *payload.Detection {
		t.Helper()
		key := fmt.Sprint(excl)
		if d, ok := dets[key]; ok {
			return d
		}
		cfg := payload.DefaultConfig()
		cfg.Exclusions = excl
		d, err := payload.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		dets[key] = d
		return d
	}
	for _, file := range files {
		cases := readCases(t, file)
		for _, tc := range cases {
			d := detection(t, tc.exclusions)
			t.Run(strings.TrimSuffix(strings.TrimPrefix(file, "testdata/"), ".txt")+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				v, err := d.Inspect(t.Context(), tc.req)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case tc.want == "allow":
					if v.Action == detections.ActionBlock {
						t.Errorf("%s:%d: blocked by %s at %s (score %d), want allow", file, tc.line, v.Rule, v.Location, v.Score)
					}
				default:
					f := strings.Fields(tc.want)
					if len(f) < 1 || f[0] != "block" {
						t.Fatalf("%s:%d: bad verdict %q", file, tc.line, tc.want)
					}
					if v.Action != detections.ActionBlock {
						t.Errorf("%s:%d: allowed (score %d), want %s", file, tc.line, v.Score, tc.want)
						return
					}
					if len(f) > 1 && v.Rule != f[1] {
						t.Errorf("%s:%d: blocked by %s at %s, want %s", file, tc.line, v.Rule, v.Location, f[1])
					}
					if len(f) > 2 && v.Location != f[2] {
						t.Errorf("%s:%d: location %s, want %s", file, tc.line, v.Location, f[2])
					}
				}
			})
		}
	}
}

type dataCase struct {
	name       string
	line       int
	req        *detections.Request
	want       string
	exclusions []payload.Exclusion
}

func readCases(t *testing.T, file string) []dataCase {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		cases []dataCase
		block []string
		start = 1
		n     = 0
	)
	flush := func() {
		if len(block) > 0 {
			cases = append(cases, parseCase(t, file, start, block))
		}
		block = nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "==========" {
			flush()
			start = n + 1
			continue
		}
		block = append(block, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return cases
}

func parseCase(t *testing.T, file string, start int, lines []string) dataCase {
	t.Helper()
	// Leading comments, directives and blank lines.
	name := ""
	var excl []payload.Exclusion
	for len(lines) > 0 && (strings.HasPrefix(lines[0], "#") || strings.TrimSpace(lines[0]) == "") {
		switch {
		case strings.HasPrefix(lines[0], "#! exclude"):
			excl = append(excl, parseExclusion(t, file, start, strings.TrimPrefix(lines[0], "#! exclude")))
		case strings.HasPrefix(lines[0], "#"):
			name = strings.TrimSpace(strings.TrimPrefix(lines[0], "#"))
		}
		lines, start = lines[1:], start+1
	}
	sep := -1
	for i, l := range lines {
		if l == "----------" {
			sep = i
		}
	}
	if sep < 1 || sep+1 >= len(lines) {
		t.Fatalf("%s:%d: a case needs a request, a ---------- line and a verdict", file, start)
	}
	want := strings.TrimSpace(lines[sep+1])
	reqLines := lines[:sep]
	method, target, ok := strings.Cut(reqLines[0], " ")
	if !ok {
		t.Fatalf("%s:%d: bad request line %q", file, start, reqLines[0])
	}
	target, _, _ = strings.Cut(target, " HTTP/")
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatalf("%s:%d: %v", file, start, err)
	}
	h := http.Header{}
	i := 1
	for ; i < len(reqLines) && reqLines[i] != ""; i++ {
		k, v, ok := strings.Cut(reqLines[i], ":")
		if !ok {
			t.Fatalf("%s:%d: bad header %q", file, start+i, reqLines[i])
		}
		k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
		h[k] = append(h[k], strings.TrimLeft(v, " "))
	}
	r := &detections.Request{Method: method, Host: "localhost", Proto: "HTTP/1.1", Header: h,
		Path: u.Path, RawPath: u.EscapedPath(), RawQuery: u.RawQuery}
	if i < len(reqLines) {
		nl := "\n"
		if strings.HasPrefix(strings.ToLower(h.Get("Content-Type")), "multipart/") {
			nl = "\r\n"
		}
		if body := strings.Join(reqLines[i+1:], nl); body != "" {
			r.Body = []byte(body)
		}
	}
	if name == "" {
		name = strings.NewReplacer(" ", "_", "/", "_").Replace(reqLines[0])
		if len(name) > 60 {
			name = name[:60]
		}
	}
	return dataCase{name: name, line: start, req: r, want: want, exclusions: excl}
}

// parseExclusion reads "path=/cms/ methods=POST fields=json:a,json:b
// rules=cmdi,xss".
func parseExclusion(t *testing.T, file string, line int, s string) payload.Exclusion {
	t.Helper()
	var x payload.Exclusion
	for _, kv := range strings.Fields(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("%s:%d: bad exclusion %q", file, line, kv)
		}
		switch k {
		case "path":
			x.Path = v
		case "methods":
			x.Methods = strings.Split(v, ",")
		case "fields":
			x.Fields = strings.Split(v, ",")
		case "rules":
			x.Rules = strings.Split(v, ",")
		default:
			t.Fatalf("%s:%d: unknown exclusion key %q", file, line, k)
		}
	}
	return x
}
