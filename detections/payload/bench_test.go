package payload_test

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// A browser's clean GET: query string, cookies, the usual headers, no
// body.
func cleanGET() *detections.Request {
	h := http.Header{}
	h.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")
	h.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8")
	h.Set("Accept-Language", "en-US,en;q=0.9")
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Referer", "https://shop.example.com/catalog/shoes?color=black&size=42")
	h.Set("Cookie", "session=8f14e45fceea167a5a36dedd4bea2543; _ga=GA1.2.1234567890.1700000000; consent=%7B%22ads%22%3Afalse%7D; lang=en")
	h.Set("Sec-Fetch-Site", "same-origin")
	h.Set("X-Requested-With", "XMLHttpRequest")
	u, _ := url.ParseRequestURI("/api/v2/products/4711/reviews?page=2&sort=date&q=running+shoes&utm_source=newsletter")
	return &detections.Request{Method: "GET", Host: "shop.example.com", Proto: "HTTP/1.1", Header: h,
		Path: u.Path, RawPath: u.EscapedPath(), RawQuery: u.RawQuery}
}

// jsonBody1K is a realistic 1 KiB JSON body: an analytics event with URLs,
// ids, a user agent, nested objects and numbers.
const jsonBody1K = `{"events":[{"eventVersion":3,"event":{"deviceId":null,"browserId":"4035487b-f17c-47da-b417-d4b94043d7fe",` +
	`"sessionId":"ae289ead-8609-11ef-8f5f-494eb97278c8","sessionSeq":1,"pageSeq":18,"eventSeq":1140,` +
	`"clientDateTime":1728458252873,"clientTimeZone":"+0530","namespace":"consumer","name":"filterClicked",` +
	`"appVersion":"4.6.1881"},"data":{"moduleName":"search restaurants","filters":["open now","free delivery"],` +
	`"pageUrl":"https://www.example.com/search?location=Berlin&cuisine=thai","referrer":"https://www.google.com/",` +
	`"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",` +
	`"viewport":{"width":1920,"height":1080},"price":{"min":5,"max":25,"currency":"EUR"},"note":"Tom & Jerry's < $20 deals",` +
	`"cart":[{"sku":"A-1001","qty":2,"title":"Pad Thai, large"},{"sku":"B-2002","qty":1,"title":"Spring rolls (4 pcs)"}],` +
	`"coupon":"SPRING-2024","consent":{"ads":false,"analytics":true},"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc"}}]}`

func jsonPOST(body string) *detections.Request {
	h := http.Header{}
	h.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36")
	h.Set("Accept", "application/json")
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Referer", "https://www.example.com/")
	h.Set("Cookie", "session=8f14e45fceea167a5a36dedd4bea2543; lang=en")
	return &detections.Request{Method: "POST", Host: "api.example.com", Proto: "HTTP/1.1", Header: h,
		Path: "/clickstream/events", RawPath: "/clickstream/events", RawQuery: "appVersion=4.6.1881", Body: []byte(body)}
}

func newDefault(b testing.TB) *payload.Detection {
	b.Helper()
	d, err := payload.New(payload.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkInspect measures the whole analyser set on one request. The
// request view caches its parsed JSON, as the gateway's does for the
// detections of one request; each iteration builds a fresh view so the
// JSON decoding (the view's cost, not the analysers') is included for the
// JSON body.
func BenchmarkInspect(b *testing.B) {
	d := newDefault(b)
	b.Run("clean-get", func(b *testing.B) {
		r := cleanGET()
		b.ReportAllocs()
		for b.Loop() {
			if v, _ := d.Inspect(b.Context(), r); v.Action != detections.ActionAllow {
				b.Fatal(v)
			}
		}
	})
	if n := len(jsonBody1K); n < 1000 || n > 1100 {
		b.Fatalf("body is %d bytes", n)
	}
	// json-1k includes decoding the JSON body, which the request view does
	// once for every detection.
	b.Run("json-1k", func(b *testing.B) {
		tmpl := jsonPOST(jsonBody1K)
		b.ReportAllocs()
		for b.Loop() {
			r := *tmpl
			if v, _ := d.Inspect(b.Context(), &r); v.Action != detections.ActionAllow {
				b.Fatal(v)
			}
		}
	})
	// json-1k-parsed starts from a view whose JSON is decoded already, and
	// json-1k-walk runs the same walk with no analyser: the analysers' own
	// cost is the difference between the two.
	parsed := jsonPOST(jsonBody1K)
	if _, err := parsed.JSON(); err != nil {
		b.Fatal(err)
	}
	b.Run("json-1k-parsed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := *parsed
			if v, _ := d.Inspect(b.Context(), &r); v.Action != detections.ActionAllow {
				b.Fatal(v)
			}
		}
	})
	b.Run("json-1k-walk", func(b *testing.B) {
		none, err := payload.NewWith(payload.DefaultConfig(), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			r := *parsed
			_, _ = none.Inspect(b.Context(), &r)
		}
	})
}

// BenchmarkInspectCorpus runs the analysers over the corpus' benign JSON
// bodies of 0.5-2 KiB and its benign GETs without a body, one request per
// iteration, cycling through them.
func BenchmarkInspectCorpus(b *testing.B) {
	recs := loadCorpus(b)
	d := newDefault(b)
	var gets, jsons []*detections.Request
	for i := range recs {
		rec := &recs[i]
		if rec.Source != "openappsec" {
			continue
		}
		r := corpusRequest(rec)
		if r == nil {
			continue
		}
		switch {
		case rec.Method == "GET" && len(r.Body) == 0:
			gets = append(gets, r)
		case strings.Contains(r.Header.Get("Content-Type"), "json") && len(r.Body) >= 512 && len(r.Body) <= 2048:
			jsons = append(jsons, r)
		}
	}
	for _, c := range []struct {
		name string
		reqs []*detections.Request
	}{{"get", gets}, {"json-0.5-2k", jsons}} {
		b.Run(c.name, func(b *testing.B) {
			if len(c.reqs) == 0 {
				b.Skip("no such requests in the corpus")
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := *c.reqs[i%len(c.reqs)]
				i++
				_, _ = d.Inspect(b.Context(), &r)
			}
		})
	}
}

// TestInspectLatency reports, with RAMPART_CORPUS_REPORT=1, the time the
// analysers add to one request over the corpus' benign JSON bodies of
// 0.5-2 KiB: for each request the view's JSON is decoded first (the view
// does that once for every detection), then Inspect runs with all the
// analysers and with none (the walk alone); the difference is theirs. The
// target is a median under 20 µs on one core.
func TestInspectLatency(t *testing.T) {
	if testing.Short() || !reportMode() {
		t.Skip("set " + envReport + "=1 to measure")
	}
	recs := loadCorpus(t)
	d := newDefault(t)
	none, err := payload.NewWith(payload.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []*detections.Request
	for i := range recs {
		rec := &recs[i]
		if rec.Source != "openappsec" || !strings.Contains(headerOf(rec, "Content-Type"), "json") || len(rec.Body) < 512 || len(rec.Body) > 2048 {
			continue
		}
		if r := corpusRequest(rec); r != nil {
			_, _ = r.JSON()
			reqs = append(reqs, r)
		}
	}
	if len(reqs) == 0 {
		t.Skip("no JSON bodies in the corpus")
	}
	ctx := t.Context()
	const rounds = 20
	var full, walk, added, minAdded []time.Duration
	minFull := make([]time.Duration, len(reqs))
	minWalk := make([]time.Duration, len(reqs))
	for round := 0; round < rounds; round++ {
		for i, tmpl := range reqs {
			r1, r2 := *tmpl, *tmpl
			s := time.Now()
			_, _ = d.Inspect(ctx, &r1)
			f := time.Since(s)
			s = time.Now()
			_, _ = none.Inspect(ctx, &r2)
			w := time.Since(s)
			full, walk, added = append(full, f), append(walk, w), append(added, f-w)
			if round == 0 || f < minFull[i] {
				minFull[i] = f
			}
			if round == 0 || w < minWalk[i] {
				minWalk[i] = w
			}
		}
	}
	for i := range reqs {
		minAdded = append(minAdded, minFull[i]-minWalk[i])
	}
	med := func(ds []time.Duration) (time.Duration, time.Duration) {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2], ds[len(ds)*99/100]
	}
	fm, fp := med(full)
	wm, _ := med(walk)
	am, ap := med(added)
	mm, mp := med(minAdded)
	t.Logf("JSON bodies of 0.5-2 KiB: n=%d requests x %d rounds", len(reqs), rounds)
	t.Logf("  Inspect (walk + analysers): median=%v p99=%v", fm, fp)
	t.Logf("  walk alone:                 median=%v", wm)
	t.Logf("  added by the analysers:     median=%v p99=%v", am, ap)
	t.Logf("  added, fastest of %d rounds per request (filters preemption on a busy machine): median=%v p99=%v", rounds, mm, mp)
}

func headerOf(rec *corpusRecord, name string) string {
	for _, kv := range rec.Headers {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}
