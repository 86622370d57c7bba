package console_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
	"github.com/rampartgw/rampart/testutil"
)

// Where the browser test puts its screenshots:
//
//	RAMPART_CONSOLE_SCREENSHOTS=dir   every page, as <page>.png (default: a
//	                                  temporary directory of the test)
//	RAMPART_README_SCREENSHOTS=1      also docs/images/console-live.png and
//	                                  console-bans.png for the README
const (
	envScreenshots       = "RAMPART_CONSOLE_SCREENSHOTS"
	envReadmeScreenshots = "RAMPART_README_SCREENSHOTS"
)

// pageBudget bounds how long a page may take to show what the test did:
// two top-offender flushes plus the stream read.
const pageBudget = 3 * time.Second

// chromium finds a Chromium to drive: $CHROME_BIN or the usual names.
func chromium() string {
	if p := os.Getenv("CHROME_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowser drives the console in headless Chromium, on two replicas
// sharing one Redis: log in, see a request blocked by the other replica
// appear on the Live page within 2 s, pause and resume, unban a client from
// the Bans page and see its next request allowed, visit every page, check
// that no request of the page went anywhere but the admin listener, and
// keep a screenshot of each page.
func TestBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		testutil.SkipUnlessCI(t, "no Chromium binary (apt-get install chromium, or set CHROME_BIN)")
	}
	start := time.Now()
	var addr string
	if _, err := exec.LookPath("redis-server"); err == nil && !testing.Short() {
		addr = storetest.Real(t).Addr
	} else {
		_, mr := storetest.New(t)
		addr = mr.Addr()
	}
	running := map[string]any{"listen": ":8080", "upstream": "http://127.0.0.1:5000", "replica": "replica-a",
		"admin": map[string]any{"listen": "127.0.0.1:9090", "token": testToken, "console": map[string]any{"enabled": true, "session_ttl": "8h"}},
		"redis": map[string]any{"url": "redis://:s3cret@redis:6379/0", "prefix": "gw:"}}
	a := newHarness(t, harnessOpts{redisAddr: addr, token: testToken, running: running})
	b := newHarness(t, harnessOpts{redisAddr: addr, token: testToken, replica: "replica-b"})
	a.mon.RecordReload(t.Context(), store.Reload{Trigger: "start", OK: true, ConfigHash: "abc123"})

	shots := os.Getenv(envScreenshots)
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.WindowSize(1440, 900), chromedp.Flag("disable-gpu", true), chromedp.Flag("hide-scrollbars", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil { // start the browser and the tab
		t.Fatalf("starting %s: %v", bin, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 50*time.Second)
	defer cancel()

	// Every request the page makes, to check where they go.
	var mu sync.Mutex
	var requests []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		t0 := time.Now()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Logf("%s took %v", what, d.Round(time.Millisecond))
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		if os.Getenv(envReadmeScreenshots) != "" && (name == "live" || name == "bans") {
			dir := filepath.Join(testutil.ModuleRoot(t), "docs", "images")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Some traffic on both replicas first, so the chart and the tables
	// have something to show.
	traffic(t, a, b)

	// Log in: an unauthenticated page leads to the login form and back.
	do("open the console", chromedp.Navigate(a.admin.URL+"/console/live"), chromedp.WaitVisible(chromedp.ID("token")))
	shot("login")
	do("log in", chromedp.SendKeys(chromedp.ID("token"), testToken), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("events-body")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "/console/live") {
		t.Fatalf("after login the browser is at %s", loc)
	}
	waitText(t, ctx, "#live-status", "live")

	// A request blocked by the other replica appears within 2 s.
	sent := time.Now()
	if code := b.request(t, "/account?next=malicious", "203.0.113.200"); code != http.StatusForbidden {
		t.Fatalf("blocked request: %d", code)
	}
	do("see the blocked request", chromedp.WaitVisible(chromedp.CSS(`#events-body tr[data-time] td.mono`)),
		pollJS(`[...document.querySelectorAll('#events-body tr')].some(r => r.textContent.includes('203.0.113.200') && r.textContent.includes('replica-b'))`, 2*time.Second))
	took := time.Since(sent)
	t.Logf("blocked request on replica-b to a row on replica-a's Live page: %v", took)
	if took > 2*time.Second {
		t.Errorf("the event took %v to appear (budget 2 s)", took)
	}

	// Pause holds new events back; resume shows them.
	do("pause", chromedp.Click(chromedp.ID("pause")))
	waitText(t, ctx, "#live-status", "paused")
	b.request(t, "/search?q=malicious", "203.0.113.202")
	waitText(t, ctx, "#live-status", "1 new")
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('events-body').textContent.includes('203.0.113.202')`)); n {
		t.Error("an event appeared while paused")
	}
	do("resume", chromedp.Click(chromedp.ID("pause")),
		pollJS(`document.getElementById('events-body').textContent.includes('203.0.113.202')`, 2*time.Second))
	shot("live")

	// Unban a banned client from the Bans page: its next request passes.
	target, _ := a.g.ParseTarget("203.0.113.201")
	if _, err := b.g.Ban(t.Context(), target, time.Hour, "credential stuffing"); err != nil {
		t.Fatal(err)
	}
	if code := a.request(t, "/", "203.0.113.201"); code != http.StatusForbidden {
		t.Fatalf("banned client: %d", code)
	}
	do("open bans", chromedp.Navigate(a.admin.URL+"/console/bans"),
		chromedp.WaitVisible(chromedp.CSS(`button.unban[data-client="203.0.113.201"]`)))
	shot("bans")
	do("unban", chromedp.Click(chromedp.CSS(`button.unban[data-client="203.0.113.201"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice.ok`)))
	if txt, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.notice.ok`))); !strings.Contains(txt, "Unbanned 203.0.113.201") {
		t.Errorf("notice %q", txt)
	}
	testutil.Eventually(t, 2*time.Second, 20*time.Millisecond, func() bool { return a.request(t, "/", "203.0.113.201") == http.StatusOK },
		"the unbanned client is still refused")
	if code := b.request(t, "/", "203.0.113.201"); code != http.StatusOK {
		t.Errorf("the other replica still refuses the unbanned client: %d", code)
	}
	// Ban from the form.
	do("ban", chromedp.SendKeys(chromedp.CSS(`.ban-form input[name=client]`), "198.51.100.0/24"),
		chromedp.SendKeys(chromedp.CSS(`.ban-form input[name=duration]`), "30m"),
		chromedp.SendKeys(chromedp.CSS(`.ban-form input[name=reason]`), "scanner range"),
		chromedp.Submit(chromedp.CSS(`.ban-form input[name=client]`)),
		chromedp.WaitVisible(chromedp.CSS(`button.unban[data-client="198.51.100.0/24"]`)))
	if code := b.request(t, "/", "198.51.100.7"); code != http.StatusForbidden {
		t.Errorf("a client of the banned range: %d", code)
	}

	for _, p := range []struct{ name, path, sel, want, not string }{
		{"top", "/console/top?window=1h", "#top-client", "203.0.113.200", ""},
		{"fleet", "/console/fleet", "table.fleet", "replica-b", ""},
		{"config", "/console/config", ".yaml pre", "[redacted]", "s3cret"},
	} {
		// The top offenders are counted asynchronously (each replica sums
		// the events it consumes and writes them every topFlushEvery), and
		// the fleet table follows heartbeats: reload until the row is
		// there, within a bound.
		var txt string
		var err error
		opened, loads := time.Now(), 0
		for {
			loads++
			do("open "+p.name, chromedp.Navigate(a.admin.URL+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
			txt, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(p.sel)))
			if (err == nil && strings.Contains(txt, p.want)) || time.Since(opened) > pageBudget {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if loads > 1 {
			t.Logf("%s page: %q there after %d loads, %v", p.name, p.want, loads, time.Since(opened).Round(time.Millisecond))
		}
		if err != nil || !strings.Contains(txt, p.want) || (p.not != "" && strings.Contains(txt, p.not)) || strings.Contains(txt, testToken) {
			t.Errorf("%s page after %v: %q, %v", p.name, pageBudget, txt, err)
		}
		shot(p.name)
	}

	// Log out: the console is closed again.
	do("log out", chromedp.Click(chromedp.CSS(`form.logout button`)), chromedp.WaitVisible(chromedp.ID("token")))

	mu.Lock()
	defer mu.Unlock()
	au, _ := url.Parse(a.admin.URL)
	seen := map[string]bool{}
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "http" || u.Host != au.Host {
			t.Errorf("the page requested %q, not on the admin listener %s", r, au.Host)
		}
		seen[u.Path] = true
	}
	for _, p := range []string{"/console/static/console.css", "/console/static/live.js", "/console/live/stream", "/console/login"} {
		if !seen[p] {
			t.Errorf("the page never requested %s (saw %d requests)", p, len(requests))
		}
	}
	t.Logf("%d requests, all to %s; screenshots in %s; %v in all", len(requests), au.Host, shots, time.Since(start).Round(time.Millisecond))
}

// traffic sends a little of everything through both replicas, after a
// synthetic 15-minute history of the rate chart (a steady load with an
// attack wave), written as the monitors would have.
func traffic(t *testing.T, a, b *harness) {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	for s := 900; s > 2; s-- {
		at := now.Add(-time.Duration(s) * time.Second)
		x := float64(s)
		r := store.RateSample{Allowed: int64(42 + 6*math.Sin(x/40) + 3*math.Sin(x/7))}
		if s < 420 && s > 240 { // an attack: blocks, then the bans take over
			k := float64(420-s) / 180
			r.Blocked = int64(30*math.Exp(-3*k) + 4 + 2*math.Sin(x/5))
			r.Banned = int64(28*(1-math.Exp(-4*k)) + 2*math.Sin(x/9) + 2)
		}
		if err := a.st.AddRates(t.Context(), at, r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 60 {
		h := a
		if i%2 == 1 {
			h = b
		}
		h.request(t, fmt.Sprintf("/api/items/%d", i), fmt.Sprintf("192.0.2.%d", 10+i%7))
		if i%3 == 0 {
			h.request(t, []string{"/search?q=malicious", "/login?user=malicious", "/api/items?id=malicious"}[i%9/3], fmt.Sprintf("203.0.113.%d", 10+i%4))
		}
	}
	for _, ban := range []struct {
		h      *harness
		target string
		d      time.Duration
		reason string
	}{
		{a, "203.0.113.11", 2 * time.Hour, "payload attacks"},
		{b, "203.0.113.0/28", 24 * time.Hour, "scanner range (abuse report)"},
		{b, "2001:db8:7:1::/64", 45 * time.Minute, "credential stuffing"},
	} {
		tg, _ := ban.h.g.ParseTarget(ban.target)
		if _, err := ban.h.g.Ban(t.Context(), tg, ban.d, ban.reason); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		a.request(t, "/", "203.0.113.11") // refused as banned
	}
	time.Sleep(1200 * time.Millisecond) // a rate sample and a heartbeat
}

// pollJS waits until expr is true, for at most d.
func pollJS(expr string, d time.Duration) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(d))(ctx, tg)
		return chromedp.Void{}, err
	}
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	expr := fmt.Sprintf(`(document.querySelector(%q) || {}).textContent && document.querySelector(%q).textContent.includes(%q)`, sel, sel, want)
	if err := chromedp.Do(ctx, pollJS(expr, 3*time.Second)); err != nil {
		txt, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
		t.Fatalf("%s: %q never contained %q: %v", sel, txt, want, err)
	}
}
