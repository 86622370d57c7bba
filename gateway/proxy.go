package gateway

import (
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"
)

// dialKeepAlive is the upstream connections' TCP keep-alive period.
const dialKeepAlive = 30 * time.Second

// newTransport builds the gateway's keep-alive transport to upstreams.
func (g *Gateway) newTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // never route upstream traffic through HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   g.cfg.Timeouts.UpstreamDial,
			KeepAlive: dialKeepAlive,
		}).DialContext,
		MaxIdleConns:          0, // no global cap; per host below
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: g.cfg.Timeouts.Upstream,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bodies pass through byte for byte: no transparent gzip.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
}

// baseTransport is what upstream pools send through: the gateway's
// transport, or the one Options gave (in-process replays).
func (g *Gateway) baseTransport() http.RoundTripper {
	if g.custom != nil {
		return g.custom
	}
	return g.transport
}

// newProxy builds a route's ReverseProxy over its pool: the template each
// exchange copies and gives its own hooks (see exchange.proxyUpstream).
func (g *Gateway) newProxy(tr http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: sharedBufferPool,
		ErrorLog:   g.proxyLog,
	}
}

// CloseIdleConnections closes the upstream transports' idle connections.
func (g *Gateway) CloseIdleConnections() {
	if g.transport != nil {
		g.transport.CloseIdleConnections()
	}
	g.pools.closeIdle()
}

var (
	headerHTTP  = []string{"http"}
	headerHTTPS = []string{"https"}
)

// rewrite sets the upstream URL and the forwarding headers. The
// request-target goes upstream exactly as received: the ReverseProxy drops
// query pairs its own parser cannot read (`a=1;b=2`, `q=%zz`), which would
// make the gateway inspect one query and the upstream see another, so the
// raw query is put back (payload inspection reads every pair, both ways an
// upstream may split it). Client-identity headers (X-Forwarded-*,
// Forwarded, X-Real-IP, True-Client-IP, CF-Connecting-IP and their
// underscore spellings, see identityHeader) never pass through from the
// client: the upstream gets X-Forwarded-For and X-Real-IP set to the
// resolved client, and a trusted proxy's configured client-IP header only.
func (ex *exchange) rewrite(pr *httputil.ProxyRequest) {
	g := ex.g
	if ex.route == nil {
		panic("gateway: proxying a request without its route") // the flow never does
	}
	rt := ex.route
	if rt.strip {
		pr.Out.URL.Path, pr.Out.URL.RawPath = forwardPath(ex.r.RawPath, ex.clean, rt.prefix) // RawPath: EscapedPath, once
	}
	pr.SetURL(rt.target)
	pr.Out.URL.RawQuery = joinQuery(rt.target.RawQuery, pr.In.URL.RawQuery)
	pr.Out.URL.ForceQuery = pr.In.URL.ForceQuery
	if g.cfg.PreserveHost {
		pr.Out.Host = pr.In.Host
	}
	h := pr.Out.Header
	for name := range h {
		if identityHeader(name) && !(ex.trusted && name == g.ips.header && !g.ips.xff) {
			delete(h, name)
		}
	}
	if rt.strip {
		h["X-Forwarded-Prefix"] = []string{rt.prefix}
	}
	if ex.r.ClientIP.IsValid() {
		if ex.r.ClientIP.Is4() {
			ex.hdr[0][0] = ex.r.ClientKey // the same string, already made
		} else {
			ex.hdr[0][0] = ex.r.ClientIP.String()
		}
		h["X-Forwarded-For"] = ex.hdr[0][:]
		h["X-Real-Ip"] = ex.hdr[0][:]
	}
	proto := headerHTTP
	if pr.In.TLS != nil {
		proto = headerHTTPS
	}
	// X-Forwarded-Host is the Host this gateway received (a load balancer
	// forwards it unchanged): a client-supplied one is never passed on, even
	// through a trusted proxy that does not strip it. A trusted proxy's
	// X-Forwarded-Proto is believed: it knows whether the client used TLS.
	host := pr.In.Host
	if ex.trusted {
		switch strings.ToLower(pr.In.Header.Get("X-Forwarded-Proto")) {
		case "https":
			proto = headerHTTPS
		case "http":
			proto = headerHTTP
		}
	}
	h["X-Forwarded-Proto"] = proto
	if host != "" {
		ex.hdr[1][0] = host
		h["X-Forwarded-Host"] = ex.hdr[1][:]
	}
	ex.hdr[2][0] = ex.r.ID
	h["X-Request-Id"] = ex.hdr[2][:]
	if fh := g.tlsForward; fh != "" {
		delete(h, fh)
		if t := ex.r.TLS; t != nil && t.Fingerprint.JA4 != "" {
			h[fh] = []string{t.Fingerprint.JA4}
		}
	}
}

// joinQuery is SetURL's query joining on the raw query.
func joinQuery(target, in string) string {
	if target == "" || in == "" {
		return target + in
	}
	return target + "&" + in
}

// identityHeaders are the headers that name the client or the original
// request to an upstream. Servers that map headers to CGI-style variables
// read X_Forwarded_For like X-Forwarded-For, so names are compared with
// '_' and '-' alike, case-insensitively.
var identityHeaders = [...]string{
	"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
	"x-forwarded-server", "x-forwarded-scheme", "x-forwarded-ssl", "x-real-ip", "true-client-ip",
	"x-forwarded-prefix", "cf-connecting-ip", "cf-connecting-ipv6", "x-client-ip", "x-cluster-client-ip", "x-originating-ip",
	"client-ip", "fastly-client-ip", "x-remote-ip", "x-remote-addr", "x-envoy-external-address",
	"x-original-forwarded-for", "x-proxyuser-ip", "wl-proxy-client-ip", "x-appengine-user-ip",
	"akamai-client-ip", "x-azure-clientip", "x-azure-socketip",
}

// identityHeader reports whether name is one of identityHeaders, spelt
// with any case and with '_' or '-'. It allocates nothing.
func identityHeader(name string) bool {
	for _, h := range identityHeaders {
		if len(h) == len(name) && sameHeaderName(h, name) {
			return true
		}
	}
	return false
}

func sameHeaderName(lowerDash, name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != lowerDash[i] {
			return false
		}
	}
	return true
}

// modifyResponse captures the upstream status and headers for observers.
func (ex *exchange) modifyResponse(resp *http.Response) error {
	ex.status, ex.header = resp.StatusCode, resp.Header
	return nil
}

// proxyError records the transport's error; the exchange answers it (502
// when the upstream is unreachable, 504 when it is too slow) and observers
// are not called.
func (ex *exchange) proxyError(_ http.ResponseWriter, _ *http.Request, err error) {
	ex.upErr = err
}

// bufferPool recycles the proxies' 32 KiB copy buffers (one for every
// route's proxy).
type bufferPool struct{ p sync.Pool }

var sharedBufferPool = &bufferPool{}

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
