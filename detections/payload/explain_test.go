package payload

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/normalize"
)

// TestExplain prints, for RAMPART_EXPLAIN=<record id>[,<id>...], every
// finding of every analyzer on every field of those corpus records: the
// tool for tuning an analyzer on a false positive or a miss. It skips
// otherwise.
func TestExplain(t *testing.T) {
	ids := os.Getenv("RAMPART_EXPLAIN")
	if ids == "" {
		t.Skip("set RAMPART_EXPLAIN=<corpus record id> to explain a verdict")
	}
	want := map[string]bool{}
	for _, id := range strings.Split(ids, ",") {
		want[id] = true
	}
	d, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"../../../shared/corpus/dev.jsonl.gz", "../../../shared/corpus/dev-extra.jsonl.gz"} {
		f, err := os.Open(file)
		if err != nil {
			t.Skip(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			var rec struct {
				ID      string      `json:"id"`
				Method  string      `json:"method"`
				Path    string      `json:"path"`
				Headers [][2]string `json:"headers"`
				Body    string      `json:"body"`
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || !want[rec.ID] {
				continue
			}
			u, err := url.ParseRequestURI(rec.Path)
			if err != nil {
				t.Logf("%s: %v", rec.ID, err)
				continue
			}
			h := http.Header{}
			for _, kv := range rec.Headers {
				k := textproto.CanonicalMIMEHeaderKey(kv[0])
				h[k] = append(h[k], kv[1])
			}
			r := &detections.Request{Method: rec.Method, Host: "localhost", Header: h, Path: u.Path, RawPath: u.EscapedPath(), RawQuery: u.RawQuery}
			if rec.Body != "" {
				r.Body = []byte(rec.Body)
			}
			v, _ := d.Inspect(t.Context(), r)
			t.Logf("%s: %v %s at %s score %d", rec.ID, v.Action, v.Rule, v.Location, v.Score)
			for _, e := range d.requests {
				if fd, ok := e.a.(RequestAnalyzer).AnalyzeRequest(r); ok {
					t.Logf("  request: %s %d", fd.Rule, fd.Score)
				}
			}
			var buf normalize.Buffer
			in := Input{buf: &buf}
			in.startRequest(r)
			r.Walk(&d.scope, explainVisitor(func(f *detections.Field) {
				for _, e := range d.fields {
					in.reset(f)
					if fd, ok := e.a.Analyze(&in); ok {
						t.Logf("  %s: %s/%s %d  %.120q", f.Location(), e.a.Name(), fd.Rule, fd.Score, f.Value)
					}
				}
			}))
		}
		f.Close()
	}
}

type explainVisitor func(*detections.Field)

func (v explainVisitor) VisitField(f *detections.Field) bool { v(f); return true }
