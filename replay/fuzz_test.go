package replay

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the auto-detecting reader: it must not
// panic or loop, every record it returns must be one net/http could have
// received, and every invalid record must carry a line number.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"access.log", "corpus.jsonl", "chrome.har", "mitmproxy.har", "corpus.jsonl.gz"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"log":{"entries":[{"request":{"method":"GET","url":"https://h/"}}`))
	f.Add([]byte(`1.2.3.4 - - [02/Mar/2026:10:00:00 +0000] "GET /\x ZZ HTTP/1.1" 200 - "\"" "\\"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultReadConfig()
		cfg.MaxRecordBytes = 4096
		in, err := NewInput("fuzz", strings.NewReader(string(data)), cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for r, err := range in.Records() {
			n++
			if n > len(data)+1 {
				t.Fatal("more records than bytes")
			}
			var inv *InvalidRecordError
			switch {
			case errors.As(err, &inv):
				if inv.Line < 1 || inv.Code == "" {
					t.Fatalf("invalid record without a place or code: %+v", inv)
				}
			case err != nil:
			default:
				if !validToken(r.Method) || targetProblem(r.Target) != "" || r.Line < 1 {
					t.Fatalf("record net/http would refuse: %+v", r)
				}
				for _, h := range r.Headers {
					if !validToken(h.Name) || !validHeaderValue(h.Value) {
						t.Fatalf("bad header %q", h)
					}
				}
			}
		}
	})
}
