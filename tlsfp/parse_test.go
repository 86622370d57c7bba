package tlsfp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// vectorHello returns one real ClientHello (records and message) from the
// vectors: Chrome with GREASE, tls12.pcap.
func vectorHello(t testing.TB) helloRecord {
	t.Helper()
	pkts, err := readCapture(filepath.Join(foxioDir, "tls12.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	flows, _ := tcpFlows(pkts)
	for _, f := range flows {
		if hs := clientHellos(f.data()); len(hs) > 0 {
			return hs[0]
		}
	}
	t.Fatal("no ClientHello in tls12.pcap")
	return helloRecord{}
}

// records splits a handshake message into TLS records of at most size bytes.
func records(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, 22, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func TestParseForms(t *testing.T) {
	t.Parallel()
	v := vectorHello(t)
	want := JA4RO(mustParse(t, v.records))
	tests := []struct {
		name string
		in   []byte
	}{
		{"records as captured", v.records},
		{"bare handshake message", v.message},
		{"one byte per record", records(v.message, 1)},
		{"100-byte records", records(v.message, 100)},
		{"trailing record ignored", append(bytes.Clone(v.records), 20, 3, 3, 0, 1, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := JA4RO(mustParse(t, tc.in)); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func mustParse(t *testing.T, b []byte) Hello {
	t.Helper()
	h, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	v := vectorHello(t)
	msg := v.message
	withExtLen := func(delta int) []byte {
		// The extensions block is the last thing in the body; lengthen its
		// length field without adding bytes.
		b := bytes.Clone(msg)
		body := b[4:]
		off := 2 + 32
		off += 1 + int(body[off])
		off += 2 + int(binary.BigEndian.Uint16(body[off:]))
		off += 1 + int(body[off])
		binary.BigEndian.PutUint16(body[off:], uint16(int(binary.BigEndian.Uint16(body[off:]))+delta))
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"http", []byte("GET / HTTP/1.1\r\n"), ErrNotClientHello},
		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, ErrNotClientHello},
		{"application data", []byte{23, 3, 3, 0, 1, 0}, ErrNotClientHello},
		{"sslv2", []byte{0x80, 0x2e, 0x01, 0x00, 0x02}, ErrUnsupported},
		{"zero-length record", []byte{22, 3, 1, 0, 0}, ErrMalformed},
		{"record too long", []byte{22, 3, 1, 0x40, 0x01}, ErrMalformed},
		{"extensions overrun", withExtLen(+1), ErrMalformed},
		{"extensions short", withExtLen(-1), ErrMalformed},
		{"huge handshake length", []byte{1, 0xff, 0xff, 0xff}, ErrMalformed},
		{"alert inside", append(records(msg[:10], 10), 21, 3, 3, 0, 2, 2, 40), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Parse(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestParseEveryTruncation cuts a real hello at every length: all must fail
// cleanly (Parse has no partial results).
func TestParseEveryTruncation(t *testing.T) {
	t.Parallel()
	v := vectorHello(t)
	for _, in := range [][]byte{v.records, v.message} {
		for n := range len(in) {
			if _, err := Parse(in[:n]); err == nil {
				t.Fatalf("Parse accepted %d of %d bytes", n, len(in))
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	v := vectorHello(f)
	f.Add(v.records)
	f.Add(v.message)
	f.Add(records(v.message, 7))
	jsons, _ := filepath.Glob(filepath.Join(foxioDir, "*.pcap*"))
	for _, p := range jsons {
		if filepath.Ext(p) == ".json" {
			continue
		}
		pkts, err := readCapture(p)
		if err != nil {
			continue
		}
		flows, _ := tcpFlows(pkts)
		for _, fl := range flows {
			for _, h := range clientHellos(fl.data()) {
				f.Add(h.records)
			}
		}
	}
	if _, err := os.Stat(foxioDir); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			if h.CipherSuites != nil || h.Extensions != nil {
				t.Fatal("partial Hello with an error")
			}
			return
		}
		fp := Compute(h)
		if !ja4Shape.MatchString(fp.JA4) || !ja4Shape.MatchString(fp.JA4O) {
			t.Fatalf("bad JA4 %q %q", fp.JA4, fp.JA4O)
		}
		if len(fp.JA3Hash) != 32 || len(fp.JA3NHash) != 32 {
			t.Fatal("bad JA3 hash")
		}
		if JA4(h) != fp.JA4 || JA4RO(h) != fp.JA4RO {
			t.Fatal("JA4 functions disagree with Compute")
		}
		_ = Classify(h)
	})
}
