package detections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/rampartgw/rampart/ipfeed"
)

const ipName = "ip"

// Reasons reported by the ip detection.
const (
	ReasonIPDenied     = "ip_denied"
	ReasonIPNotAllowed = "ip_not_allowed"
	// ReasonIPFeed: a subscribed blocklist lists the client; the rule is
	// "feed:<name>".
	ReasonIPFeed = "ip_feed"
)

// IPConfig configures the ip detection.
//
// Precedence: exempt (gateway policy, see gateway.Policy) > deny > allow >
// feeds. A denied address is blocked even when an allow entry also covers
// it; when Allow is non-empty only addresses in it pass, as in the
// prototype; an allow-listed address is never blocked by a feed.
type IPConfig struct {
	// Allow, when not empty, lets only these addresses and CIDRs pass; an
	// allow-listed client is never banned.
	Allow []string `yaml:"allow"`
	// Deny blocks these addresses and CIDRs.
	Deny []string `yaml:"deny"`
	// Feeds are public blocklists (files or HTTPS URLs) the fleet fetches
	// once per refresh and every replica matches (see package ipfeed).
	// The exempt list and the allow list win over a feed.
	ipfeed.Config `yaml:",inline"`
}

// IPDeps are what the ip detection's feeds share with the fleet: the
// lease that lets one replica fetch a feed, and the store of parsed sets.
// Zero: this process alone (in memory).
type IPDeps struct {
	Lease   ipfeed.Lease
	Store   ipfeed.SetStore
	Replica string
	Logger  *slog.Logger
}

// IP allows and denies clients by address and CIDR, and by the feeds.
type IP struct {
	allow, deny *IPSet
	feeds       *ipfeed.Manager // nil without feeds
	rules       []string        // "feed:<name>" by feed index
}

// NewIP parses the lists; feeds, if any, are kept in this process only.
func NewIP(cfg IPConfig) (*IP, error) { return NewIPWith(cfg, IPDeps{}) }

// NewIPWith parses the lists and sets up the feeds with deps. The feeds
// are empty until Sync or Run loads them.
func NewIPWith(cfg IPConfig, deps IPDeps) (*IP, error) {
	allow, err1 := ParseIPSet(cfg.Allow)
	if err1 != nil {
		err1 = fmt.Errorf("allow: %w", err1)
	}
	deny, err2 := ParseIPSet(cfg.Deny)
	if err2 != nil {
		err2 = fmt.Errorf("deny: %w", err2)
	}
	var err3 error
	d := &IP{allow: allow, deny: deny}
	if len(cfg.Feeds) > 0 {
		d.feeds, err3 = ipfeed.NewManager(cfg.Config, deps.Lease, deps.Store, ipfeed.Options{Replica: deps.Replica, Logger: deps.Logger})
		for _, f := range cfg.Feeds {
			d.rules = append(d.rules, "feed:"+f.Name)
		}
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return d, nil
}

// Sync loads every feed once (from the fleet's store, or by fetching it):
// the gateway calls it before a new policy serves.
func (d *IP) Sync(ctx context.Context) error {
	if d.feeds == nil {
		return nil
	}
	return d.feeds.Sync(ctx)
}

// Run keeps the feeds fresh until ctx ends (a detections.Runner).
func (d *IP) Run(ctx context.Context) error {
	if d.feeds == nil {
		return nil
	}
	return d.feeds.Run(ctx)
}

// Feeds returns the feeds' state on this replica (nil without feeds).
func (d *IP) Feeds() []ipfeed.Status {
	if d == nil || d.feeds == nil {
		return nil
	}
	return d.feeds.Status()
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
	if d.feeds != nil && !d.allow.Contains(r.ClientIP) {
		if hit, ok := d.feeds.Match(r.ClientIP); ok {
			v := Block(ReasonIPFeed)
			v.Rule = d.rules[hit.Index]
			if hit.Mode == ipfeed.ModeMonitor {
				v.Action = ActionMonitor
			}
			return v, nil
		}
	}
	return Allow, nil
}

// AllowListed reports whether ip is on the allow list: such clients are
// never added to the blocklist.
func (d *IP) AllowListed(ip netip.Addr) bool { return d != nil && d.allow.Contains(ip) }

var _ Detection = (*IP)(nil)
