package tlsfp

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

// TestSuiteTableMatchesCryptoTLS checks the table against the names Go
// uses for every suite it knows.
func TestSuiteTableMatchesCryptoTLS(t *testing.T) {
	t.Parallel()
	all := append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
	for _, cs := range all {
		s, ok := LookupSuite(cs.ID)
		if !ok {
			t.Errorf("%#04x %s missing", cs.ID, cs.Name)
			continue
		}
		if s.Name != cs.Name {
			t.Errorf("%#04x: %s, crypto/tls says %s", cs.ID, s.Name, cs.Name)
		}
		aead := strings.Contains(cs.Name, "GCM") || strings.Contains(cs.Name, "CHACHA20")
		fs := strings.Contains(cs.Name, "ECDHE") || !strings.Contains(cs.Name, "_WITH_")
		if aead != (s.Props&SuiteAEAD != 0) || fs != (s.Props&SuiteForwardSecret != 0) {
			t.Errorf("%s: props %014b", s.Name, s.Props)
		}
	}
	if n := len(suites()); n < 340 {
		t.Errorf("table has %d suites", n)
	}
}

func TestSuiteProps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   uint16
		has  SuiteProps
		lack SuiteProps
	}{
		{0x0000, SuiteNull | SuiteAnon, SuiteForwardSecret},
		{0x0003, SuiteExport | SuiteRC4 | SuiteMD5MAC, SuiteForwardSecret},
		{0x0009, SuiteDES | SuiteCBC | SuiteSHA1MAC, Suite3DES},
		{0x000a, Suite3DES, SuiteDES},
		{0x0018, SuiteAnon | SuiteRC4 | SuiteForwardSecret, SuiteAEAD},
		{0x002f, SuiteCBC | SuiteSHA1MAC, SuiteForwardSecret | SuiteAEAD},
		{0x009c, SuiteAEAD, SuiteForwardSecret},
		{0x00ff, SuiteSCSV, SuiteAEAD},
		{0x5600, SuiteSCSV, 0},
		{0x1301, SuiteTLS13 | SuiteAEAD | SuiteForwardSecret, SuiteNull},
		{0xc0b4, SuiteTLS13 | SuiteNull, SuiteAEAD},
		{0xc02b, SuiteAEAD | SuiteForwardSecret, SuiteAnon},
		{0xcca9, SuiteAEAD | SuiteForwardSecret, SuiteCBC},
		{0xc0aa, SuiteAEAD | SuiteForwardSecret, 0},
		{0xc015, SuiteNull | SuiteAnon, SuiteAEAD},
		{0x0062, SuiteExport | SuiteDES | SuiteUnofficial, 0},
	}
	for _, tc := range tests {
		s, ok := LookupSuite(tc.id)
		if !ok {
			t.Errorf("%#04x missing", tc.id)
			continue
		}
		if s.Props&tc.has != tc.has || s.Props&tc.lack != 0 {
			t.Errorf("%s: props %014b, want %014b without %014b", s.Name, s.Props, tc.has, tc.lack)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	modern13 := []uint16{0x1301, 0x1302}
	tests := []struct {
		name   string
		h      Hello
		weak   Weakness
		modern bool
		grease bool
		max    uint16
	}{
		{
			name: "browser", h: specHello(t), modern: true, grease: true, max: 0x0304,
		},
		{
			name: "scanner offering everything",
			h: Hello{Version: 0x0303, CipherSuites: []uint16{0x0000, 0x0003, 0x0018, 0x0009, 0x000a, 0xc02f},
				SignatureSchemes: sigs(t, "0401,0201")},
			weak: WeakNull | WeakExport | WeakAnon | WeakRC4 | WeakDES | Weak3DES, modern: true, max: 0x0303,
		},
		{
			name: "static RSA only",
			h:    Hello{Version: 0x0303, CipherSuites: []uint16{0x002f, 0x0035, 0x009c, 0x00ff}, SignatureSchemes: sigs(t, "0401")},
			weak: WeakNoForwardSecrecy, max: 0x0303,
		},
		{
			name: "sha1 signatures only",
			h:    Hello{Version: 0x0303, CipherSuites: []uint16{0xc02f}, SignatureSchemes: sigs(t, "0201,0203,0101,0a0a")},
			weak: WeakSHA1Signatures, modern: true, grease: true, max: 0x0303,
		},
		{
			name: "TLS 1.0, no signature_algorithms",
			h:    Hello{Version: 0x0301, CipherSuites: []uint16{0x0039, 0x0005}},
			weak: WeakRC4 | WeakSHA1Signatures, max: 0x0301,
		},
		{
			name: "TLS 1.3 suites without TLS 1.3 do not count",
			h:    Hello{Version: 0x0303, CipherSuites: modern13, SignatureSchemes: sigs(t, "0403")},
			weak: WeakNoForwardSecrecy, max: 0x0303,
		},
		{
			name:   "TLS 1.3",
			h:      Hello{Version: 0x0303, CipherSuites: modern13, Extensions: []uint16{0x002b}, SupportedVersions: []uint16{0x0304}, SignatureSchemes: sigs(t, "0804")},
			modern: true, max: 0x0304,
		},
		{
			name: "anon AEAD is not modern",
			h:    Hello{Version: 0x0303, CipherSuites: []uint16{0x00a6}, SignatureSchemes: sigs(t, "0403")},
			weak: WeakAnon, max: 0x0303,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := Classify(tc.h)
			if o.Weak != tc.weak || o.Modern != tc.modern || o.GREASE != tc.grease || o.MaxVersion != tc.max {
				t.Errorf("got %+v (%s), want weak=%s modern=%v grease=%v max=%#04x", o, o.Weak, tc.weak, tc.modern, tc.grease, tc.max)
			}
		})
	}
}

func TestWeaknessNames(t *testing.T) {
	t.Parallel()
	w := WeakNull | Weak3DES | WeakSHA1Signatures
	if got := w.Names(); !slices.Equal(got, []string{"null", "3des", "sha1_sig"}) {
		t.Errorf("Names = %v", got)
	}
	if w.String() != "null,3des,sha1_sig" || Weakness(0).String() != "" {
		t.Errorf("String = %q", w.String())
	}
	if !w.Has(WeakNull|Weak3DES) || w.Has(WeakRC4) {
		t.Error("Has")
	}
	all := Weakness(1<<len(weaknessNames) - 1)
	if len(all.Names()) != len(weaknessNames) {
		t.Error("names do not cover every bit")
	}
}

func TestVersionLabel(t *testing.T) {
	t.Parallel()
	for v, want := range map[uint16]string{0x0304: "1.3", 0x0303: "1.2", 0x0302: "1.1", 0x0301: "1.0", 0x0300: "ssl3", 0x0002: "ssl2", 0x7f1c: "unknown"} {
		if got := VersionLabel(v); got != want {
			t.Errorf("VersionLabel(%#04x) = %q, want %q", v, got, want)
		}
	}
}
