package payload_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// TestCleanCacheSameVerdicts is the clean-value cache's promise: over both
// development corpora, a detection with the cache scores every request
// exactly as one without it, on the first pass (the cache filling as real
// traffic repeats its headers and cookies) and on a second pass over the
// same requests (every clean header and cookie value remembered).
func TestCleanCacheSameVerdicts(t *testing.T) {
	if testing.Short() {
		t.Skip("corpus test")
	}
	recs := append(loadCorpus(t), extraCorpus.Load(t)...)
	plain, cached := newUncached(t), newDefault(t)
	ctx := t.Context()
	differ, blocked := 0, 0
	for pass := 1; pass <= 2; pass++ {
		for i := range recs {
			tmpl := corpusRequest(&recs[i])
			if tmpl == nil {
				continue
			}
			r1, r2 := *tmpl, *tmpl
			want, _ := plain.Inspect(ctx, &r1)
			got, _ := cached.Inspect(ctx, &r2)
			if want.Action == detections.ActionBlock {
				blocked++
			}
			if got.Action != want.Action || got.Rule != want.Rule || got.Score != want.Score || got.Location != want.Location {
				differ++
				if differ <= 10 {
					t.Errorf("pass %d, %s: cached %v %s %d at %s, uncached %v %s %d at %s", pass, recs[i].ID,
						got.Action, got.Rule, got.Score, got.Location, want.Action, want.Rule, want.Score, want.Location)
				}
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d verdicts differ", differ)
	}
	if blocked == 0 {
		t.Fatal("no request blocked: the comparison compared nothing")
	}
	t.Logf("%d requests x 2 passes, %d blocks, 0 differences", len(recs), blocked)
}

// TestCleanCacheKeyedByField: a value remembered as clean in one header is
// analysed again in another, where it means something else, and a value
// with a finding is never remembered.
func TestCleanCacheKeyedByField(t *testing.T) {
	d := newDefault(t)
	get := func(h http.Header) *detections.Request {
		r := cleanGET()
		for k, v := range h {
			r.Header[k] = v
		}
		return r
	}
	// TRACE in a custom header is a word; as a method override it is a
	// method no form may switch to. The two names are as long as each
	// other: only the name tells the fields apart.
	for range 3 {
		if v := inspect(t, d, get(http.Header{"X-Request-Comment": {"TRACE"}})); v.Action != detections.ActionAllow {
			t.Fatalf("X-Request-Comment: TRACE: %v %s", v.Action, v.Rule)
		}
	}
	if v := inspect(t, d, get(http.Header{"X-Method-Override": {"TRACE"}})); v.Action != detections.ActionBlock || v.Rule != payload.RuleMethodOverride {
		t.Errorf("X-Method-Override: TRACE after X-Request-Comment: TRACE was clean: %v %s, want a %s block", v.Action, v.Rule, payload.RuleMethodOverride)
	}
	// The same text as a cookie's name and as its value.
	r := cleanGET()
	r.Header.Set("Cookie", "note=<script>alert(1)</script>")
	first := inspect(t, d, r)
	if first.Action != detections.ActionBlock {
		t.Fatalf("XSS in a cookie value: %v", first.Action)
	}
	for range 3 {
		if v := inspect(t, d, r); v.Action != first.Action || v.Rule != first.Rule || v.Score != first.Score {
			t.Errorf("the same attack again: %v %s %d, first %v %s %d", v.Action, v.Rule, v.Score, first.Action, first.Rule, first.Score)
		}
	}
}

// TestCleanCacheNotRouteBlind: a finding an exclusion silences on one
// route is not "clean": the same value on another route is still blocked.
func TestCleanCacheNotRouteBlind(t *testing.T) {
	cfg := payload.DefaultConfig()
	cfg.Exclusions = []payload.Exclusion{{Path: "/docs/", Fields: []string{"header:X-Snippet"}}}
	d, err := payload.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	attack := "<svg onload=alert(document.domain)>"
	at := func(path string) *detections.Request {
		r := cleanGET()
		r.Path, r.RawPath = path, path
		r.Header.Set("X-Snippet", attack)
		return r
	}
	for range 3 {
		if v := inspect(t, d, at("/docs/page")); v.Action != detections.ActionAllow {
			t.Fatalf("excluded field on /docs/: %v %s", v.Action, v.Rule)
		}
	}
	if v := inspect(t, d, at("/api/items")); v.Action != detections.ActionBlock {
		t.Errorf("the same header on /api/items after /docs/ let it through: %v, want a block", v.Action)
	}
}

// TestCleanCacheNeverForQuery: a field whose score depends on the request
// around it is never remembered. "_method=DELETE" in a POST's query is
// what forms send; on a GET link it turns a click into a write.
func TestCleanCacheNeverForQuery(t *testing.T) {
	d := newDefault(t)
	mk := func(method string) *detections.Request {
		r := cleanGET()
		r.Method = method
		r.RawQuery = "_method=DELETE"
		return r
	}
	for range 3 {
		if v := inspect(t, d, mk("POST")); v.Action != detections.ActionAllow {
			t.Fatalf("POST ?_method=DELETE: %v %s", v.Action, v.Rule)
		}
	}
	if v := inspect(t, d, mk("GET")); v.Action != detections.ActionBlock || v.Rule != payload.RuleMethodOverride {
		t.Errorf("GET ?_method=DELETE after three clean POSTs: %v %s, want a %s block", v.Action, v.Rule, payload.RuleMethodOverride)
	}
}

func TestCleanCacheConfig(t *testing.T) {
	for _, n := range []int{-1, 1 << 30} {
		cfg := payload.DefaultConfig()
		cfg.CleanCache = n
		if _, err := payload.New(cfg); err == nil || !strings.Contains(err.Error(), "clean_cache") {
			t.Errorf("clean_cache %d: %v, want an error naming clean_cache", n, err)
		}
	}
	cfg := payload.DefaultConfig()
	cfg.CleanCache = 0
	if _, err := payload.New(cfg); err != nil {
		t.Errorf("clean_cache 0 (off): %v", err)
	}
}

// FuzzCleanCache is the cache's promise on fuzzed headers and cookies: the
// cached detection scores a request as the uncached one does, the first
// time and the second (its clean values then remembered), whichever
// header carries the value.
func FuzzCleanCache(f *testing.F) {
	for _, s := range []string{"TRACE", "<script>alert(1)</script>", "' or 1=1--", "../../etc/passwd", "${jndi:ldap://x/a}", "Mozilla/5.0", "a=b; c=d"} {
		f.Add(uint8(0), s, s)
	}
	names := []string{"User-Agent", "Referer", "X-Method-Override", "X-Request-Comment", "X-Forwarded-Host", "X-Api-Version"}
	plain, cached := newUncached(f), newDefault(f)
	f.Fuzz(func(t *testing.T, which uint8, value, cookie string) {
		r := cleanGET()
		r.Header.Set(names[int(which)%len(names)], value)
		r.Header.Set("Cookie", cookie)
		ctx := t.Context()
		r1 := *r
		want, _ := plain.Inspect(ctx, &r1)
		for pass := 1; pass <= 2; pass++ {
			r2 := *r
			got, _ := cached.Inspect(ctx, &r2)
			if got.Action != want.Action || got.Rule != want.Rule || got.Score != want.Score || got.Location != want.Location {
				t.Fatalf("pass %d: cached %v %s %d at %s, uncached %v %s %d at %s", pass,
					got.Action, got.Rule, got.Score, got.Location, want.Action, want.Rule, want.Score, want.Location)
			}
		}
	})
}
