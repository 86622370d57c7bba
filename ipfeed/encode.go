package ipfeed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The binary encoding of a Set, as stored in the SetStore so every replica
// loads what one replica fetched:
//
//	"IPFS"            magic
//	0x01              encoding version
//	0x00              flags (none defined; must be 0)
//	uvarint           number of IPv4 ranges
//	uvarint           number of IPv6 ranges
//	per IPv4 range:   uvarint gap, uvarint span
//	per IPv6 range:   uvarint128 gap, uvarint128 span
//	4 bytes           CRC-32C (Castagnoli) of everything before, big-endian
//
// Ranges are in address order. The gap of the first range of a family is
// its first address; the gap of the next is first - (previous last + 2),
// since merged ranges are never adjacent; the span is last - first.
// uvarint128 is the LEB128 uvarint of encoding/binary, extended to 128
// bits (at most 19 bytes). An IPv4 range costs 2 to 10 bytes, an IPv6
// range 2 to 38; a 200,000-line list of /24s and addresses costs about 4
// bytes a range (BenchmarkDecodeSet).
const (
	encMagic   = "IPFS"
	encVersion = 1
	encHeader  = len(encMagic) + 2
)

// ErrCorrupt is returned by DecodeSet for bytes that are not a valid
// encoding (bad magic, unknown version, checksum mismatch, truncation,
// ranges out of order or out of range).
var ErrCorrupt = errors.New("ipfeed: corrupt set encoding")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes s in the format above.
func (s *Set) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// AppendBinary appends the encoding of s to b.
func (s *Set) AppendBinary(b []byte) ([]byte, error) {
	var z Set
	if s == nil {
		s = &z
	}
	start := len(b)
	b = append(b, encMagic...)
	b = append(b, encVersion, 0)
	b = binary.AppendUvarint(b, uint64(len(s.v4)))
	b = binary.AppendUvarint(b, uint64(len(s.v6)))
	for i, r := range s.v4 {
		gap := r.lo
		if i > 0 {
			gap = r.lo - (s.v4[i-1].hi + 2)
		}
		b = binary.AppendUvarint(b, uint64(gap))
		b = binary.AppendUvarint(b, uint64(r.hi-r.lo))
	}
	for i, r := range s.v6 {
		gap := r.lo
		if i > 0 {
			gap = r.lo.sub(s.v6[i-1].hi).sub(u128{0, 2})
		}
		b = appendUvarint128(b, gap)
		b = appendUvarint128(b, r.hi.sub(r.lo))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

// UnmarshalBinary decodes b into s, which must not be in use.
func (s *Set) UnmarshalBinary(b []byte) error {
	d, err := DecodeSet(b)
	if err != nil {
		return err
	}
	*s = *d
	return nil
}

// DecodeSet decodes an encoding made by MarshalBinary. Any other input
// returns an error wrapping ErrCorrupt; it never panics, and allocates no
// more than the input's size justifies.
func DecodeSet(b []byte) (*Set, error) {
	if len(b) < encHeader+2+4 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if string(body[:len(encMagic)]) != encMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := body[len(encMagic)]; v != encVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, v)
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if body[len(encMagic)+1] != 0 {
		return nil, fmt.Errorf("%w: unknown flags", ErrCorrupt)
	}
	d := decoder{b: body[encHeader:]}
	n4, n6 := d.uvarint(), d.uvarint()
	// Each range takes at least two bytes, so larger counts are lies and
	// must not size an allocation.
	if d.err != nil || n4 > uint64(len(d.b))/2 || n6 > uint64(len(d.b))/2 || n4+n6 > uint64(len(d.b))/2 {
		return nil, fmt.Errorf("%w: bad range counts", ErrCorrupt)
	}
	s := &Set{}
	if n4 > 0 {
		s.v4 = make([]range4, n4)
	}
	if n6 > 0 {
		s.v6 = make([]range6, n6)
	}
	next := uint64(0) // smallest first address the next range may have
	for i := range s.v4 {
		gap, span := d.uvarint(), d.uvarint()
		if d.err != nil {
			return nil, fmt.Errorf("%w: IPv4 range %d: %v", ErrCorrupt, i, d.err)
		}
		lo := next + gap
		if gap > math.MaxUint32 || lo > math.MaxUint32 || span > math.MaxUint32-lo {
			return nil, fmt.Errorf("%w: IPv4 range %d out of range", ErrCorrupt, i)
		}
		s.v4[i] = range4{uint32(lo), uint32(lo + span)}
		next = lo + span + 2
	}
	next6, end := u128{}, false
	for i := range s.v6 {
		gap, span := d.uvarint128(), d.uvarint128()
		if d.err != nil {
			return nil, fmt.Errorf("%w: IPv6 range %d: %v", ErrCorrupt, i, d.err)
		}
		lo, o1 := next6.add(gap)
		hi, o2 := lo.add(span)
		if end || o1 || o2 {
			return nil, fmt.Errorf("%w: IPv6 range %d out of range", ErrCorrupt, i)
		}
		s.v6[i] = range6{lo, hi}
		var o3, o4 bool
		next6, o3 = hi.add(u128{0, 1})
		next6, o4 = next6.add(u128{0, 1})
		end = o3 || o4 // nothing can follow a range that ends at the top
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return s, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint128() u128 {
	if d.err != nil {
		return u128{}
	}
	var v u128
	for i := 0; i < 19; i++ {
		if i >= len(d.b) {
			d.err = errors.New("truncated varint")
			return u128{}
		}
		c := d.b[i]
		s := uint(7 * i)
		if i == 18 && c > 3 {
			d.err = errors.New("varint overflows 128 bits")
			return u128{}
		}
		x := uint64(c & 0x7f)
		switch {
		case s < 64:
			v.lo |= x << s
			if s > 57 {
				v.hi |= x >> (64 - s)
			}
		default:
			v.hi |= x << (s - 64)
		}
		if c < 0x80 {
			d.b = d.b[i+1:]
			return v
		}
	}
	d.err = errors.New("varint longer than 19 bytes")
	return u128{}
}

func appendUvarint128(b []byte, v u128) []byte {
	for v.hi != 0 || v.lo >= 0x80 {
		b = append(b, byte(v.lo)|0x80)
		v.lo = v.lo>>7 | v.hi<<57
		v.hi >>= 7
	}
	return append(b, byte(v.lo))
}
