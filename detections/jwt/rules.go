package jwt

// Rule ids. They are stable snake_case identifiers (log attributes, metric
// labels, config keys): renaming one is a breaking change.
const (
	// RuleMalformed: the value looks like a JWT but breaks the compact
	// serialisation (segments, base64url, JSON, claim types).
	RuleMalformed = "jwt_malformed"
	// RuleOversize: the token is longer than max_token_bytes.
	RuleOversize = "jwt_oversize"
	// RuleAlgNone: alg is "none" in any letter case (CVE-2015-2951).
	RuleAlgNone = "jwt_alg_none"
	// RuleAlgUnknown: alg is missing, not a registered JWS algorithm, or a
	// letter-case variant of one.
	RuleAlgUnknown = "jwt_alg_unknown"
	// RuleAlgNotAllowed: alg is registered but not in allowed_algs.
	RuleAlgNotAllowed = "jwt_alg_not_allowed"
	// RuleNullSignature: the signature segment is empty although alg is
	// not none (CVE-2020-28042).
	RuleNullSignature = "jwt_null_signature"
	// RuleSignatureLength: the signature length is impossible for alg.
	RuleSignatureLength = "jwt_signature_length"
	// RuleECDSAZero: an ECDSA signature with r or s zero or not below the
	// curve order (CVE-2022-21449, "psychic signatures").
	RuleECDSAZero = "jwt_ecdsa_zero"
	// RuleKeyInjection: the header carries its own key or a key URL (jwk,
	// jku, x5u, x5c; CVE-2018-0114).
	RuleKeyInjection = "jwt_key_injection"
	// RuleKidInjection: kid holds path traversal, SQL, shell or URL syntax.
	RuleKidInjection = "jwt_kid_injection"
	// RuleCritUnsupported: crit names extensions this gateway does not
	// implement (RFC 7515 §4.1.11: such a token must be rejected).
	RuleCritUnsupported = "jwt_crit_unsupported"
	// RuleTypUnexpected: typ is not one of expected_types (RFC 8725 §3.11).
	RuleTypUnexpected = "jwt_typ_unexpected"
	// RuleExpired: exp is in the past, beyond the clock skew.
	RuleExpired = "jwt_expired"
	// RuleNotYetValid: nbf or iat is in the future, beyond the clock skew.
	RuleNotYetValid = "jwt_not_yet_valid"
	// RuleTimeInconsistent: nbf or iat is after exp.
	RuleTimeInconsistent = "jwt_time_inconsistent"
	// RuleMissingExp: no exp claim while require_exp is set.
	RuleMissingExp = "jwt_missing_exp"
	// RuleLifetime: exp-iat, or exp-now, is longer than max_lifetime.
	RuleLifetime = "jwt_lifetime"
	// RuleAlgConfusion: an HMAC token for an issuer known to sign with an
	// asymmetric algorithm (CVE-2016-10555).
	RuleAlgConfusion = "jwt_alg_confusion"
	// RuleWeakSecret: the HMAC signature verifies with a well-known or
	// wordlist secret.
	RuleWeakSecret = "jwt_weak_secret"
	// RuleInvalidSignature: verification against the configured keys
	// failed.
	RuleInvalidSignature = "jwt_invalid_signature"
	// RuleUnknownIssuer: providers are configured and none matches iss.
	RuleUnknownIssuer = "jwt_unknown_issuer"
	// RuleAudienceMismatch: the provider lists audiences and aud names
	// none of them.
	RuleAudienceMismatch = "jwt_audience_mismatch"
	// RuleJWE: an encrypted (five-segment) token; it is not decrypted.
	RuleJWE = "jwt_jwe"
	// RuleJWEDoS: a JWE header asking for decompression or a huge PBES2
	// iteration count.
	RuleJWEDoS = "jwt_jwe_dos"
	// RuleMultipleTokens: one request carries different tokens in several
	// places, so the gateway and the upstream may not read the same one.
	RuleMultipleTokens = "jwt_multiple_tokens"
)

// Severity grades a finding.
type Severity uint8

// Severities, weakest first.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// String returns the lower-case name, e.g. "high".
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "unknown"
}

// Action is what a rule does by default; per-rule modes in the gateway
// config override it.
type Action uint8

// Default actions.
const (
	ActionMonitor Action = iota
	ActionBlock
)

// String returns "monitor" or "block".
func (a Action) String() string {
	if a == ActionBlock {
		return "block"
	}
	return "monitor"
}

// RuleInfo describes one rule.
type RuleInfo struct {
	ID       string
	Severity Severity
	Default  Action
	Summary  string
}

// Only the findings that are an attack whatever the deployment block by
// default: an unsigned token, a token naming its own key, and a token
// signed with a guessed secret. Everything else depends on the issuer's
// habits and starts in monitor.
var rules = [...]RuleInfo{
	{RuleMalformed, SeverityMedium, ActionMonitor, "token breaks the JWS compact serialisation"},
	{RuleOversize, SeverityMedium, ActionMonitor, "token longer than max_token_bytes"},
	{RuleAlgNone, SeverityCritical, ActionBlock, "unsigned token (alg none)"},
	{RuleAlgUnknown, SeverityMedium, ActionMonitor, "missing or unregistered alg"},
	{RuleAlgNotAllowed, SeverityMedium, ActionMonitor, "alg outside allowed_algs"},
	{RuleNullSignature, SeverityHigh, ActionMonitor, "empty signature with a signing alg"},
	{RuleSignatureLength, SeverityHigh, ActionMonitor, "signature length impossible for alg"},
	{RuleECDSAZero, SeverityCritical, ActionMonitor, "ECDSA r or s zero or out of range"},
	{RuleKeyInjection, SeverityCritical, ActionBlock, "header carries a key or key URL"},
	{RuleKidInjection, SeverityHigh, ActionMonitor, "kid with injection syntax"},
	{RuleCritUnsupported, SeverityMedium, ActionMonitor, "crit names unsupported extensions"},
	{RuleTypUnexpected, SeverityLow, ActionMonitor, "typ outside expected_types"},
	{RuleExpired, SeverityLow, ActionMonitor, "expired token presented"},
	{RuleNotYetValid, SeverityLow, ActionMonitor, "nbf or iat in the future"},
	{RuleTimeInconsistent, SeverityLow, ActionMonitor, "nbf or iat after exp"},
	{RuleMissingExp, SeverityLow, ActionMonitor, "no exp claim"},
	{RuleLifetime, SeverityLow, ActionMonitor, "lifetime above max_lifetime"},
	{RuleAlgConfusion, SeverityHigh, ActionMonitor, "HMAC token for an asymmetric issuer"},
	{RuleWeakSecret, SeverityCritical, ActionBlock, "HMAC secret guessed"},
	{RuleInvalidSignature, SeverityHigh, ActionMonitor, "signature does not verify"},
	{RuleUnknownIssuer, SeverityMedium, ActionMonitor, "iss matches no provider"},
	{RuleAudienceMismatch, SeverityMedium, ActionMonitor, "aud matches no configured audience"},
	{RuleJWE, SeverityInfo, ActionMonitor, "encrypted token, not inspected"},
	{RuleJWEDoS, SeverityHigh, ActionMonitor, "JWE asks for zip or a huge p2c"},
	{RuleMultipleTokens, SeverityLow, ActionMonitor, "different tokens in one request"},
}

// Rules returns every rule with its default severity and action.
func Rules() []RuleInfo {
	out := make([]RuleInfo, len(rules))
	copy(out, rules[:])
	return out
}

// LookupRule returns the description of rule id.
func LookupRule(id string) (RuleInfo, bool) {
	for _, r := range rules {
		if r.ID == id {
			return r, true
		}
	}
	return RuleInfo{}, false
}

// Finding is one rule that matched a token.
type Finding struct {
	// Rule is one of the Rule* ids.
	Rule     string
	Severity Severity
	// Action is the rule's default action.
	Action Action
	// Detail narrows the rule down with a low-cardinality snake_case word
	// (e.g. "base64_padding", "jku"); never token content.
	Detail string
}

func finding(rule, detail string) Finding {
	for i := range rules {
		if rules[i].ID == rule {
			return Finding{Rule: rule, Severity: rules[i].Severity, Action: rules[i].Default, Detail: detail}
		}
	}
	// Unreachable for the Rule* constants; a test checks each is listed.
	return Finding{Rule: rule, Severity: SeverityMedium, Detail: detail}
}
