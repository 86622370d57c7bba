package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestLegitimateTokensHaveNoFinding(t *testing.T) {
	t.Parallel()
	k := keys(t)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		alg  jose.SignatureAlgorithm
		key  any
	}{
		{"HS256", jose.HS256, k.hmac},
		{"HS512", jose.HS512, append(k.hmac, k.hmac...)},
		{"RS256", jose.RS256, k.rsa},
		{"RS512", jose.RS512, k.rsa},
		{"PS256", jose.PS256, k.rsa},
		{"ES256", jose.ES256, k.ec256},
		{"ES384", jose.ES384, k.ec384},
		{"ES512", jose.ES512, p521},
		{"EdDSA", jose.EdDSA, k.ed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAnalyzer(t, testConfig(), Options{})
			// Several tokens, so that ECDSA r and s take many values.
			for i := range 20 {
				c := goodClaims("https://issuer.example")
				c.ID = strconv.Itoa(i)
				tok := signJose(t, tc.alg, tc.key, "kid-1", c)
				if res := analyze(t, a, tok, "client-1"); len(res.Findings) != 0 || res.Token == nil {
					t.Fatalf("token %d: findings %v", i, rulesOf(res.Findings))
				}
			}
		})
	}
}

// attackCase is one crafted token and the findings it must produce,
// "rule" or "rule/detail", sorted.
type attackCase struct {
	name  string
	token string
	want  []string
	cfg   func(*Config)
}

func attackCases(t *testing.T) []attackCase {
	k := keys(t)
	now := testNow.Unix()
	good := claimsJSON("https://issuer.example")
	rs := rs256(k.rsa)
	sig := func(n int, b byte) []byte { return []byte(strings.Repeat(string([]byte{b}), n)) }
	order256 := algs[algES256].order
	der := append([]byte{0x30, 0x44, 0x02, 0x20}, sig(66, 7)...)
	claims := func(extra string) string {
		return fmt.Sprintf(`{"iss":"https://issuer.example","sub":"u"%s}`, extra)
	}
	return []attackCase{
		// jwt_tool -X a: alg none in every case.
		{name: "alg none", token: mint(`{"alg":"none","typ":"JWT"}`, good, nil), want: []string{"jwt_alg_none"}},
		{name: "alg None", token: mint(`{"alg":"None"}`, good, nil), want: []string{"jwt_alg_none"}},
		{name: "alg NONE", token: mint(`{"alg":"NONE"}`, good, nil), want: []string{"jwt_alg_none"}},
		{name: "alg nOnE", token: mint(`{"alg":"nOnE"}`, good, nil), want: []string{"jwt_alg_none"}},
		{name: "alg none with blank", token: mint(`{"alg":"none "}`, good, nil), want: []string{"jwt_alg_none"}},
		{name: "alg none escaped", token: mint(`{"alg":"\u006eone"}`, good, nil), want: []string{"jwt_alg_none"}},
		{name: "alg none with signature kept", token: mint(`{"alg":"none"}`, good, rs), want: []string{"jwt_alg_none"}},
		{name: "alg missing", token: mint(`{"typ":"JWT"}`, good, hs("x", crypto.SHA256)), want: []string{"jwt_alg_unknown/missing"}},
		{name: "alg lower case", token: mint(`{"alg":"hs256"}`, good, hs("x", crypto.SHA256)), want: []string{"jwt_alg_unknown/case_variant"}},
		{name: "alg from JWE", token: mint(`{"alg":"RSA-OAEP"}`, good, rs), want: []string{"jwt_alg_unknown/unregistered"}},
		{name: "alg not allowed", token: mint(`{"alg":"HS256"}`, good, hs("a-strong-secret-of-32-bytes-at-least", crypto.SHA256)),
			want: []string{"jwt_alg_not_allowed"}, cfg: func(c *Config) { c.AllowedAlgs = []string{"RS256", "ES256"} }},
		// jwt_tool -X n (CVE-2020-28042).
		{name: "null signature HS256", token: mint(`{"alg":"HS256"}`, good, nil), want: []string{"jwt_null_signature"}},
		{name: "null signature RS256", token: mint(`{"alg":"RS256"}`, good, nil), want: []string{"jwt_null_signature"}},
		{name: "HS256 short signature", token: mint(`{"alg":"HS256"}`, good, fixed(sig(31, 1))), want: []string{"jwt_signature_length/length"}},
		{name: "HS512 with HS256 length", token: mint(`{"alg":"HS512"}`, good, hs("x", crypto.SHA256)), want: []string{"jwt_signature_length/length"}},
		{name: "RS256 1024-bit", token: mint(`{"alg":"RS256"}`, good, fixed(sig(128, 1))), want: []string{"jwt_signature_length/rsa_1024"}},
		{name: "RS256 tiny", token: mint(`{"alg":"RS256"}`, good, fixed(sig(32, 1))), want: []string{"jwt_signature_length/length"}},
		{name: "ES256 DER", token: mint(`{"alg":"ES256"}`, good, fixed(der)), want: []string{"jwt_signature_length/der_encoded"}},
		{name: "ES384 wrong length", token: mint(`{"alg":"ES384"}`, good, fixed(sig(64, 1))), want: []string{"jwt_signature_length/length"}},
		{name: "EdDSA wrong length", token: mint(`{"alg":"EdDSA"}`, good, fixed(sig(63, 1))), want: []string{"jwt_signature_length/length"}},
		// CVE-2022-21449: r = s = 0 passes a verifier without range checks.
		{name: "ES256 psychic", token: mint(`{"alg":"ES256"}`, good, fixed(make([]byte, 64))), want: []string{"jwt_ecdsa_zero/r_zero"}},
		{name: "ES256 s zero", token: mint(`{"alg":"ES256"}`, good, fixed(append(sig(32, 1), make([]byte, 32)...))), want: []string{"jwt_ecdsa_zero/s_zero"}},
		{name: "ES256 r is the order", token: mint(`{"alg":"ES256"}`, good, fixed(append(append([]byte(nil), order256...), sig(32, 1)...))), want: []string{"jwt_ecdsa_zero/r_out_of_range"}},
		{name: "ES512 psychic", token: mint(`{"alg":"ES512"}`, good, fixed(make([]byte, 132))), want: []string{"jwt_ecdsa_zero/r_zero"}},
		// jwt_tool -X i (CVE-2018-0114) and -X s.
		{name: "embedded jwk", token: mint(`{"alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`, good, rs), want: []string{"jwt_key_injection/jwk"}},
		{name: "jku", token: mint(`{"alg":"RS256","jku":"https://attacker.example/jwks.json"}`, good, rs), want: []string{"jwt_key_injection/jku"}},
		{name: "jku allowlisted", token: mint(`{"alg":"RS256","jku":"https://login.example/jwks.json"}`, good, rs),
			cfg: func(c *Config) { c.KeyURLHosts = []string{"login.example"} }},
		{name: "jku allowlisted host over http", token: mint(`{"alg":"RS256","jku":"http://login.example/jwks.json"}`, good, rs),
			want: []string{"jwt_key_injection/jku"}, cfg: func(c *Config) { c.KeyURLHosts = []string{"login.example"} }},
		{name: "jku userinfo trick", token: mint(`{"alg":"RS256","jku":"https://login.example@attacker.example/"}`, good, rs),
			want: []string{"jwt_key_injection/jku"}, cfg: func(c *Config) { c.KeyURLHosts = []string{"login.example"} }},
		{name: "x5u", token: mint(`{"alg":"RS256","x5u":"https://attacker.example/cert.pem"}`, good, rs), want: []string{"jwt_key_injection/x5u"}},
		{name: "x5c", token: mint(`{"alg":"RS256","x5c":["MIIB"]}`, good, rs), want: []string{"jwt_key_injection/x5c"}},
		{name: "x5c allowed", token: mint(`{"alg":"RS256","x5c":["MIIB"]}`, good, rs), cfg: func(c *Config) { c.AllowX5C = true }},
		{name: "kid traversal", token: mint(`{"alg":"HS256","kid":"../../../../dev/null"}`, good, hs("", crypto.SHA256)), want: []string{"jwt_kid_injection/path_traversal"}},
		{name: "kid too long", token: mint(`{"alg":"RS256","kid":"`+strings.Repeat("k", 300)+`"}`, good, rs), want: []string{"jwt_kid_injection/length"}},
		{name: "crit extension", token: mint(`{"alg":"RS256","crit":["http://example/ext"],"http://example/ext":1}`, good, rs), want: []string{"jwt_crit_unsupported/extension"}},
		{name: "crit registered", token: mint(`{"alg":"RS256","crit":["alg"]}`, good, rs), want: []string{"jwt_crit_unsupported/registered_member"}},
		{name: "crit empty", token: mint(`{"alg":"RS256","crit":[]}`, good, rs), want: []string{"jwt_crit_unsupported/empty"}},
		{name: "unencoded payload", token: mint(`{"alg":"RS256","b64":false,"crit":["b64"]}`, good, rs), want: []string{"jwt_crit_unsupported/b64"}},
		{name: "typ unexpected", token: mint(`{"alg":"RS256","typ":"JWE"}`, good, rs), want: []string{"jwt_typ_unexpected"},
			cfg: func(c *Config) { c.ExpectedTypes = []string{"JWT", "at+jwt"} }},
		{name: "typ expected with prefix", token: mint(`{"alg":"RS256","typ":"application/AT+JWT"}`, good, rs),
			cfg: func(c *Config) { c.ExpectedTypes = []string{"JWT", "at+jwt"} }},
		{name: "expired", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"iat":%d,"exp":%d`, now-3600, now-120)), rs), want: []string{"jwt_expired"}},
		{name: "expired within skew", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"iat":%d,"exp":%d`, now-3600, now-30)), rs)},
		{name: "not yet valid", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"nbf":%d,"exp":%d`, now+300, now+600)), rs), want: []string{"jwt_not_yet_valid/nbf"}},
		{name: "issued in the future", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"iat":%d,"exp":%d`, now+300, now+600)), rs), want: []string{"jwt_not_yet_valid/iat"}},
		{name: "nbf after exp", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"nbf":%d,"exp":%d`, now-60, now-120)), rs), want: []string{"jwt_expired", "jwt_time_inconsistent/nbf_after_exp"}},
		{name: "missing exp", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"iat":%d`, now)), rs), want: []string{"jwt_missing_exp"}},
		{name: "missing exp allowed", token: mint(`{"alg":"RS256"}`, claims(""), rs), cfg: func(c *Config) { c.RequireExp = false }},
		{name: "lifetime exp-iat", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"iat":%d,"exp":%d`, now, now+48*3600)), rs), want: []string{"jwt_lifetime/exp_minus_iat"}},
		{name: "lifetime exp-now", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"exp":%d`, now+48*3600)), rs), want: []string{"jwt_lifetime/exp_minus_now"}},
		{name: "lifetime off", token: mint(`{"alg":"RS256"}`, claims(fmt.Sprintf(`,"exp":%d`, now+48*3600)), rs), cfg: func(c *Config) { c.MaxLifetime = 0 }},
		{name: "malformed", token: mint(`{"alg":"HS256","alg":"none"}`, good, nil), want: []string{"jwt_alg_none/malformed", "jwt_malformed/header.json_duplicate_key"}},
		{name: "padded", token: mint(`{"alg":"HS256"}`, good, hs("x", crypto.SHA256)) + "=", want: []string{"jwt_malformed/base64_padding"}},
		{name: "oversize", token: mint(`{"alg":"RS256"}`, claims(`,"pad":"`+strings.Repeat("x", 9000)+`"`), rs), want: []string{"jwt_oversize"}},
		{name: "not a jwt", token: "sk_live_51H8abcdefghijklmnop"},
		{name: "jwe", token: seg(`{"alg":"RSA-OAEP-256","enc":"A256GCM"}`) + ".AAAA.AAAA.AAAA.AAAA", want: []string{"jwt_jwe"}},
		{name: "jwe zip", token: seg(`{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}`) + ".AAAA.AAAA.AAAA.AAAA", want: []string{"jwt_jwe", "jwt_jwe_dos/zip"}},
		{name: "jwe pbes2 count", token: seg(`{"alg":"PBES2-HS256+A128KW","enc":"A128GCM","p2s":"AAAA","p2c":2147483647}`) + ".AAAA.AAAA.AAAA.AAAA", want: []string{"jwt_jwe", "jwt_jwe_dos/p2c"}},
		{name: "jwe jku", token: seg(`{"alg":"ECDH-ES","enc":"A128GCM","jku":"https://attacker.example/"}`) + "..AAAA.AAAA.AAAA", want: []string{"jwt_jwe", "jwt_key_injection/jku"}},
	}
}

func TestAttacks(t *testing.T) {
	t.Parallel()
	for _, tc := range attackCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			a := newTestAnalyzer(t, cfg, Options{})
			got := rulesOf(analyze(t, a, tc.token, "client-1").Findings)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("findings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKidInjectionCases(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/kid_cases.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		want, quoted, ok := strings.Cut(line, "\t")
		kid, err := strconv.Unquote(quoted)
		if !ok || err != nil {
			t.Fatalf("kid_cases.txt:%d: %q", i+1, line)
		}
		got := kidInjection(kid)
		if got == "" {
			got = "clean"
		}
		if got != want {
			t.Errorf("kid_cases.txt:%d: kidInjection(%q) = %s, want %s", i+1, kid, got, want)
		}
		n++
	}
	if n < 40 {
		t.Errorf("only %d cases", n)
	}
}

func TestRulesTable(t *testing.T) {
	t.Parallel()
	ids := []string{
		RuleMalformed, RuleOversize, RuleAlgNone, RuleAlgUnknown, RuleAlgNotAllowed, RuleNullSignature,
		RuleSignatureLength, RuleECDSAZero, RuleKeyInjection, RuleKidInjection, RuleCritUnsupported,
		RuleTypUnexpected, RuleExpired, RuleNotYetValid, RuleTimeInconsistent, RuleMissingExp, RuleLifetime,
		RuleAlgConfusion, RuleWeakSecret, RuleInvalidSignature, RuleUnknownIssuer, RuleAudienceMismatch,
		RuleJWE, RuleJWEDoS, RuleMultipleTokens,
	}
	if len(ids) != len(Rules()) {
		t.Errorf("%d ids, %d rules", len(ids), len(Rules()))
	}
	blocking := map[string]bool{RuleAlgNone: true, RuleKeyInjection: true, RuleWeakSecret: true}
	for _, id := range ids {
		r, ok := LookupRule(id)
		if !ok {
			t.Errorf("%s not in the table", id)
			continue
		}
		if (r.Default == ActionBlock) != blocking[id] {
			t.Errorf("%s default %s", id, r.Default)
		}
		if f := finding(id, ""); f.Severity != r.Severity || f.Action != r.Default {
			t.Errorf("finding(%s) = %+v", id, f)
		}
	}
}

func TestSignatureChecksAllAlgs(t *testing.T) {
	t.Parallel()
	// Every registered alg accepts its nominal length with non-zero,
	// in-range content, and rejects one byte less.
	for a := algHS256; a < numAlgs; a++ {
		info := algs[a]
		good := make([]byte, info.sigMin)
		for i := range good {
			good[i] = 1
		}
		if got := signatureChecks(a, good, nil); len(got) != 0 {
			t.Errorf("%s: %v", info.name, got)
		}
		if got := signatureChecks(a, good[1:], nil); len(got) != 1 || got[0].Rule != RuleSignatureLength {
			t.Errorf("%s short: %v", info.name, got)
		}
	}
}

func TestKidInjectionNoAllocs(t *testing.T) {
	for _, kid := range []string{"NjVBRjY5MDlCMUIwNzU4RTA2QzZFMDQ4QzQ2MDAyQjVDNjk1RTM2Qg", "2024-01-Key", "x' UNION SELECT 1"} {
		if n := testing.AllocsPerRun(100, func() { _ = kidInjection(kid) }); n != 0 {
			t.Errorf("kidInjection(%q): %v allocs", kid, n)
		}
	}
}

// TestMalformedAlgNone: a malformed token is only jwt_malformed (monitor),
// but a laxer verifier may still accept it and read its header otherwise.
// alg none in any lenient reading of the header is reported (and blocks).
func TestMalformedAlgNone(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, testConfig(), Options{})
	claims := seg(claimsJSON(issuer))
	std := base64.StdEncoding.EncodeToString
	for _, tc := range []struct {
		name, token string
		want        []string
	}{
		{"padded header", seg(`{"alg":"none"}`) + "=." + claims + ".",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/base64_padding"}},
		{"duplicate alg, none last", seg(`{"alg":"HS256","alg":"none"}`) + "." + claims + ".",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/header.json_duplicate_key"}},
		{"duplicate alg, none first", seg(`{"alg":"NONE","alg":"HS256"}`) + "." + claims + "." + seg("sig"),
			[]string{"jwt_alg_none/malformed", "jwt_malformed/header.json_duplicate_key"}},
		{"escaped duplicate", seg(`{"alg":"HS256","\u0061lg":"non\u0065"}`) + "." + claims + ".",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/header.json_duplicate_key"}},
		{"standard alphabet", std([]byte(`{"alg":"none","x":"~~~"}`)) + "." + claims + ".",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/base64_alphabet"}},
		{"data after the padding", seg(`{"alg":"none"}`) + "=QUFB." + claims + ".",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/base64_padding"}},
		{"blank inside the header", seg(`{"alg":"none"}`)[:8] + " " + seg(`{"alg":"none"}`)[8:] + "." + claims + ".",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/base64_char"}},
		{"trailing bits", seg(`{"alg":"none"}`)[:18] + "1." + claims + ".",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/base64_bits"}},
		{"trailing data in the header", seg(`{"alg":"none"}x`) + "." + claims + ".",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/header.json_trailing_data"}},
		{"malformed claims", seg(`{"alg":"none"}`) + "." + claims + "=.",
			[]string{"jwt_alg_none/malformed", "jwt_malformed/base64_padding"}},
		{"four segments", seg(`{"alg":"none"}`) + "." + claims + ".." + claims,
			[]string{"jwt_alg_none/malformed", "jwt_malformed/segments"}},
		// Controls: no reading names none.
		{"padded HS256", seg(`{"alg":"HS256"}`) + "=." + claims + "." + seg("sig"),
			[]string{"jwt_malformed/base64_padding"}},
		{"duplicate alg without none", seg(`{"alg":"HS256","alg":"RS256"}`) + "." + claims + "." + seg("sig"),
			[]string{"jwt_malformed/header.json_duplicate_key"}},
		{"none elsewhere", seg(`{"alg":"HS256","kid":"none","alg":"HS384"}`) + "." + claims + "." + seg("sig"),
			[]string{"jwt_malformed/header.json_duplicate_key"}},
		{"none nested", seg(`{"x":{"alg":"none"},"x":1}`) + "." + claims + ".",
			[]string{"jwt_malformed/header.json_duplicate_key"}},
		{"oversize", seg(`{"alg":"none","alg":"none"}`) + "." + seg(`{"x":"`+strings.Repeat("a", 9000)+`"}`) + ".",
			[]string{"jwt_oversize"}},
	} {
		res := analyze(t, a, tc.token, "c")
		if got := rulesOf(res.Findings); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: findings %v, want %v", tc.name, got, tc.want)
		}
		if slices.ContainsFunc(res.Findings, func(f Finding) bool { return f.Rule == RuleAlgNone && f.Action != ActionBlock }) {
			t.Errorf("%s: alg none does not block", tc.name)
		}
	}
}

// TestLenientHeaderDepth: the lenient reading is bounded like Parse.
func TestLenientHeaderDepth(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, testConfig(), Options{})
	deep := `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,"alg":"none","jku":"https://a.example/"}`
	if none, key := a.lenientHeader(seg(deep) + "=.e30."); none || key {
		t.Error("read past max_json_depth")
	}
	if none, key := a.lenientHeader(seg(`{"x":[[1]],"alg":"none","jku":"https://a.example/"}`) + "=.e30."); !none || !key {
		t.Error("shallow header not read")
	}
}

// TestMalformedKeyInjection: as for alg none, a header member naming a key
// (jwk, jku, x5u, x5c) in any lenient reading of a malformed header is
// jwt_key_injection (it blocks), decided as for a well-formed token.
func TestMalformedKeyInjection(t *testing.T) {
	t.Parallel()
	claims := seg(claimsJSON(issuer))
	std := base64.StdEncoding.EncodeToString
	jwk := `{"kty":"RSA","n":"AQAB","e":"AQAB"}`
	evil, good := `"https://attacker.example/jwks.json"`, `"https://login.example/jwks.json"`
	hosts := func(c *Config) { c.KeyURLHosts = []string{"login.example"} }
	allowX5C := func(c *Config) { c.AllowX5C = true }
	for _, tc := range []struct {
		name, token string
		want        []string
		cfg         func(*Config)
	}{
		{name: "padded jwk", token: seg(`{"alg":"RS256","jwk":`+jwk+`}`) + "=." + claims + "." + seg("sig"),
			want: []string{"jwt_key_injection/malformed", "jwt_malformed/base64_padding"}},
		{name: "duplicate alg with jwk", token: seg(`{"alg":"RS256","jwk":`+jwk+`,"alg":"RS256"}`) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_key_injection/malformed", "jwt_malformed/header.json_duplicate_key"}},
		{name: "duplicate jku, evil last", token: seg(`{"alg":"RS256","jku":`+good+`,"jku":`+evil+`}`) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_key_injection/malformed", "jwt_malformed/header.json_duplicate_key"}, cfg: hosts},
		{name: "duplicate jku, evil first", token: seg(`{"alg":"RS256","\u006aku":`+evil+`,"jku":`+good+`}`) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_key_injection/malformed", "jwt_malformed/header.json_duplicate_key"}, cfg: hosts},
		{name: "x5u, standard alphabet", token: std([]byte(`{"alg":"RS256","x5u":"https://attacker.example/c.pem?~~~"}`)) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_key_injection/malformed", "jwt_malformed/base64_alphabet"}},
		{name: "x5c, trailing data", token: seg(`{"alg":"RS256","x5c":["MIIB"]}x`) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_key_injection/malformed", "jwt_malformed/header.json_trailing_data"}},
		{name: "jku, malformed claims", token: seg(`{"alg":"RS256","jku":`+evil+`}`) + "." + claims + "=." + seg("sig"),
			want: []string{"jwt_key_injection/malformed", "jwt_malformed/base64_padding"}},
		{name: "alg none and jwk", token: seg(`{"alg":"none","jwk":`+jwk+`}`) + "=." + claims + ".",
			want: []string{"jwt_alg_none/malformed", "jwt_key_injection/malformed", "jwt_malformed/base64_padding"}},
		{name: "jwe jku", token: seg(`{"alg":"ECDH-ES","enc":"A128GCM","jku":`+evil+`}`) + "=..AAAA.AAAA.AAAA",
			want: []string{"jwt_key_injection/malformed", "jwt_malformed/base64_padding"}},
		// Controls: no reading carries a key the strict check would flag.
		{name: "padded kid", token: seg(`{"alg":"RS256","kid":"k1"}`) + "=." + claims + "." + seg("sig"),
			want: []string{"jwt_malformed/base64_padding"}},
		{name: "duplicate jku, both allowlisted", token: seg(`{"alg":"RS256","jku":`+good+`,"jku":`+good+`}`) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_malformed/header.json_duplicate_key"}, cfg: hosts},
		{name: "padded x5c allowed", token: seg(`{"alg":"RS256","x5c":["MIIB"]}`) + "=." + claims + "." + seg("sig"),
			want: []string{"jwt_malformed/base64_padding"}, cfg: allowX5C},
		{name: "empty jku", token: seg(`{"alg":"RS256","jku":"","alg":"RS256"}`) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_malformed/header.json_duplicate_key"}},
		{name: "jwk nested", token: seg(`{"x":{"jwk":`+jwk+`,"x5c":[]},"x":1}`) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_malformed/header.json_duplicate_key"}},
		{name: "key names as values", token: seg(`{"alg":"RS256","kid":"jwk","typ":"x5c","alg":"RS256"}`) + "." + claims + "." + seg("sig"),
			want: []string{"jwt_malformed/header.json_duplicate_key"}},
	} {
		cfg := testConfig()
		if tc.cfg != nil {
			tc.cfg(&cfg)
		}
		res := analyze(t, newTestAnalyzer(t, cfg, Options{}), tc.token, "c")
		if got := rulesOf(res.Findings); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: findings %v, want %v", tc.name, got, tc.want)
		}
		if slices.ContainsFunc(res.Findings, func(f Finding) bool { return f.Rule == RuleKeyInjection && f.Action != ActionBlock }) {
			t.Errorf("%s: key injection does not block", tc.name)
		}
	}
}
