package tlsfp

// Fingerprint is everything computed from one ClientHello, once per
// handshake. All strings are lowercase where the formats say so; the zero
// Fingerprint means "no ClientHello seen".
type Fingerprint struct {
	JA4      string // t13d1516h2_8daaf6152771_e5627efa2ab1
	JA4R     string // JA4_r: sorted lists in clear
	JA4O     string // JA4_o: hashed, wire order
	JA4RO    string // JA4_ro: wire order in clear
	JA3      string // 771,4865-4866-...,0-23-...,29-23-24,0
	JA3Hash  string // MD5 of JA3, 32 hex digits
	JA3N     string // JA3 with extensions sorted
	JA3NHash string // MD5 of JA3N

	// MaxVersion is the highest offered version.
	MaxVersion uint16
	// ALPN is the first offered (non-GREASE) ALPN protocol, "" if none.
	ALPN string
	// ServerName is the SNI host name, "" if none.
	ServerName string
	// Weak lists the weak things offered.
	Weak Weakness
	// Modern is true when a safe suite is offered too (see Offer).
	Modern bool
	// GREASE is true when the client sent GREASE values.
	GREASE bool
}

// Compute computes every fingerprint and fact of h. The strings share one
// allocation.
func Compute(h Hello) Fingerprint {
	s, sp := buildString(&h, wantAll)
	o := classify(&h)
	fp := Fingerprint{
		JA4:        sp[spanJA4].of(s),
		JA4R:       sp[spanJA4R].of(s),
		JA4O:       sp[spanJA4O].of(s),
		JA4RO:      sp[spanJA4RO].of(s),
		JA3:        sp[spanJA3].of(s),
		JA3Hash:    sp[spanJA3Hash].of(s),
		JA3N:       sp[spanJA3N].of(s),
		JA3NHash:   sp[spanJA3NHash].of(s),
		MaxVersion: o.MaxVersion,
		ServerName: h.ServerName,
		Weak:       o.Weak,
		Modern:     o.Modern,
		GREASE:     o.GREASE,
	}
	for _, p := range h.ALPN {
		if !isGREASEALPN(p) {
			fp.ALPN = p
			break
		}
	}
	return fp
}
