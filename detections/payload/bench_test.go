package payload_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/internal/corpustest"
	"github.com/rampartgw/rampart/detections/payload"
)

// The benchmark requests are shared with the crs benchmarks.
var (
	cleanGET   = corpustest.CleanGET
	jsonPOST   = corpustest.JSONPOST
	jsonBody1K = corpustest.JSONBody1K
)

// newDefault is the default detection, as it runs (the clean-value cache
// on).
func newDefault(b testing.TB) *payload.Detection {
	b.Helper()
	return newWith(b, payload.DefaultConfig())
}

// newUncached is the default detection with the clean-value cache off:
// every value is analysed every time, which is what the analyzers cost.
func newUncached(b testing.TB) *payload.Detection {
	b.Helper()
	cfg := payload.DefaultConfig()
	cfg.CleanCache = 0
	return newWith(b, cfg)
}

func newWith(b testing.TB, cfg payload.Config) *payload.Detection {
	b.Helper()
	d, err := payload.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkInspect measures the whole analyzer set on one request; each
// iteration starts from a fresh copy of the view, so the field walk (the
// one parse of the query, cookies and body) is included. The clean-value
// cache is off except in clean-get-cached: the same request again, whose
// headers and cookies are then remembered as clean (what a browser's
// second request costs).
func BenchmarkInspect(b *testing.B) {
	d := newUncached(b)
	for _, c := range []struct {
		name string
		d    *payload.Detection
	}{{"clean-get", d}, {"clean-get-cached", newDefault(b)}} {
		b.Run(c.name, func(b *testing.B) {
			r := cleanGET()
			b.ReportAllocs()
			for b.Loop() {
				if v, _ := c.d.Inspect(b.Context(), r); v.Action != detections.ActionAllow {
					b.Fatal(v)
				}
			}
		})
	}
	if n := len(jsonBody1K); n < 1000 || n > 1100 {
		b.Fatalf("body is %d bytes", n)
	}
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
	// json-1k-walk runs the same walk with no analyzer: the analyzers' own
	// cost is the difference between the two.
	b.Run("json-1k-walk", func(b *testing.B) {
		cfg := payload.DefaultConfig()
		cfg.CleanCache = 0
		none, err := payload.NewWith(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		tmpl := jsonPOST(jsonBody1K)
		b.ReportAllocs()
		for b.Loop() {
			r := *tmpl
			_, _ = none.Inspect(b.Context(), &r)
		}
	})
}

// BenchmarkInspectCorpus runs the analyzers over the corpus' benign JSON
// bodies of 0.5-2 KiB and its benign GETs without a body, one request per
// iteration, cycling through them.
func BenchmarkInspectCorpus(b *testing.B) {
	recs := loadCorpus(b)
	d := newUncached(b)
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
	// get-pass-cached: one operation is one pass over every GET in corpus
	// order with a fresh, empty clean-value cache, so what is measured is
	// what real browsing traffic repeats (the same sites' cookies and
	// browsers' headers), not a benchmark loop repeating itself.
	b.Run("get-pass-cached", func(b *testing.B) {
		if len(gets) == 0 {
			b.Skip("no such requests in the corpus")
		}
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			c := newDefault(b)
			b.StartTimer()
			for _, g := range gets {
				r := *g
				_, _ = c.Inspect(b.Context(), &r)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(gets)), "ns/request")
	})
}

// TestInspectLatency reports, with RAMPART_CORPUS_REPORT=1, the time the
// analyzers add to one request over the corpus' benign JSON bodies of
// 0.5-2 KiB: Inspect runs with all the analyzers and with none (the walk
// alone); the difference is theirs.
func TestInspectLatency(t *testing.T) {
	if testing.Short() || !reportMode() {
		t.Skip("set " + envReport + "=1 to measure")
	}
	recs := loadCorpus(t)
	d := newUncached(t)
	cfg := payload.DefaultConfig()
	cfg.CleanCache = 0
	none, err := payload.NewWith(cfg, nil)
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
	t.Logf("  Inspect (walk + analyzers): median=%v p99=%v", fm, fp)
	t.Logf("  walk alone:                 median=%v", wm)
	t.Logf("  added by the analyzers:     median=%v p99=%v", am, ap)
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
