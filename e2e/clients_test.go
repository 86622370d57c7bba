//go:build e2e || cluster

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// ipPool hands out distinct client addresses in 127.0.0.0/8. Linux routes
// the whole block to loopback, so a socket bound to 127.20.0.7 reaches every
// loopback listener and the peer sees 127.20.0.7. 127.0.0.1 is never handed
// out: it is the load balancer's address, the one trusted proxy.
type ipPool struct {
	mu   sync.Mutex
	next [4]byte
}

func newIPPool() *ipPool { return &ipPool{next: [4]byte{127, 20, 0, 0}} }

func (p *ipPool) get() netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		p.next[3]++
		if p.next[3] == 0 {
			p.next[2]++
			if p.next[2] == 0 {
				p.next[1]++
			}
		}
		if p.next[3] != 0 && p.next[3] != 255 {
			return netip.AddrFrom4(p.next)
		}
	}
}

func (p *ipPool) take(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = p.get()
	}
	return out
}

// client is an HTTP client whose connections come from one source address.
type client struct {
	ip netip.Addr
	hc *http.Client
}

func newClient(ip netip.Addr) *client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip.AsSlice()}, Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     5 * time.Second,
	}
	return &client{ip: ip, hc: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// result is one answer, or the error instead of one.
type result struct {
	status int
	header http.Header
	body   string
	err    error
	at     time.Time // when the answer arrived
}

// failed reports an answer that is neither the API's (200, 404) nor the
// gateway's refusal (403): a transport error or a 5xx means the request was
// lost on the way.
func (r result) failed() bool {
	return r.err != nil || (r.status != 200 && r.status != 403 && r.status != 404)
}

// banRefusal tells a refusal from the blocklist (Retry-After of minutes, no
// RateLimit fields) from a rate-limit refusal.
func (r result) banRefusal() bool {
	return r.status == 403 && r.header.Get("Ratelimit") == "" && r.header.Get("Retry-After") != ""
}

// refusalKind names what refused a 403: the blocklist (a ban), the rate
// limit (RateLimit fields), or a detection that blocks without a ban yet.
func refusalKind(r result) string {
	switch {
	case r.status != 403:
		return "not refused"
	case r.header.Get("Ratelimit") != "":
		return "rate limit, Retry-After " + r.header.Get("Retry-After") + "s"
	case r.header.Get("Retry-After") != "":
		return "ban, Retry-After " + r.header.Get("Retry-After") + "s"
	}
	return "detection block"
}

func (c *client) get(ctx context.Context, url string, hdr http.Header) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return result{err: err}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return result{err: err, at: time.Now()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return result{status: resp.StatusCode, header: resp.Header, body: string(body), err: err, at: time.Now()}
}
