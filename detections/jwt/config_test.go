package jwt

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaultConfigValid(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"token size", func(c *Config) { c.MaxTokenBytes = 10 }, []string{"max_token_bytes"}},
		{"depth", func(c *Config) { c.MaxJSONDepth = 100 }, []string{"max_json_depth"}},
		{"no location", func(c *Config) { c.Locations = LocationConfig{} }, []string{"no location"}},
		{"bad location", func(c *Config) { c.Locations.Cookies = []string{"a b"} }, []string{`invalid name "a b"`}},
		{"skew", func(c *Config) { c.ClockSkew = time.Hour }, []string{"clock_skew"}},
		{"allow none", func(c *Config) { c.AllowedAlgs = []string{"RS256", "none", "XX1"} }, []string{"none cannot be allowed", `"XX1"`}},
		{"key host", func(c *Config) { c.KeyURLHosts = []string{"https://x"} }, []string{"key_url_hosts"}},
		{"sightings", func(c *Config) { c.AlgConfusion.MinSightings = 0; c.AlgConfusion.CacheTTL = 0 }, []string{"min_sightings", "cache_ttl"}},
		{"confusion off skips its checks", func(c *Config) { c.AlgConfusion = AlgConfusionConfig{} }, nil},
		{"weak secret", func(c *Config) {
			c.WeakSecret.Builtin = false
			c.WeakSecret.Queue = 0
			c.WeakSecret.Workers = 0
			c.WeakSecret.SweepsPerMinute = 0
		}, []string{"neither builtin nor wordlist_file", "queue", "workers", "sweeps_per_minute"}},
		{"providers", func(c *Config) {
			c.Providers = []ProviderConfig{
				{Name: "a", Issuer: "x", JWKSURL: "http://insecure/jwks"},
				{Name: "a", Issuer: "x"},
				{Name: "", JWKSFile: "f", JWKSURL: "https://h/j", HMACKeys: []HMACKeyConfig{{Alg: "RS256"}, {Alg: "HS256", SecretEnv: "S"}}},
			}
		}, []string{"not an https URL", `"a" is used twice`, `issuer: "x" is used twice`, "no jwks_file", "name: empty",
			"exclusive", `"RS256" is not HS256`, "secret_env: empty", `kid: "" is used twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	doc := `
max_token_bytes: 4096
clock_skew: 30s
max_lifetime: 1h
allowed_algs: [RS256, ES256]
locations:
  bearer_headers: [Authorization]
  cookies: [session_jwt]
alg_confusion:
  enabled: true
  min_sightings: 5
  max_issuers: 50
  learn_ttl: 720h
  sighting_ttl: 24h
  cache_ttl: 10s
weak_secret:
  enabled: true
  builtin: true
  wordlist_file: /etc/rampart/jwt-secrets.txt
  queue: 64
  workers: 2
  recheck: 12h
  sweeps_per_minute: 10
  cache_ttl: 30s
providers:
  - name: login
    issuer: https://login.example
    audiences: [api]
    jwks_url: https://login.example/.well-known/jwks.json
    refresh: 10m
  - name: internal
    issuer: https://internal.example
    hmac_keys:
      - {kid: h1, alg: HS256, secret_env: GATEWAY_JWT_INTERNAL_SECRET}
`
	c := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxTokenBytes != 4096 || c.ClockSkew != 30*time.Second || c.AlgConfusion.MinSightings != 5 ||
		c.WeakSecret.Workers != 2 || c.Providers[0].Refresh != 10*time.Minute ||
		c.Providers[1].HMACKeys[0].SecretEnv != "GATEWAY_JWT_INTERNAL_SECRET" || !c.RequireExp {
		t.Errorf("decoded %+v", c)
	}
	// The defaults survive a round trip.
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := yaml.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	again, err := yaml.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, buf.Bytes()) || back.Validate() != nil {
		t.Errorf("round trip:\n%s\n%s", buf.String(), again)
	}
}

func TestAnalyzeRequest(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, testConfig(), Options{})
	ctx := t.Context()
	good := rsToken(t, "k1")
	none := mint(`{"alg":"none"}`, claimsJSON(issuer), nil)
	for _, tc := range []struct {
		name   string
		header http.Header
		query  string
		want   []string
	}{
		{"no token", http.Header{"Cookie": {"session=1"}}, "q=1", nil},
		{"opaque bearer", http.Header{"Authorization": {"Bearer sk_live_abcdef"}}, "", nil},
		{"one token twice", http.Header{"Authorization": {"Bearer " + good}, "Cookie": {"jwt=" + good}}, "", nil},
		{"two tokens", http.Header{"Authorization": {"Bearer " + good}}, "access_token=" + none,
			[]string{"jwt_alg_none", "jwt_multiple_tokens"}},
		// Opaque values do not use up the candidate cap.
		{"opaque query values first", nil, strings.Repeat("token=x&", 8) + "access_token=" + none,
			[]string{"jwt_alg_none"}},
		{"opaque bearer headers first", http.Header{"Authorization": slices.Repeat([]string{"Bearer x"}, 8)}, "access_token=" + none,
			[]string{"jwt_alg_none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := a.AnalyzeRequest(ctx, tc.header, tc.query, "c")
			if err != nil {
				t.Fatal(err)
			}
			if got := rulesOf(rep.Findings); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("findings %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAnalyzeRequestTooManyTokens: tokens beyond the cap are not analysed,
// and the report says so.
func TestAnalyzeRequestTooManyTokens(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, testConfig(), Options{})
	var q strings.Builder
	for i := range maxCandidates {
		fmt.Fprintf(&q, "token=%s&", mint(`{"alg":"RS256"}`, claimsJSON(issuer, fmt.Sprintf(`"jti":"%d"`, i)), fixed(make([]byte, 256))))
	}
	atCap, err := a.AnalyzeRequest(t.Context(), nil, q.String(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(atCap.Findings); len(atCap.Results) != maxCandidates || !slices.Contains(got, "jwt_multiple_tokens") || slices.Contains(got, "jwt_multiple_tokens/too_many") {
		t.Errorf("at the cap: %d results, findings %v", len(atCap.Results), got)
	}
	none := mint(`{"alg":"none"}`, claimsJSON(issuer), nil)
	rep, err := a.AnalyzeRequest(t.Context(), nil, q.String()+"access_token="+none, "c")
	if err != nil {
		t.Fatal(err)
	}
	got := rulesOf(rep.Findings)
	if len(rep.Results) != maxCandidates || !slices.Contains(got, "jwt_multiple_tokens/too_many") || slices.Contains(got, "jwt_multiple_tokens") {
		t.Errorf("over the cap: %d results, findings %v", len(rep.Results), got)
	}
}

// TestAnalyzeRequestNoTokenNoAllocs pins the common request at zero
// allocations through the whole entry point.
func TestAnalyzeRequestNoTokenNoAllocs(t *testing.T) {
	a := newTestAnalyzer(t, testConfig(), Options{})
	h := http.Header{"Accept": {"*/*"}, "Cookie": {"session=abc; theme=dark"}, "Authorization": {"Basic dXNlcjpwYXNz"}}
	ctx := t.Context()
	if n := testing.AllocsPerRun(1000, func() { _, _ = a.AnalyzeRequest(ctx, h, "page=1&sort=asc", "c") }); n != 0 {
		t.Errorf("%v allocs", n)
	}
}
