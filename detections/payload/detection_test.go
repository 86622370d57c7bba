package payload_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// fixed is a test analyser that reports one finding on fields whose decoded
// value contains its trigger.
type fixed struct {
	name, trigger string
	f             payload.Finding
}

func (a fixed) Name() string { return a.name }
func (a fixed) Analyze(in *payload.Input) (payload.Finding, bool) {
	if strings.Contains(string(in.Decoded()), a.trigger) {
		return a.f, true
	}
	return payload.Finding{}, false
}

func query(raw string) *detections.Request {
	return &detections.Request{Method: "GET", Header: http.Header{}, Path: "/p", RawPath: "/p", RawQuery: raw}
}

func inspect(t *testing.T, d *payload.Detection, r *detections.Request) detections.Verdict {
	t.Helper()
	v, err := d.Inspect(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScoring(t *testing.T) {
	t.Parallel()
	weakA := fixed{"a", "aaa", payload.Finding{Rule: "a-weak", Score: payload.ScoreWarning}}
	weakB := fixed{"b", "bbb", payload.Finding{Rule: "b-weak", Score: payload.ScoreNotice}}
	d, err := payload.NewWith(payload.DefaultConfig(), []payload.Analyzer{weakA, weakB})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query string
		block       bool
		rule, loc   string
		score       int
	}{
		{"one weak signal passes", "x=aaa", false, "", "", 0},
		{"two kinds of evidence add up", "x=aaa&y=bbb", true, "a-weak", "query:x", 5},
		{"the same rule counts once", "x=aaa&y=aaa&z=aaa", false, "", "", 0},
		{"in one field too", "x=aaabbb", true, "a-weak", "query:x", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := inspect(t, d, query(tc.query))
			if (v.Action == detections.ActionBlock) != tc.block {
				t.Fatalf("verdict %v (score %d)", v.Action, v.Score)
			}
			if tc.block && (v.Rule != tc.rule || v.Location != tc.loc || v.Score != tc.score) {
				t.Errorf("rule %s at %s score %d, want %s at %s score %d", v.Rule, v.Location, v.Score, tc.rule, tc.loc, tc.score)
			}
		})
	}
}

func TestModesAndExclusions(t *testing.T) {
	t.Parallel()
	attack := "q=%3Cscript%3Ealert(1)%3C/script%3E"
	for _, tc := range []struct {
		name string
		cfg  func(*payload.Config)
		want detections.Action
	}{
		{"enforced by default", func(*payload.Config) {}, detections.ActionBlock},
		{"monitor mode", func(c *payload.Config) { c.Analyzers = map[string]payload.AnalyzerConfig{"xss": {Mode: "monitor"}} }, detections.ActionMonitor},
		{"off", func(c *payload.Config) { c.Analyzers = map[string]payload.AnalyzerConfig{"xss": {Mode: "off"}} }, detections.ActionAllow},
		{"rule excluded on a field", func(c *payload.Config) {
			c.Exclusions = []payload.Exclusion{{Fields: []string{"query:q"}, Rules: []string{"xss"}}}
		}, detections.ActionAllow},
		{"exclusion on another path", func(c *payload.Config) {
			c.Exclusions = []payload.Exclusion{{Path: "/cms", Rules: []string{"xss"}}}
		}, detections.ActionBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := payload.DefaultConfig()
			tc.cfg(&cfg)
			d, err := payload.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if v := inspect(t, d, query(attack)); v.Action != tc.want {
				t.Errorf("action %v (rule %s), want %v", v.Action, v.Rule, tc.want)
			}
		})
	}
	cfg := payload.DefaultConfig()
	cfg.Analyzers = map[string]payload.AnalyzerConfig{"nope": {Mode: "off"}}
	if _, err := payload.New(cfg); err == nil {
		t.Error("an unknown analyser was accepted")
	}
}

// TestLocationNamesTheParameter: the verdict says where, never what.
func TestLocationNamesTheParameter(t *testing.T) {
	t.Parallel()
	d := newDefault(t)
	secret := "x'%20or%20'1'='1"
	v := inspect(t, d, query("user="+secret))
	if v.Action != detections.ActionBlock || v.Location != "query:user" {
		t.Fatalf("%v at %q", v.Action, v.Location)
	}
	for _, s := range []string{v.Rule, v.Location, v.Reason} {
		if strings.Contains(s, "or") && s != payload.ReasonMalicious {
			t.Errorf("%q reveals the value", s)
		}
	}
}

func TestSSRFAllowHosts(t *testing.T) {
	t.Parallel()
	r := query("hook=" + "http%3A%2F%2F10.20.0.7%2Fcallback")
	def := newDefault(t)
	// A plain private address is a weak signal on its own.
	if v := inspect(t, def, r); v.Action == detections.ActionBlock {
		t.Fatalf("blocked by %s", v.Rule)
	}
	r = query("hook=http%3A%2F%2F169.254.169.254%2F&x=1")
	if v := inspect(t, def, r); v.Rule != payload.RuleSSRFMetadata {
		t.Fatalf("rule %q", v.Rule)
	}
	cfg := payload.DefaultConfig()
	cfg.SSRFAllowHosts = []string{"169.254.169.254"}
	d, err := payload.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v := inspect(t, d, r); v.Action == detections.ActionBlock {
		t.Errorf("allowed host blocked by %s", v.Rule)
	}
}

// TestCleanRequestsAllocateNothing is the zero-allocation promise of the
// Input and Buffer design, for a browser GET without a body.
func TestCleanRequestsAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	d := newDefault(t)
	r := cleanGET()
	ctx := t.Context()
	_, _ = d.Inspect(ctx, r)
	if n := testing.AllocsPerRun(200, func() { _, _ = d.Inspect(ctx, r) }); n != 0 {
		t.Errorf("%v allocations per clean GET, want 0", n)
	}
}

// TestBenignLookalikes runs the brief's look-alikes through the whole
// detection, in a query, a form and a JSON body.
func TestBenignLookalikes(t *testing.T) {
	t.Parallel()
	d := newDefault(t)
	for _, v := range []string{
		"O'Brien", "select your plan", "1 < 2 and 3 > 2", "<$20", "prices from <$20 to >$100",
		"# Heading\n\n- [x] done\n- **bold** and `code`\n\n> quoted", "rm -rf is a command",
		"https://www.example.com/a/b?c=d&e=f", "4035487b-f17c-47da-b417-d4b94043d7fe",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
		"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
		"Tom & Jerry; the sequel", "C:\\Users\\alice\\Documents\\report.pdf", "user@example.com",
		"50% off everything!", "(555) 123-4567", "SELECT * FROM the menu: soup, salad",
		"Dear team,\nplease find attached.\nRegards: Bob", "{{ user.name }}", "${PRICE}",
	} {
		reqs := map[string]*detections.Request{
			"query": query("v=" + urlQueryEscape(v)),
			"form": {Method: "POST", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
				Path: "/f", RawPath: "/f", Body: []byte("v=" + urlQueryEscape(v))},
			"json": {Method: "POST", Header: http.Header{"Content-Type": {"application/json"}},
				Path: "/j", RawPath: "/j", Body: []byte(`{"v":` + jsonString(v) + `}`)},
		}
		for kind, r := range reqs {
			if got := inspect(t, d, r); got.Action == detections.ActionBlock {
				t.Errorf("%s %q: blocked by %s (score %d)", kind, v, got.Rule, got.Score)
			}
		}
	}
}
