package detections_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/tlsfp"
)

// TestRateLimitAlsoWithIdentityKey: the additional buckets are consumed
// when the main bucket is keyed by an identity too, so a made-up
// X-Api-Key does not take the client out of its per-JA4 limit.
func TestRateLimitAlsoWithIdentityKey(t *testing.T) {
	t.Parallel()
	cfg := detections.DefaultRateLimitConfig()
	cfg.Key = []string{"header:X-Api-Key"}
	cfg.Also = []detections.RouteLimit{{Name: "per_ja4", Key: []string{"ja4"}, Limit: detections.PerMinute(10)}}
	d, err := detections.NewRateLimit(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ja4Spec, _ := detections.ParseKeySpec([]string{"ja4"})
	keySpec, _ := detections.ParseKeySpec([]string{"header:X-Api-Key"})
	for _, apiKey := range []string{"", "made-up-1", "made-up-2"} {
		r := reqFrom("192.0.2.1")
		r.TLS = &detections.TLS{Fingerprint: tlsfp.Fingerprint{JA4: "t13d1516h2_a_b"}}
		if apiKey != "" {
			r.Header.Set("X-Api-Key", apiKey)
		}
		ja4Subject, _ := ja4Spec.Subject(r)
		var q detections.StateQuery
		d.Query(r, &q)
		var ja4 *detections.SubjectQuery
		for i := range q.Subjects {
			if q.Subjects[i].Subject == ja4Subject {
				ja4 = &q.Subjects[i]
			}
		}
		if ja4 == nil || ja4.RateKey != "per_ja4" || ja4.RateLimit != detections.PerMinute(10) {
			t.Errorf("X-Api-Key %q: the per_ja4 bucket is not queried: %+v", apiKey, q)
			continue
		}
		// The main bucket admits the request, the fingerprint's refuses it.
		st := &detections.ClientState{Rate: detections.RateResult{Allowed: 1},
			Subjects: []detections.SubjectState{{Subject: ja4Subject, Rate: detections.RateResult{Limit: detections.PerMinute(10), RetryAfter: time.Second}}}}
		if apiKey != "" {
			keySubject, ok := keySpec.Subject(r)
			if !ok || q.RateLimit != (detections.Limit{}) || len(q.Subjects) != 2 {
				t.Errorf("X-Api-Key %q: want the main bucket on the key's subject, got %+v", apiKey, q)
			}
			st.Subjects = append(st.Subjects, detections.SubjectState{Subject: keySubject, Rate: detections.RateResult{Allowed: 1}})
		}
		r.State = st
		v, err := d.Inspect(t.Context(), r)
		if err != nil || v.Action != detections.ActionBlock || !strings.Contains(v.Header.Get("Ratelimit"), `"per_ja4"`) {
			t.Errorf("X-Api-Key %q with the fingerprint's bucket empty: %+v %v, want a per_ja4 refusal", apiKey, v, err)
		}
	}
}

// TestRateLimitRoutePath: per-route buckets match whole segments of the
// normalised path (as the gateway's routes do, case-sensitively), from
// Request.CleanPath when the gateway set it, else from Path.
func TestRateLimitRoutePath(t *testing.T) {
	t.Parallel()
	cfg := detections.DefaultRateLimitConfig()
	cfg.Routes = []detections.RouteLimit{
		{Name: "login", Path: "/api/login", Limit: detections.PerMinute(2)},
		{Name: "admin", Path: "/admin/", Limit: detections.PerMinute(3)}, // a trailing slash is the same prefix
	}
	cfg.Also = []detections.RouteLimit{{Name: "uploads", Path: "/upload", Key: []string{"ja4"}, Limit: detections.PerMinute(7)}}
	d, err := detections.NewRateLimit(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	bucket := func(path, clean string) (string, bool) {
		r := reqFrom("192.0.2.1")
		r.Method, r.Path, r.CleanPath = "POST", path, clean
		var q detections.StateQuery
		d.Query(r, &q)
		return q.RateKey, len(q.Subjects) == 1 && q.Subjects[0].RateKey == "uploads"
	}
	for path, want := range map[string]string{
		"/api/login": "login", "/api//login": "login", "/api/./login": "login", "/api/x/../login": "login",
		"/api/login/": "login", "/api/login;jsessionid=1": "login", `/api\login`: "login", "//api/login/form": "login",
		"/api/loginx": "", "/API/login": "", "/api": "", "/": "", "/x/api/login": "",
		"/admin": "admin", "/admin/users": "admin", "/administrator": "",
	} {
		if got, _ := bucket(path, ""); got != want {
			t.Errorf("path %q: bucket %q, want %q", path, got, want)
		}
	}
	// The gateway's clean path wins over Path.
	if got, _ := bucket("/anything", "/api/login"); got != "login" {
		t.Errorf("CleanPath /api/login: bucket %q, want login", got)
	}
	for path, want := range map[string]bool{"/upload": true, "//upload/x": true, "/upload/./a": true, "/uploads": false} {
		if _, got := bucket(path, ""); got != want {
			t.Errorf("path %q: uploads bucket queried %v, want %v", path, got, want)
		}
	}
	// A configured prefix that no normalised path could match is an error.
	for _, p := range []string{"/api//login", "/api/./login", "/api/login;x", `/api\login`} {
		cfg := detections.DefaultRateLimitConfig()
		cfg.Routes = []detections.RouteLimit{{Name: "r", Path: p, Limit: detections.PerMinute(1)}}
		if _, err := detections.NewRateLimit(cfg, nil); err == nil || !strings.Contains(err.Error(), "clean path") {
			t.Errorf("route path %q: %v, want a clean path error", p, err)
		}
		cfg = detections.DefaultRateLimitConfig()
		cfg.Also = []detections.RouteLimit{{Name: "a", Path: p, Limit: detections.PerMinute(1)}}
		if _, err := detections.NewRateLimit(cfg, nil); err == nil || !strings.Contains(err.Error(), "clean path") {
			t.Errorf("also path %q: %v, want a clean path error", p, err)
		}
	}
}

// TestRoutePathAllocations: normalising an already clean path costs no
// allocation, so the rate limit's route choice stays allocation-free.
func TestRoutePathAllocations(t *testing.T) {
	for _, p := range []string{"/", "/api/login", "/api/v1/items/42"} {
		r := &detections.Request{Path: p}
		if n := testing.AllocsPerRun(100, func() { _ = r.RoutePath() }); n != 0 {
			t.Errorf("RoutePath of %q: %v allocations, want 0", p, n)
		}
	}
	for in, want := range map[string]string{"echo": "/echo", "/a//b/": "/a/b", "/a/./b/../c": "/a/c", `\a\b`: "/a/b", "/a;x=1/b": "/a/b", "/": "", "/../a": "/a"} {
		if got := (&detections.Request{Path: in}).RoutePath(); got != want {
			t.Errorf("RoutePath of %q = %q, want %q", in, got, want)
		}
	}
}
