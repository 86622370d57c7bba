package jwt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzBudget bounds the time of one analysis in the fuzzers: hostile input
// must not buy superlinear work.
const fuzzBudget = time.Second

func fuzzSeeds(tb testing.TB) []string {
	var seeds []string
	for _, c := range loadParseCases(tb) {
		seeds = append(seeds, c.token)
	}
	seeds = append(seeds,
		mint(`{"alg":"ES256","kid":"../../dev/null","jku":"https://x","jwk":{"kty":"EC"},"crit":["b64"],"b64":false}`,
			`{"iss":"i","aud":["a","b"],"exp":1e400,"nbf":-1,"iat":1.5}`, fixed(make([]byte, 64))),
		seg(`{"alg":"PBES2-HS256+A128KW","enc":"A128GCM","p2c":9e99,"zip":"DEF"}`)+".AAAA.AAAA.AAAA.AAAA",
		mint(`{"alg":"HS256"}`, `{"a":`+strings.Repeat(`[`, 40)+strings.Repeat(`]`, 40)+`}`, nil),
		mint(`{"alg":"HS256"}`, `{"\ud83d\ude00":"\u0000","k":"`+strings.Repeat(`\u00e9`, 200)+`"}`, nil),
	)
	return seeds
}

// FuzzParse parses and analyses fuzzed tokens (keyless, no workers): no
// panic, consistent results, bounded time.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	a, err := New(testConfig(), Options{Now: func() time.Time { return testNow }})
	if err != nil {
		f.Fatal(err)
	}
	lim := DefaultLimits()
	f.Fuzz(func(t *testing.T, s string) {
		start := time.Now()
		tok, err := Parse(s, lim)
		var me *MalformedError
		switch {
		case err == nil:
			if tok.Raw != s || len(s) > lim.MaxTokenBytes {
				t.Fatalf("accepted %d bytes", len(s))
			}
			if tok.Kind == KindJWS && tok.SigningInput()+"."+tok.SignatureSegment() != s {
				t.Fatal("segments do not rebuild the token")
			}
			if tok.Kind == KindJWS && !json.Valid(tok.Claims.raw) {
				t.Fatal("claims accepted that encoding/json rejects")
			}
			_, _ = tok.Claims.Claim("sub")
		case errors.Is(err, ErrNotJWT):
			if LooksLikeJWT(s) {
				t.Fatal("ErrNotJWT for a JWT-looking value")
			}
		case errors.As(err, &me):
			if me.Reason == "" {
				t.Fatal("empty reason")
			}
		default:
			t.Fatalf("error type %T", err)
		}
		if _, err := a.Analyze(t.Context(), s, "fuzz"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > fuzzBudget {
			t.Fatalf("%d bytes took %v", len(s), d)
		}
	})
}

// FuzzJSON checks the strict scanner against encoding/json: what it
// accepts must be valid JSON, and it must reject duplicates that
// encoding/json would silently merge.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":{"b":[1,2,{"c":null}]},"d":"\u00e9\ud83d\ude00"}`, `{"a":1,"a":2}`,
		`{"a":1,"\u0061":2}`, `{"a":-0.5e+10,"b":true,"c":false}`, `{"a":"\ud800"}`, `[1]`, `{"a":01}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys := map[string]bool{}
		dup := false
		err := walkObject(b, 16, func(key, val []byte) error {
			if keys[string(key)] {
				dup = true
			}
			keys[string(key)] = true
			if jsonKind(val) == '"' {
				_ = stringBytes(val)
			}
			return nil
		})
		if err != nil {
			if _, ok := err.(jsonError); !ok {
				t.Fatalf("error type %T", err)
			}
			return
		}
		if dup {
			t.Fatal("duplicate top-level key accepted")
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("accepted %q that encoding/json cannot decode: %v", b, err)
		}
		if len(m) != len(keys) {
			t.Fatalf("%d keys, encoding/json sees %d", len(keys), len(m))
		}
	})
}
