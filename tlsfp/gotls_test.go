package tlsfp

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

var errCaptured = errors.New("captured")

// helloViaGo writes records to a real crypto/tls server over net.Pipe and
// returns what GetConfigForClient saw, or the handshake error when Go
// refused the hello before that callback.
func helloViaGo(t *testing.T, records []byte) (Hello, error) {
	t.Helper()
	cli, srv := net.Pipe()
	defer cli.Close()
	deadline := time.Now().Add(5 * time.Second)
	_ = cli.SetDeadline(deadline)
	_ = srv.SetDeadline(deadline)
	go func() {
		_, _ = cli.Write(records)
		_, _ = io.Copy(io.Discard, cli) // drain the alert
	}()
	var got Hello
	conn := tls.Server(srv, &tls.Config{
		MinVersion: tls.VersionTLS10,
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			got = FromClientHello(chi)
			return nil, errCaptured
		},
	})
	err := conn.Handshake()
	_ = srv.Close()
	if errors.Is(err, errCaptured) {
		return got, nil
	}
	return Hello{}, err
}

// TestFromClientHelloAgreesWithParse feeds every FoxIO ClientHello to
// crypto/tls and checks that the Hello built from ClientHelloInfo gives the
// same fingerprints as Parse on the same bytes.
func TestFromClientHelloAgreesWithParse(t *testing.T) {
	t.Parallel()
	agreed := 0
	for _, c := range foxioCases(t) {
		parsed, err := Parse(c.hello.records)
		if err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		viaGo, err := helloViaGo(t, c.hello.records)
		if err != nil {
			// Go refuses some hellos that JA4 still fingerprints; none of
			// the vectors today, so any refusal is reported.
			t.Errorf("%s: crypto/tls refused the hello: %v", c.id, err)
			continue
		}
		a, b := Compute(parsed), Compute(viaGo)
		if a.JA4 != b.JA4 || a.JA4R != b.JA4R || a.JA4O != b.JA4O || a.JA4RO != b.JA4RO {
			t.Errorf("%s: JA4 differs\nParse           %s %s\nFromClientHello %s %s", c.id, a.JA4, a.JA4RO, b.JA4, b.JA4RO)
		}
		if a.ServerName != b.ServerName || a.ALPN != b.ALPN || a.MaxVersion != b.MaxVersion || a.Weak != b.Weak || a.Modern != b.Modern || a.GREASE != b.GREASE {
			t.Errorf("%s: facts differ\n%+v\n%+v", c.id, a, b)
		}
		// JA3 starts with legacy_version, which crypto/tls does not expose
		// (FromClientHello documents its substitute); the rest must agree.
		if parsed.Version == viaGo.Version && (a.JA3 != b.JA3 || a.JA3N != b.JA3N) {
			t.Errorf("%s: JA3 differs\n%s\n%s", c.id, a.JA3, b.JA3)
		}
		if !slices.Equal(parsed.CipherSuites, viaGo.CipherSuites) || !slices.Equal(parsed.Extensions, viaGo.Extensions) ||
			!slices.Equal(parsed.SupportedVersions, viaGo.SupportedVersions) || !slices.Equal(parsed.ALPN, viaGo.ALPN) ||
			!slices.Equal(parsed.SignatureSchemes, viaGo.SignatureSchemes) || !slices.Equal(parsed.SupportedCurves, viaGo.SupportedCurves) ||
			!slices.Equal(parsed.SupportedPoints, viaGo.SupportedPoints) {
			t.Errorf("%s: lists differ\n%+v\n%+v", c.id, parsed, viaGo)
		}
		agreed++
	}
	t.Logf("%d ClientHellos agree between Parse and FromClientHello", agreed)
}

// TestFromClientHelloLegacyVersion covers the legacy_version substitute.
func TestFromClientHelloLegacyVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		chi  tls.ClientHelloInfo
		want uint16
	}{
		{"supported_versions sent", tls.ClientHelloInfo{Extensions: []uint16{0x002b}, SupportedVersions: []uint16{0x0a0a, 0x0304, 0x0303}}, 0x0303},
		{"TLS 1.0 legacy", tls.ClientHelloInfo{SupportedVersions: []uint16{0x0301}}, 0x0301},
		{"TLS 1.2 legacy", tls.ClientHelloInfo{SupportedVersions: []uint16{0x0303, 0x0302, 0x0301}}, 0x0303},
		{"SSL 3.0", tls.ClientHelloInfo{}, 0x0300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := FromClientHello(&tc.chi)
			if h.Version != tc.want {
				t.Errorf("Version = %#04x, want %#04x", h.Version, tc.want)
			}
			if (h.SupportedVersions != nil) != slices.Contains(tc.chi.Extensions, 0x002b) {
				t.Errorf("SupportedVersions = %v", h.SupportedVersions)
			}
		})
	}
}
