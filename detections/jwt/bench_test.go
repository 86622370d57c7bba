package jwt

import (
	"crypto"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// typicalClaims is the claims set of an OIDC access token (~600 bytes
// encoded with an RS256 signature: ~900 bytes).
func typicalClaims() string {
	return claimsJSON(issuer,
		`"azp":"web-app"`, `"scope":"openid profile email orders:read"`, `"jti":"b7f3c9e2-4a1d-4f6e-9c2b-1a3d5e7f9b0c"`,
		`"email":"jane.doe@example.com"`, `"realm_access":{"roles":["user","offline_access"]}`, `"tenant":"acme"`,
		fmt.Sprintf(`"auth_time":%d`, testNow.Add(-time.Hour).Unix()))
}

func typicalRS256(b *testing.B) string {
	return mint(`{"alg":"RS256","typ":"JWT","kid":"rsa1"}`, typicalClaims(), rs256(keys(b).rsa))
}

func BenchmarkParseRS256(b *testing.B) {
	tok := typicalRS256(b)
	lim := DefaultLimits()
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	for b.Loop() {
		if _, err := Parse(tok, lim); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnalyzeRS256Keyless is the default config on a typical token:
// strict parse, every keyless check, learnt-algorithm lookup (in memory).
func BenchmarkAnalyzeRS256Keyless(b *testing.B) {
	a := newTestAnalyzer(b, DefaultConfig(), Options{})
	tok := typicalRS256(b)
	ctx := b.Context()
	for i := range 3 {
		if _, err := a.Analyze(ctx, tok, fmt.Sprint(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	for b.Loop() {
		res, err := a.Analyze(ctx, tok, "client")
		if err != nil || len(res.Findings) != 0 {
			b.Fatal(err, res.Findings)
		}
	}
}

// BenchmarkAnalyzeRS256Verified adds RS256 verification against a cached
// JWKS.
func BenchmarkAnalyzeRS256Verified(b *testing.B) {
	file := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwksOf(b, pubJWK(&keys(b).rsa.PublicKey, "rsa1", "RS256")), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Providers = []ProviderConfig{{Name: "login", Issuer: issuer, Audiences: []string{"api"}, JWKSFile: file}}
	a := newTestAnalyzer(b, cfg, Options{})
	tok := typicalRS256(b)
	ctx := b.Context()
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	for b.Loop() {
		res, err := a.Analyze(ctx, tok, "client")
		if err != nil || res.Verify != VerifyOK {
			b.Fatal(err, res.Verify, res.Findings)
		}
	}
}

// BenchmarkAnalyzeHS256Keyless includes the weak-secret verdict read (a
// clean family, cached).
func BenchmarkAnalyzeHS256Keyless(b *testing.B) {
	a := newTestAnalyzer(b, DefaultConfig(), Options{})
	tok := mint(`{"alg":"HS256","typ":"JWT"}`, typicalClaims(), hs("b3f1c0e5a9d24e7f8a6b5c4d3e2f1a0b", crypto.SHA256))
	ctx := b.Context()
	if _, err := a.Analyze(ctx, tok, "client"); err != nil {
		b.Fatal(err)
	}
	a.audit.processQueued(ctx)
	b.ReportAllocs()
	for b.Loop() {
		res, err := a.Analyze(ctx, tok, "client")
		if err != nil || len(res.Findings) != 0 {
			b.Fatal(err, res.Findings)
		}
	}
	if a.Stats().AuditQueued != 0 {
		b.Fatal("queued on a swept family")
	}
}

// BenchmarkAnalyzeRequestNoToken is the common request: no token anywhere.
func BenchmarkAnalyzeRequestNoToken(b *testing.B) {
	a := newTestAnalyzer(b, DefaultConfig(), Options{})
	h := http.Header{
		"Accept":          {"application/json"},
		"Accept-Encoding": {"gzip"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64)"},
		"Cookie":          {"session=3f9a1c; theme=dark; _ga=GA1.2.123.456"},
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if rep, _ := a.AnalyzeRequest(ctx, h, "page=2&sort=name", "client"); len(rep.Results) != 0 {
			b.Fatal("found a token")
		}
	}
}

// BenchmarkAnalyzeRequestRS256 is a request with a bearer token, end to
// end, keyless.
func BenchmarkAnalyzeRequestRS256(b *testing.B) {
	a := newTestAnalyzer(b, DefaultConfig(), Options{})
	h := http.Header{"Authorization": {"Bearer " + typicalRS256(b)}, "Accept": {"*/*"}}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if rep, err := a.AnalyzeRequest(ctx, h, "", "client"); err != nil || len(rep.Results) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnalyzeRS256KeylessParallel(b *testing.B) {
	a := newTestAnalyzer(b, DefaultConfig(), Options{})
	tok := typicalRS256(b)
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Analyze(ctx, tok, "client"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSweep measures one full off-path sweep of a 10,000-entry
// wordlist against a typical HS256 token (reported per trial too).
func BenchmarkSweep(b *testing.B) {
	list := filepath.Join(b.TempDir(), "words.txt")
	var words []byte
	for i := range 10_000 {
		words = fmt.Appendf(words, "candidate-secret-%d\n", i)
	}
	if err := os.WriteFile(list, words, 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.WeakSecret.WordlistFile = list
	cfg.WeakSecret.SweepsPerMinute = 1 << 30
	cfg.AlgConfusion.Enabled = false
	a := newTestAnalyzer(b, cfg, Options{})
	trials := len(a.audit.list.words)
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// A new family each time, so that each iteration is one sweep.
		i++
		tok := mint(`{"alg":"HS256","typ":"JWT"}`, claimsJSON(fmt.Sprintf("https://iss-%d.example", i)),
			hs("b3f1c0e5a9d24e7f8a6b5c4d3e2f1a0b", crypto.SHA256))
		if _, err := a.Analyze(ctx, tok, "c"); err != nil {
			b.Fatal(err)
		}
		a.audit.processQueued(ctx)
	}
	if s := a.Stats(); s.AuditSweeps != uint64(i) {
		b.Fatalf("%+v", s)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i)/float64(trials), "ns/trial")
}
