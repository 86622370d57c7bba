package detections_test

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/tlsfp"
)

func TestTLSDetection(t *testing.T) {
	t.Parallel()
	d, err := detections.NewTLS(detections.TLSConfig{MinVersion: "1.2", Deny: []string{"t12d*", "deadbeef"}})
	if err != nil {
		t.Fatal(err)
	}
	modern := tlsfp.Fingerprint{JA4: "t13d1516h2_8daaf6152771_e5627efa2ab1", ALPN: "h2", GREASE: true, Modern: true}
	chrome := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
	for _, tc := range []struct {
		name   string
		tls    *detections.TLS
		ua     string
		action detections.Action
		rule   string
	}{
		{"plain HTTP", nil, "", detections.ActionAllow, ""},
		{"modern browser", &detections.TLS{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, Fingerprint: modern}, chrome, detections.ActionAllow, ""},
		{"legacy version behind the LB", &detections.TLS{Source: "proxy_protocol", Version: tls.VersionTLS10}, "", detections.ActionBlock, detections.RuleTLSLegacyVersion},
		{"weak cipher negotiated", &detections.TLS{Version: tls.VersionTLS12, CipherSuite: tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, "", detections.ActionBlock, detections.RuleTLSWeakCipher},
		{"denied family", &detections.TLS{Version: tls.VersionTLS12, Fingerprint: tlsfp.Fingerprint{JA4: "t12d1209h2_x_y", ALPN: "h2"}}, "", detections.ActionBlock, detections.RuleTLSDenied},
		{"denied JA3", &detections.TLS{Version: tls.VersionTLS13, Fingerprint: tlsfp.Fingerprint{JA4: "t13i0102h1_a_b", JA3Hash: "deadbeef", ALPN: "http/1.1"}}, "", detections.ActionBlock, detections.RuleTLSDenied},
		{"weak suites offered next to modern ones: monitored", &detections.TLS{Version: tls.VersionTLS13, Fingerprint: tlsfp.Fingerprint{JA4: "t13d_weak", Weak: tlsfp.Weak3DES, Modern: true, ALPN: "h2", GREASE: true}}, "", detections.ActionMonitor, detections.RuleTLSWeakOffer},
		{"browser UA over a library handshake: monitored", &detections.TLS{Version: tls.VersionTLS13, Fingerprint: tlsfp.Fingerprint{JA4: "t13i1310h1_x_y"}}, chrome, detections.ActionMonitor, detections.RuleTLSUAMismatch},
		{"library UA over a library handshake", &detections.TLS{Version: tls.VersionTLS13, Fingerprint: tlsfp.Fingerprint{JA4: "t13i1310h1_x_y"}}, "python-requests/2.31", detections.ActionAllow, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reqFrom("192.0.2.1")
			r.TLS, r.Header = tc.tls, http.Header{"User-Agent": {tc.ua}}
			v, err := d.Inspect(t.Context(), r)
			if err != nil || v.Action != tc.action || v.Rule != tc.rule {
				t.Errorf("verdict %+v %v, want %v %s", v, err, tc.action, tc.rule)
			}
		})
	}
	if _, err := detections.NewTLS(detections.TLSConfig{MinVersion: "1.4", Deny: []string{"a b"}, Rules: map[string]detections.Mode{"nope": detections.ModeOff}}); err == nil {
		t.Error("bad config accepted")
	}
	off, _ := detections.NewTLS(detections.TLSConfig{Deny: []string{"t12*"}, Rules: map[string]detections.Mode{"tls-fingerprint-denied": detections.ModeMonitor}})
	r := reqFrom("192.0.2.1")
	r.TLS = &detections.TLS{Fingerprint: tlsfp.Fingerprint{JA4: "t12d_x"}}
	if v, _ := off.Inspect(t.Context(), r); v.Action != detections.ActionMonitor {
		t.Errorf("rule in monitor mode (kebab alias): %+v", v)
	}
}
