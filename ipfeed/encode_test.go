package ipfeed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		set  *Set
	}{
		{"empty", &Set{}},
		{"nil", nil},
		{"edges", SetOf(prefixes(t, "0.0.0.0/32", "255.255.255.255/32", "::/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "8000::/1")...)},
		{"whole families", SetOf(prefixes(t, "0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1")...)},
		{"hi/lo boundary", SetOf(prefixes(t, "2001:db8:0:ffff::/64", "2001:db8:1::/64", "::ffff:ffff:ffff:ffff/128", "0:0:0:1::/128")...)},
		{"random", randomSet(rand.New(rand.NewPCG(3, 4)), 5000)},
	}
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 99))
		var ps []netip.Prefix
		for range r.IntN(60) {
			ps = append(ps, randPrefix(r))
		}
		tests = append(tests, struct {
			name string
			set  *Set
		}{"clustered", SetOf(ps...)})
	}
	for _, tc := range tests {
		enc, err := tc.set.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSet(enc)
		if err != nil {
			t.Fatalf("%s: DecodeSet: %v", tc.name, err)
		}
		if !got.Equal(tc.set) {
			t.Fatalf("%s: round trip changed the set:\n%v\n%v", tc.name, got.Ranges(), tc.set.Ranges())
		}
		var viaIface Set
		if err := viaIface.UnmarshalBinary(enc); err != nil || !viaIface.Equal(got) {
			t.Fatalf("%s: UnmarshalBinary: %v", tc.name, err)
		}
		if again, _ := got.MarshalBinary(); !bytes.Equal(again, enc) {
			t.Fatalf("%s: encoding not deterministic", tc.name)
		}
	}
}

// TestEncodeSize checks the "tens of bytes per range at most" budget and
// what a realistic list costs.
func TestEncodeSize(t *testing.T) {
	t.Parallel()
	s := randomSet(rand.New(rand.NewPCG(5, 6)), 200_000)
	enc, _ := s.MarshalBinary()
	per := float64(len(enc)) / float64(s.Len())
	t.Logf("%d ranges (%d IPv4): %d bytes, %.1f bytes/range", s.Len(), s.Len4(), len(enc), per)
	if per > 12 {
		t.Errorf("%.1f bytes per range", per)
	}
	worst := SetOf(prefixes(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128")...)
	enc, _ = worst.MarshalBinary()
	if len(enc) > encHeader+2+38+4 {
		t.Errorf("one IPv6 range: %d bytes", len(enc))
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	good, _ := SetOf(prefixes(t, "192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32")...).MarshalBinary()
	// reseal re-signs a tampered body, so the check under test, not the
	// checksum, must catch it.
	reseal := func(body []byte) []byte { return appendChecksum(append([]byte(nil), body...)) }
	flip := append([]byte(nil), good...)
	flip[len(flip)/2] ^= 1
	tests := []struct {
		name, want string
		in         []byte
	}{
		{"nil", "too short", nil},
		{"short", "too short", []byte("IPFS")},
		{"bad magic", "bad magic", append([]byte("XPFS"), good[4:]...)},
		{"bit flip", "checksum", flip},
		{"truncated", "checksum", good[:len(good)-5]},
		{"trailing bytes", "trailing", reseal(append(append([]byte(nil), good[:len(good)-4]...), 0))},
		{"version", "unknown version", reseal(append([]byte("IPFS\x02\x00"), good[6:len(good)-4]...))},
		{"flags", "unknown flags", reseal(append([]byte("IPFS\x01\x01"), good[6:len(good)-4]...))},
		{"huge count", "range counts", reseal([]byte("IPFS\x01\x00\xff\xff\xff\xff\x0f\x00"))},
		{"v4 out of range", "IPv4 range 0 out of range", reseal([]byte("IPFS\x01\x00\x01\x00\xff\xff\xff\xff\x0f\x01"))},
		{"v4 past the top", "IPv4 range 1 out of range", reseal([]byte("IPFS\x01\x00\x02\x00\x00\xff\xff\xff\xff\x0f\x00\x00"))},
		{"v6 varint too long", "overflows 128 bits", reseal(append([]byte("IPFS\x01\x00\x00\x01"), bytes.Repeat([]byte{0xff}, 20)...))},
		{"v6 after the top", "IPv6 range 1 out of range", reseal(append(append([]byte("IPFS\x01\x00\x00\x02\x00"), append(bytes.Repeat([]byte{0xff}, 18), 0x03)...), 0, 0))},
	}
	for _, tc := range tests {
		s, err := DecodeSet(tc.in)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: DecodeSet = %v, %v; want ErrCorrupt: …%s", tc.name, s.Ranges(), err, tc.want)
		}
	}
}

func appendChecksum(body []byte) []byte {
	return binary.BigEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}

func FuzzDecodeSet(f *testing.F) {
	for _, s := range []*Set{
		{},
		SetOf(prefixes(f, "192.0.2.0/24", "2001:db8::/32")...),
		randomSet(rand.New(rand.NewPCG(1, 1)), 50),
	} {
		enc, _ := s.MarshalBinary()
		f.Add(enc)
	}
	f.Add([]byte("IPFS\x01\x00\x01\x00\xff\xff\xff\xff\x0f\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		// Also try the input with a valid checksum, so the fuzzer gets
		// past it and exercises the range checks.
		for _, b := range [][]byte{in, appendChecksum(append([]byte(nil), in...))} {
			s, err := DecodeSet(b)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				continue
			}
			checkSorted(t, s)
			enc, _ := s.MarshalBinary()
			back, err := DecodeSet(enc)
			if err != nil || !back.Equal(s) {
				t.Fatalf("re-encoding a decoded set: %v", err)
			}
		}
	})
}

// FuzzEncodeRoundTrip builds sets from fuzzed prefixes and checks that the
// encoding round-trips.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add([]byte{192, 0, 2, 0, 24, 1, 32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32})
	f.Fuzz(func(t *testing.T, in []byte) {
		var ps []netip.Prefix
		for len(in) >= 5 {
			if in[0]&1 == 0 {
				var a [4]byte
				copy(a[:], in[1:5])
				ps = append(ps, netip.PrefixFrom(netip.AddrFrom4(a), int(in[0]>>1)%33))
				in = in[5:]
				continue
			}
			if len(in) < 17 {
				break
			}
			var a [16]byte
			copy(a[:], in[1:17])
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(a), int(in[0]>>1)%129))
			in = in[17:]
		}
		s := SetOf(ps...)
		checkSorted(t, s)
		enc, _ := s.MarshalBinary()
		back, err := DecodeSet(enc)
		if err != nil || !back.Equal(s) {
			t.Fatalf("round trip: %v", err)
		}
		for _, p := range ps {
			if !back.Contains(p.Masked().Addr()) {
				t.Fatalf("%v lost", p)
			}
		}
	})
}
