package ipfeed

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// MaxFeeds is how many Sets one Matcher can merge: each range carries a
// 64-bit mask of the feeds that list it.
const MaxFeeds = 64

// Matcher is the union of up to MaxFeeds Sets, merged into one sorted list
// of disjoint ranges per family. Each range carries the mask of the feeds
// that cover it, so a hit can name its feed. Lookups are a binary search
// (narrowed for IPv4 by a table on the top 16 bits) and allocate nothing.
// A Matcher is immutable and safe for concurrent use; a nil *Matcher
// matches nothing.
type Matcher struct {
	lo4, hi4 []uint32
	m4       []uint64
	lo6, hi6 []u128
	m6       []uint64
	// idx4[k] is the index of the first IPv4 range whose top 16 bits are
	// >= k, so an address with top bits k can only be in ranges idx4[k]-1
	// to idx4[k+1]-1: the search runs on a few ranges, not on all of them.
	// idx6 is the same on the top 16 bits of IPv6 (feeds spread over
	// 2000::/3, so the buckets are small there too).
	idx4, idx6 []uint32
	feeds      int
}

// NewMatcher merges sets; the i-th set is feed i in Lookup and Feeds. A nil
// set is empty.
func NewMatcher(sets ...*Set) (*Matcher, error) {
	if len(sets) > MaxFeeds {
		return nil, fmt.Errorf("ipfeed: %d sets, at most %d", len(sets), MaxFeeds)
	}
	m := &Matcher{feeds: len(sets)}
	l4 := make([][]range6, len(sets))
	l6 := make([][]range6, len(sets))
	for i, s := range sets {
		if s == nil {
			continue
		}
		r4 := make([]range6, len(s.v4))
		for j, r := range s.v4 {
			r4[j] = range6{u128{0, uint64(r.lo)}, u128{0, uint64(r.hi)}}
		}
		l4[i], l6[i] = r4, s.v6
	}
	lo, hi, m4 := mergeRanges(l4)
	m.lo4, m.hi4, m.m4 = make([]uint32, len(lo)), make([]uint32, len(lo)), m4
	for i := range lo {
		m.lo4[i], m.hi4[i] = uint32(lo[i].lo), uint32(hi[i].lo)
	}
	m.lo6, m.hi6, m.m6 = mergeRanges(l6)
	if len(m.lo4) > 0 {
		m.idx4 = bucketIndex(len(m.lo4), func(i int) uint64 { return uint64(m.lo4[i] >> 16) })
	}
	if len(m.lo6) > 0 {
		m.idx6 = bucketIndex(len(m.lo6), func(i int) uint64 { return m.lo6[i].hi >> 48 })
	}
	return m, nil
}

// bucketIndex returns idx with idx[k] = the first i whose top(i) >= k, for
// k in 0..65536; top must be non-decreasing and < 65536.
func bucketIndex(n int, top func(int) uint64) []uint32 {
	idx := make([]uint32, 1<<16+1)
	j := 0
	for k := range uint64(1 << 16) {
		for j < n && top(j) < k {
			j++
		}
		idx[k] = uint32(j)
	}
	idx[1<<16] = uint32(n)
	return idx
}

// mergeRanges sweeps the sorted, disjoint lists of several feeds into one
// list of disjoint ranges, each with the mask of the feeds covering it;
// neighbours with the same mask are joined.
func mergeRanges(lists [][]range6) (lo, hi []u128, masks []uint64) {
	type event struct {
		pos   u128
		bit   uint64
		start bool
	}
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	if n == 0 {
		return nil, nil, nil
	}
	evs := make([]event, 0, 2*n)
	for i, l := range lists {
		for _, r := range l {
			evs = append(evs, event{r.lo, 1 << i, true})
			// A range that ends at the last address has no end event: it
			// runs to the end of the space.
			if r.hi != max128 {
				evs = append(evs, event{r.hi.add1(), 1 << i, false})
			}
		}
	}
	slices.SortFunc(evs, func(a, b event) int { return a.pos.cmp(b.pos) })
	lo, hi, masks = make([]u128, 0, n), make([]u128, 0, n), make([]uint64, 0, n)
	var mask uint64
	for k := 0; k < len(evs); {
		p := evs[k].pos
		// A feed has at most one event at a position (its ranges are
		// disjoint and non-adjacent), so the order within p does not matter.
		for ; k < len(evs) && evs[k].pos == p; k++ {
			if evs[k].start {
				mask |= evs[k].bit
			} else {
				mask &^= evs[k].bit
			}
		}
		if mask == 0 {
			continue
		}
		end := max128
		if k < len(evs) {
			end = evs[k].pos.sub(u128{0, 1})
		}
		if j := len(lo) - 1; j >= 0 && masks[j] == mask && hi[j].add1() == p {
			hi[j] = end
			continue
		}
		lo, hi, masks = append(lo, p), append(hi, end), append(masks, mask)
	}
	return slices.Clip(lo), slices.Clip(hi), slices.Clip(masks)
}

// Len returns the number of merged ranges.
func (m *Matcher) Len() int {
	if m == nil {
		return 0
	}
	return len(m.lo4) + len(m.lo6)
}

// Feeds returns the mask of the feeds that list a (bit i: feed i), 0 when
// none does. IPv4-mapped IPv6 addresses are looked up as IPv4; an invalid
// address matches nothing.
func (m *Matcher) Feeds(a netip.Addr) uint64 {
	if m == nil {
		return 0
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		x := binary.BigEndian.Uint32(b[:])
		if len(m.lo4) == 0 {
			return 0
		}
		k := x >> 16
		from, to := int(m.idx4[k]), int(m.idx4[k+1])
		// Count the starts <= x within the bucket; the candidate is the
		// last one, which may be the range just before the bucket.
		i, j := from, to
		for i < j {
			h := int(uint(i+j) >> 1)
			if m.lo4[h] <= x {
				i = h + 1
			} else {
				j = h
			}
		}
		i--
		if i >= 0 && x <= m.hi4[i] {
			return m.m4[i]
		}
		return 0
	}
	if !a.Is6() || len(m.lo6) == 0 {
		return 0
	}
	x := addr6(a)
	k := x.hi >> 48
	i, j := int(m.idx6[k]), int(m.idx6[k+1])
	for i < j {
		h := int(uint(i+j) >> 1)
		if s := m.lo6[h]; s.hi < x.hi || (s.hi == x.hi && s.lo <= x.lo) {
			i = h + 1
		} else {
			j = h
		}
	}
	i--
	if i >= 0 && !m.hi6[i].less(x) {
		return m.m6[i]
	}
	return 0
}

// Contains reports whether any feed lists a.
func (m *Matcher) Contains(a netip.Addr) bool { return m.Feeds(a) != 0 }

// Lookup returns the lowest-numbered feed that lists a.
func (m *Matcher) Lookup(a netip.Addr) (feed int, ok bool) {
	f := m.Feeds(a)
	if f == 0 {
		return 0, false
	}
	return bits.TrailingZeros64(f), true
}
