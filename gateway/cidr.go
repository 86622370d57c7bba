package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/rampartgw/rampart/detections"
)

// cidrSet is the replica's copy of the operators' range bans. They are few,
// so a linear scan that allocates nothing is the fastest lookup.
type cidrSet struct {
	entries []cidrEntry
}

type cidrEntry struct {
	prefix netip.Prefix
	until  time.Time
	reason string
}

func (s *cidrSet) match(ip netip.Addr, now time.Time) (cidrEntry, bool) {
	if s == nil {
		return cidrEntry{}, false
	}
	for _, e := range s.entries {
		if e.prefix.Contains(ip) && now.Before(e.until) {
			return e, true
		}
	}
	return cidrEntry{}, false
}

// reloadCIDRBans replaces the local copy of range bans from the store.
func (g *Gateway) reloadCIDRBans(ctx context.Context) {
	bans, err := g.store.ListCIDRBans(ctx)
	if err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "cidr_bans_reload_failed", slog.String("error", err.Error()))
		return
	}
	s := &cidrSet{}
	for _, b := range bans {
		p, err := detections.ParseClientKey(b.Client)
		if err != nil {
			continue
		}
		s.entries = append(s.entries, cidrEntry{prefix: p, until: b.Until, reason: b.Reason})
	}
	if len(s.entries) == 0 {
		s = nil
	}
	g.cidrs.Store(s)
}

// syncCIDRBans reloads range bans when notified and every interval, so a
// lost notification costs at most one interval.
func (g *Gateway) syncCIDRBans(ctx context.Context, every time.Duration) {
	g.reloadCIDRBans(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.cidrChanged:
		}
		g.reloadCIDRBans(ctx)
	}
}
