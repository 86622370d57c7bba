package replay

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// corpusPath is the development corpus, next to the repository checkout
// (../shared/corpus from the repository root).
const corpusPath = "../../shared/corpus/dev.jsonl.gz"

func countRecords(b *testing.B, in *Input) (records, invalid int) {
	b.Helper()
	for _, err := range in.Records() {
		switch {
		case err == nil:
			records++
		case isInvalid(err):
			invalid++
		default:
			b.Fatal(err)
		}
	}
	return records, invalid
}

func isInvalid(err error) bool {
	var inv *InvalidRecordError
	return errors.As(err, &inv)
}

// BenchmarkReadCorpus reads the whole development corpus (gzip JSON lines).
func BenchmarkReadCorpus(b *testing.B) {
	st, err := os.Stat(corpusPath)
	if err != nil {
		b.Skipf("development corpus not found at %s (it lives in the shared/ folder next to the checkout): %v", corpusPath, err)
	}
	b.ReportAllocs()
	b.SetBytes(st.Size())
	total := 0
	cpu0 := cpuTime()
	for b.Loop() {
		in, err := Open([]string{corpusPath}, DefaultReadConfig())
		if err != nil {
			b.Fatal(err)
		}
		n, inv := countRecords(b, in)
		if inv != 0 || n < 16000 {
			b.Fatalf("%d records, %d invalid", n, inv)
		}
		total += n
	}
	reportRates(b, total, cpu0)
}

// reportRates reports records per wall-clock second and per CPU second
// (all threads, so GC is included).
func reportRates(b *testing.B, total int, cpu0 time.Duration) {
	b.Helper()
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(total)/cpu.Seconds(), "records/cpu-s")
	}
}

func benchInput(b *testing.B, data []byte, want int) {
	b.Helper()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	total := 0
	cpu0 := cpuTime()
	for b.Loop() {
		in, err := NewInput("bench", bytes.NewReader(data), DefaultReadConfig())
		if err != nil {
			b.Fatal(err)
		}
		n, inv := countRecords(b, in)
		if n != want || inv != 0 {
			b.Fatalf("%d records, %d invalid", n, inv)
		}
		total += n
	}
	reportRates(b, total, cpu0)
}

func BenchmarkReadCombined(b *testing.B) {
	var buf bytes.Buffer
	const n = 100000
	for i := range n {
		fmt.Fprintf(&buf, `203.0.%d.%d - - [02/Mar/2026:10:%02d:%02d +0000] "GET /api/items/%d?q=shoes&page=%d HTTP/1.1" 200 %d "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0"`+"\n",
			i/256%256, i%256, i/60%60, i%60, i, i%7, 100+i%900)
	}
	benchInput(b, buf.Bytes(), n)
}

func BenchmarkReadHAR(b *testing.B) {
	var buf bytes.Buffer
	const n = 20000
	buf.WriteString("{\n  \"log\": {\n    \"version\": \"1.2\",\n    \"creator\": {\"name\": \"WebInspector\", \"version\": \"537.36\"},\n    \"pages\": [],\n    \"entries\": [\n")
	for i := range n {
		if i > 0 {
			buf.WriteString(",\n")
		}
		fmt.Fprintf(&buf, `      {"_resourceType": "fetch", "cache": {}, "request": {"method": "POST", "url": "https://shop.example/api/cart/%d?x=%d", "httpVersion": "http/2.0",
        "headers": [{"name": ":authority", "value": "shop.example"}, {"name": ":method", "value": "POST"}, {"name": ":path", "value": "/api/cart/%d"}, {"name": ":scheme", "value": "https"},
          {"name": "content-type", "value": "application/json"}, {"name": "cookie", "value": "sid=abc; theme=dark"}, {"name": "user-agent", "value": "Mozilla/5.0 (X11; Linux x86_64) Chrome/133.0.0.0"}],
        "queryString": [{"name": "x", "value": "%d"}], "cookies": [], "headersSize": -1, "bodySize": 31,
        "postData": {"mimeType": "application/json", "text": "{\"sku\":\"SHOE-%d\",\"quantity\":1}"}},
       "response": {"status": 200, "statusText": "", "httpVersion": "http/2.0", "headers": [], "cookies": [], "content": {"size": 2, "mimeType": "application/json"}, "redirectURL": "", "headersSize": -1, "bodySize": -1},
       "serverIPAddress": "203.0.113.7", "startedDateTime": "2026-03-02T10:15:30.%03dZ", "time": 12.5, "timings": {"blocked": 0.5, "dns": -1, "ssl": -1, "connect": -1, "send": 0.1, "wait": 11.0, "receive": 0.9}}`,
			i, i, i, i, i, i%1000)
	}
	buf.WriteString("\n    ]\n  }\n}\n")
	benchInput(b, buf.Bytes(), n)
}

// BenchmarkRun measures the comparison itself, with judges that cost
// almost nothing, over the fixtures repeated.
func BenchmarkRun(b *testing.B) {
	raw, err := os.ReadFile("testdata/corpus.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var lines []string
	for l := range strings.SplitSeq(string(raw), "\n") {
		if strings.Contains(l, `"source"`) {
			lines = append(lines, l)
		}
	}
	var recs []*Record
	in, _ := NewInput("bench", strings.NewReader(strings.Repeat(strings.Join(lines, "\n")+"\n", 2000)), DefaultReadConfig())
	for r, err := range in.Records() {
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, r)
	}
	b.ReportAllocs()
	total := 0
	cpu0 := cpuTime()
	for b.Loop() {
		items := func(yield func(*Record, error) bool) {
			for _, r := range recs {
				c := *r
				if !yield(&c, nil) {
					return
				}
			}
		}
		rep, err := Run(b.Context(), items, currentJudge(), candidateJudge(), DefaultRunConfig())
		if err != nil {
			b.Fatal(err)
		}
		total += rep.Totals.Requests
	}
	reportRates(b, total, cpu0)
}
