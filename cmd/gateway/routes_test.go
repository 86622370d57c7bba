package main_test

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil"
	"github.com/rampartgw/rampart/testutil/redistest"
)

// demo starts a named demo upstream and returns its address.
func demo(t *testing.T, name string) (string, *proc) {
	t.Helper()
	addr := freeAddr(t)
	p := start(t, "demo-upstream", nil, "-listen", addr, "-name", name)
	waitUp(t, p, "http://"+addr+"/api/endpoint")
	return addr, p
}

// replicas starts n gateways with config on the Redis at redisURL.
func replicas(t *testing.T, n int, config, redisURL string, env ...string) []*stack {
	t.Helper()
	var out []*stack
	for i := range n {
		s := &stack{gw: freeAddr(t), admin: freeAddr(t)}
		e := append([]string{"GATEWAY_LISTEN=" + s.gw, "GATEWAY_ADMIN_LISTEN=" + s.admin, "GATEWAY_ADMIN_TOKEN=t0ken",
			"GATEWAY_REPLICA=r" + fmt.Sprint(i+1), "REDIS_URL=" + redisURL}, env...)
		s.proc = start(t, "gateway", e, "-config", config)
		waitUp(t, s.proc, "http://"+s.admin+"/readyz")
		out = append(out, s)
	}
	return out
}

// echo is what the demo upstream's /echo answers.
type echo struct {
	Path     string              `json:"path"`
	Headers  map[string][]string `json:"headers"`
	Instance string              `json:"instance"`
}

func getEcho(t *testing.T, c *http.Client, url string, hdr ...string) (int, echo) {
	t.Helper()
	code, body := call(t, c, "GET", url, "", hdr...)
	var e echo
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return code, e
}

func adminJSON(t *testing.T, admin, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+admin+path, nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func demoRequests(t *testing.T, addr string) (total int, byPath map[string]int) {
	t.Helper()
	var v struct {
		Total  int            `json:"total"`
		ByPath map[string]int `json:"by_path"`
	}
	resp, err := http.Get("http://" + addr + "/_demo/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return v.Total, v.ByPath
}

// TestRoutes runs three gateways with routes to several demo upstreams on
// one Redis: host and path routing, prefix stripping, a per-route limit
// exact across replicas, a per-route exclusion, round robin, ejection of a
// killed instance without a failed GET, and no retry of a POST whose body
// was sent.
func TestRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	r := redistest.StartRedis(t, redistest.Options{})
	a, _ := demo(t, "a")
	b1, _ := demo(t, "b1")
	b2, b2p := demo(t, "b2")
	config := writeConfig(t, fmt.Sprintf(`
upstream: ""
redis: {timeout: 2s, breaker_failures: 1000}
routes:
  - name: a
    path_prefix: /echo/a
    upstream: http://%[1]s
  - name: docs
    path_prefix: /echo/docs
    upstream: http://%[1]s
    detections:
      payload:
        exclusions: [{fields: ["query:comment"], rules: [xss]}]
  - name: b
    path_prefix: /svc/b
    strip_prefix: true
    upstream:
      instances: [http://%[2]s, http://%[3]s]
      eject: {connect_errors: 1}
    detections:
      rate_limit: {rate: 3, burst: 3, period: 1m}
  - name: wild
    host: "*.example.test"
    upstream: http://%[1]s
`, a, b1, b2))
	gws := replicas(t, 3, config, r.URL())
	c := client("127.0.0.1")
	url := func(i int, p string) string { return "http://" + gws[i%3].gw + p }

	t.Run("path_and_host_routing", func(t *testing.T) {
		if code, e := getEcho(t, c, url(0, "/echo/a/x?q=1")); code != 200 || e.Instance != "a" || e.Path != "/echo/a/x" {
			t.Errorf("/echo/a/x: %d %+v", code, e)
		}
		if code, _ := call(t, c, "GET", url(1, "/echo/ab"), ""); code != 404 {
			t.Errorf("/echo/ab (not a whole segment of /echo/a, no top-level upstream): %d", code)
		}
		if code, e := getEcho(t, c, url(2, "/echo/zz"), "Host", "api.example.test"); code != 200 || e.Instance != "a" {
			t.Errorf("Host api.example.test: %d %+v", code, e)
		}
		if code, body := call(t, c, "GET", url(0, "/echo/zz"), "", "Host", "example.test"); code != 404 || !strings.Contains(body, "Not Found") {
			t.Errorf("Host example.test (not a subdomain): %d %s", code, body)
		}
		// Another spelling of the path still takes the route (and its
		// policy).
		if code, e := getEcho(t, client("127.0.0.3"), url(0, "/echo//a/y")); code != 200 || e.Instance != "a" {
			t.Errorf("/echo//a/y: %d %+v", code, e)
		}
	})

	t.Run("strip_prefix", func(t *testing.T) {
		cl := client("127.0.0.2")
		code, e := getEcho(t, cl, url(0, "/svc/b/echo/q?x=1"))
		if code != 200 || e.Path != "/echo/q" || strings.Join(e.Headers["X-Forwarded-Prefix"], ",") != "/svc/b" {
			t.Errorf("/svc/b/echo/q: %d path %q prefix %v", code, e.Path, e.Headers["X-Forwarded-Prefix"])
		}
		// A client cannot send its own X-Forwarded-Prefix.
		code, e = getEcho(t, cl, url(0, "/echo/a/p"), "X-Forwarded-Prefix", "/evil")
		if code != 200 || len(e.Headers["X-Forwarded-Prefix"]) != 0 {
			t.Errorf("client X-Forwarded-Prefix passed: %v", e.Headers["X-Forwarded-Prefix"])
		}
	})

	t.Run("per_route_limit_exact_across_replicas", func(t *testing.T) {
		for trial := range 20 {
			ip := fmt.Sprintf("127.0.%d.%d", 10+trial/200, 1+trial%200)
			cl := client(ip)
			var ok atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					if code, _ := call(t, cl, "GET", url(i, "/svc/b/echo/r"), ""); code == 200 {
						ok.Add(1)
					}
				})
			}
			wg.Wait()
			if ok.Load() != 3 {
				t.Fatalf("trial %d: route b admitted %d of 8 racing requests over 3 replicas, want its own limit 3", trial, ok.Load())
			}
			// The route's bucket is its own: the default limit (5) still
			// applies in full elsewhere.
			n := 0
			for i := range 5 {
				if code, _ := call(t, cl, "GET", url(i, "/echo/a/r"), ""); code == 200 {
					n++
				}
			}
			if n != 5 {
				t.Fatalf("trial %d: route a admitted %d of 5 after route b's limit, want 5", trial, n)
			}
		}
	})

	t.Run("per_route_exclusion", func(t *testing.T) {
		cl := client("127.0.1.1")
		q := "?comment=%3Cscript%3Ealert(1)%3C/script%3E"
		if code, _ := call(t, cl, "GET", url(0, "/echo/docs/p"+q), ""); code != 200 {
			t.Errorf("route docs (xss excluded for query:comment): %d", code)
		}
		if code, body := call(t, cl, "GET", url(1, "/echo/a/p"+q), ""); code != 403 || body != denied {
			t.Errorf("route a (no exclusion): %d %s", code, body)
		}
	})

	t.Run("post_with_body_sent_is_not_retried", func(t *testing.T) {
		cl := client("127.0.2.1")
		t1, _ := demoRequests(t, b1)
		t2, _ := demoRequests(t, b2)
		code, _ := call(t, cl, "POST", url(0, "/svc/b/drop"), `{"order":1}`, "Content-Type", "application/json")
		if code != 502 {
			t.Errorf("POST to an instance that drops the connection: %d, want 502", code)
		}
		u1, p1 := demoRequests(t, b1)
		u2, p2 := demoRequests(t, b2)
		if got := (u1 - t1) + (u2 - t2); got != 1 || p1["/drop"]+p2["/drop"] != 1 {
			t.Errorf("the upstreams saw the POST %d times (b1 %v, b2 %v), want once", got, p1, p2)
		}
	})

	t.Run("round_robin_and_ejection", func(t *testing.T) {
		// Fresh gateways: the POST above may have ejected an instance.
		for _, g := range gws {
			g.proc.Stop(syscall.SIGTERM, 5*time.Second)
		}
		gws = replicas(t, 1, config, r.URL())
		count := map[string]int{}
		for i := range 20 {
			cl := client(fmt.Sprintf("127.0.3.%d", i+1))
			code, e := getEcho(t, cl, "http://"+gws[0].gw+"/svc/b/echo/rr")
			if code != 200 {
				t.Fatalf("request %d: %d", i, code)
			}
			count[e.Instance]++
		}
		if count["b1"] != 10 || count["b2"] != 10 {
			t.Errorf("round robin over b1, b2: %v", count)
		}
		b2p.Stop(syscall.SIGKILL, 5*time.Second)
		failed := 0
		for i := range 40 {
			cl := client(fmt.Sprintf("127.0.4.%d", i+1))
			code, e := getEcho(t, cl, "http://"+gws[0].gw+"/svc/b/echo/after")
			if code != 200 || e.Instance != "b1" {
				failed++
			}
		}
		if failed != 0 {
			t.Errorf("%d of 40 GETs failed after b2 was killed", failed)
		}
		var st struct {
			Upstreams []struct {
				Route     string `json:"route"`
				Instances []struct {
					Instance string `json:"instance"`
					State    string `json:"state"`
				} `json:"instances"`
			} `json:"upstreams"`
		}
		adminJSON(t, gws[0].admin, "/v1/upstreams", &st)
		states := map[string]string{}
		for _, u := range st.Upstreams {
			for _, in := range u.Instances {
				states[u.Route+"/"+in.Instance] = in.State
			}
		}
		if states["b/"+b2] != "ejected" || states["b/"+b1] != "healthy" {
			t.Errorf("instance states after the kill: %v", states)
		}
		if v := metricValue(t, gws[0].admin, fmt.Sprintf(`rampart_upstream_requests_total{code="error",instance="%s",route="b"}`, b2)); v < 1 {
			t.Errorf("no failed attempt counted for b2: %v", v)
		}
	})
}

// TestIPFeeds: a feed served over HTTPS is fetched once for three
// replicas and blocks on every one; a file feed is refreshed everywhere
// and a failed refresh keeps the last good list; exempt wins.
func TestIPFeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	r := redistest.StartRedis(t, redistest.Options{})
	up, _ := demo(t, "api")
	var fetches atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fetches.Add(1)
		fmt.Fprintln(w, "# test feed\n127.0.5.0/24 ; listed")
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, srv.Certificate().Raw)
	listFile := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(listFile, []byte("127.0.6.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := writeConfig(t, fmt.Sprintf(`
upstream: http://%s
exempt: [127.0.5.9]
redis: {timeout: 2s, breaker_failures: 1000}
detections:
  rate_limit: {rate: 1000, burst: 1000, period: 1m}   # the probes below repeat
ip:
  feeds:
    - {name: remote, url: "%s/drop.txt", refresh: 1h}
    - {name: f, file: %s, refresh: 2s}
`, up, srv.URL, listFile))
	gws := replicas(t, 3, config, r.URL(), "SSL_CERT_FILE="+caFile)
	status := func(g *stack, ip string) int {
		code, _ := call(t, client(ip), "GET", "http://"+g.gw+"/api/endpoint", "")
		return code
	}
	for _, g := range gws {
		if got := status(g, "127.0.5.1"); got != 403 {
			t.Errorf("%s: client on the remote feed: %d", g.gw, got)
		}
		if got := status(g, "127.0.6.1"); got != 403 {
			t.Errorf("%s: client on the file feed: %d", g.gw, got)
		}
		if got := status(g, "127.0.5.9"); got != 200 {
			t.Errorf("%s: exempt client on a feed: %d", g.gw, got)
		}
		if got := status(g, "127.0.7.1"); got != 200 {
			t.Errorf("%s: client on no feed: %d", g.gw, got)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the remote feed was fetched %d times by 3 replicas, want 1", n)
	}
	// Refresh: the file changes, every replica follows.
	if err := os.WriteFile(listFile, []byte("127.0.6.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		testutil.EventuallyErr(t, 30*time.Second, 200*time.Millisecond, func() error {
			if a, b := status(g, "127.0.6.1"), status(g, "127.0.6.2"); a != 200 || b != 403 {
				return fmt.Errorf("old entry %d, new entry %d", a, b)
			}
			return nil
		}, "%s picks up the refreshed file feed", g.gw)
	}
	// A failed refresh (the file is gone) keeps the last good list, and
	// says so.
	if err := os.Remove(listFile); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		testutil.EventuallyErr(t, 30*time.Second, 200*time.Millisecond, func() error {
			var st struct {
				Feeds []struct {
					Feed      string `json:"feed"`
					LastError string `json:"last_error"`
					Entries   int    `json:"entries"`
				} `json:"feeds"`
			}
			adminJSON(t, g.admin, "/v1/feeds", &st)
			for _, f := range st.Feeds {
				if f.Feed == "f" && f.LastError != "" && f.Entries == 1 {
					if v := metricValue(t, g.admin, `rampart_ip_feed_up{feed="f"}`); v != 0 {
						return fmt.Errorf("rampart_ip_feed_up{feed=f} = %v", v)
					}
					return nil
				}
			}
			return fmt.Errorf("feeds %+v", st.Feeds)
		}, "%s reports the failed refresh", g.gw)
		if got := status(g, "127.0.6.2"); got != 403 {
			t.Errorf("%s: after a failed refresh the last list no longer blocks: %d", g.gw, got)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the remote feed was fetched %d times, want 1 (refresh 1h)", n)
	}
}

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
