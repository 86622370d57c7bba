// Package corpustest holds the detections' shared test fixtures: the
// labelled development corpora (JSON lines, gzip; see
// ../shared/corpus/README.md), each record's request view as the gateway
// would build it behind the corpus runner, and the benchmark requests the
// payload and crs benchmarks share (requests.go).
package corpustest

import (
	"bufio"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/rampartgw/rampart/detections"
)

// Record is one corpus line.
type Record struct {
	ID       string      `json:"id"`
	Source   string      `json:"source"`
	Category string      `json:"category"`
	Expect   string      `json:"expect"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Headers  [][2]string `json:"headers"`
	Body     string      `json:"body"`
	BodyB64  string      `json:"body_b64"`
	Payload  string      `json:"payload"`
	// Placeholder says where the payload sits (URLParam, JSONRequest, ...).
	Placeholder string `json:"placeholder"`
}

// File is one corpus file, read once per test binary.
type File struct {
	Path string
	once sync.Once
	recs []Record
	err  error
}

// Load returns the file's records; it skips t when the file is absent
// (the corpora live in ../shared beside the repository).
func (f *File) Load(t testing.TB) []Record {
	t.Helper()
	if _, err := os.Stat(f.Path); err != nil {
		t.Skipf("corpus not found at %s (it lives in ../shared beside the repository): %v", f.Path, err)
	}
	f.once.Do(func() { f.recs, f.err = read(f.Path) })
	if f.err != nil {
		t.Fatal(f.err)
	}
	return f.recs
}

func read(path string) ([]Record, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		return nil, err
	}
	var recs []Record
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("decoding %s line %d: %w", path, len(recs)+1, err)
		}
		recs = append(recs, rec)
	}
	return recs, sc.Err()
}

// Request builds the request view the way the gateway's handler does:
// net/http parses the request-target, then Path, EscapedPath and RawQuery
// fill the view; the runner's X-Forwarded-For is the one the gateway
// trusts. It returns nil for a target net/http would refuse with 400 (the
// gateway never sees it).
func Request(rec *Record) *detections.Request {
	u, err := url.ParseRequestURI(rec.Path)
	if err != nil {
		return nil
	}
	h := http.Header{}
	for _, kv := range rec.Headers {
		k := textproto.CanonicalMIMEHeaderKey(kv[0])
		if k == "Host" {
			continue
		}
		h[k] = append(h[k], kv[1])
	}
	h["X-Forwarded-For"] = []string{"198.18.0.1"}
	r := &detections.Request{
		Method: rec.Method, Host: "localhost", Proto: "HTTP/1.1", Header: h,
		Path: u.Path, RawPath: u.EscapedPath(), RawQuery: u.RawQuery,
	}
	switch {
	case rec.BodyB64 != "":
		r.Body, _ = base64.StdEncoding.DecodeString(rec.BodyB64)
	case rec.Body != "":
		r.Body = []byte(rec.Body)
	}
	return r
}
