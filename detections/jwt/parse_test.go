package jwt

import (
	"errors"
	"os"
	"strings"
	"testing"
)

type parseCase struct {
	name, expect, token string
}

// loadParseCases reads testdata/parse_cases.txt (format in its header).
func loadParseCases(tb testing.TB) []parseCase {
	tb.Helper()
	b, err := os.ReadFile("testdata/parse_cases.txt")
	if err != nil {
		tb.Fatal(err)
	}
	var out []parseCase
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			tb.Fatalf("parse_cases.txt:%d: %d fields", i+1, len(f))
		}
		out = append(out, parseCase{name: f[0], expect: f[1], token: caseToken(f[2], f[3], f[4])})
	}
	return out
}

func caseToken(header, claims, sig string) string {
	if t, ok := strings.CutPrefix(header, "token:"); ok {
		return t
	}
	enc := func(s string) string {
		if raw, ok := strings.CutPrefix(s, "raw:"); ok {
			return raw
		}
		s = strings.NewReplacer("<LF>", "\n", "<FF>", "\xff").Replace(s)
		return seg(s)
	}
	return enc(header) + "." + enc(claims) + "." + sig
}

func TestParseCases(t *testing.T) {
	t.Parallel()
	for _, tc := range loadParseCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.token, DefaultLimits())
			got := "ok"
			var me *MalformedError
			switch {
			case errors.Is(err, ErrNotJWT):
				got = "not_jwt"
			case errors.As(err, &me):
				got = me.Reason
			case err != nil:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			if got != tc.expect {
				t.Errorf("got %s, want %s", got, tc.expect)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	t.Parallel()
	header := `{"alg":"RS256","typ":"at+jwt","kid":"k1","jku":"https://x/j","x5u":"https://x/c","jwk":{"kty":"oct"},"x5c":["AA"],"crit":["exp"],"b64":false}`
	claims := `{"iss":"https://issuer","sub":"u\u0031","aud":["a","b"],"exp":1750000600.9,"nbf":-5,"iat":1e3,"extra":{"n":[1,2]},"num":42,"flag":true,"s":"t\"x"}`
	tok := mint(header, claims, fixed(make([]byte, 256)))
	tk, err := Parse(tok, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	h, c := tk.Header, tk.Claims
	if h.Alg != "RS256" || h.alg != algRS256 || h.Typ != "at+jwt" || h.Kid != "k1" || h.Jku != "https://x/j" || h.X5u != "https://x/c" ||
		!h.JWK || !h.X5C || !h.HasCrit || len(h.Crit) != 1 || h.Crit[0] != "exp" || !h.B64Set || h.B64 {
		t.Errorf("header = %+v", h)
	}
	if c.Iss != "https://issuer" || c.Sub != "u1" || len(c.Aud) != 2 || c.Aud[1] != "b" {
		t.Errorf("claims = %+v", c)
	}
	if c.Exp != (NumericDate{true, 1750000600}) || c.Nbf != (NumericDate{true, -5}) || c.Iat != (NumericDate{true, 1000}) {
		t.Errorf("times = %+v %+v %+v", c.Exp, c.Nbf, c.Iat)
	}
	if len(tk.Signature) != 256 || tk.SigningInput() != tok[:strings.LastIndexByte(tok, '.')] {
		t.Errorf("signature %d bytes, signing input %q", len(tk.Signature), tk.SigningInput())
	}
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"sub", "u1", true}, {"num", "42", true}, {"flag", "true", true}, {"s", `t"x`, true},
		{"extra", "", false}, {"missing", "", false}, {"n", "", false},
	} {
		got, ok := c.Claim(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Claim(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	big := mint(`{"alg":"HS256"}`, `{"pad":"`+strings.Repeat("x", 9000)+`"}`, fixed(make([]byte, 32)))
	_, err := Parse(big, DefaultLimits())
	var me *MalformedError
	if !errors.As(err, &me) || me.Reason != reasonTooLarge {
		t.Errorf("oversized token: %v", err)
	}
	lim := DefaultLimits()
	lim.MaxJSONDepth = 3
	deep := mint(`{"alg":"HS256"}`, `{"a":{"b":{"c":{"d":1}}}}`, nil)
	if _, err := Parse(deep, lim); err == nil || !strings.Contains(err.Error(), "json_depth") {
		t.Errorf("depth 4 with limit 3: %v", err)
	}
	ok := mint(`{"alg":"HS256"}`, `{"a":{"b":[1]}}`, nil)
	if _, err := Parse(ok, lim); err != nil {
		t.Errorf("depth 3 with limit 3: %v", err)
	}
	var keys strings.Builder
	keys.WriteString(`{"x":0`)
	for i := range maxObjectKeys + 1 {
		keys.WriteString(`,"`)
		keys.WriteString(strings.Repeat("k", 1+i/26))
		keys.WriteByte(byte('a' + i%26))
		keys.WriteString(`":0`)
	}
	keys.WriteString("}")
	lim = DefaultLimits()
	lim.MaxTokenBytes = 1 << 20
	if _, err := Parse(mint(`{"alg":"HS256"}`, keys.String(), nil), lim); err == nil || !strings.Contains(err.Error(), "json_too_many_keys") {
		t.Errorf("too many keys: %v", err)
	}
}

func TestParseJWE(t *testing.T) {
	t.Parallel()
	tok := seg(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"e1","zip":"DEF"}`) + ".AAAA.AAAA.AAAA.AAAA"
	tk, err := Parse(tok, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if tk.Kind != KindJWE || tk.Header.Enc != "A256GCM" || tk.Header.Zip != "DEF" || tk.SignatureSegment() != "" {
		t.Errorf("JWE = %+v", tk)
	}
	if _, err := Parse(seg(`{"alg":"dir","enc":"A256GCM"}`)+"..AAAA.AA=A.AAAA", DefaultLimits()); err == nil {
		t.Error("padding in a JWE segment accepted")
	}
}

func TestLooksLikeJWT(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"eyJhbGciOiJIUzI1NiJ9.e30.", true},
		{seg(" {\"alg\":1}") + ".e30.", true},
		{"eyJ.x.y", false}, // first segment shorter than 4
		{"eyJhbGci", false},
		{"dGVzdA.e30.x", false},
		{"", false},
		{"Basic dXNlcjpwYXNz", false},
	} {
		if got := LooksLikeJWT(tc.in); got != tc.want {
			t.Errorf("LooksLikeJWT(%q) = %v", tc.in, got)
		}
	}
}

func TestNumericDate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1750000000", 1750000000}, {"-1", -1}, {"12.99", 12}, {"1e3", 1000}, {"1.5E2", 150},
		{"99999999999999999999999", maxNumericDate}, {"1e300", maxNumericDate}, {"-1e300", -maxNumericDate},
	} {
		if got := numericDate([]byte(tc.in)); got != tc.want {
			t.Errorf("numericDate(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
