package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/tlsconf"
	"github.com/rampartgw/rampart/tlsfp"
)

// TLSOptions are the gateway's TLS settings beyond the listener's (the
// rest of the tls section is tlsconf.Config).
type TLSOptions struct {
	// ForwardHeader, when set, passes the client's JA4 to the upstream in
	// this request header (a client-sent one is replaced).
	ForwardHeader string `yaml:"forward_fingerprint_header"`
	// Headers names the request headers a trusted proxy that terminated TLS
	// sets with what it saw (TLS facts with source "header"). Empty: none
	// are read.
	Headers TLSHeaders `yaml:"headers"`
}

// TLSHeaders are header names for TLS facts set by a trusted proxy.
type TLSHeaders struct {
	Version    string `yaml:"version"`     // e.g. TLSv1.3 or 1.3
	Cipher     string `yaml:"cipher"`      // an IANA or OpenSSL suite name
	ServerName string `yaml:"server_name"` // the SNI
	// JA4 carries the client's JA4 fingerprint.
	JA4 string `yaml:"ja4"`
	JA3 string `yaml:"ja3"` // the MD5 form
}

func (h TLSHeaders) set() bool {
	return h.Version != "" || h.Cipher != "" || h.ServerName != "" || h.JA4 != "" || h.JA3 != ""
}

// tlsKey carries a connection's TLS facts into every request's context.
type tlsKey struct{}

// connContext is the server's ConnContext: the TLS facts of a connection
// are converted once, when it is accepted, and every request on it reads
// the same pointer.
func (g *Gateway) connContext(ctx context.Context, c net.Conn) context.Context {
	if ec, ok := c.(*errorConn); ok {
		c = ec.Conn
	}
	f := tlsconf.FactsFromConn(c)
	if f == nil || f.Source == "" {
		return ctx
	}
	t := &detections.TLS{Source: string(f.Source), Version: f.Version, CipherSuite: f.CipherSuite, CipherName: f.CipherName,
		ServerName: f.ServerName, ALPN: f.ALPN, Resumed: f.Resumed, Fingerprint: f.Fingerprint}
	return context.WithValue(ctx, tlsKey{}, t)
}

// requestTLS returns the request's TLS facts: the connection's, or those a
// trusted proxy put in headers (into dst, no allocation).
func (g *Gateway) requestTLS(req *http.Request, trusted bool, dst *detections.TLS) *detections.TLS {
	if t, ok := req.Context().Value(tlsKey{}).(*detections.TLS); ok {
		return t
	}
	h := &g.cfg.TLS.Headers
	if !trusted || !h.set() {
		return nil
	}
	*dst = detections.TLS{Source: string(tlsconf.SourceHeader)}
	found := false
	if h.Version != "" {
		if v := req.Header.Get(h.Version); v != "" {
			dst.Version, found = tlsconf.VersionFromName(v), true
			if dst.Version == 0 {
				dst.Version = parseVersionName(v) // "1.3", "tls1.2"
			}
		}
	}
	if h.Cipher != "" {
		if v := req.Header.Get(h.Cipher); v != "" {
			dst.CipherName, dst.CipherSuite, found = v, tlsconf.CipherFromName(v), true
		}
	}
	if h.ServerName != "" {
		if v := req.Header.Get(h.ServerName); v != "" {
			dst.ServerName, found = v, true
		}
	}
	if h.JA4 != "" {
		if v := req.Header.Get(h.JA4); v != "" {
			dst.Fingerprint.JA4, found = v, true
		}
	}
	if h.JA3 != "" {
		if v := req.Header.Get(h.JA3); v != "" {
			dst.Fingerprint.JA3Hash, found = v, true
		}
	}
	if !found {
		return nil
	}
	return dst
}

// parseVersionName reads "TLSv1.3", "1.3", "tls1.2"... (0 when unknown).
func parseVersionName(s string) uint16 {
	for len(s) > 0 && (s[0] < '0' || s[0] > '9') {
		s = s[1:]
	}
	v, _ := detections.ParseTLSVersion(s)
	return v
}

// ObserveHandshake records one TLS handshake (the listener's hook):
// rampart_tls_handshakes_total{result,version}, the fingerprint's count in
// the bounded top list, and a log line for a refused one.
func (g *Gateway) ObserveHandshake(f tlsconf.Facts, err error) {
	g.metrics.tlsHandshakes.WithLabelValues(f.Result, f.VersionLabel()).Inc()
	if f.HasFingerprint() {
		g.fingerprints.add(f.Fingerprint.JA4, f.Fingerprint.JA3NHash, f.Result != tlsconf.ResultOK)
	}
	if err == nil {
		return
	}
	attrs := []slog.Attr{slog.String("result", f.Result), slog.String("tls_version", f.VersionLabel()),
		slog.String("client_ip", f.ClientAddr.Addr().String()), slog.String("error", err.Error())}
	if f.HasFingerprint() {
		attrs = append(attrs, slog.String("ja4", f.Fingerprint.JA4), slog.String("ja3", f.Fingerprint.JA3Hash),
			slog.String("weak", f.Fingerprint.Weak.String()), slog.String("offered_max", tlsfp.VersionLabel(f.Fingerprint.MaxVersion)))
	}
	level := slog.LevelInfo
	if f.Result == tlsconf.ReasonTimeout || f.Result == tlsconf.ReasonClientClosed || f.Result == tlsconf.ReasonNotTLS {
		level = slog.LevelDebug // noise of the internet, counted in the metric
	}
	g.log.LogAttrs(context.Background(), level, "tls_handshake_refused", attrs...)
}

// FingerprintCount is one entry of the fingerprint top list.
type FingerprintCount struct {
	JA4      string `json:"ja4"`
	JA3N     string `json:"ja3n,omitempty"`
	Count    int64  `json:"count"`
	Refused  int64  `json:"refused"`
	Estimate bool   `json:"estimate,omitempty"` // may include counts of evicted fingerprints
}

// TopFingerprints returns the n most frequent fingerprints this replica's
// listener saw (a bounded space-saving summary; no fingerprint is ever a
// metric label).
func (g *Gateway) TopFingerprints(n int) []FingerprintCount { return g.fingerprints.top(n) }

// topK is a space-saving summary of the most frequent keys: at most k are
// kept; a new key replaces the least counted one and inherits its count
// (so counts are upper bounds, marked as estimates).
type topK struct {
	mu sync.Mutex
	k  int
	m  map[string]*FingerprintCount
}

func newTopK(k int) *topK { return &topK{k: k, m: map[string]*FingerprintCount{}} }

func (t *topK) add(ja4, ja3n string, refused bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[ja4]
	if !ok {
		if len(t.m) >= t.k {
			var min *FingerprintCount
			for _, c := range t.m {
				if min == nil || c.Count < min.Count {
					min = c
				}
			}
			delete(t.m, min.JA4)
			e = &FingerprintCount{JA4: ja4, Count: min.Count, Estimate: true}
		} else {
			e = &FingerprintCount{JA4: ja4}
		}
		t.m[ja4] = e
	}
	e.JA3N = ja3n
	e.Count++
	if refused {
		e.Refused++
	}
}

func (t *topK) top(n int) []FingerprintCount {
	t.mu.Lock()
	out := make([]FingerprintCount, 0, len(t.m))
	for _, c := range t.m {
		out = append(out, *c)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].JA4 < out[j].JA4
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
