package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
)

// TestRateLimitRouteOnNormalisedPath: a rate limit's per-path bucket is
// chosen on the path as routes match it, so spelling the path differently
// (//, ./, ../, ;params, a backslash) does not move a request from the
// login bucket to the roomier default one, with or without gateway routes
// (with routes the gateway's clean path is reused; without, the detection
// normalises the path itself). A path sharing only a prefix of the last
// segment (/api/loginx) is not the route's.
func TestRateLimitRouteOnNormalisedPath(t *testing.T) {
	rl, err := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(100),
		Routes: []detections.RouteLimit{{Name: "login", Path: "/api/login", Limit: detections.PerMinute(2)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	variants := []string{"/api//login", "/api/./login", "/api/x/../login", "/api/login;jsessionid=1", `/api\login`, "/api/login/", "//api/login/form"}
	for _, routed := range []bool{false, true} {
		t.Run(fmt.Sprintf("routes=%v", routed), func(t *testing.T) {
			seen := &pathSeen{}
			s := newSetup(t, nil, withEntries(detections.Entry{Detection: seen}, detections.Entry{Detection: rl}))
			if routed {
				chain, err := detections.NewChain(detections.Entry{Detection: seen}, detections.Entry{Detection: rl})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.g.SetPolicy(&gateway.Policy{Chain: chain, Routes: []gateway.Route{{RouteConfig: gateway.RouteConfig{Name: "api", PathPrefix: "/api"}}}}); err != nil {
					t.Fatal(err)
				}
			}
			send := func(path, client string) *http.Response {
				t.Helper()
				resp := s.do(t, "POST", path, client, nil)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp
			}
			for i, v := range variants {
				// A fresh client spends its login bucket (2) on the plain path;
				// the variant is then refused by the same bucket.
				client := fmt.Sprintf("198.51.100.%d", i+1)
				for range 2 {
					if resp := send("/api/login", client); resp.StatusCode != http.StatusOK {
						t.Fatalf("%s: /api/login within the limit: %d", v, resp.StatusCode)
					}
				}
				resp := send(v, client)
				if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Ratelimit-Policy") != `"login";q=2;w=60` {
					t.Errorf("%s after the login bucket is spent: %d %q, want a refusal by the login bucket", v, resp.StatusCode, resp.Header.Get("Ratelimit-Policy"))
				}
			}
			// With routes, the request view carries the clean path the
			// gateway routed on; without, none was computed (the last
			// variant was //api/login/form).
			wantClean := ""
			if routed {
				wantClean = "/api/login/form"
			}
			if c, p := seen.last(); c != wantClean || p != "/api/login/form" {
				t.Errorf("last variant reached the chain with CleanPath %q, RoutePath %q; want %q, /api/login/form", c, p, wantClean)
			}
			// The same spent client is still within its default bucket on
			// paths that are not the route's.
			client := "198.51.100.1"
			for _, p := range []string{"/api/loginx", "/api", "/API/login"} {
				if resp := send(p, client); resp.StatusCode != http.StatusOK {
					t.Errorf("%s (not the login route) from a client whose login bucket is spent: %d, want 200", p, resp.StatusCode)
				}
			}
		})
	}
}

// pathSeen records the paths the last request reached the chain with.
type pathSeen struct {
	mu               sync.Mutex
	clean, routePath string
}

func (*pathSeen) Name() string { return "path_seen" }
func (s *pathSeen) Inspect(_ context.Context, r *detections.Request) (detections.Verdict, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clean, s.routePath = r.CleanPath, r.RoutePath()
	return detections.Allow, nil
}

func (s *pathSeen) last() (clean, routePath string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clean, s.routePath
}
