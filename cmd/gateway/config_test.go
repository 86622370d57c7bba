package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/config"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
)

func parse(t *testing.T, yaml string, env map[string]string) (*loaded, error) {
	t.Helper()
	path := t.TempDir() + "/test.yaml"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return load(path, getenv)
}

// TestExampleDecodesToDefaults: config.example.yaml is the built-in
// defaults, written out; it cannot drift from them.
func TestExampleDecodesToDefaults(t *testing.T) {
	l, err := load("../../config.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if def := defaultFile(); !equalEmpty(reflect.ValueOf(*l.File), reflect.ValueOf(*def)) {
		t.Errorf("config.example.yaml does not decode to the defaults:\nfile     %+v\ndefaults %+v", *l.File, *def)
	}
}

// exampleKeys returns the key paths written in config.example.yaml, list
// elements and map entries left out.
func exampleKeys(t *testing.T) []string {
	t.Helper()
	l, err := load("../../config.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range l.doc.Keys() {
		if !strings.Contains(k, "[") {
			out = append(out, k)
		}
	}
	return out
}

// TestEveryKeyInExample: every key of the configuration types is written
// in config.example.yaml (maps and lists as the container key).
func TestEveryKeyInExample(t *testing.T) {
	have := map[string]bool{}
	for _, k := range exampleKeys(t) {
		have[k] = true
	}
	for _, k := range config.KeyPaths(File{}) {
		if strings.Contains(k, "*") || strings.Contains(k, "[]") {
			continue // inside a map or a list: shown by example in comments
		}
		if k == "ip" || k == "detections.ip.exempt" {
			continue // another spelling of detections.ip, and a deprecated key
		}
		if !have[k] {
			t.Errorf("key %s is missing from config.example.yaml", k)
		}
	}
}

// TestREADMEConfiguration: the README's configuration section names every
// environment variable, links the generated reference, and every key its
// tables name exists.
func TestREADMEConfiguration(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envVars {
		if !strings.Contains(string(readme), "`"+e.Name+"`") {
			t.Errorf("README does not document %s", e.Name)
		}
	}
	if !strings.Contains(string(readme), "docs/configuration.md") {
		t.Error("README does not link docs/configuration.md")
	}
	known := map[string]bool{}
	for _, k := range config.KeyPaths(File{}) {
		known[strings.ReplaceAll(k, "[]", "")] = true
	}
	section := string(readme)
	if a := strings.Index(section, "\n## Configuration"); a >= 0 {
		section = section[a+1:]
		if b := strings.Index(section, "\n## Routes"); b >= 0 {
			section = section[:b]
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_.]+)`").FindAllStringSubmatch(section, -1) {
		if k := m[1]; strings.Contains(k, ".") || known[k] {
			if !known[k] && !known[strings.TrimSuffix(k, ".*")] {
				t.Errorf("the README's table names %s, which is not a configuration key", k)
			}
		}
	}
}

func TestFileValues(t *testing.T) {
	l, err := parse(t, `
listen: "127.0.0.1:9000"
trusted_proxies: ["10.0.0.0/8"]
timeouts:
  upstream: 5s
chain: [payload, rate_limit]
detections:
  rate_limit:
    mode: monitor
    status: 429
    on_store_error: block
    rate: 100
    burst: 20
    period: 1s
    routes:
      - {name: login, method: POST, path: /login, rate: 5, burst: 5, period: 1m}
  payload:
    patterns: ["evil", "re:ab+c"]
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Listen != "127.0.0.1:9000" || l.Timeouts.Upstream != 5*time.Second || l.TrustedProxies[0] != "10.0.0.0/8" {
		t.Errorf("file: %+v", l.File)
	}
	rl := l.Detections.RateLimit
	if rl.Mode != detections.ModeMonitor || rl.Status != 429 || rl.OnStoreError != detections.StoreBlock ||
		rl.Config.Limit != (detections.Limit{Rate: 100, Burst: 20, Period: time.Second}) ||
		len(rl.Config.Routes) != 1 || rl.Config.Routes[0].Limit.Rate != 5 || rl.Config.BanAfter != 10 {
		t.Errorf("rate_limit section: %+v", rl)
	}
	pol, err := l.buildPolicy(checkDeps())
	if err != nil {
		t.Fatal(err)
	}
	e := pol.Chain.Entries()
	if len(e) != 2 || e[0].Detection.Name() != "payload" || e[1].Mode != detections.ModeMonitor || e[1].Status != 429 || e[1].OnStoreError != detections.StoreBlock {
		t.Errorf("entries: %+v", e)
	}
}

// TestErrorsNameKeyAndLine: every error at once, each with the file's
// line and the key, and a hint for a typo.
func TestErrorsNameKeyAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "listen: \":1\"\nlisten_addr: y\n", []string{"test.yaml:2: listen_addr: unknown key"}},
		{"unknown nested key", "timeouts:\n  upstream: 1s\n  upstrem: 2s\n", []string{"test.yaml:3: timeouts.upstrem: unknown key", `did you mean "timeouts.upstream"?`}},
		{"unknown detection key", "detections:\n  payload:\n    patern: [a]\n", []string{"test.yaml:3: detections.payload.patern", `"detections.payload.patterns"`}},
		{"unknown detection", "detections:\n  geoip: {}\n", []string{"test.yaml:2: detections.geoip: unknown key"}},
		{"bad duration", "timeouts:\n  upstream: soon\n", []string{"test.yaml:2: timeouts.upstream", "soon"}},
		{"bad type", "max_body_bytes: lots\n", []string{"test.yaml:1: max_body_bytes", "lots"}},
		{"bad mode", "log:\n  level: info\ndetections:\n  rate_limit:\n    mode: enforcing\n", []string{"test.yaml:5: detections.rate_limit.mode", "enforcing"}},
		{"bad status", "detections:\n  ip:\n    status: 200\n", []string{"test.yaml:3: detections.ip.status", "200"}},
		{"bad on_store_error", "detections:\n  ip:\n    on_store_error: maybe\n", []string{"test.yaml:3: detections.ip.on_store_error", "maybe"}},
		{"bad detection config", "detections:\n  ip:\n    allow: [not-an-ip]\n", []string{"test.yaml:3: detections.ip.allow", "not-an-ip"}},
		{"bad rate", "detections:\n  rate_limit:\n    rate: 0\n", []string{"test.yaml:3: detections.rate_limit.rate", "rate, burst and period"}},
		{"unknown chain entry", "chain: [ip, nope]\n", []string{"test.yaml:1: chain[1]", `"nope"`}},
		{"bad log level", "log:\n  level: loud\n", []string{"test.yaml:2: log.level", "loud"}},
		{"listen without port", "listen: nonsense\n", []string{"test.yaml:1: listen", "host:port"}},
		{"redis URL of another scheme", "redis:\n  url: http://x\n", []string{"test.yaml:2: redis.url", "redis://"}},
		{"same port twice", "listen: 127.0.0.1:9090\n", []string{"admin.listen", "own ports"}},
		{"all at once", "listen: nonsense\nlog:\n  level: loud\n", []string{"test.yaml:1: listen", "test.yaml:3: log.level"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.yaml, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestEnvOverridesFile(t *testing.T) {
	l, err := parse(t, "listen: \":1\"\nredis:\n  url: redis://file:6379\n", map[string]string{
		"GATEWAY_LISTEN": "127.0.0.1:8081", "GATEWAY_UPSTREAM": "http://up:5000", "REDIS_URL": "redis://env:6379/2",
		"GATEWAY_TRUSTED_PROXIES": " 10.0.0.1/32 , 172.16.0.0/12,", "GATEWAY_LOG_LEVEL": "debug", "GATEWAY_ADMIN_TOKEN": "t",
		"GATEWAY_PPROF": "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.Listen != "127.0.0.1:8081" || l.Upstream.Redacted() != "http://up:5000" || l.Redis.URL != "redis://env:6379/2" ||
		strings.Join(l.TrustedProxies, "|") != "10.0.0.1/32|172.16.0.0/12" || l.Log.Level.String() != "DEBUG" || l.Admin.Token != "t" || !l.Admin.Pprof {
		t.Errorf("env not applied: %+v", l.File)
	}
	if _, err := parse(t, "", map[string]string{"GATEWAY_PPROF": "sometimes"}); err == nil || !strings.Contains(err.Error(), "GATEWAY_PPROF") {
		t.Errorf("bad environment value: %v", err)
	}
}

func TestModeOffDropsDetection(t *testing.T) {
	pol := policyOf(t, "detections:\n  user_agent:\n    mode: off\n")
	for _, e := range pol.Chain.Entries() {
		if e.Detection.Name() == "user_agent" {
			t.Error("off detection built")
		}
	}
	if want := len(defaultFile().Chain) - 1; len(pol.Chain.Entries()) != want {
		t.Errorf("entries: %d, want %d (the default chain less user_agent)", len(pol.Chain.Entries()), want)
	}
}

// TestExemptIsGatewayPolicy: exempt is a top-level list; the old spelling
// under detections.ip still works, with a warning, and both apply even
// with the ip detection off.
func TestExemptIsGatewayPolicy(t *testing.T) {
	l, err := parse(t, "exempt: [198.51.100.7]\ndetections:\n  ip:\n    mode: off\n    exempt: [203.0.113.0/24]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := l.buildPolicy(checkDeps())
	if err != nil {
		t.Fatal(err)
	}
	defer closePolicy(pol)
	for _, ip := range []string{"198.51.100.7", "203.0.113.9"} {
		if a := mustAddr(t, ip); !pol.Exempt.Contains(a) {
			t.Errorf("%s not exempt", ip)
		}
	}
	if len(l.warnings) != 1 || !strings.Contains(l.warnings[0], "deprecated") {
		t.Errorf("warnings = %v", l.warnings)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCRSOptional: the crs detection is not in the default chain and is
// not built unless listed; its section is still checked; listed, it runs
// last-listed like any other.
func TestCRSOptional(t *testing.T) {
	if slices.Contains(defaultFile().Chain, "crs") {
		t.Fatal("crs is in the default chain")
	}
	pol := policyOf(t, "")
	for _, e := range pol.Chain.Entries() {
		if e.Detection.Name() == "crs" {
			t.Fatal("crs built though the chain does not list it")
		}
	}
	if _, err := parse(t, "detections:\n  crs:\n    paranoia_level: 7\n", nil); err == nil || !strings.Contains(err.Error(), "paranoia_level") {
		t.Errorf("a bad crs section outside the chain: %v", err)
	}
	pol = policyOf(t, "chain: [ip, payload, crs]\ndetections:\n  crs:\n    mode: monitor\n")
	es := pol.Chain.Entries()
	if len(es) != 3 || es[2].Detection.Name() != "crs" || es[2].Mode != detections.ModeMonitor {
		t.Errorf("chain %v", chainNames(pol.Chain))
	}
}

// TestREADMEExample: the README's "Adding a detection" code is
// detections/example_test.go's, which go test compiles and runs.
func TestREADMEExample(t *testing.T) {
	between := func(file string) string {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		a := strings.Index(s, "// README example begin")
		b := strings.Index(s, "// README example end")
		if a < 0 || b < a {
			t.Fatalf("%s has no README example markers", file)
		}
		return s[a:b]
	}
	if between("../../README.md") != between("../../detections/example_test.go") {
		t.Error("the README's example differs from detections/example_test.go")
	}
}

// TestBanIdentityKeys: bans.identity_keys is a list of key specs, each a
// list; the bare form (one spec written as the list) is refused naming the
// key, and a bad part is reported under its own key, once.
func TestBanIdentityKeys(t *testing.T) {
	l, err := parse(t, "bans:\n  identity_keys: [[jwt:sub], [header:X-Api-Key], [ip]]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"jwt:sub"}, {"header:X-Api-Key"}, {"ip"}}; !reflect.DeepEqual(l.Bans.IdentityKeys, want) {
		t.Errorf("identity_keys = %q, want %q", l.Bans.IdentityKeys, want)
	}
	pol, err := l.buildPolicy(checkDeps())
	if err != nil {
		t.Fatal(err)
	}
	defer closePolicy(pol)
	var got []string
	for _, k := range pol.BanKeys {
		got = append(got, k.String())
	}
	// The IP alone is what bans are always checked against: not a ban key.
	if want := []string{"jwt:sub", "header:X-Api-Key"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ban keys %q, want %q", got, want)
	}

	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"bare form", "bans:\n  identity_keys: [jwt:sub]\n", []string{"test.yaml:2: bans.identity_keys[0]", "jwt:sub"}},
		{"bad part", "bans:\n  identity_keys:\n    - [jwt:sub]\n    - [ip, bogus, \"jwt:\"]\n",
			[]string{`test.yaml:4: bans.identity_keys[1][1]: "bogus": want ip`, `test.yaml:4: bans.identity_keys[1][2]: "jwt:": want jwt:<claim>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.yaml, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "].bans.") {
				t.Errorf("error %q names the key twice", err)
			}
		})
	}
}

// TestBuildPolicyReleasesOnError: a policy that fails to build (here on a
// bad bans.identity_keys, in the file or in its shadow) releases every
// detection it built, the crs WAF and the shadow policy's included.
func TestBuildPolicyReleasesOnError(t *testing.T) {
	var mu sync.Mutex
	count := map[string]int{}
	hook := func(d detections.Detection) {
		mu.Lock()
		defer mu.Unlock()
		count[d.Name()]++
	}
	released.Store(&hook)
	t.Cleanup(func() { released.Store(nil) })
	dir := t.TempDir()
	shadow := filepath.Join(dir, "shadow.yaml")
	for _, tc := range []struct {
		name, file, shadow string
		want               map[string]int // at least
	}{
		{"bad key", "chain: [ip, payload, crs]\nbans:\n  identity_keys: [[bogus]]\n", "",
			map[string]int{"ip": 1, "payload": 1, "crs": 1}},
		{"bad key in the shadow", "chain: [ip, payload]\nshadow:\n  file: " + shadow + "\n", "chain: [ip, payload]\nbans:\n  identity_keys: [[bogus]]\n",
			map[string]int{"ip": 2, "payload": 2}}, // the shadow's chain, and the file's
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			clear(count)
			mu.Unlock()
			if err := os.WriteFile(shadow, []byte(tc.shadow), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := parse(t, tc.file, nil) // the check builds the policy
			if err == nil || !strings.Contains(err.Error(), "bogus") {
				t.Fatalf("error %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for name, n := range tc.want {
				if count[name] < n {
					t.Errorf("%s released %d times, want %d (released: %v)", name, count[name], n, count)
				}
			}
		})
	}
}

// TestAllowListedFromAllowList: the policy's AllowListed (clients never
// banned) is the ip detection's allow list, with the detection in the
// chain or off, whatever its feeds.
func TestAllowListedFromAllowList(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"in the chain", "detections:\n  ip:\n    allow: [198.51.100.0/24, 127.0.0.1]\n"},
		{"off", "detections:\n  ip:\n    mode: off\n    allow: [198.51.100.0/24, 127.0.0.1]\n"},
		{"off, with a feed it never checks", "detections:\n  ip:\n    mode: off\n    allow: [198.51.100.0/24, 127.0.0.1]\n    feeds: [{name: unfinished}]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := policyOf(t, tc.yaml)
			if pol.AllowListed == nil {
				t.Fatal("no AllowListed")
			}
			if !pol.AllowListed(mustAddr(t, "198.51.100.7")) || pol.AllowListed(mustAddr(t, "203.0.113.1")) {
				t.Error("AllowListed is not the allow list")
			}
		})
	}
	pol := policyOf(t, "")
	if pol.AllowListed != nil && pol.AllowListed(mustAddr(t, "127.0.0.1")) {
		t.Error("no allow list, yet 127.0.0.1 is allow-listed")
	}
}

// policyOf parses yaml (no environment) and builds its policy, closed when
// the test ends.
func policyOf(t *testing.T, yaml string) *gateway.Policy {
	t.Helper()
	l, err := parse(t, yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := l.buildPolicy(checkDeps())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closePolicy(pol) })
	return pol
}
