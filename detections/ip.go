package detections

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

const ipName = "ip"

// Reasons reported by the ip detection.
const (
	ReasonIPDenied     = "ip_denied"
	ReasonIPNotAllowed = "ip_not_allowed"
)

// IPConfig configures the ip detection.
//
// Precedence: exempt > deny > allow. An exempt client is never blocked by
// any detection (the gateway skips the chain for it); a denied address is
// blocked even when an allow entry also covers it; when Allow is non-empty
// only addresses in it pass, as in the prototype.
type IPConfig struct {
	Allow  []string `yaml:"allow"`
	Deny   []string `yaml:"deny"`
	Exempt []string `yaml:"exempt"`
}

// IP allows and denies clients by address and CIDR.
type IP struct {
	allow, deny, exempt *IPSet
}

// NewIP parses the lists.
func NewIP(cfg IPConfig) (*IP, error) {
	var errs []error
	parse := func(name string, l []string) *IPSet {
		s, err := ParseIPSet(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("ip.%s: %w", name, err))
		}
		return s
	}
	d := &IP{allow: parse("allow", cfg.Allow), deny: parse("deny", cfg.Deny), exempt: parse("exempt", cfg.Exempt)}
	if d.exempt.ContainsAll() {
		errs = append(errs, errors.New("ip.exempt: 0.0.0.0/0 or ::/0 would exempt every client from every detection"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// Name returns "ip".
func (d *IP) Name() string { return ipName }

// Inspect blocks denied clients and, when an allow list is set, every client
// outside it.
func (d *IP) Inspect(_ context.Context, r *Request) (Verdict, error) {
	if d.deny.Contains(r.ClientIP) {
		return Block(ReasonIPDenied), nil
	}
	if d.allow.Len() > 0 && !d.allow.Contains(r.ClientIP) {
		return Block(ReasonIPNotAllowed), nil
	}
	return Allow, nil
}

// Exempt reports whether no detection may ever block ip.
func (d *IP) Exempt(ip netip.Addr) bool { return d != nil && d.exempt.Contains(ip) }

// Protected reports whether ip must never be added to the blocklist: exempt
// and allow-listed clients.
func (d *IP) Protected(ip netip.Addr) bool {
	return d != nil && (d.exempt.Contains(ip) || d.allow.Contains(ip))
}

var _ Detection = (*IP)(nil)
