package jwt

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksServer serves a JWKS over TLS and can be told to fail, stall or
// overflow.
type jwksServer struct {
	srv  *httptest.Server
	body atomic.Pointer[[]byte]
	mode atomic.Value // "", "fail", "slow", "huge"
	hits atomic.Int64
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.body.Store(&doc)
	s.mode.Store("")
	stop := make(chan struct{})
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		switch s.mode.Load().(string) {
		case "fail":
			http.Error(w, "down", http.StatusInternalServerError)
			return
		case "slow":
			select {
			case <-stop:
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		case "huge":
			w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 1<<20) + `]}`))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*s.body.Load())
	}))
	t.Cleanup(func() { close(stop); s.srv.Close() })
	return s
}

func (s *jwksServer) set(doc []byte) { s.body.Store(&doc) }

func pubJWK(key any, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// verifyEnv is an analyzer with a JWKS-over-TLS provider, an HMAC
// provider, and running background work.
type verifyEnv struct {
	a    *Analyzer
	srv  *jwksServer
	clk  *clock
	stop context.CancelFunc
}

const (
	rsIssuer = "https://login.example"
	hsIssuer = "https://internal.example"
)

func newVerifyEnv(t *testing.T, mutate func(*Config)) *verifyEnv {
	t.Helper()
	k := keys(t)
	srv := newJWKSServer(t, jwksOf(t,
		pubJWK(&k.rsa.PublicKey, "rsa1", "RS256"),
		pubJWK(&k.ec256.PublicKey, "ec1", ""),
		pubJWK(k.ed.Public(), "ed1", "EdDSA"),
		pubJWK(&k.rsa2.PublicKey, "ps1", "PS256"),
	))
	cfg := testConfig()
	cfg.Providers = []ProviderConfig{
		{Name: "login", Issuer: rsIssuer, Audiences: []string{"api"}, JWKSURL: srv.srv.URL + "/jwks",
			Refresh: time.Hour, MinRefresh: 20 * time.Millisecond, FetchTimeout: 300 * time.Millisecond},
		{Name: "internal", Issuer: hsIssuer, HMACKeys: []HMACKeyConfig{{KeyID: "h1", Alg: "HS256", SecretEnv: "TEST_HS_SECRET"}}},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	env := map[string]string{"TEST_HS_SECRET": string(k.hmac)}
	clk := newClock()
	a, err := New(cfg, Options{
		HTTPClient: srv.srv.Client(),
		Getenv:     func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Now:        clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e := &verifyEnv{a: a, srv: srv, clk: clk, stop: cancel}
	e.waitFor(t, "first JWKS load", func() bool { return a.providers[0].keys() != nil })
	return e
}

func (e *verifyEnv) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, e.a.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestVerifyLegitimate(t *testing.T) {
	t.Parallel()
	e := newVerifyEnv(t, nil)
	k := keys(t)
	for _, tc := range []struct {
		name, iss, kid string
		alg            jose.SignatureAlgorithm
		key            any
	}{
		{"RS256", rsIssuer, "rsa1", jose.RS256, k.rsa},
		{"ES256 key without alg", rsIssuer, "ec1", jose.ES256, k.ec256},
		{"EdDSA", rsIssuer, "ed1", jose.EdDSA, k.ed},
		{"PS256", rsIssuer, "ps1", jose.PS256, k.rsa2},
		{"HS256 from env", hsIssuer, "h1", jose.HS256, k.hmac},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodClaims(tc.iss)
			tok := signJose(t, tc.alg, tc.key, tc.kid, map[string]any{
				"iss": c.Issuer, "sub": c.Subject, "aud": "api", "iat": c.IssuedAt, "exp": c.Expiry,
				"tenant": "acme", "level": 3,
			})
			res := analyze(t, e.a, tok, "client")
			if len(res.Findings) != 0 || res.Verify != VerifyOK || res.Verified == nil {
				t.Fatalf("findings %v, verify %s", rulesOf(res.Findings), res.Verify)
			}
			v := res.Verified
			if v.Subject != "user-42" || v.Issuer != tc.iss || v.KeyID != tc.kid || v.Alg != string(tc.alg) {
				t.Errorf("verified %+v", v)
			}
			if s, ok := v.Claim("tenant"); !ok || s != "acme" {
				t.Errorf("tenant %q %v", s, ok)
			}
			if s, ok := v.Claim("level"); !ok || s != "3" {
				t.Errorf("level %q %v", s, ok)
			}
		})
	}
}

func TestVerifyFailures(t *testing.T) {
	t.Parallel()
	e := newVerifyEnv(t, nil)
	k := keys(t)
	good := claimsJSON(rsIssuer)
	pubSecret := string(k.rsa.PublicKey.N.Bytes())
	now := testNow.Unix()
	for _, tc := range []struct {
		name  string
		token string
		want  []string
		verif VerifyStatus
	}{
		{"wrong key", mint(`{"alg":"RS256","kid":"rsa1"}`, good, rs256(k.rsa2)),
			[]string{"jwt_invalid_signature/bad_signature"}, VerifyFailed},
		{"tampered claims", tamper(mint(`{"alg":"RS256","kid":"rsa1"}`, good, rs256(k.rsa)), claimsJSON(rsIssuer, `"role":"admin"`)),
			[]string{"jwt_invalid_signature/bad_signature"}, VerifyFailed},
		{"key pinned to RS256, token PS256", mint(`{"alg":"PS256","kid":"rsa1"}`, good, fixed(make([]byte, 256))),
			[]string{"jwt_invalid_signature/alg_not_allowed"}, VerifyFailed},
		{"EC key, RS256 token", mint(`{"alg":"RS256","kid":"ec1"}`, good, rs256(k.rsa)),
			[]string{"jwt_invalid_signature/alg_not_allowed"}, VerifyFailed},
		// jwt_tool -X k: HS256 with the public key as secret.
		{"key confusion", mint(`{"alg":"HS256","kid":"rsa1"}`, good, hs(pubSecret, crypto.SHA256)),
			[]string{"jwt_alg_confusion/no_hmac_key", "jwt_invalid_signature/alg_not_allowed"}, VerifyFailed},
		{"unknown kid", mint(`{"alg":"RS256","kid":"nope"}`, good, rs256(k.rsa)),
			[]string{"jwt_invalid_signature/unknown_kid"}, VerifyFailed},
		{"audience", mint(`{"alg":"RS256","kid":"rsa1"}`, strings.Replace(good, `"aud":"api"`, `"aud":["web","admin"]`, 1), rs256(k.rsa)),
			[]string{"jwt_audience_mismatch"}, VerifyFailed},
		{"no audience", mint(`{"alg":"RS256","kid":"rsa1"}`, strings.Replace(good, `"aud":"api",`, ``, 1), rs256(k.rsa)),
			[]string{"jwt_audience_mismatch"}, VerifyFailed},
		{"expired but genuine", mint(`{"alg":"RS256","kid":"rsa1"}`,
			fmt.Sprintf(`{"iss":%q,"aud":"api","iat":%d,"exp":%d}`, rsIssuer, now-7200, now-3600), rs256(k.rsa)),
			[]string{"jwt_expired"}, VerifyFailed},
		{"alg none", mint(`{"alg":"none","kid":"rsa1"}`, good, nil), []string{"jwt_alg_none"}, VerifyFailed},
		{"unknown issuer", mint(`{"alg":"RS256","kid":"rsa1"}`, claimsJSON("https://evil.example"), rs256(k.rsa)),
			[]string{"jwt_unknown_issuer"}, VerifyFailed},
		{"HMAC wrong secret", mint(`{"alg":"HS256","kid":"h1"}`, claimsJSON(hsIssuer), hs("another-secret-that-is-32-bytes-long!", crypto.SHA256)),
			[]string{"jwt_invalid_signature/bad_signature"}, VerifyFailed},
		{"HMAC pinned to HS256, token HS512", mint(`{"alg":"HS512","kid":"h1"}`, claimsJSON(hsIssuer), hs(string(k.hmac), crypto.SHA512)),
			[]string{"jwt_invalid_signature/alg_not_allowed"}, VerifyFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := analyze(t, e.a, tc.token, "client")
			if got := rulesOf(res.Findings); !reflect.DeepEqual(got, tc.want) || res.Verify != tc.verif || res.Verified != nil {
				t.Errorf("findings %v verify %s; want %v %s", got, res.Verify, tc.want, tc.verif)
			}
		})
	}
}

// tamper swaps the claims of tok, keeping its header and signature.
func tamper(tok, claims string) string {
	parts := strings.Split(tok, ".")
	return parts[0] + "." + seg(claims) + "." + parts[2]
}

func TestJWKSRotationAndLastGood(t *testing.T) {
	t.Parallel()
	e := newVerifyEnv(t, nil)
	k := keys(t)
	rotated, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Cached: tokens do not cause fetches.
	hits := e.srv.hits.Load()
	tok1 := mint(`{"alg":"RS256","kid":"rsa1"}`, claimsJSON(rsIssuer), rs256(k.rsa))
	for range 50 {
		if res := analyze(t, e.a, tok1, "c"); res.Verify != VerifyOK {
			t.Fatalf("verify %s %v", res.Verify, rulesOf(res.Findings))
		}
	}
	if got := e.srv.hits.Load(); got != hits {
		t.Errorf("%d fetches for cached keys", got-hits)
	}
	// Rotation: the issuer publishes a new key; an unknown kid triggers an
	// early refresh and the new key verifies.
	e.srv.set(jwksOf(t, pubJWK(&k.rsa.PublicKey, "rsa1", "RS256"), pubJWK(&rotated.PublicKey, "rsa2", "RS256")))
	tok2 := mint(`{"alg":"RS256","kid":"rsa2"}`, claimsJSON(rsIssuer), rs256(rotated))
	e.clk.Advance(time.Second) // past min_refresh
	if res := analyze(t, e.a, tok2, "c"); res.Verify == VerifyOK {
		t.Fatal("verified before the refresh")
	}
	e.waitFor(t, "refresh on unknown kid", func() bool { return analyze(t, e.a, tok2, "c").Verify == VerifyOK })
	// Failure: the server errors, the last good set stays in use.
	e.srv.mode.Store("fail")
	fails := e.a.Stats().JWKSFailures
	if err := e.a.RefreshKeys(t.Context()); err == nil {
		t.Fatal("refresh against a failing server succeeded")
	}
	if e.a.Stats().JWKSFailures <= fails {
		t.Errorf("failures %+v", e.a.Stats())
	}
	for _, tok := range []string{tok1, tok2} {
		if res := analyze(t, e.a, tok, "c"); res.Verify != VerifyOK {
			t.Errorf("last good set lost: %s %v", res.Verify, rulesOf(res.Findings))
		}
	}
	// Timeout: a stalled server is given up after fetch_timeout.
	e.srv.mode.Store("slow")
	start := time.Now()
	if err := e.a.RefreshKeys(t.Context()); err == nil {
		t.Fatal("refresh against a stalled server succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// Size bound.
	e.srv.mode.Store("huge")
	if err := e.a.RefreshKeys(t.Context()); err == nil || !strings.Contains(err.Error(), "max_jwks_bytes") {
		t.Errorf("oversized JWKS: %v", err)
	}
	if res := analyze(t, e.a, tok2, "c"); res.Verify != VerifyOK {
		t.Errorf("last good set lost after failures: %s", res.Verify)
	}
	// Recovery.
	e.srv.mode.Store("")
	if err := e.a.RefreshKeys(t.Context()); err != nil {
		t.Errorf("recovery: %v", err)
	}
}

func TestJWKSRefreshInterval(t *testing.T) {
	t.Parallel()
	e := newVerifyEnv(t, func(c *Config) { c.Providers[0].Refresh = 50 * time.Millisecond })
	before := e.srv.hits.Load()
	e.waitFor(t, "interval refreshes", func() bool { return e.srv.hits.Load() >= before+2 })
}

func TestVerifyUnavailable(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksOf(t, pubJWK(&keys(t).rsa.PublicKey, "rsa1", "RS256")))
	cfg := testConfig()
	cfg.Providers = []ProviderConfig{{Name: "login", Issuer: issuer, JWKSURL: srv.srv.URL}}
	a := newTestAnalyzer(t, cfg, Options{HTTPClient: srv.srv.Client()})
	// Run was not called: New did no network I/O.
	if srv.hits.Load() != 0 {
		t.Fatal("New fetched the JWKS")
	}
	res := analyze(t, a, rsToken(t, "rsa1"), "c")
	if res.Verify != VerifyUnavailable || len(res.Findings) != 0 {
		t.Errorf("verify %s, findings %v", res.Verify, rulesOf(res.Findings))
	}
}

func TestJWKSFile(t *testing.T) {
	t.Parallel()
	k := keys(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, jwksOf(t, pubJWK(&k.rsa.PublicKey, "rsa1", "RS256")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Providers = []ProviderConfig{{Name: "file", JWKSFile: file}} // catch-all issuer
	a := newTestAnalyzer(t, cfg, Options{})
	if res := analyze(t, a, rsToken(t, "rsa1"), "c"); res.Verify != VerifyOK {
		t.Errorf("verify %s %v", res.Verify, rulesOf(res.Findings))
	}
	// Verified tokens teach at once; unverified ones never do.
	if l, _ := a.algStore.Learned(t.Context(), stateKey(kindAlg, issuer).key(kindAlg)); !l.Has(FamilyRSA) {
		t.Errorf("verified token did not teach: %b", l)
	}
	forged := mint(`{"alg":"ES256","kid":"rsa1"}`, claimsJSON("https://other.example"), fixed(append(make([]byte, 32), make([]byte, 32)...)))
	for i := range 5 {
		analyze(t, a, forged, fmt.Sprint(i))
	}
	if l, _ := a.algStore.Learned(t.Context(), stateKey(kindAlg, "https://other.example").key(kindAlg)); l != 0 {
		t.Errorf("unverified tokens taught %b", l)
	}
	cfg.Providers[0].JWKSFile = filepath.Join(dir, "missing.json")
	if _, err := New(cfg, Options{}); err == nil {
		t.Error("missing JWKS file accepted")
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	k := keys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privJSON, _ := json.Marshal(jose.JSONWebKey{Key: k.rsa, KeyID: "priv", Algorithm: "RS256"})
	octJSON, _ := json.Marshal(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct", Algorithm: "HS256"})
	encJSON, _ := json.Marshal(jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "enc", Use: "enc"})
	mismatch, _ := json.Marshal(jose.JSONWebKey{Key: &k.ec256.PublicKey, KeyID: "mm", Algorithm: "RS256"})
	smallJSON, _ := json.Marshal(jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small"})
	good, _ := json.Marshal(pubJWK(&k.rsa.PublicKey, "ok", ""))
	doc := fmt.Sprintf(`{"keys":[%s,%s,%s,%s,%s,%s,{"kty":"XYZ"}]}`, privJSON, octJSON, encJSON, mismatch, smallJSON, good)
	set, skipped, err := parseJWKS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 6 || len(set.all) != 1 || set.all[0].kid != "ok" {
		t.Errorf("skipped %d, kept %d", skipped, len(set.all))
	}
	if !set.all[0].algs.has(algPS512) || set.all[0].algs.has(algHS256) {
		t.Errorf("RSA key without alg allows %b", set.all[0].algs)
	}
	for _, bad := range []string{`{"keys":[]}`, `not json`, `{"keys":[` + string(privJSON) + `]}`} {
		if _, _, err := parseJWKS([]byte(bad)); err == nil {
			t.Errorf("accepted %.40s", bad)
		}
	}
}

func TestHMACKeyConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	list := filepath.Join(dir, "words.txt")
	long := "this-is-a-published-default-secret-of-40b"
	if err := os.WriteFile(list, []byte(long+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, secret string
		set          bool
		wantErr      string
	}{
		{"unset", "", false, "not set"},
		{"short", "short", true, "shorter than 32 bytes"},
		{"listed", long, true, "weak-secret list"},
		{"good", "0123456789abcdef0123456789abcdef", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.WeakSecret.WordlistFile = list
			cfg.Providers = []ProviderConfig{{Name: "p", HMACKeys: []HMACKeyConfig{{Alg: "HS256", SecretEnv: "S"}}}}
			_, err := New(cfg, Options{Getenv: func(string) (string, bool) { return tc.secret, tc.set }})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestJWKSRedirectsStayOnHost: the default client follows a redirect on
// the JWKS URL's host and refuses one to another host, whose keys would
// then be trusted for the issuer.
func TestJWKSRedirectsStayOnHost(t *testing.T) {
	t.Parallel()
	k := keys(t)
	evil := newJWKSServer(t, jwksOf(t, pubJWK(&k.rsa2.PublicKey, "rsa1", "RS256")))
	var good *httptest.Server
	good = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks":
			w.Write(jwksOf(t, pubJWK(&k.rsa.PublicKey, "rsa1", "RS256")))
		case "/moved":
			http.Redirect(w, r, good.URL+"/jwks", http.StatusFound)
		case "/elsewhere":
			http.Redirect(w, r, evil.srv.URL+"/jwks", http.StatusFound)
		case "/hop":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(good.Close)
	for _, tc := range []struct {
		path string
		ok   bool
	}{{"/moved", true}, {"/elsewhere", false}, {"/hop", false}} {
		cfg := testConfig()
		cfg.Providers = []ProviderConfig{{Name: "login", Issuer: issuer, JWKSURL: good.URL + tc.path}}
		a := newTestAnalyzer(t, cfg, Options{})
		// The client New built, with its redirect policy; only the
		// transport changes, to trust the test certificate (both servers
		// share it).
		a.providers[0].client.Transport = good.Client().Transport
		before := evil.hits.Load()
		err := a.RefreshKeys(t.Context())
		if tc.ok != (err == nil) {
			t.Errorf("%s: refresh error %v", tc.path, err)
		}
		if !tc.ok && (evil.hits.Load() != before || !strings.Contains(fmt.Sprint(err), "another host")) {
			t.Errorf("%s: followed to the other host (%d hits): %v", tc.path, evil.hits.Load()-before, err)
		}
		// Refused: no keys were ever loaded.
		want := VerifyUnavailable
		if tc.ok {
			want = VerifyOK
		}
		if res := analyze(t, a, rsToken(t, "rsa1"), "c"); res.Verify != want {
			t.Errorf("%s: verify %s, want %s", tc.path, res.Verify, want)
		}
	}
}
