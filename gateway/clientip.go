package gateway

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// clientIPResolver finds the client's address under the configured trust
// policy. With no trusted proxies the socket peer is the client. When the
// peer is a trusted proxy, X-Forwarded-For is read from the right: the
// right-most address that is not itself a trusted proxy is the client. The
// left-most entry is whatever the client chose to send and is never trusted.
type clientIPResolver struct {
	trusted *detections.IPSet
	header  string // canonical
	xff     bool
}

func newClientIPResolver(trusted *detections.IPSet, header string) *clientIPResolver {
	h := http.CanonicalHeaderKey(header)
	return &clientIPResolver{trusted: trusted, header: h, xff: h == "X-Forwarded-For"}
}

// peerAddr parses http.Request.RemoteAddr ("ip:port" or "[v6]:port").
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// resolve returns the client address and whether the peer was a trusted
// proxy (so its forwarding headers may be kept).
func (c *clientIPResolver) resolve(r *http.Request) (netip.Addr, bool) {
	peer := peerAddr(r.RemoteAddr)
	if c.trusted.Len() == 0 || !peer.IsValid() || !c.trusted.Contains(peer) {
		return peer, false
	}
	values := r.Header[c.header]
	if len(values) == 0 {
		return peer, true
	}
	if !c.xff {
		if a, ok := parseForwardedAddr(values[len(values)-1]); ok {
			return a, true
		}
		return peer, true
	}
	return c.rightmostUntrusted(values, peer), true
}

// rightmostUntrusted walks the X-Forwarded-For lines from the right. Every
// address up to the first untrusted one was appended by a proxy we trust.
// An unparsable entry ends the walk: we cannot know who wrote what lies to
// its left, so the last trusted hop stands in for the client.
func (c *clientIPResolver) rightmostUntrusted(values []string, peer netip.Addr) netip.Addr {
	last := peer
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var item string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				item, v = v[j+1:], v[:j]
			} else {
				item, v = v, ""
			}
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			a, ok := parseForwardedAddr(item)
			if !ok {
				return last
			}
			if !c.trusted.Contains(a) {
				return a
			}
			last = a
		}
	}
	return last
}

// parseForwardedAddr accepts "192.0.2.1", "192.0.2.1:1234", "2001:db8::1",
// "[2001:db8::1]" and "[2001:db8::1]:1234".
func parseForwardedAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}
