package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// testNow is the fixed clock of the tests.
var testNow = time.Unix(1_750_000_000, 0)

// clock is an adjustable test clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(testNow.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec256     *ecdsa.PrivateKey
	ec384     *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
	hmac      []byte
}

var keysOnce = sync.OnceValue(func() *testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeys{hmac: []byte("0123456789abcdef0123456789abcdef-long-enough")}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

func keys(tb testing.TB) *testKeys {
	tb.Helper()
	return keysOnce()
}

// goodClaims are valid at testNow.
func goodClaims(iss string) josejwt.Claims {
	return josejwt.Claims{
		Issuer:   iss,
		Subject:  "user-42",
		Audience: josejwt.Audience{"api"},
		IssuedAt: josejwt.NewNumericDate(testNow.Add(-time.Minute)),
		Expiry:   josejwt.NewNumericDate(testNow.Add(10 * time.Minute)),
	}
}

// signJose signs claims with go-jose, an implementation independent of
// the parser under test.
func signJose(tb testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// mint builds a token from raw header and claims JSON and a signer of the
// signing input.
func mint(header, claims string, sign func(input string) []byte) string {
	input := seg(header) + "." + seg(claims)
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func hs(secret string, h crypto.Hash) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(h.New, []byte(secret))
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

func rs256(k *rsa.PrivateKey) func(string) []byte {
	return func(input string) []byte {
		d := crypto.SHA256.New()
		d.Write([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d.Sum(nil))
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func fixed(b []byte) func(string) []byte { return func(string) []byte { return b } }

// claimsJSON renders valid claims for iss at testNow.
func claimsJSON(iss string, extra ...string) string {
	parts := []string{
		fmt.Sprintf(`"iss":%q`, iss), `"sub":"user-42"`, `"aud":"api"`,
		fmt.Sprintf(`"iat":%d`, testNow.Add(-time.Minute).Unix()),
		fmt.Sprintf(`"exp":%d`, testNow.Add(10*time.Minute).Unix()),
	}
	return "{" + strings.Join(append(parts, extra...), ",") + "}"
}

// testConfig is DefaultConfig with a quick sighting threshold.
func testConfig() Config {
	c := DefaultConfig()
	c.AlgConfusion.MinSightings = 2
	return c
}

func newTestAnalyzer(tb testing.TB, cfg Config, opt Options) *Analyzer {
	tb.Helper()
	if opt.Now == nil {
		opt.Now = func() time.Time { return testNow }
	}
	a, err := New(cfg, opt)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func analyze(tb testing.TB, a *Analyzer, tok, witness string) Result {
	tb.Helper()
	res, err := a.Analyze(tb.Context(), tok, witness)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// rulesOf lists "rule" or "rule/detail" for each finding, sorted.
func rulesOf(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		s := f.Rule
		if f.Detail != "" {
			s += "/" + f.Detail
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// jwksOf renders public keys as a JWKS document.
func jwksOf(tb testing.TB, ks ...jose.JSONWebKey) []byte {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: ks})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
