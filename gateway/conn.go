package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
)

// net/http answers some requests itself, before any handler runs: a
// malformed request line or header (400), headers over MaxHeaderBytes
// (431), an unsupported transfer encoding (501). It writes them as plain
// text straight to the connection, and the gateway would neither count nor
// log them. The listener wrapper below recognises those answers — exactly
// the form net/http writes them in, on a connection with no handler
// running — and replaces them with the gateway's JSON answer, counted
// under rampart_requests_total like every other refusal.

// plainErrorHeaders is what net/http writes after the status line of its
// own error answers (server.go, conn.serve).
var plainErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

func (g *Gateway) wrapListener(l net.Listener) net.Listener {
	return &errorListener{Listener: l, g: g}
}

type errorListener struct {
	net.Listener
	g *Gateway
}

func (l *errorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); ok {
		// net/http must see the *tls.Conn itself (r.TLS, HTTP/2), and its
		// own answers go out encrypted: they cannot be read here.
		return c, nil
	}
	return &errorConn{Conn: c, g: l.g}, nil
}

// errorConn rewrites net/http's plain-text refusals.
type errorConn struct {
	net.Conn
	g *Gateway
	// rewritten is set once a refusal was replaced: net/http closes the
	// connection after it.
	rewritten atomic.Bool
}

// NetConn returns the wrapped connection (TLS and PROXY-protocol layers
// look through it).
func (c *errorConn) NetConn() net.Conn { return c.Conn }

func (c *errorConn) Write(p []byte) (int, error) {
	status, ok := plainRefusal(p)
	if !ok || c.rewritten.Load() {
		return c.Conn.Write(p)
	}
	c.rewritten.Store(true)
	res := resultBadRequest
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		res = resultHeaderTooLarge
	case http.StatusRequestTimeout:
		res = resultTimeout
	}
	c.g.metrics.byResult[res].Inc()
	c.g.log.LogAttrs(context.Background(), slog.LevelInfo, "request_refused_by_server",
		slog.Int("status", status), slog.String("peer", c.RemoteAddr().String()))
	body := errorBody(status)
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(status))
	b.WriteString("\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteString("\r\n\r\n")
	b.Write(body)
	if _, err := c.Conn.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// plainRefusal reports whether p is one of net/http's own error answers:
// "HTTP/1.1 NNN ..." followed at the end of the status line by exactly the
// plain-text headers it writes. A response from a handler always carries a
// Date header and lists headers in sorted order, so it never matches.
func plainRefusal(p []byte) (int, bool) {
	const prefix = "HTTP/1.1 "
	if len(p) < len(prefix)+3 || string(p[:len(prefix)]) != prefix {
		return 0, false
	}
	eol := bytes.Index(p, []byte("\r\n"))
	if eol < 0 || !bytes.HasPrefix(p[eol:], plainErrorHeaders) {
		return 0, false
	}
	status, err := strconv.Atoi(string(p[len(prefix) : len(prefix)+3]))
	if err != nil || status < 400 || status > 599 {
		return 0, false
	}
	return status, true
}
