package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// newProxy builds the one ReverseProxy and its one keep-alive Transport.
func (g *Gateway) newProxy() *httputil.ReverseProxy {
	tr := &http.Transport{
		Proxy: nil, // never route upstream traffic through HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   g.cfg.UpstreamDialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0, // no global cap; per host below
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: g.cfg.UpstreamTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bodies pass through byte for byte: no transparent gzip.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	return &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      tr,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		BufferPool:     &bufferPool{},
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// Transport returns the upstream transport (tests close idle connections).
func (g *Gateway) Transport() *http.Transport { return g.proxy.Transport.(*http.Transport) }

var (
	headerHTTP  = []string{"http"}
	headerHTTPS = []string{"https"}
)

// rewrite sets the upstream URL and the forwarding headers. In Rewrite
// mode the ReverseProxy has already removed X-Forwarded-* and hop-by-hop
// headers from the outbound request; the client's own claims survive only
// when its peer is a trusted proxy, and even then X-Forwarded-For carries
// the resolved client alone.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(g.upstream)
	if g.cfg.PreserveHost {
		pr.Out.Host = pr.In.Host
	}
	h := pr.Out.Header
	delete(h, "Forwarded")
	delete(h, "X-Real-Ip")
	ex, _ := pr.In.Context().Value(exchangeKey{}).(*exchange)
	if ex == nil {
		return
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
	host := pr.In.Host
	if ex.trusted {
		switch strings.ToLower(pr.In.Header.Get("X-Forwarded-Proto")) {
		case "https":
			proto = headerHTTPS
		case "http":
			proto = headerHTTP
		}
		if fh := pr.In.Header.Get("X-Forwarded-Host"); fh != "" && validRequestID(fh) {
			host = fh
		}
	}
	h["X-Forwarded-Proto"] = proto
	if host != "" {
		ex.hdr[1][0] = host
		h["X-Forwarded-Host"] = ex.hdr[1][:]
	}
	ex.hdr[2][0] = ex.r.ID
	h["X-Request-Id"] = ex.hdr[2][:]
}

// modifyResponse captures the upstream status and headers for observers.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	if ex, _ := resp.Request.Context().Value(exchangeKey{}).(*exchange); ex != nil {
		ex.status, ex.header = resp.StatusCode, resp.Header
	}
	return nil
}

// proxyError answers 502 when the upstream is unreachable and 504 when it is
// too slow; observers are not called.
func (g *Gateway) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if ex != nil {
		ex.upErr = err
	}
	if errors.Is(req.Context().Err(), context.Canceled) {
		// The client went away; nobody to answer.
		g.log.LogAttrs(req.Context(), slog.LevelDebug, "client_gone", slog.String("error", err.Error()))
		return
	}
	status, kind := http.StatusBadGateway, "unreachable"
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		status, kind = http.StatusGatewayTimeout, "timeout"
	}
	g.metrics.upstreamErrors.WithLabelValues(kind).Inc()
	g.metrics.requests.WithLabelValues(resultUpstreamError).Inc()
	attrs := []slog.Attr{slog.String("error", err.Error()), slog.Int("status", status), slog.String("kind", kind)}
	if ex != nil {
		attrs = append(attrs, slog.String("request_id", ex.r.ID), slog.String("client", ex.r.ClientKey),
			slog.String("method", ex.r.Method), slog.String("route", route(ex.r.Path)))
	}
	g.log.LogAttrs(req.Context(), slog.LevelWarn, "upstream_error", attrs...)
	writeError(w, status)
}

// serveProxy forwards the request upstream. The exchange rides in the
// request context: the one fair use of a context value, carrying the
// resolved client across the http.Handler boundary.
func (g *Gateway) serveProxy(c echo.Context, ex *exchange) {
	req := c.Request()
	ctx := context.WithValue(req.Context(), exchangeKey{}, ex)
	start := time.Now()
	g.proxy.ServeHTTP(c.Response(), req.WithContext(ctx))
	ex.upLatency = time.Since(start)
	g.metrics.upstreamLatency.Observe(ex.upLatency.Seconds())
}

// bufferPool recycles the proxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
