package tlsfp

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var foxioSrc = flag.String("foxio.src", "", "regenerate testdata/foxio from a FoxIO-LLC/ja4 work tree (holding pcap/ and python/test/testdata/)")

const foxioDir = "testdata/foxio"

// foxioEntry is one stream of FoxIO's expected output
// (python/test/testdata/<capture>.json), reduced to the JA4 client keys.
type foxioEntry map[string]any

func (e foxioEntry) str(k string) string { s, _ := e[k].(string); return s }

func (e foxioEntry) tuple(t *testing.T) (client, server netip.AddrPort) {
	t.Helper()
	port := func(k string) uint16 {
		p, err := strconv.ParseUint(e.str(k), 10, 16)
		if err != nil {
			t.Fatalf("entry %v: bad %s", e["stream"], k)
		}
		return uint16(p)
	}
	return netip.AddrPortFrom(netip.MustParseAddr(e.str("src")), port("srcport")),
		netip.AddrPortFrom(netip.MustParseAddr(e.str("dst")), port("dstport"))
}

// alpnDeviations lists the vectors where FoxIO's reference implementations
// and this package differ on purpose. tls-non-ascii-alpn offers ALPN
// 0xba 0xad first: JA4.md ("ALPN Extension Value") prints the first and last
// hex digits, "bd"; python/ja4.py, rust/ja4 and the Wireshark plugin still
// print "99", a rule the specification replaced in 2024 (commit 914c09e).
var alpnDeviations = map[string]string{"tls-non-ascii-alpn.pcapng/0": "bd"}

func loadEntries(t *testing.T, path string) []foxioEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []foxioEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return entries
}

// vectorCase is one expected ClientHello with the records that carry it.
type vectorCase struct {
	id    string // capture/stream#n
	want  map[string]string
	hello helloRecord
}

// foxioCases matches every expected ClientHello of the vectors with the
// ClientHello bytes found in the capture. A stream is found by its client
// and server address; repeated tuples are matched in order.
func foxioCases(t *testing.T) []vectorCase {
	t.Helper()
	jsons, err := filepath.Glob(filepath.Join(foxioDir, "*.json"))
	if err != nil || len(jsons) == 0 {
		t.Fatalf("no vectors in %s (%v)", foxioDir, err)
	}
	var cases []vectorCase
	for _, jf := range jsons {
		capture := strings.TrimSuffix(filepath.Base(jf), ".json")
		pkts, err := readCapture(filepath.Join(foxioDir, capture))
		if err != nil {
			t.Fatalf("%s: %v", capture, err)
		}
		flows, _ := tcpFlows(pkts)
		used := map[*flow]bool{}
		for _, e := range loadEntries(t, jf) {
			if ja4 := e.str("JA4.1"); ja4 == "" || ja4[0] != 't' {
				// QUIC ('q') and DTLS ('d') hellos would need QUIC/UDP
				// decoding; the vectors hold none today, and SSH streams
				// carry no JA4.
				continue
			}
			client, server := e.tuple(t)
			var f *flow
			for _, c := range flows {
				if !used[c] && c.src == client && c.dst == server {
					f = c
					break
				}
			}
			if f == nil {
				t.Fatalf("%s stream %v: no TCP flow %v -> %v", capture, e["stream"], client, server)
			}
			used[f] = true
			hellos := clientHellos(f.data())
			stream := fmt.Sprint(e["stream"])
			for n := 1; ; n++ {
				want := map[string]string{}
				for _, k := range []string{"JA4", "JA4_r", "JA4_o", "JA4_ro"} {
					if v := e.str(fmt.Sprintf("%s.%d", k, n)); v != "" {
						want[k] = v
					}
				}
				if len(want) == 0 {
					if len(hellos) >= n {
						t.Errorf("%s stream %s: %d ClientHellos found, %d expected", capture, stream, len(hellos), n-1)
					}
					break
				}
				if len(want) != 4 {
					t.Fatalf("%s stream %s: incomplete expectation %v", capture, stream, want)
				}
				if len(hellos) < n {
					t.Fatalf("%s stream %s: ClientHello #%d not found", capture, stream, n)
				}
				if dev, ok := alpnDeviations[capture+"/"+stream]; ok {
					for k, v := range want {
						want[k] = v[:8] + dev + v[10:]
					}
				}
				cases = append(cases, vectorCase{id: fmt.Sprintf("%s/%s#%d", capture, stream, n), want: want, hello: hellos[n-1]})
			}
		}
	}
	return cases
}

func TestFoxIOVectors(t *testing.T) {
	t.Parallel()
	cases := foxioCases(t)
	captures := map[string]bool{}
	for _, c := range cases {
		captures[c.id[:strings.IndexByte(c.id, '/')]] = true
		h, err := Parse(c.hello.records)
		if err != nil {
			t.Errorf("%s: Parse: %v", c.id, err)
			continue
		}
		fp := Compute(h)
		got := map[string]string{"JA4": fp.JA4, "JA4_r": fp.JA4R, "JA4_o": fp.JA4O, "JA4_ro": fp.JA4RO}
		for _, k := range []string{"JA4", "JA4_r", "JA4_o", "JA4_ro"} {
			if got[k] != c.want[k] {
				t.Errorf("%s %s:\n got %s\nwant %s", c.id, k, got[k], c.want[k])
			}
		}
		// The single-value functions agree with Compute.
		if JA4(h) != fp.JA4 || JA4R(h) != fp.JA4R || JA4O(h) != fp.JA4O || JA4RO(h) != fp.JA4RO {
			t.Errorf("%s: JA4 functions disagree with Compute", c.id)
		}
	}
	// 160 ClientHellos in 16 captures at FoxIO-LLC/ja4@0e54bc8.
	if len(cases) < 160 || len(captures) < 16 {
		t.Errorf("only %d ClientHellos in %d captures", len(cases), len(captures))
	}
	t.Logf("%d ClientHellos (x4 variants) from %d captures", len(cases), len(captures))
}

var ja4Shape = regexp.MustCompile(`^[tqd](1[0-3]|s[23]|d[123]|00)[di]\d{4}[0-9A-Za-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$`)

// TestFoxIOJA3 checks JA3 on the vectors against the JA3 definition
// recomputed here from the parsed lists (the vectors carry no JA3), and the
// shape of every output.
func TestFoxIOJA3(t *testing.T) {
	t.Parallel()
	for _, c := range foxioCases(t) {
		h, err := Parse(c.hello.message)
		if err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		fp := Compute(h)
		if !ja4Shape.MatchString(fp.JA4) || !ja4Shape.MatchString(fp.JA4O) {
			t.Errorf("%s: bad shape %s %s", c.id, fp.JA4, fp.JA4O)
		}
		dec := func(vs []uint16) string {
			var s []string
			for _, v := range vs {
				if !IsGREASE(v) {
					s = append(s, strconv.Itoa(int(v)))
				}
			}
			return strings.Join(s, "-")
		}
		var curves, points []uint16
		for _, c := range h.SupportedCurves {
			curves = append(curves, uint16(c))
		}
		for _, p := range h.SupportedPoints {
			points = append(points, uint16(p))
		}
		want := fmt.Sprintf("%d,%s,%s,%s,%s", h.Version, dec(h.CipherSuites), dec(h.Extensions), dec(curves), dec(points))
		if fp.JA3 != want {
			t.Errorf("%s: JA3 %s, want %s", c.id, fp.JA3, want)
		}
		sorted := slices.Clone(h.Extensions)
		slices.Sort(sorted)
		wantN := fmt.Sprintf("%d,%s,%s,%s,%s", h.Version, dec(h.CipherSuites), dec(sorted), dec(curves), dec(points))
		if fp.JA3N != wantN {
			t.Errorf("%s: JA3N %s, want %s", c.id, fp.JA3N, wantN)
		}
		if len(fp.JA3Hash) != 32 || len(fp.JA3NHash) != 32 {
			t.Errorf("%s: bad JA3 hash length", c.id)
		}
	}
}

// TestFoxIORegenerate rebuilds testdata/foxio from a FoxIO checkout:
//
//	go test ./tlsfp -run TestFoxIORegenerate -foxio.src=/path/to/ja4
//
// Each expected JSON is reduced to the JA4 client keys; captures up to
// 32 KiB are copied as they are, larger ones are cut down to the
// client-to-server TCP packets that carry the ClientHellos (classic pcap).
func TestFoxIORegenerate(t *testing.T) {
	if *foxioSrc == "" {
		t.Skip("set -foxio.src to regenerate the vectors")
	}
	jsons, err := filepath.Glob(filepath.Join(*foxioSrc, "python/test/testdata/*.json"))
	if err != nil || len(jsons) == 0 {
		t.Fatalf("no JSON under %s (%v)", *foxioSrc, err)
	}
	keep := regexp.MustCompile(`^(stream|src|dst|srcport|dstport|domain|JA4(_r|_o|_ro)?\.\d+)$`)
	for _, jf := range jsons {
		capture := strings.TrimSuffix(filepath.Base(jf), ".json")
		var kept []foxioEntry
		for _, e := range loadEntries(t, jf) {
			if e.str("JA4.1") == "" {
				continue
			}
			r := foxioEntry{}
			for k, v := range e {
				if keep.MatchString(k) {
					r[k] = v
				}
			}
			kept = append(kept, r)
		}
		if len(kept) == 0 {
			continue
		}
		out, err := json.MarshalIndent(kept, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(foxioDir, capture+".json"), append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(*foxioSrc, "pcap", capture)
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > 32<<10 {
			raw = trimCapture(t, src, kept)
		}
		if err := os.WriteFile(filepath.Join(foxioDir, capture), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d streams, %d bytes", capture, len(kept), len(raw))
	}
}

// trimCapture keeps the client-to-server packets of the expected streams up
// to their last ClientHello, as a classic pcap.
func trimCapture(t *testing.T, path string, entries []foxioEntry) []byte {
	t.Helper()
	pkts, err := readCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	flows, info := tcpFlows(pkts)
	limit := map[*flow]uint32{}
	for _, e := range entries {
		client, server := e.tuple(t)
		for _, f := range flows {
			if _, done := limit[f]; !done && f.src == client && f.dst == server {
				hs := clientHellos(f.data())
				if len(hs) == 0 {
					t.Fatalf("%s: no ClientHello in %v -> %v", path, client, server)
				}
				limit[f] = uint32(hs[len(hs)-1].end)
				break
			}
		}
	}
	var out []byte
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr, 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 262144)
	var link uint16
	for i, p := range pkts {
		in := info[i]
		l, ok := limit[in.f]
		if in.f == nil || !ok || !in.syn && in.rel >= l {
			continue
		}
		if out == nil {
			link = p.link
			binary.LittleEndian.PutUint32(hdr[20:], uint32(link))
			out = append(out, hdr...)
		} else if p.link != link {
			t.Fatalf("%s: mixed link types", path)
		}
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(p.data)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(p.data)))
		out = append(out, rec...)
		out = append(out, p.data...)
	}
	return out
}
