package tlsfp

import (
	"crypto/tls"
	"strings"
	"testing"
)

func hex16s(t *testing.T, s string) []uint16 {
	t.Helper()
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		var v uint16
		for _, c := range f {
			v <<= 4
			switch {
			case '0' <= c && c <= '9':
				v |= uint16(c - '0')
			case 'a' <= c && c <= 'f':
				v |= uint16(c-'a') + 10
			default:
				t.Fatalf("bad hex %q", f)
			}
		}
		out = append(out, v)
	}
	return out
}

func sigs(t *testing.T, s string) []tls.SignatureScheme {
	var out []tls.SignatureScheme
	for _, v := range hex16s(t, s) {
		out = append(out, tls.SignatureScheme(v))
	}
	return out
}

// specHello is the example of JA4.md ("Example" and "Raw Output"), with
// GREASE added where Chrome puts it.
func specHello(t *testing.T) Hello {
	return Hello{
		Version:           0x0303,
		CipherSuites:      append([]uint16{0x3a3a}, hex16s(t, "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035")...),
		Extensions:        append([]uint16{0x1a1a}, append(hex16s(t, "001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015"), 0xfafa)...),
		SupportedVersions: []uint16{0x7a7a, 0x0304, 0x0303},
		ServerName:        "example.com",
		ALPN:              []string{"h2", "http/1.1"},
		SignatureSchemes:  sigs(t, "0403,0804,0401,0503,0805,0501,0806,0601"),
		SupportedCurves:   []tls.CurveID{0x2a2a, tls.X25519, tls.CurveP256, tls.CurveP384},
		SupportedPoints:   []uint8{0},
	}
}

func TestJA4SpecExample(t *testing.T) {
	t.Parallel()
	h := specHello(t)
	checks := []struct{ name, got, want string }{
		{"JA4", JA4(h), "t13d1516h2_8daaf6152771_e5627efa2ab1"},
		{"JA4_r", JA4R(h), "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"},
		{"JA4_ro", JA4RO(h), "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015_0403,0804,0401,0503,0805,0501,0806,0601"},
		{"JA4_o", JA4O(h), "t13d1516h2_acb858a92679_18f69afefd3d"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s\n got %s\nwant %s", c.name, c.got, c.want)
		}
	}
	// "If there are no signature algorithms ... the string ends without an
	// underscore": the spec's value for that case.
	h.SignatureSchemes = nil
	if got := JA4(h); !strings.HasSuffix(got, "_6d807ffa2a79") {
		t.Errorf("no sigalgs: %s", got)
	}
	full, hash := JA3(specHello(t))
	if full != "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,29-23-24,0" || len(hash) != 32 {
		t.Errorf("JA3 %s %s", full, hash)
	}
	n, _ := JA3N(specHello(t))
	if n != "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,0-5-10-11-13-16-18-21-23-27-35-43-45-51-17513-65281,29-23-24,0" {
		t.Errorf("JA3N %s", n)
	}
}

func TestALPNChars(t *testing.T) {
	t.Parallel()
	// The examples of JA4.md "ALPN Extension Value".
	tests := []struct {
		name string
		alpn []string
		want string
	}{
		{"h2", []string{"h2", "http/1.1"}, "h2"},
		{"http/1.1", []string{"http/1.1"}, "h1"},
		{"none", nil, "00"},
		{"empty first", []string{"", "h2"}, "00"},
		{"single char", []string{"a"}, "aa"},
		{"0xAB", []string{"\xab"}, "ab"},
		{"0x20", []string{"\x20"}, "20"},
		{"0xAB 0xCD", []string{"\xab\xcd"}, "ad"},
		{"0x20 0x61", []string{"\x20\x61"}, "21"},
		{"0x30 0xAB", []string{"\x30\xab"}, "3b"},
		{"0x61 0x20", []string{"\x61\x20"}, "60"},
		{"0x30 0x31 0xAB 0xCD", []string{"\x30\x31\xab\xcd"}, "3d"},
		{"0x30 0xAB 0xCD 0x31", []string{"\x30\xab\xcd\x31"}, "01"},
		{"GREASE skipped", []string{"\x4a\x4a", "h2"}, "h2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := alpnChars(tc.alpn)
			if got := string([]byte{a, b}); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJA4Rules(t *testing.T) {
	t.Parallel()
	many := make([]uint16, 120)
	for i := range many {
		many[i] = uint16(0x1000 + i)
	}
	tests := []struct {
		name string
		h    Hello
		want string // the whole JA4 when it has all three parts (a_b_c), else a prefix
	}{
		{"empty lists", Hello{Version: 0x0301}, "t10i000000_000000000000_000000000000"},
		{"only SNI and ALPN", Hello{Version: 0x0303, CipherSuites: []uint16{0x002f}, Extensions: []uint16{0, 0x10}, ALPN: []string{"h2"}}, "t12d0102h2_"},
		// JA4_b is sha256("002f")[:12]; JA4_c hashes nothing (SNI is left
		// out, no signature algorithms): an empty list is 000000000000.
		{"SNI only hashes to zeros", Hello{Version: 0x0303, CipherSuites: []uint16{0x002f}, Extensions: []uint16{0}}, "t12d010100_ba72b8082249_000000000000"},
		{"SCSV counted", Hello{Version: 0x0303, CipherSuites: []uint16{0x0a0a, 0x002f, 0x00ff, 0x5600, 0xfe01}}, "t12i0400"},
		{"cap at 99", Hello{Version: 0x0303, CipherSuites: many, Extensions: many}, "t12i9999"},
		{"SSL 3.0", Hello{Version: 0x0300}, "ts3i"},
		{"unknown version", Hello{Version: 0x0305}, "t00i"},
		{"GREASE-only supported_versions", Hello{Version: 0x0303, Extensions: []uint16{0x002b}, SupportedVersions: []uint16{0x0a0a}}, "t00i"},
		{"supported_versions wins", Hello{Version: 0x0301, Extensions: []uint16{0x002b}, SupportedVersions: []uint16{0x0303, 0x0304}}, "t13i"},
		{"QUIC", Hello{Transport: QUIC, Version: 0x0303, Extensions: []uint16{0x002b}, SupportedVersions: []uint16{0x0304}}, "q13i"},
		{"DTLS 1.2", Hello{Transport: DTLS, Version: 0xfefd}, "dd2i"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := JA4(tc.h)
			if strings.Count(tc.want, "_") == 2 {
				if got != tc.want {
					t.Errorf("got %s, want %s", got, tc.want)
				}
			} else if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %s, want %s...", got, tc.want)
			}
		})
	}
	// An SNI-only hello: JA4_c and JA4_o's c are zeros, JA4_ro shows 0000.
	h := Hello{Version: 0x0303, CipherSuites: []uint16{0x002f}, Extensions: []uint16{0}}
	if got := JA4O(h); !strings.HasSuffix(got, "_000000000000") {
		t.Errorf("JA4_o %s", got)
	}
	if got := JA4RO(h); got != "t12d010100_002f_0000" {
		t.Errorf("JA4_ro %s", got)
	}
	if got := JA4R(h); got != "t12d010100_002f_" {
		t.Errorf("JA4_r %s", got)
	}
}

func TestIsGREASE(t *testing.T) {
	t.Parallel()
	n := 0
	for v := range 1 << 16 {
		if IsGREASE(uint16(v)) {
			n++
			if b := byte(v); byte(v>>8) != b || b&0x0f != 0x0a {
				t.Errorf("%#04x", v)
			}
		}
	}
	if n != 16 {
		t.Errorf("%d GREASE values, want 16", n)
	}
}
