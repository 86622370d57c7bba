package detections

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/rampartgw/rampart/tlsfp"
)

const tlsName = "tls"

// TLS is what a request's connection showed of its TLS: the negotiated
// parameters and, when this process terminated TLS, the ClientHello's
// fingerprint. Nil on a plain-HTTP request with no TLS facts.
type TLS struct {
	// Source is self (this process terminated TLS), proxy_protocol (a
	// trusted load balancer's PROXY v2 SSL fields) or header (a trusted
	// load balancer's headers).
	Source      string
	Version     uint16
	CipherSuite uint16
	CipherName  string
	ServerName  string
	ALPN        string
	Resumed     bool
	// Fingerprint is zero unless this process saw the ClientHello (or a
	// trusted header named the JA4/JA3).
	Fingerprint tlsfp.Fingerprint
}

// Reasons and rule ids of the tls detection.
const (
	RuleTLSLegacyVersion = "tls_legacy_version"     // negotiated (or, at the handshake, offered) below min_version
	RuleTLSWeakCipher    = "tls_weak_cipher"        // a weak suite negotiated
	RuleTLSWeakOffer     = "tls_weak_offer"         // weak suites offered (a scanner signal)
	RuleTLSDenied        = "tls_fingerprint_denied" // JA4/JA3 on the deny list
	RuleTLSNotAllowed    = "tls_fingerprint_not_allowed"
	RuleTLSUAMismatch    = "tls_user_agent_mismatch" // a browser User-Agent over a library's handshake
	ReasonTLS            = "tls"
)

// TLSConfig configures the tls detection.
type TLSConfig struct {
	// MinVersion is the lowest acceptable version for connections whose
	// TLS a load balancer terminated (this process refuses older
	// handshakes itself, see tls.min_version): "1.0" .. "1.3"; "" means
	// the listener's.
	MinVersion string `yaml:"min_version"`
	// Deny and Allow are JA4 or JA3 fingerprints, exact or as a prefix
	// ending in '*' ("t13d*"); deny wins; a non-empty allow list refuses
	// every other fingerprinted client.
	Deny  []string `yaml:"deny"`
	Allow []string `yaml:"allow"`
	// Rules sets a mode per rule id (enforce, monitor, off). Defaults:
	// legacy version, weak cipher and the lists enforce; weak offer and
	// the User-Agent mismatch monitor.
	Rules map[string]Mode `yaml:"rules"`
}

// DefaultTLSConfig returns the defaults.
func DefaultTLSConfig() TLSConfig {
	return TLSConfig{}
}

var defaultTLSRuleModes = map[string]Mode{
	RuleTLSLegacyVersion: ModeEnforce, RuleTLSWeakCipher: ModeEnforce, RuleTLSDenied: ModeEnforce,
	RuleTLSNotAllowed: ModeEnforce, RuleTLSWeakOffer: ModeMonitor, RuleTLSUAMismatch: ModeMonitor,
}

// TLSDetection inspects what the handshake showed.
type TLSDetection struct {
	minVersion  uint16
	deny, allow fingerprintList
	modes       map[string]Mode
}

// fingerprintList matches exact fingerprints and prefixes.
type fingerprintList struct {
	exact    map[string]bool
	prefixes []string
}

func newFingerprintList(items []string) (fingerprintList, error) {
	l := fingerprintList{exact: map[string]bool{}}
	var errs []error
	for i, it := range items {
		it = strings.TrimSpace(it)
		if it == "" || strings.ContainsAny(it, " \t") {
			errs = append(errs, fmt.Errorf("[%d]: %q is not a fingerprint or prefix*", i, it))
			continue
		}
		if p, ok := strings.CutSuffix(it, "*"); ok {
			l.prefixes = append(l.prefixes, p)
			continue
		}
		l.exact[it] = true
	}
	return l, errors.Join(errs...)
}

func (l fingerprintList) empty() bool { return len(l.exact) == 0 && len(l.prefixes) == 0 }

func (l fingerprintList) match(fp *tlsfp.Fingerprint) bool {
	for _, s := range [...]string{fp.JA4, fp.JA3Hash, fp.JA3NHash} {
		if s == "" {
			continue
		}
		if l.exact[s] {
			return true
		}
		for _, p := range l.prefixes {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
	}
	return false
}

// ParseTLSVersion maps "1.0" .. "1.3" to a crypto/tls version.
func ParseTLSVersion(s string) (uint16, error) {
	switch s {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not 1.0, 1.1, 1.2 or 1.3", s)
}

// NewTLS validates cfg.
func NewTLS(cfg TLSConfig) (*TLSDetection, error) {
	d := &TLSDetection{modes: map[string]Mode{}}
	var errs []error
	if cfg.MinVersion != "" {
		v, err := ParseTLSVersion(cfg.MinVersion)
		if err != nil {
			errs = append(errs, fmt.Errorf("min_version: %w", err))
		}
		d.minVersion = v
	}
	var err error
	if d.deny, err = newFingerprintList(cfg.Deny); err != nil {
		errs = append(errs, fmt.Errorf("deny%w", err))
	}
	if d.allow, err = newFingerprintList(cfg.Allow); err != nil {
		errs = append(errs, fmt.Errorf("allow%w", err))
	}
	for k, v := range defaultTLSRuleModes {
		d.modes[k] = v
	}
	for k, m := range cfg.Rules {
		k = strings.ReplaceAll(k, "-", "_")
		if _, ok := defaultTLSRuleModes[k]; !ok {
			errs = append(errs, fmt.Errorf("rules.%s: unknown rule (known: %s)", k, strings.Join(tlsRuleIDs(), ", ")))
			continue
		}
		d.modes[k] = m
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

func tlsRuleIDs() []string {
	return []string{RuleTLSLegacyVersion, RuleTLSWeakCipher, RuleTLSWeakOffer, RuleTLSDenied, RuleTLSNotAllowed, RuleTLSUAMismatch}
}

// Name returns "tls".
func (d *TLSDetection) Name() string { return tlsName }

// Inspect applies the rules in order of strength; the first enforced
// finding blocks, a monitored one is reported as would-block.
func (d *TLSDetection) Inspect(_ context.Context, r *Request) (Verdict, error) {
	t := r.TLS
	if t == nil {
		return Allow, nil
	}
	var monitored Verdict
	check := func(rule string, hit bool) (Verdict, bool) {
		if !hit {
			return Verdict{}, false
		}
		switch d.modes[rule] {
		case ModeEnforce:
			v := Block(ReasonTLS)
			v.Rule, v.Location = rule, "tls"
			return v, true
		case ModeMonitor:
			if monitored.Rule == "" {
				monitored = Verdict{Action: ActionMonitor, Reason: ReasonTLS, Rule: rule, Location: "tls"}
			}
		}
		return Verdict{}, false
	}
	fp := &t.Fingerprint
	if v, ok := check(RuleTLSLegacyVersion, d.minVersion != 0 && t.Version != 0 && t.Version < d.minVersion); ok {
		return v, nil
	}
	if v, ok := check(RuleTLSWeakCipher, t.CipherSuite != 0 && weakSuite(t.CipherSuite)); ok {
		return v, nil
	}
	if fp.JA4 != "" || fp.JA3Hash != "" {
		if v, ok := check(RuleTLSDenied, !d.deny.empty() && d.deny.match(fp)); ok {
			return v, nil
		}
		if v, ok := check(RuleTLSNotAllowed, !d.allow.empty() && !d.allow.match(fp)); ok {
			return v, nil
		}
	}
	if fp.JA4 != "" {
		if v, ok := check(RuleTLSWeakOffer, fp.Weak != 0 && fp.Weak != tlsfp.WeakSHA1Signatures); ok {
			return v, nil
		}
		if v, ok := check(RuleTLSUAMismatch, browserUA(r.Header.Get("User-Agent")) && fp.ALPN == "" && !fp.GREASE); ok {
			return v, nil
		}
	}
	if monitored.Rule != "" {
		return monitored, nil
	}
	return Allow, nil
}

// weakSuite reports a negotiated suite that is NULL, EXPORT, anonymous,
// RC4, DES or 3DES.
func weakSuite(id uint16) bool {
	s, ok := tlsfp.LookupSuite(id)
	if !ok {
		return false
	}
	const weak = tlsfp.SuiteNull | tlsfp.SuiteExport | tlsfp.SuiteAnon | tlsfp.SuiteRC4 | tlsfp.SuiteDES | tlsfp.Suite3DES
	return s.Props&weak != 0
}

// browserUA reports a User-Agent that claims a browser engine. Browsers
// send ALPN and (Chrome, Edge, Safari) GREASE; HTTP libraries that borrow
// a browser's User-Agent string usually send neither.
func browserUA(ua string) bool {
	if !strings.HasPrefix(ua, "Mozilla/5.0 (") {
		return false
	}
	for _, engine := range [...]string{"Chrome/", "Firefox/", "Safari/", "Edg/"} {
		if strings.Contains(ua, engine) {
			return true
		}
	}
	return false
}

var _ Detection = (*TLSDetection)(nil)
