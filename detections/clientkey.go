package detections

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultIPv6Prefix groups IPv6 clients by /64: one subscriber usually gets a
// whole /64, so keying on the full address would let one client rotate
// through 2^64 identities.
const DefaultIPv6Prefix = 64

// ClientKey returns the per-client key used for every shared counter and
// the blocklist: the IPv4 address, or the IPv6 address masked to v6Prefix
// bits in CIDR form ("2001:db8:1:2::/64"). IPv4-mapped IPv6 addresses are
// unmapped first. An invalid address returns "invalid".
func ClientKey(ip netip.Addr, v6Prefix int) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.Is4():
		return ip.String()
	case v6Prefix <= 0 || v6Prefix >= 128:
		return ip.WithZone("").String()
	}
	p, err := ip.WithZone("").Prefix(v6Prefix)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

// ParseClientKey parses a client key or a bare address/CIDR given by an
// operator, returning the prefix it covers (a /32 or /128 for one address).
func ParseClientKey(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("parsing %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parsing %q: %w", s, err)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}
