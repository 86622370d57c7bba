// Package tlsfp computes TLS client fingerprints (JA4 and its raw and
// original-order variants, JA3 and JA3n) and classifies what a client offers
// (highest version, weak or modern cipher suites, GREASE).
//
// JA4 follows the FoxIO specification (FoxIO-LLC/ja4 technical_details/JA4.md,
// BSD-3-Clause) and is tested against FoxIO's published pcap vectors. Only
// JA4 (the TLS client fingerprint) is implemented: the JA4+ methods (JA4S,
// JA4H, JA4T, ...) are under a licence that forbids commercial use.
//
// The input is a [Hello], built from a [crypto/tls.ClientHelloInfo] with
// [FromClientHello] (no raw bytes needed since Go 1.24) or from raw bytes with
// [Parse]. Every value is kept as received, GREASE included; the fingerprint
// functions skip GREASE themselves.
package tlsfp

import (
	"crypto/tls"
	"slices"
)

// Transport is the first character of a JA4 fingerprint.
type Transport byte

// Transports defined by JA4. The zero Transport is treated as TCP.
const (
	TCP  Transport = 't'
	QUIC Transport = 'q'
	DTLS Transport = 'd'
)

// TLS extension ids the fingerprints look at (IANA TLS ExtensionType Values).
const (
	extServerName        uint16 = 0x0000
	extSupportedGroups   uint16 = 0x000a
	extPointFormats      uint16 = 0x000b
	extSignatureAlgs     uint16 = 0x000d
	extALPN              uint16 = 0x0010
	extSupportedVersions uint16 = 0x002b
)

// Hello holds what the fingerprints need from a ClientHello. Every list is
// raw: wire order, GREASE and duplicates kept.
type Hello struct {
	// Transport is TCP unless the caller knows better (quic-go, DTLS).
	Transport Transport
	// Version is the ClientHello legacy_version (0x0303 for TLS 1.3 clients).
	Version uint16
	// CipherSuites lists the offered cipher suites, SCSVs included.
	CipherSuites []uint16
	// Extensions lists every extension id in wire order.
	Extensions []uint16
	// SupportedVersions is the content of supported_versions (0x002b); nil
	// when the extension is absent.
	SupportedVersions []uint16
	// ServerName is the first host_name of the SNI extension; whether SNI
	// was sent at all is decided by Extensions (see HasSNI).
	ServerName string
	// ALPN lists the offered application protocols.
	ALPN []string
	// SignatureSchemes is the content of signature_algorithms (0x000d).
	SignatureSchemes []tls.SignatureScheme
	// SupportedCurves is the content of supported_groups (0x000a).
	SupportedCurves []tls.CurveID
	// SupportedPoints is the content of ec_point_formats (0x000b).
	SupportedPoints []uint8
}

// HasSNI reports whether the server_name extension was sent, which is what
// JA4 uses (not whether a host name could be read from it).
func (h *Hello) HasSNI() bool { return slices.Contains(h.Extensions, extServerName) }

// IsGREASE reports whether v is one of the 16 GREASE values of RFC 8701
// (0x0a0a, 0x1a1a, ..., 0xfafa), which fingerprints ignore everywhere.
func IsGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// isGREASEALPN reports whether p is an RFC 8701 GREASE ALPN identifier
// (two identical bytes of the form 0x?A).
func isGREASEALPN(p string) bool {
	return len(p) == 2 && p[0] == p[1] && p[0]&0x0f == 0x0a
}

// FromClientHello builds a Hello from what crypto/tls exposes before version
// and cipher negotiation (tls.Config.GetConfigForClient). It copies nothing:
// the Hello shares the slices of chi.
//
// crypto/tls does not expose legacy_version. When supported_versions was sent
// the Hello uses 0x0303, the value RFC 8446 section 4.1.2 requires of TLS 1.3
// clients (only JA3 reads it; JA4 uses supported_versions). Otherwise Go
// derived SupportedVersions from legacy_version, so its maximum is the legacy
// version for TLS 1.0 to 1.3, and an empty list means SSL 3.0 (0x0300).
func FromClientHello(chi *tls.ClientHelloInfo) Hello {
	h := Hello{
		Transport:        TCP,
		CipherSuites:     chi.CipherSuites,
		Extensions:       chi.Extensions,
		ServerName:       chi.ServerName,
		ALPN:             chi.SupportedProtos,
		SignatureSchemes: chi.SignatureSchemes,
		SupportedCurves:  chi.SupportedCurves,
		SupportedPoints:  chi.SupportedPoints,
	}
	if slices.Contains(chi.Extensions, extSupportedVersions) {
		h.SupportedVersions = chi.SupportedVersions
		h.Version = tls.VersionTLS12
	} else if v := maxNonGREASE(chi.SupportedVersions); v != 0 {
		h.Version = v
	} else {
		h.Version = 0x0300
	}
	return h
}

// maxNonGREASE returns the numerically highest non-GREASE value, 0 if none.
func maxNonGREASE(vs []uint16) uint16 {
	var m uint16
	for _, v := range vs {
		if !IsGREASE(v) && v > m {
			m = v
		}
	}
	return m
}

// MaxVersion returns the highest version the client offers: the highest
// non-GREASE supported_versions entry when that extension was sent (0 if it
// only holds GREASE), else legacy_version. It is the version JA4 reports.
func MaxVersion(h Hello) uint16 { return maxVersion(&h) }

func maxVersion(h *Hello) uint16 {
	if slices.Contains(h.Extensions, extSupportedVersions) {
		return maxNonGREASE(h.SupportedVersions)
	}
	return h.Version
}

// VersionLabel returns a short, stable label for a protocol version, for
// logs and metric labels: "1.0" to "1.3", "ssl3", "ssl2", or "unknown".
func VersionLabel(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS10:
		return "1.0"
	case 0x0300:
		return "ssl3"
	case 0x0002:
		return "ssl2"
	}
	return "unknown"
}
