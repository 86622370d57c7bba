package replay

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// readAll reads every record of in, splitting invalid records from fatal
// errors.
func readAll(t *testing.T, in *Input) (recs []*Record, invalid []*InvalidRecordError, fatal error) {
	t.Helper()
	t.Cleanup(func() { in.Close() })
	for r, err := range in.Records() {
		var inv *InvalidRecordError
		switch {
		case errors.As(err, &inv):
			invalid = append(invalid, inv)
		case err != nil:
			if fatal != nil {
				t.Fatalf("two fatal errors: %v, %v", fatal, err)
			}
			fatal = err
		default:
			recs = append(recs, r)
		}
	}
	return recs, invalid, fatal
}

func readFile(t *testing.T, path string, cfg ReadConfig) ([]*Record, []*InvalidRecordError) {
	t.Helper()
	in, err := Open([]string{path}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs, inv, err := readAll(t, in)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs, inv
}

func readString(t *testing.T, s string, cfg ReadConfig) ([]*Record, []*InvalidRecordError, error) {
	t.Helper()
	in, err := NewInput("mem", strings.NewReader(s), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, in)
}

type invalidAt struct {
	line, entry int
	code        string
}

func invalidLines(inv []*InvalidRecordError) []invalidAt {
	var out []invalidAt
	for _, e := range inv {
		out = append(out, invalidAt{e.Line, e.Entry, e.Code})
	}
	return out
}

func headerList(r *Record) string {
	var b strings.Builder
	for _, h := range r.Headers {
		fmt.Fprintf(&b, "%s: %s\n", h.Name, h.Value)
	}
	return b.String()
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReadCombined(t *testing.T) {
	t.Parallel()
	recs, inv := readFile(t, "testdata/access.log", DefaultReadConfig())
	wantInvalid := []invalidAt{{6, 0, InvalidLogLine}, {7, 0, InvalidRequestLine}, {12, 0, InvalidLogLine}, {13, 0, InvalidLogLine}}
	if got := invalidLines(inv); !reflect.DeepEqual(got, wantInvalid) {
		t.Fatalf("invalid = %v, want %v", got, wantInvalid)
	}
	var lines []int
	for _, r := range recs {
		lines = append(lines, r.Line)
		if r.Format != FormatCombined || r.Source != "testdata/access.log" || r.Body != nil || r.Host != "" {
			t.Errorf("line %d: %+v", r.Line, r)
		}
	}
	if want := []int{1, 2, 3, 4, 5, 8, 9, 10, 11, 15}; !reflect.DeepEqual(lines, want) {
		t.Fatalf("lines = %v, want %v", lines, want)
	}
	byLine := map[int]*Record{}
	for _, r := range recs {
		byLine[r.Line] = r
	}
	tests := []struct {
		line    int
		method  string
		target  string
		proto   string
		client  string
		time    string
		status  int
		headers string
		notes   []string
	}{
		{2, "GET", "/search?q=red+shoes&page=2", "HTTP/1.1", "203.0.113.10", "2026-03-02T10:00:01Z", 200,
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0\nReferer: https://shop.example/\n", nil},
		// nginx writes '"' as \x22.
		{4, "GET", `/item?name="><script>alert(1)</script>`, "HTTP/1.1", "198.51.100.23", "2026-03-02T10:00:02Z", 200, "User-Agent: curl/8.5.0\n", nil},
		// Apache writes \" inside quoted fields; IPv6 client; a remote user.
		{5, "POST", "/api/login?next=/home&session_token=abc123", "HTTP/1.1", "2001:db8::7", "2026-03-02T10:00:03Z", 302,
			"User-Agent: Mozilla/5.0 \"quoted\" agent\nReferer: https://shop.example/login?reset_token=zzz&step=2\n", nil},
		// nginx "main": a trailing "$http_x_forwarded_for".
		{9, "GET", "/api/users/42/orders", "HTTP/1.1", "10.0.0.5", "2026-03-02T10:00:05Z", 200,
			"User-Agent: okhttp/4.12.0\nX-Forwarded-For: 198.51.100.99, 10.0.0.5\n", []string{NoteLogForwardedFor}},
		// Common log format: no referer or user agent; another zone.
		{10, "HEAD", "/healthz", "HTTP/1.0", "203.0.113.77", "2026-03-02T10:00:06Z", 200, "", []string{NoteLogNoUserAgent}},
		// HostnameLookups: no client address.
		{11, "GET", "/robots.txt", "HTTP/1.1", "invalid IP", "2026-03-02T10:00:07Z", 200, "User-Agent: ExampleBot/1.0\n", []string{NoteLogRemoteNotIP}},
		// CRLF line ending.
		{15, "GET", "/cart", "HTTP/2.0", "203.0.113.10", "2026-03-02T10:00:09Z", 200,
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0\n", nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("line", tc.line), func(t *testing.T) {
			r := byLine[tc.line]
			if r.Method != tc.method || r.Target != tc.target || r.Proto != tc.proto || r.ClientIP.String() != tc.client ||
				!r.Time.Equal(mustTime(t, tc.time)) || r.Status != tc.status {
				t.Errorf("got %s %q %s client %v time %v status %d", r.Method, r.Target, r.Proto, r.ClientIP, r.Time, r.Status)
			}
			if h := headerList(r); h != tc.headers {
				t.Errorf("headers:\n%s\nwant:\n%s", h, tc.headers)
			}
			if !reflect.DeepEqual(r.Notes, tc.notes) {
				t.Errorf("notes %v, want %v", r.Notes, tc.notes)
			}
		})
	}
}

func TestParseLogLineEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line, request, ua string
	}{
		{"nginx hex", `1.2.3.4 - - [02/Mar/2026:10:00:00 +0000] "GET /a\x5Cb\xC3\xA9 HTTP/1.1" 200 1 "-" "x\x22y"`, `GET /a\bé HTTP/1.1`, `x"y`},
		{"apache backslashes", `1.2.3.4 - - [02/Mar/2026:10:00:00 +0000] "GET /a\\b HTTP/1.1" 200 1 "-" "say \"hi\"\t"`, `GET /a\b HTTP/1.1`, "say \"hi\"\t"},
		{"apache c-style", `1.2.3.4 - - [02/Mar/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 1 "-" "a\nb"`, `GET /x HTTP/1.1`, "a\nb"},
		{"bad hex kept", `1.2.3.4 - - [02/Mar/2026:10:00:00 +0000] "GET /x\xZZ HTTP/1.1" 200 1 "-" "-"`, `GET /x\xZZ HTTP/1.1`, "-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseLogLine(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if l.request != tc.request || l.userAgent != tc.ua {
				t.Errorf("request %q ua %q", l.request, l.userAgent)
			}
		})
	}
	// A control byte that unescapes into the request-target is refused the
	// way net/http refuses it; a header value with one is too.
	_, inv, err := readString(t, `1.2.3.4 - - [02/Mar/2026:10:00:00 +0000] "GET /x\x00y HTTP/1.1" 200 1 "-" "-"
1.2.3.4 - - [02/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "a\nb"
`, DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := invalidLines(inv), []invalidAt{{1, 0, InvalidTarget}, {2, 0, InvalidHeader}}; !reflect.DeepEqual(got, want) {
		t.Errorf("invalid %v, want %v", got, want)
	}
}

func TestReadJSONL(t *testing.T) {
	t.Parallel()
	recs, inv := readFile(t, "testdata/corpus.jsonl", DefaultReadConfig())
	wantInvalid := []invalidAt{
		{7, 0, InvalidJSON}, {8, 0, InvalidMethod}, {9, 0, InvalidTarget},
		{10, 0, InvalidBody}, {11, 0, InvalidClientIP}, {12, 0, InvalidHeader},
	}
	if got := invalidLines(inv); !reflect.DeepEqual(got, wantInvalid) {
		t.Fatalf("invalid = %v, want %v", got, wantInvalid)
	}
	for _, e := range inv {
		// The detail never quotes the record (a value could be a secret).
		if strings.Contains(e.Detail, "Injected") || strings.Contains(e.Detail, "300.1.1.1") {
			t.Errorf("detail leaks the value: %s", e.Detail)
		}
	}
	var lines []int
	for _, r := range recs {
		lines = append(lines, r.Line)
	}
	if want := []int{1, 2, 3, 4, 6, 13, 14}; !reflect.DeepEqual(lines, want) {
		t.Fatalf("lines = %v, want %v", lines, want)
	}
	r := recs[2]
	if r.ID != "mgm-sqli-00003-htmlform" || r.Label != "attack" || r.Method != "POST" || r.Target != "/" || r.Proto != "HTTP/1.1" ||
		string(r.Body) != "p=1%27%20UNION%20SELECT%20password%20FROM%20users--" || r.ClientIP.IsValid() || !r.Time.IsZero() {
		t.Errorf("record 3: %+v", r)
	}
	r = recs[3]
	if r.ClientIP != netip.MustParseAddr("203.0.113.5") || !r.Time.Equal(mustTime(t, "2026-03-02T12:00:00Z")) ||
		headerList(r) != "User-Agent: python-requests/2.28.1\nCookie: sid=s3cr3t; cart=7\nAuthorization: Basic YWxpY2U6aHVudGVyMg==\nX-Api-Key: k-9999\n" {
		t.Errorf("record 4: %+v", r)
	}
	if r := recs[4]; !bytes.Equal(r.Body, []byte{0xff, 0x00, 'a'}) {
		t.Errorf("body_b64: %q", r.Body)
	}
	if r := recs[5]; r.Host != "shop.example" || len(r.Headers) != 1 || !reflect.DeepEqual(r.Notes, []string{NoteHostHeaderMoved}) {
		t.Errorf("Host header: %+v", r)
	}
}

func TestReadJSONLFieldChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line, code string
	}{
		{"header triple", `{"method":"GET","path":"/","headers":[["a","b","c"]]}`, InvalidHeader},
		{"header name", `{"method":"GET","path":"/","headers":[["a b","c"]]}`, InvalidHeader},
		{"two hosts", `{"method":"GET","path":"/","headers":[["Host","a"],["host","b"]]}`, InvalidHeader},
		{"both bodies", `{"method":"POST","path":"/","body":"a","body_b64":"YQ=="}`, InvalidBody},
		{"time", `{"method":"GET","path":"/","time":"yesterday"}`, InvalidTime},
		{"proto", `{"method":"GET","path":"/","proto":"SPDY/3"}`, InvalidProto},
		{"status", `{"method":"GET","path":"/","status":42}`, InvalidStatus},
		{"space in path", `{"method":"GET","path":"/a b"}`, InvalidTarget},
		{"method token", `{"method":"GE T","path":"/"}`, InvalidMethod},
		{"wrong type", `{"method":"GET","path":"/","headers":"x"}`, InvalidJSON},
		{"array", `["GET","/"]`, InvalidJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultReadConfig()
			cfg.Format = FormatJSONL
			recs, inv, err := readString(t, tc.line+"\n", cfg)
			if err != nil || len(recs) != 0 || len(inv) != 1 || inv[0].Code != tc.code || inv[0].Line != 1 {
				t.Fatalf("recs %v invalid %v err %v", recs, inv, err)
			}
		})
	}
	// What a wrong line is told, without its values.
	for _, tc := range []struct{ line, detail string }{
		{`{"method":"GET","path":"/","headers":"x"}`, "field headers: JSON string where an array of strings expected"},
		{`{"method":5,"path":"/"}`, "field method: JSON number where a string expected"},
		{`{"method":"GET","path":"/","headers":[["a",7]]}`, "field headers.0.1: JSON number where a string expected"},
		{`{"method":"GET","path":"/secret`, "JSON syntax error at byte 31"},
	} {
		cfg := DefaultReadConfig()
		cfg.Format = FormatJSONL
		_, inv, err := readString(t, tc.line+"\n", cfg)
		if err != nil || len(inv) != 1 || inv[0].Detail != tc.detail {
			t.Errorf("%s: invalid %+v err %v, want detail %q", tc.line, inv, err, tc.detail)
		}
	}
	// What encoding/json accepted is still accepted: names in any case,
	// a repeated name (the last wins), invalid UTF-8 in a value.
	for _, tc := range []struct{ line, method, path string }{
		{`{"METHOD":"GET","Path":"/a"}`, "GET", "/a"},
		{`{"method":"PUT","method":"GET","path":"/b"}`, "GET", "/b"},
		{"{\"method\":\"GET\",\"path\":\"/c\",\"headers\":[[\"User-Agent\",\"x\xff\"]]}", "GET", "/c"},
	} {
		recs, inv, err := readString(t, tc.line+"\n", DefaultReadConfig())
		if err != nil || len(inv) != 0 || len(recs) != 1 || recs[0].Method != tc.method || recs[0].Target != tc.path {
			t.Errorf("%q: recs %+v invalid %+v err %v", tc.line, recs, inv, err)
		}
	}
	// The optional fields of a recording.
	cfg := DefaultReadConfig()
	recs, _, err := readString(t, `{"method":"OPTIONS","path":"*","host":"api.example","proto":"HTTP/2","status":204,"client_ip":"::ffff:192.0.2.1","time":"2026-03-02T12:00:00.123+01:00"}`, cfg)
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	r := recs[0]
	if r.Target != "*" || r.Host != "api.example" || r.Proto != "HTTP/2.0" || r.Status != 204 ||
		r.ClientIP != netip.MustParseAddr("192.0.2.1") || !r.Time.Equal(mustTime(t, "2026-03-02T11:00:00.123Z")) {
		t.Errorf("%+v", r)
	}
}

func TestReadHARChrome(t *testing.T) {
	t.Parallel()
	recs, inv := readFile(t, "testdata/chrome.har", DefaultReadConfig())
	if got, want := invalidLines(inv), []invalidAt{{359, 5, InvalidMethod}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("invalid = %v, want %v", got, want)
	}
	if len(recs) != 5 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Line != 20 || r.Entry != 1 || r.Method != "GET" || r.Target != "/" || r.Proto != "HTTP/2.0" || r.Host != "shop.example" ||
		r.Status != 200 || !r.Time.Equal(mustTime(t, "2026-03-02T10:15:30Z")) || r.ClientIP.IsValid() {
		t.Errorf("entry 1: %+v", r)
	}
	// Pseudo-headers dropped, names as exported (lowercase for HTTP/2),
	// the Cookie header kept as sent (not rebuilt from cookies[]).
	if h := headerList(r); h != "accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\naccept-language: en-GB,en;q=0.9\n"+
		"cookie: sid=s3cr3t-session; theme=dark\nuser-agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36\n" {
		t.Errorf("headers:\n%s", h)
	}
	if !reflect.DeepEqual(r.Notes, []string{NoteHARPseudoHeaders}) {
		t.Errorf("notes %v", r.Notes)
	}
	// The fragment is dropped; the query is kept as written.
	if r := recs[1]; r.Target != "/search?q=red+shoes&page=2" || !r.Time.Equal(mustTime(t, "2026-03-02T10:15:30.450Z")) {
		t.Errorf("entry 2: %q %v", r.Target, r.Time)
	}
	if r := recs[2]; string(r.Body) != `{"sku":"SHOE-42","quantity":1}` || r.Method != "POST" {
		t.Errorf("entry 3 body %q", r.Body)
	}
	if r := recs[3]; r.Target != "/search?q=%27%20OR%201%3D1--" || r.Status != 403 {
		t.Errorf("entry 4: %+v", r)
	}
	// HTTP/1.1 with a Host header and a port; a multipart upload without
	// text: no body, and a note saying so.
	r = recs[4]
	if r.Entry != 6 || r.Line != 406 || r.Host != "api.example:8080" || r.Proto != "HTTP/1.1" || r.Body != nil ||
		r.Target != "/v1/items/42?api_key=k-123456&fields=name" ||
		!reflect.DeepEqual(r.Notes, []string{NoteHostHeaderMoved, NoteHARMultipartNoText}) {
		t.Errorf("entry 6: %+v", r)
	}
}

func TestReadHARMitmproxy(t *testing.T) {
	t.Parallel()
	recs, inv := readFile(t, "testdata/mitmproxy.har", DefaultReadConfig())
	if got, want := invalidLines(inv), []invalidAt{{257, 5, InvalidEntry}, {258, 6, InvalidURL}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("invalid = %v, want %v", got, want)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	// mitmproxy's isoformat time; request.cookies rebuilt into a Cookie
	// header because the headers carry none.
	if !r.Time.Equal(mustTime(t, "2026-03-02T11:00:00.25Z")) || r.Host != "api.example" || string(r.Body) != "username=alice&password=hunter2!" ||
		headerList(r) != "User-Agent: curl/8.11.1\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 32\nCookie: lang=en\n" ||
		!reflect.DeepEqual(r.Notes, []string{NoteHostHeaderMoved, NoteHARCookieFromArray}) {
		t.Errorf("entry 1: %+v\n%s", r, headerList(r))
	}
	// HTTP/2 from mitmproxy: no pseudo-headers, the host from the URL.
	if r := recs[1]; r.Proto != "HTTP/2.0" || r.Host != "api.example" || r.Target != "/v1/files?name=..%2F..%2Fetc%2Fpasswd" || r.Status != 404 {
		t.Errorf("entry 2: %+v", r)
	}
	// postData marked base64.
	if r := recs[2]; !bytes.Equal(r.Body, []byte{0, 1, 0xff, '.'}) || r.Method != "PUT" {
		t.Errorf("entry 3 body %q", r.Body)
	}
	// No text: the form rebuilt from params, escaped where needed.
	if r := recs[3]; string(r.Body) != "q=a%26b+c&sort=asc" || !reflect.DeepEqual(r.Notes, []string{NoteHostHeaderMoved, NoteHARBodyFromParams}) {
		t.Errorf("entry 4 body %q notes %v", r.Body, r.Notes)
	}
}

func TestReadHARShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		har     string
		records int
		invalid []invalidAt
		fatal   bool
	}{
		{"minified, entries before other keys", `{"log":{"entries":[{"request":{"method":"GET","url":"http://a/x?y=1","httpVersion":"HTTP/1.1","headers":[]}}],"version":"1.2","creator":{"name":"x"}}}`, 1, nil, false},
		{"other top-level keys and escaped keys", `{"comment":"{[\"", "lo\u0067":{"pages":[{"a":[1,2,{"b":"]}"}]}],"entries":[]}}`, 0, nil, false},
		{"no entries", `{"log":{"version":"1.2"}}`, 0, nil, false},
		{"scalars skipped", `{"log":{"version":1.2,"x":true,"y":null,"entries":[{"request":{"method":"GET","url":"https://h/"}}]}}`, 1, nil, false},
		{"query from queryString", `{"log":{"entries":[{"request":{"method":"GET","url":"https://h/s","queryString":[{"name":"q","value":"a b"}]}}]}}`, 1, nil, false},
		{"bad entry JSON type", `{"log":{"entries":[{"request":{"method":"GET","url":"https://h/","headers":"x"}},{"request":{"method":"GET","url":"https://h/"}}]}}`, 1, []invalidAt{{1, 1, InvalidJSON}}, false},
		{"bad time", `{"log":{"entries":[{"startedDateTime":"Mon","request":{"method":"GET","url":"https://h/"}}]}}`, 0, []invalidAt{{1, 1, InvalidTime}}, false},
		{"ftp url", `{"log":{"entries":[{"request":{"method":"GET","url":"ftp://h/"}}]}}`, 0, []invalidAt{{1, 1, InvalidURL}}, false},
		{"bad base64", `{"log":{"entries":[{"request":{"method":"POST","url":"https://h/","postData":{"text":"!","encoding":"base64"}}}]}}`, 0, []invalidAt{{1, 1, InvalidBody}}, false},
		{"bad version", `{"log":{"entries":[{"request":{"method":"GET","url":"https://h/","httpVersion":"SPDY"}}]}}`, 0, []invalidAt{{1, 1, InvalidProto}}, false},
		{"no log", `{"foo":{"entries":[]}}`, 0, nil, true},
		{"log not object", `{"log":[]}`, 0, nil, true},
		{"entries not array", `{"log":{"entries":{}}}`, 0, nil, true},
		{"truncated", `{"log":{"entries":[{"request":{"method":"GET","url":"https://h/"}},{"request":`, 1, nil, true},
		{"missing comma", `{"log":{"entries":[{"request":{"method":"GET","url":"https://h/"}} {}]}}`, 1, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultReadConfig()
			cfg.Format = FormatHAR
			recs, inv, err := readString(t, tc.har, cfg)
			if len(recs) != tc.records || !reflect.DeepEqual(invalidLines(inv), tc.invalid) || (err != nil) != tc.fatal {
				t.Fatalf("records %d invalid %v err %v", len(recs), invalidLines(inv), err)
			}
			if tc.fatal && !errors.Is(err, errHARStructure) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("fatal error %v", err)
			}
		})
	}
	recs, _, _ := readString(t, tests[4].har, DefaultReadConfig())
	if recs[0].Target != "/s?q=a+b" || !reflect.DeepEqual(recs[0].Notes, []string{NoteHARQueryFromParams, NoteHARNoHTTPVersion}) {
		t.Errorf("queryString: %q %v", recs[0].Target, recs[0].Notes)
	}
}

func TestCompressedVariants(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"access.log", "corpus.jsonl", "chrome.har"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			plain, pinv := readFile(t, filepath.Join("testdata", name), DefaultReadConfig())
			gz, ginv := readFile(t, filepath.Join("testdata", name+".gz"), DefaultReadConfig())
			for _, r := range gz {
				r.Source = strings.TrimSuffix(r.Source, ".gz")
			}
			for _, e := range ginv {
				e.Source = strings.TrimSuffix(e.Source, ".gz")
			}
			if !reflect.DeepEqual(plain, gz) || !reflect.DeepEqual(pinv, ginv) || len(plain) == 0 {
				t.Errorf("gzip variant differs: %d vs %d records", len(plain), len(gz))
			}
		})
	}
	// mitmproxy's .zhar is zlib.
	raw, err := os.ReadFile("testdata/mitmproxy.har")
	if err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&zb, 9)
	zw.Write(raw)
	zw.Close()
	path := filepath.Join(t.TempDir(), "flows.zhar")
	if err := os.WriteFile(path, zb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	z, zinv := readFile(t, path, DefaultReadConfig())
	if len(z) != 4 || len(zinv) != 2 {
		t.Errorf("zhar: %d records, %d invalid", len(z), len(zinv))
	}
}

func TestCorruptGzipIsFatal(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/corpus.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cut.jsonl.gz")
	if err := os.WriteFile(path, raw[:len(raw)-12], 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := Open([]string{path}, DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	_, _, fatal := readAll(t, in)
	if fatal == nil {
		t.Fatal("a truncated gzip file read as a short input")
	}
}

func TestDetectFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		head string
		want Format
		err  bool
	}{
		{"jsonl", `{"id":"x","method":"GET"}` + "\n", FormatJSONL, false},
		{"har pretty", "{\n  \"log\": {\n", FormatHAR, false},
		{"har minified", `{"log":{"version":"1.2"`, FormatHAR, false},
		{"combined", `1.2.3.4 - - [02/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"` + "\n", FormatCombined, false},
		{"combined after garbage", "garbage\n" + `::1 - - [02/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1` + "\n", FormatCombined, false},
		{"empty", "  \n", FormatJSONL, false},
		{"array", `[{"log":1}]`, "", true},
		{"text", "hello\nworld\n", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DetectFormat([]byte(tc.head))
			if got != tc.want || (err != nil) != tc.err {
				t.Errorf("got %q, %v", got, err)
			}
			if err != nil && !errors.Is(err, ErrUnknownFormat) {
				t.Errorf("error %v is not ErrUnknownFormat", err)
			}
		})
	}
	// Undetectable input is fatal, not a file of invalid records.
	_, _, err := readString(t, "hello\n", DefaultReadConfig())
	if !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("err %v", err)
	}
	// A UTF-8 byte-order mark (Windows exporters) is skipped.
	recs, _, err := readString(t, "\ufeff"+`{"log":{"entries":[{"request":{"method":"GET","url":"https://h/"}}]}}`, DefaultReadConfig())
	if err != nil || len(recs) != 1 {
		t.Errorf("BOM: %v %v", recs, err)
	}
}

func TestForcedFormat(t *testing.T) {
	t.Parallel()
	cfg := DefaultReadConfig()
	cfg.Format = FormatJSONL
	recs, inv := readFile(t, "testdata/access.log", cfg)
	// Every non-blank line is reported, none is dropped.
	if len(recs) != 0 || len(inv) != 14 || inv[13].Line != 15 {
		t.Errorf("%d records, %d invalid", len(recs), len(inv))
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	cfg := DefaultReadConfig()
	cfg.MaxRecordBytes = 1024
	big := `{"method":"GET","path":"/` + strings.Repeat("a", 300<<10) + `"}`
	ok := `{"method":"GET","path":"/ok"}`
	edge := `{"method":"GET","path":"/` + strings.Repeat("b", 1024-len(`{"method":"GET","path":"/"}`)) + `"}`
	recs, inv, err := readString(t, ok+"\n"+big+"\n"+edge+"\r\n"+edge+"x\n"+ok, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := invalidLines(inv), []invalidAt{{2, 0, InvalidTooLarge}, {4, 0, InvalidTooLarge}}; !reflect.DeepEqual(got, want) {
		t.Errorf("invalid %v, want %v", got, want)
	}
	if len(recs) != 3 || recs[1].Line != 3 || recs[2].Line != 5 {
		t.Errorf("records %v", recs)
	}

	// A HAR entry over the limit is skipped without buffering it, and the
	// next entry is read.
	har := `{"log":{"entries":[{"request":{"method":"GET","url":"https://h/` + strings.Repeat("c", 4096) + `"}},` + "\n" +
		`{"request":{"method":"GET","url":"https://h/next"}}]}}`
	cfg.Format = FormatAuto
	recs, inv, err = readString(t, har, cfg)
	if err != nil || len(recs) != 1 || recs[0].Target != "/next" || recs[0].Line != 2 {
		t.Fatalf("records %v err %v", recs, err)
	}
	if got, want := invalidLines(inv), []invalidAt{{1, 1, InvalidTooLarge}}; !reflect.DeepEqual(got, want) {
		t.Errorf("invalid %v, want %v", got, want)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	if _, err := Open([]string{"testdata/nope.log"}, DefaultReadConfig()); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := Open([]string{"testdata"}, DefaultReadConfig()); err == nil {
		t.Error("directory accepted")
	}
	if _, err := Open(nil, DefaultReadConfig()); err == nil {
		t.Error("no files accepted")
	}
	bad := ReadConfig{Format: "xml", MaxRecordBytes: 10}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "xml") || !strings.Contains(err.Error(), "1024") {
		t.Errorf("Validate joins every problem: %v", err)
	}

	// Several files, each with its own format, in order.
	in, err := Open([]string{"testdata/access.log.gz", "testdata/corpus.jsonl", "testdata/mitmproxy.har"}, DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat("testdata/corpus.jsonl")
	if in.Size() <= st.Size() {
		t.Errorf("size %d", in.Size())
	}
	recs, inv, err := readAll(t, in)
	if err != nil || len(recs) != 10+7+4 || len(inv) != 4+6+2 {
		t.Fatalf("%d records %d invalid %v", len(recs), len(inv), err)
	}
	if recs[0].Format != FormatCombined || recs[10].Format != FormatJSONL || recs[17].Format != FormatHAR {
		t.Error("formats not detected per file")
	}
	if in.BytesRead() != in.Size() {
		t.Errorf("read %d of %d bytes", in.BytesRead(), in.Size())
	}
	// An input is read once.
	for _, err := range in.Records() {
		if err == nil {
			t.Error("second iteration yielded a record")
		}
	}
}

func TestGzipStdinLikeReader(t *testing.T) {
	t.Parallel()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	io.WriteString(zw, `{"method":"GET","path":"/a"}`+"\n")
	zw.Close()
	// Two gzip members concatenated (cat a.gz b.gz) read as one stream.
	two := append(append([]byte{}, zb.Bytes()...), zb.Bytes()...)
	in, err := NewInput("stdin", bytes.NewReader(two), DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := readAll(t, in)
	if err != nil || len(recs) != 2 || recs[1].Line != 2 {
		t.Errorf("records %v err %v", recs, err)
	}
}

func TestEarlyStopClosesFile(t *testing.T) {
	t.Parallel()
	in, err := Open([]string{"testdata/corpus.jsonl"}, DefaultReadConfig())
	if err != nil {
		t.Fatal(err)
	}
	for range in.Records() {
		break
	}
	if in.cur != nil {
		t.Error("file left open after the loop stopped")
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Format{
		"": FormatAuto, "auto": FormatAuto, "JSONL": FormatJSONL, "ndjson": FormatJSONL,
		"har": FormatHAR, "combined": FormatCombined, "nginx": FormatCombined, "common": FormatCombined,
	} {
		if got, err := ParseFormat(in); got != want || err != nil {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("xml accepted")
	}
	e := &InvalidRecordError{Source: "a.har", Format: FormatHAR, Line: 3, Entry: 2, Code: InvalidURL, Detail: "d"}
	if e.Error() != "a.har:3 (entry 2): invalid har record (url): d" {
		t.Errorf("Error() = %q", e.Error())
	}
}
