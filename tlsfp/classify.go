package tlsfp

import (
	"crypto/tls"
	"strings"
)

// Weakness is a set of weak things a ClientHello offers. The zero value
// offers nothing weak.
type Weakness uint16

// Weaknesses. The first six are set when at least one offered suite has the
// property, even next to modern suites (typical of scanners and old stacks);
// the last two describe the hello as a whole.
const (
	WeakNull   Weakness = 1 << iota // a NULL-cipher suite
	WeakExport                      // an EXPORT suite
	WeakAnon                        // an anonymous (unauthenticated) DH/ECDH suite
	WeakRC4                         // an RC4 suite
	WeakDES                         // a single-DES suite
	Weak3DES                        // a 3DES suite
	// WeakNoForwardSecrecy: no offered suite has an ephemeral key exchange
	// (typically only static-RSA suites) and TLS 1.3 is not offered.
	WeakNoForwardSecrecy
	// WeakSHA1Signatures: every offered signature algorithm uses SHA-1 or
	// MD5, or signature_algorithms is absent below TLS 1.3 (then RFC 5246
	// section 7.4.1.4.1 makes SHA-1 the default).
	WeakSHA1Signatures
)

// weaknessNames are stable identifiers (log values, rule fields).
var weaknessNames = [...]string{"null", "export", "anon", "rc4", "des", "3des", "no_fs", "sha1_sig"}

// Has reports whether w contains every weakness of x.
func (w Weakness) Has(x Weakness) bool { return w&x == x }

// Names returns the stable names of the weaknesses in w, in bit order.
func (w Weakness) Names() []string {
	var out []string
	for i, n := range weaknessNames {
		if w&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String returns the names joined by commas, "" for none.
func (w Weakness) String() string { return strings.Join(w.Names(), ",") }

// Offer summarises what a ClientHello offers, for TLS-level detections.
type Offer struct {
	// MaxVersion is the highest offered version (see MaxVersion).
	MaxVersion uint16
	// Weak lists the weak things offered.
	Weak Weakness
	// Modern is true when at least one offered suite is authenticated,
	// forward secret and AEAD (TLS 1.3 suites count when TLS 1.3 is
	// offered), so the client can be served safely whatever else it offers.
	Modern bool
	// GREASE is true when any list carries an RFC 8701 GREASE value, as
	// Chromium-based and other modern clients do.
	GREASE bool
}

// Classify computes the Offer of h from the cipher-suite table.
// Suites missing from the table count as neither weak nor modern.
func Classify(h Hello) Offer { return classify(&h) }

func classify(h *Hello) Offer {
	o := Offer{MaxVersion: maxVersion(h)}
	tls13 := o.MaxVersion == tls.VersionTLS13
	idx := propsIndex()
	fs, real := false, false
	for _, id := range h.CipherSuites {
		if IsGREASE(id) {
			o.GREASE = true
			continue
		}
		var p SuiteProps
		if page := idx[id>>8]; page != nil {
			p = page[id&0xff]
		}
		if p&suiteKnown == 0 {
			real = true
			continue
		}
		if p&SuiteSCSV != 0 {
			continue
		}
		real = true
		if p&SuiteTLS13 != 0 && !tls13 {
			continue // a TLS 1.3 suite is unusable without TLS 1.3
		}
		o.Weak |= weakOf(p)
		if p&SuiteForwardSecret != 0 {
			fs = true
			if p&(SuiteAEAD|SuiteAnon|SuiteNull|SuiteExport) == SuiteAEAD {
				o.Modern = true
			}
		}
	}
	if real && !fs {
		o.Weak |= WeakNoForwardSecrecy
	}
	if sha1OnlySignatures(h, o.MaxVersion) {
		o.Weak |= WeakSHA1Signatures
	}
	if !o.GREASE {
		o.GREASE = hasGREASE(h)
	}
	return o
}

func weakOf(p SuiteProps) Weakness {
	var w Weakness
	if p&SuiteNull != 0 {
		w |= WeakNull
	}
	if p&SuiteExport != 0 {
		w |= WeakExport
	}
	if p&SuiteAnon != 0 {
		w |= WeakAnon
	}
	if p&SuiteRC4 != 0 {
		w |= WeakRC4
	}
	if p&SuiteDES != 0 {
		w |= WeakDES
	}
	if p&Suite3DES != 0 {
		w |= Weak3DES
	}
	return w
}

// sha1OnlySignatures applies the WeakSHA1Signatures rule. TLS 1.2 code
// points are hash<<8|signature with hash 1 = MD5 and 2 = SHA-1 (RFC 5246
// section 7.4.1.4.1); 0x0201 and 0x0203 keep that meaning in RFC 8446.
func sha1OnlySignatures(h *Hello, maxVersion uint16) bool {
	n := 0
	for _, s := range h.SignatureSchemes {
		v := uint16(s)
		if IsGREASE(v) {
			continue
		}
		n++
		if hash, sig := v>>8, v&0xff; (hash != 1 && hash != 2) || sig > 3 {
			return false
		}
	}
	if n == 0 {
		return maxVersion != tls.VersionTLS13 && maxVersion != 0
	}
	return true
}

// hasGREASE looks for GREASE outside the cipher list.
func hasGREASE(h *Hello) bool {
	for _, list := range [][]uint16{h.Extensions, h.SupportedVersions} {
		for _, v := range list {
			if IsGREASE(v) {
				return true
			}
		}
	}
	for _, c := range h.SupportedCurves {
		if IsGREASE(uint16(c)) {
			return true
		}
	}
	for _, s := range h.SignatureSchemes {
		if IsGREASE(uint16(s)) {
			return true
		}
	}
	for _, p := range h.ALPN {
		if isGREASEALPN(p) {
			return true
		}
	}
	return false
}
