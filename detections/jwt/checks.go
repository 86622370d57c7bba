package jwt

import (
	"bytes"
	"net/url"
	"strings"
	"time"
)

// maxPBES2Count is the largest PBES2 iteration count not reported: OWASP's
// 2023 PBKDF2-SHA256 advice is 600,000; attack tokens ask for billions.
const maxPBES2Count = 1_200_000

// maxKidBytes is the longest kid not reported: key ids are thumbprints,
// UUIDs or short names.
const maxKidBytes = 256

// keyless runs every check that needs no key and appends the findings.
func (a *Analyzer) keyless(t *Token, now time.Time, out []Finding) []Finding {
	h := &t.Header
	out = a.keyChecks(h, out)
	if t.Kind == KindJWE {
		out = append(out, finding(RuleJWE, ""))
		if h.Zip != "" {
			out = append(out, finding(RuleJWEDoS, "zip"))
		}
		if h.P2C > maxPBES2Count {
			out = append(out, finding(RuleJWEDoS, "p2c"))
		}
		return out
	}
	out = a.algChecks(t, out)
	if h.HasCrit || (h.B64Set && !h.B64) {
		out = append(out, critFinding(h))
	}
	if len(a.cfg.ExpectedTypes) > 0 && h.Typ != "" {
		ok := false
		for _, want := range a.cfg.ExpectedTypes {
			if typMatches(h.Typ, want) {
				ok = true
				break
			}
		}
		if !ok {
			out = append(out, finding(RuleTypUnexpected, ""))
		}
	}
	return a.timeChecks(&t.Claims, now, out)
}

// keyChecks covers the header members that name a key: jwk, jku, x5u,
// x5c and kid.
func (a *Analyzer) keyChecks(h *Header, out []Finding) []Finding {
	if h.JWK {
		out = append(out, finding(RuleKeyInjection, "jwk"))
	}
	if h.Jku != "" && !a.keyURLAllowed(h.Jku) {
		out = append(out, finding(RuleKeyInjection, "jku"))
	}
	if h.X5u != "" && !a.keyURLAllowed(h.X5u) {
		out = append(out, finding(RuleKeyInjection, "x5u"))
	}
	if h.X5C && !a.cfg.AllowX5C {
		out = append(out, finding(RuleKeyInjection, "x5c"))
	}
	if h.Kid != "" {
		if d := kidInjection(h.Kid); d != "" {
			out = append(out, finding(RuleKidInjection, d))
		}
	}
	return out
}

func (a *Analyzer) keyURLAllowed(raw string) bool {
	if len(a.cfg.KeyURLHosts) == 0 {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, h := range a.cfg.KeyURLHosts {
		if host == strings.ToLower(h) {
			return true
		}
	}
	return false
}

func (a *Analyzer) algChecks(t *Token, out []Finding) []Finding {
	h := &t.Header
	switch {
	case isNoneVariant(h.Alg):
		return append(out, finding(RuleAlgNone, ""))
	case h.Alg == "":
		return append(out, finding(RuleAlgUnknown, "missing"))
	case h.alg == algUnknown:
		if caseVariant(h.Alg) {
			return append(out, finding(RuleAlgUnknown, "case_variant"))
		}
		return append(out, finding(RuleAlgUnknown, "unregistered"))
	}
	if a.allowed != 0 && !a.allowed.has(h.alg) {
		out = append(out, finding(RuleAlgNotAllowed, ""))
	}
	if len(t.Signature) == 0 {
		return append(out, finding(RuleNullSignature, ""))
	}
	return signatureChecks(h.alg, t.Signature, out)
}

// signatureChecks reports signatures whose length or scalars no key could
// produce for the alg.
func signatureChecks(al alg, sig []byte, out []Finding) []Finding {
	info := &algs[al]
	n := len(sig)
	if n < info.sigMin || n > info.sigMax || (al == algEdDSA && n != 64 && n != 114) {
		detail := "length"
		switch {
		case info.fam == FamilyECDSA && n > 6 && sig[0] == 0x30:
			// An ASN.1 DER signature where JWS wants r||s (RFC 7518 §3.4).
			detail = "der_encoded"
		case info.fam == FamilyRSA || info.fam == FamilyRSAPSS:
			if n == 128 {
				detail = "rsa_1024"
			}
		}
		return append(out, finding(RuleSignatureLength, detail))
	}
	if info.fam == FamilyECDSA {
		half := n / 2
		r, s := sig[:half], sig[half:]
		order := info.order
		switch {
		case isZero(r):
			out = append(out, finding(RuleECDSAZero, "r_zero"))
		case isZero(s):
			out = append(out, finding(RuleECDSAZero, "s_zero"))
		case bytes.Compare(r, order) >= 0:
			out = append(out, finding(RuleECDSAZero, "r_out_of_range"))
		case bytes.Compare(s, order) >= 0:
			out = append(out, finding(RuleECDSAZero, "s_out_of_range"))
		}
	}
	return out
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// critFinding reports crit: this gateway implements no JWS extension, so
// per RFC 7515 §4.1.11 any listed one makes the token unacceptable. An
// unencoded payload (RFC 7797 b64=false) also changes what is signed.
func critFinding(h *Header) Finding {
	switch {
	case h.HasCrit && len(h.Crit) == 0:
		return finding(RuleCritUnsupported, "empty")
	case h.B64Set && !h.B64:
		return finding(RuleCritUnsupported, "b64")
	}
	for _, c := range h.Crit {
		switch c {
		case "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc", "zip":
			// RFC 7515 §4.1.11: registered members must not be listed.
			return finding(RuleCritUnsupported, "registered_member")
		}
	}
	return finding(RuleCritUnsupported, "extension")
}

func (a *Analyzer) timeChecks(c *Claims, now time.Time, out []Finding) []Finding {
	skew := int64(a.cfg.ClockSkew / time.Second)
	unix := now.Unix()
	switch {
	case c.Exp.Set && unix > c.Exp.Unix+skew:
		out = append(out, finding(RuleExpired, ""))
	case !c.Exp.Set && a.cfg.RequireExp:
		out = append(out, finding(RuleMissingExp, ""))
	}
	switch {
	case c.Nbf.Set && c.Nbf.Unix > unix+skew:
		out = append(out, finding(RuleNotYetValid, "nbf"))
	case c.Iat.Set && c.Iat.Unix > unix+skew:
		out = append(out, finding(RuleNotYetValid, "iat"))
	}
	if c.Exp.Set {
		switch {
		case c.Nbf.Set && c.Nbf.Unix > c.Exp.Unix:
			out = append(out, finding(RuleTimeInconsistent, "nbf_after_exp"))
		case c.Iat.Set && c.Iat.Unix > c.Exp.Unix:
			out = append(out, finding(RuleTimeInconsistent, "iat_after_exp"))
		}
	}
	if max := int64(a.cfg.MaxLifetime / time.Second); max > 0 && c.Exp.Set {
		switch {
		case c.Iat.Set && c.Exp.Unix-c.Iat.Unix > max:
			out = append(out, finding(RuleLifetime, "exp_minus_iat"))
		case !c.Iat.Set && c.Exp.Unix-unix > max+skew:
			out = append(out, finding(RuleLifetime, "exp_minus_now"))
		}
	}
	return out
}

// kidInjection names the injection syntax in a kid, "" for a plain one.
// A kid is looked up by the issuer's library, sometimes in a file system,
// a database or a shell command: jwt_tool's kid attacks point it at
// /dev/null (an empty HMAC key), inject SQL returning a chosen key, or run
// commands.
func kidInjection(kid string) string {
	if len(kid) > maxKidBytes {
		return "length"
	}
	for i := 0; i < len(kid); i++ {
		if c := kid[i]; c < 0x20 || c == 0x7f {
			return "control_char"
		}
	}
	has := func(sub string) bool { return indexFold(kid, sub) >= 0 }
	switch {
	// A lone leading '/' is not enough: standard-base64 kids start with
	// one now and then.
	case strings.Contains(kid, "../"), strings.Contains(kid, `..\`), kid == "..",
		strings.HasSuffix(kid, "/.."), strings.HasPrefix(kid, "~/"),
		len(kid) > 2 && kid[1] == ':' && (kid[2] == '\\' || kid[2] == '/'),
		has("/dev/"), has("/etc/"), has("/proc/"), has("/tmp/"), has("/var/"), has(`\windows\`):
		return "path_traversal"
	case has("://"), indexFold(kid, "file:") == 0, indexFold(kid, "data:") == 0,
		indexFold(kid, "gopher:") == 0, indexFold(kid, "jar:") == 0:
		return "url"
	case strings.ContainsAny(kid, "'\""), strings.Contains(kid, "--"), strings.Contains(kid, "/*"),
		sqlKeyword(kid):
		return "sql"
	case strings.ContainsAny(kid, ";|&<>$`"):
		return "shell"
	}
	return ""
}

// sqlKeyword finds the SQL words that turn a lookup into an injection.
// They must stand as words so that kids like "unionkey" stay clean.
func sqlKeyword(kid string) bool {
	for _, kw := range [...]string{"union", "select", "sleep(", "benchmark(", "waitfor", " or ", " and ", "pg_sleep", "information_schema"} {
		i := indexFold(kid, kw)
		if i < 0 {
			continue
		}
		if kw[0] == ' ' || kw[len(kw)-1] == '(' {
			return true
		}
		before := i == 0 || !isWordByte(kid[i-1])
		after := i+len(kw) == len(kid) || !isWordByte(kid[i+len(kw)])
		if before && after {
			return true
		}
	}
	return false
}

// indexFold is strings.Index with ASCII case folding, for a lower-case
// sub, without allocating.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return i
		}
	}
	return -1
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
