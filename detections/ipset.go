package detections

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// IPSet is an immutable set of addresses and CIDRs, IPv4 and IPv6. Contains
// costs one map lookup per distinct prefix length in the set and allocates
// nothing, so lists of thousands of entries stay cheap.
type IPSet struct {
	bits4, bits6 []int // distinct prefix lengths, longest first
	set          map[netip.Prefix]struct{}
	n            int
}

// ParseIPSet parses addresses ("192.0.2.1", "2001:db8::1") and CIDRs
// ("10.0.0.0/8"). IPv4-mapped IPv6 entries are unmapped. Every bad entry is
// reported.
func ParseIPSet(entries []string) (*IPSet, error) {
	s := &IPSet{set: make(map[netip.Prefix]struct{}, len(entries))}
	var bad []string
	for _, e := range entries {
		p, err := parsePrefix(e)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q", e))
			continue
		}
		s.add(p)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("invalid address or CIDR: %s", strings.Join(bad, ", "))
	}
	return s, nil
}

func parsePrefix(e string) (netip.Prefix, error) {
	e = strings.TrimSpace(e)
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return p, err
		}
		a := p.Addr()
		if a.Is4In6() && p.Bits() >= 96 {
			return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), nil
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(e)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (s *IPSet) add(p netip.Prefix) {
	if _, ok := s.set[p]; ok {
		return
	}
	s.set[p] = struct{}{}
	s.n++
	bits := &s.bits6
	if p.Addr().Is4() {
		bits = &s.bits4
	}
	if !slices.Contains(*bits, p.Bits()) {
		*bits = append(*bits, p.Bits())
		slices.SortFunc(*bits, func(a, b int) int { return b - a })
	}
}

// Len returns the number of entries.
func (s *IPSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Contains reports whether ip is in the set.
func (s *IPSet) Contains(ip netip.Addr) bool {
	if s == nil || s.n == 0 {
		return false
	}
	ip = ip.Unmap().WithZone("")
	bits := s.bits6
	if ip.Is4() {
		bits = s.bits4
	}
	for _, b := range bits {
		p, err := ip.Prefix(b)
		if err != nil {
			continue
		}
		if _, ok := s.set[p]; ok {
			return true
		}
	}
	return false
}

// ContainsAll reports whether the set contains every address (0.0.0.0/0 or ::/0).
func (s *IPSet) ContainsAll() bool {
	if s == nil {
		return false
	}
	_, v4 := s.set[netip.MustParsePrefix("0.0.0.0/0")]
	_, v6 := s.set[netip.MustParsePrefix("::/0")]
	return v4 || v6
}
