package ipfeed

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// checkSorted fails unless s keeps its invariant: ranges sorted, each
// well-formed, and neither overlapping nor adjacent.
func checkSorted(t testing.TB, s *Set) {
	t.Helper()
	for i, r := range s.v4 {
		if r.hi < r.lo || (i > 0 && uint64(r.lo) < uint64(s.v4[i-1].hi)+2) {
			t.Fatalf("v4 range %d %v after %v", i, r, s.v4[max(i-1, 0)])
		}
	}
	for i, r := range s.v6 {
		if r.hi.less(r.lo) || (i > 0 && !s.v6[i-1].hi.add1().less(r.lo)) {
			t.Fatalf("v6 range %d %v after %v", i, r, s.v6[max(i-1, 0)])
		}
	}
}

// naive is the obviously correct matcher the real one is checked against.
type naive struct {
	prefixes []netip.Prefix
	feed     []int
}

func (n *naive) feeds(a netip.Addr) uint64 {
	a = a.Unmap()
	var m uint64
	for i, p := range n.prefixes {
		if p.Contains(a) {
			m |= 1 << n.feed[i]
		}
	}
	return m
}

// randPrefix draws prefixes clustered in a few small regions, so that
// random sets overlap, nest and touch, plus the edges of the space.
func randPrefix(r *rand.Rand) netip.Prefix {
	switch r.IntN(8) {
	case 0: // the top and bottom of both spaces
		return []netip.Prefix{
			netip.MustParsePrefix("255.255.255.255/32"), netip.MustParsePrefix("255.255.255.0/24"),
			netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("0.0.0.0/8"),
			netip.MustParsePrefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), netip.MustParsePrefix("ffff::/16"),
			netip.MustParsePrefix("::/128"), netip.MustParsePrefix("::/16"),
		}[r.IntN(8)]
	case 1, 2, 3: // 10.0.0.0/20, short and long prefixes
		a := netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(16)), byte(r.IntN(256))})
		return netip.PrefixFrom(a, 20+r.IntN(13)).Masked()
	case 4: // anywhere in IPv4
		var b [4]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return netip.PrefixFrom(netip.AddrFrom4(b), 8+r.IntN(25)).Masked()
	case 5, 6: // 2001:db8::/116, crossing the 64-bit halves when short
		b := netip.MustParseAddr("2001:db8::").As16()
		b[14], b[15] = byte(r.IntN(16)), byte(r.IntN(256))
		if r.IntN(4) == 0 {
			b[7] = byte(r.IntN(4)) // straddle the hi/lo boundary of u128
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), 52+r.IntN(77)).Masked()
	default: // anywhere in IPv6
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), 16+r.IntN(113)).Masked()
	}
}

// probes returns addresses on and around every prefix boundary, plus
// random ones in the same regions.
func probes(r *rand.Rand, ps []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, p := range ps {
		lo := p.Addr()
		var b builder
		addPrefix(&b, p)
		var hi netip.Addr
		if lo.Is4() {
			hi = fromU32(b.v4[0].hi)
		} else {
			hi = fromU128(b.v6[0].hi)
		}
		out = append(out, lo, hi, lo.Prev(), hi.Next())
	}
	for range 200 {
		out = append(out, randPrefix(r).Addr(), netip.AddrFrom16(netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(16)), byte(r.IntN(256))}).As16()))
	}
	return out
}

func TestMatcherAgainstNaive(t *testing.T) {
	t.Parallel()
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		nfeeds := 1 + r.IntN(5)
		if seed%50 == 0 {
			nfeeds = MaxFeeds
		}
		var n naive
		sets := make([]*Set, nfeeds)
		for f := range nfeeds {
			var ps []netip.Prefix
			per := 40
			if nfeeds == MaxFeeds {
				per = 4 // the naive matcher is quadratic
			}
			for range r.IntN(per) {
				p := randPrefix(r)
				ps = append(ps, p)
				n.prefixes, n.feed = append(n.prefixes, p), append(n.feed, f)
			}
			sets[f] = SetOf(ps...)
			checkSorted(t, sets[f])
		}
		m, err := NewMatcher(sets...)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range probes(r, n.prefixes) {
			if !a.IsValid() {
				continue
			}
			want := n.feeds(a)
			if got := m.Feeds(a); got != want {
				t.Fatalf("seed %d: Feeds(%v) = %b, want %b", seed, a, got, want)
			}
			f, ok := m.Lookup(a)
			if ok != (want != 0) || (ok && f != bits.TrailingZeros64(want)) {
				t.Fatalf("seed %d: Lookup(%v) = %d, %v; want mask %b", seed, a, f, ok, want)
			}
			for i, s := range sets {
				if got := s.Contains(a); got != (want&(1<<i) != 0) {
					t.Fatalf("seed %d: set %d Contains(%v) = %v", seed, i, a, got)
				}
			}
		}
	}
}

func TestMatcherMergesRanges(t *testing.T) {
	t.Parallel()
	a := SetOf(prefixes(t, "192.0.2.0/24", "198.51.100.0/24")...)
	b := SetOf(prefixes(t, "192.0.2.128/25", "198.51.101.0/24")...)
	m, err := NewMatcher(a, a)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 2 {
		t.Errorf("two copies of a set: %d ranges, want 2", m.Len())
	}
	m, _ = NewMatcher(a, b)
	// 192.0.2.0-127 {a}, 192.0.2.128-255 {a,b}, 198.51.100.0/24 {a}, 198.51.101.0/24 {b}
	if m.Len() != 4 {
		t.Errorf("%d ranges, want 4", m.Len())
	}
	m, _ = NewMatcher(SetOf(prefixes(t, "192.0.2.0/25")...), SetOf(prefixes(t, "192.0.2.128/25")...), SetOf(prefixes(t, "192.0.2.0/24")...))
	if m.Len() != 2 {
		t.Errorf("%d ranges, want 2", m.Len())
	}
	if _, err := NewMatcher(make([]*Set, MaxFeeds+1)...); err == nil {
		t.Error("65 sets accepted")
	}
	var nilM *Matcher
	if nilM.Contains(netip.MustParseAddr("192.0.2.1")) || m.Contains(netip.Addr{}) {
		t.Error("nil matcher or zero address matched")
	}
}

func TestMatcherUnmaps(t *testing.T) {
	t.Parallel()
	m, _ := NewMatcher(SetOf(prefixes(t, "192.0.2.0/24", "::ffff:198.51.100.0/120")...))
	for _, s := range []string{"::ffff:192.0.2.9", "192.0.2.9", "198.51.100.1", "::ffff:198.51.100.1"} {
		if !m.Contains(netip.MustParseAddr(s)) {
			t.Errorf("%s not matched", s)
		}
	}
	if m.Contains(netip.MustParseAddr("::c000:209")) {
		t.Error("IPv4-compatible (not mapped) address matched an IPv4 range")
	}
}

func TestMatcherZeroAllocs(t *testing.T) {
	set := randomSet(rand.New(rand.NewPCG(1, 2)), 10_000)
	m, _ := NewMatcher(set)
	a4, a6 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::1")
	if n := testing.AllocsPerRun(1000, func() { m.Contains(a4); m.Lookup(a6); set.Contains(a4) }); n != 0 {
		t.Errorf("%v allocs per lookup", n)
	}
}

// randomSet returns a Set of about n random prefixes, 90% IPv4 (/16 to
// /32, the shape of real feeds) and 10% IPv6.
func randomSet(r *rand.Rand, n int) *Set {
	var b builder
	for range n {
		if r.IntN(10) > 0 {
			var a [4]byte
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			b.add4(prefixRange4(a, 16+r.IntN(17)))
			continue
		}
		var a [16]byte
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		a[0] = 0x20
		b.add6(prefixRange6(a, 24+r.IntN(105)))
	}
	return b.set()
}

// BenchmarkMatch looks up random addresses in 200,000 CIDRs from three
// feeds (a large one and two small ones, as in production).
func BenchmarkMatch(b *testing.B) {
	r := rand.New(rand.NewPCG(42, 42))
	m, err := NewMatcher(randomSet(r, 180_000), randomSet(r, 15_000), randomSet(r, 5_000))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d merged ranges (%d IPv4)", m.Len(), len(m.lo4))
	rand4 := func() netip.Addr {
		return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	}
	rand6 := func() netip.Addr {
		var a [16]byte
		for j := range a {
			a[j] = byte(r.Uint32())
		}
		a[0] = 0x20
		return netip.AddrFrom16(a)
	}
	for _, bc := range []struct {
		name string
		addr func(i int) netip.Addr
	}{
		{"v4", func(int) netip.Addr { return rand4() }},
		{"v6", func(int) netip.Addr { return rand6() }},
		{"mixed", func(i int) netip.Addr {
			if i%10 == 0 {
				return rand6()
			}
			return rand4()
		}},
	} {
		addrs := make([]netip.Addr, 4096)
		for i := range addrs {
			addrs[i] = bc.addr(i)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i, hits := 0, 0
			for b.Loop() {
				if _, ok := m.Lookup(addrs[i&4095]); ok {
					hits++
				}
				i++
			}
			_ = hits
		})
	}
}

func BenchmarkNewMatcher(b *testing.B) {
	r := rand.New(rand.NewPCG(42, 42))
	sets := []*Set{randomSet(r, 180_000), randomSet(r, 15_000), randomSet(r, 5_000)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewMatcher(sets...); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSetRanges(t *testing.T) {
	t.Parallel()
	s := SetOf(prefixes(t, "2001:db8::/127", "192.0.2.4/31", "192.0.2.6", "10.0.0.0/8")...)
	want := []Range{
		{mustAddr("10.0.0.0"), mustAddr("10.255.255.255")},
		{mustAddr("192.0.2.4"), mustAddr("192.0.2.6")},
		{mustAddr("2001:db8::"), mustAddr("2001:db8::1")},
	}
	if got := s.Ranges(); !slices.Equal(got, want) || s.Len() != 3 || s.Len4() != 2 {
		t.Errorf("Ranges = %v", got)
	}
	var nilSet *Set
	if nilSet.Len() != 0 || nilSet.Ranges() != nil || nilSet.Contains(mustAddr("10.0.0.1")) || !nilSet.Equal(&Set{}) {
		t.Error("nil set not empty")
	}
}
