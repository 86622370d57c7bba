package ipfeed

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"slices"
)

// u128 is an IPv6 address (or an IPv4 address in the low 32 bits) as a
// number, so ranges can be compared and stepped without netip's overhead.
type u128 struct{ hi, lo uint64 }

var max128 = u128{math.MaxUint64, math.MaxUint64}

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// add1 returns a+1, wrapping at the top.
func (a u128) add1() u128 {
	a.lo++
	if a.lo == 0 {
		a.hi++
	}
	return a
}

// sub returns a-b, wrapping.
func (a u128) sub(b u128) u128 {
	lo, borrow := bits.Sub64(a.lo, b.lo, 0)
	hi, _ := bits.Sub64(a.hi, b.hi, borrow)
	return u128{hi, lo}
}

// add returns a+b and whether it overflowed.
func (a u128) add(b u128) (u128, bool) {
	lo, carry := bits.Add64(a.lo, b.lo, 0)
	hi, carry := bits.Add64(a.hi, b.hi, carry)
	return u128{hi, lo}, carry != 0
}

func (a u128) float() float64 { return float64(a.hi)*0x1p64 + float64(a.lo) }

// prefixRange6 returns the first and last address of a /bits IPv6 prefix.
func prefixRange6(a [16]byte, bits int) (u128, u128) {
	v := u128{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
	var m u128 // host bits
	switch {
	case bits <= 0:
		m = max128
	case bits < 64:
		m = u128{math.MaxUint64 >> bits, math.MaxUint64}
	case bits < 128:
		m = u128{0, math.MaxUint64 >> (bits - 64)}
	}
	lo := u128{v.hi &^ m.hi, v.lo &^ m.lo}
	return lo, u128{lo.hi | m.hi, lo.lo | m.lo}
}

func prefixRange4(a [4]byte, bits int) (uint32, uint32) {
	v := binary.BigEndian.Uint32(a[:])
	var m uint32 = math.MaxUint32
	if bits >= 32 {
		m = 0
	} else if bits > 0 {
		m >>= bits
	}
	return v &^ m, v&^m | m
}

func addr6(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func fromU128(v u128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.hi)
	binary.BigEndian.PutUint64(b[8:], v.lo)
	return netip.AddrFrom16(b)
}

func fromU32(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

type range4 struct{ lo, hi uint32 }

type range6 struct{ lo, hi u128 }

// Set is one feed's parsed list: sorted, disjoint, non-adjacent address
// ranges, IPv4 and IPv6 apart. Overlapping and adjacent entries are merged
// when the Set is built, so its size is the number of ranges, not of lines.
// A Set is immutable and safe for concurrent use; the zero Set and a nil
// *Set are empty.
type Set struct {
	v4 []range4
	v6 []range6
}

// Range is an inclusive address range of one family.
type Range struct{ From, To netip.Addr }

// Len returns the number of ranges.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.v4) + len(s.v6)
}

// Len4 returns the number of IPv4 ranges.
func (s *Set) Len4() int {
	if s == nil {
		return 0
	}
	return len(s.v4)
}

// Ranges returns every range, IPv4 first, in address order.
func (s *Set) Ranges() []Range {
	if s == nil {
		return nil
	}
	out := make([]Range, 0, s.Len())
	for _, r := range s.v4 {
		out = append(out, Range{fromU32(r.lo), fromU32(r.hi)})
	}
	for _, r := range s.v6 {
		out = append(out, Range{fromU128(r.lo), fromU128(r.hi)})
	}
	return out
}

// Contains reports whether a is in the set. IPv4-mapped IPv6 addresses are
// looked up as IPv4. It allocates nothing.
func (s *Set) Contains(a netip.Addr) bool {
	if s == nil {
		return false
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		x := binary.BigEndian.Uint32(b[:])
		i, _ := slices.BinarySearchFunc(s.v4, x, func(r range4, x uint32) int {
			return cmp.Compare(r.hi, x)
		})
		return i < len(s.v4) && s.v4[i].lo <= x
	}
	if !a.Is6() {
		return false
	}
	x := addr6(a)
	i, _ := slices.BinarySearchFunc(s.v6, x, func(r range6, x u128) int { return r.hi.cmp(x) })
	return i < len(s.v6) && !x.less(s.v6[i].lo)
}

// Equal reports whether s and o hold the same addresses.
func (s *Set) Equal(o *Set) bool {
	var a, b Set
	if s != nil {
		a = *s
	}
	if o != nil {
		b = *o
	}
	return slices.Equal(a.v4, b.v4) && slices.Equal(a.v6, b.v6)
}

// coverage returns the fraction of the IPv4 space and of the IPv6 global
// unicast space (2000::/3) the set covers. A feed that covers most of
// either is refused: it is broken or hostile, and would block everyone.
func (s *Set) coverage() (v4, v6 float64) {
	var n4 float64
	for _, r := range s.v4 {
		n4 += float64(r.hi-r.lo) + 1
	}
	gLo, gHi := u128{0x2000 << 48, 0}, u128{0x4000<<48 - 1, math.MaxUint64}
	var n6 float64
	for _, r := range s.v6 {
		lo, hi := r.lo, r.hi
		if lo.less(gLo) {
			lo = gLo
		}
		if gHi.less(hi) {
			hi = gHi
		}
		if hi.less(lo) {
			continue
		}
		n6 += hi.sub(lo).float() + 1
	}
	return n4 / 0x1p32, n6 / 0x1p125
}

// builder accumulates ranges for a Set.
type builder struct {
	v4 []range4
	v6 []range6
}

func (b *builder) add4(lo, hi uint32) { b.v4 = append(b.v4, range4{lo, hi}) }
func (b *builder) add6(lo, hi u128)   { b.v6 = append(b.v6, range6{lo, hi}) }

// set sorts and coalesces what was added.
func (b *builder) set() *Set {
	return &Set{v4: coalesce4(b.v4), v6: coalesce6(b.v6)}
}

func coalesce4(rs []range4) []range4 {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b range4) int { return cmp.Compare(a.lo, b.lo) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		// Overlapping or adjacent (last.hi+1 == r.lo) ranges merge; the
		// MaxUint32 check keeps last.hi+1 from wrapping.
		if last.hi == math.MaxUint32 || r.lo <= last.hi+1 {
			last.hi = max(last.hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

func coalesce6(rs []range6) []range6 {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b range6) int { return a.lo.cmp(b.lo) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if last.hi == max128 || !last.hi.add1().less(r.lo) {
			if last.hi.less(r.hi) {
				last.hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// SetOf builds a Set from prefixes (a convenience for tests and for
// callers that already hold parsed prefixes). Invalid prefixes are
// skipped; IPv4-mapped prefixes are unmapped.
func SetOf(prefixes ...netip.Prefix) *Set {
	var b builder
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		addPrefix(&b, p)
	}
	return b.set()
}

// addPrefix adds p, unmapping an IPv4-mapped prefix of /96 or longer.
func addPrefix(b *builder, p netip.Prefix) {
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	if a.Is4() {
		b.add4(prefixRange4(a.As4(), bits))
		return
	}
	b.add6(prefixRange6(a.As16(), bits))
}
