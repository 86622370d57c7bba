package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"syscall"

	"github.com/rampartgw/rampart/tlsfp"
)

// Source says where a connection's TLS facts come from.
type Source string

// Sources of TLS facts. An empty Source means no TLS facts (plain HTTP with
// no PROXY SSL information).
const (
	SourceSelf          Source = "self"           // this process terminated TLS
	SourceProxyProtocol Source = "proxy_protocol" // PP2_TYPE_SSL TLVs from a trusted load balancer
	SourceHeader        Source = "header"         // trusted request headers (set by the gateway, not here)
)

// Handshake results passed in Facts.Result: "ok" or why the handshake was
// refused. They are stable metric label values.
const (
	ResultOK                 = "ok"
	ReasonLegacyVersion      = "legacy_version"      // the client's highest version is below min_version
	ReasonUnsupportedVersion = "unsupported_version" // no common version for another reason
	ReasonNoSharedCipher     = "no_shared_cipher"    // e.g. only weak suites offered
	ReasonNoSharedGroup      = "no_shared_group"     // no common key-exchange group or point format
	ReasonBadCertificate     = "bad_certificate"     // the client rejected our certificate (or sent a bad one)
	ReasonNotTLS             = "not_tls"             // the first bytes were not a TLS handshake
	ReasonTimeout            = "timeout"             // handshake_timeout (or proxy_header_timeout) passed
	ReasonClientClosed       = "client_closed"       // the client went away mid-handshake
	ReasonProxyHeader        = "proxy_header"        // a trusted peer sent a missing or invalid PROXY header
	ReasonHandshakeError     = "handshake_error"     // anything else
)

// Facts are what one connection tells about its TLS, computed once and
// shared by every request on the connection (read-only after Accept).
type Facts struct {
	// Source says who produced the TLS fields below.
	Source Source
	// Version and CipherSuite are the negotiated values (0 when refused or
	// unknown). CipherName is crypto/tls's name, or the load balancer's.
	Version     uint16
	CipherSuite uint16
	CipherName  string
	// ServerName is the SNI the client sent (or PP2_TYPE_AUTHORITY).
	ServerName string
	// ALPN is the negotiated protocol ("h2", "http/1.1", or "").
	ALPN string
	// Resumed reports a resumed session (session ticket or PSK).
	Resumed bool
	// Curve is the key-exchange group (0 when resumed without one).
	Curve tls.CurveID
	// Fingerprint is computed from the ClientHello when this process
	// terminates TLS, for refused handshakes too; zero otherwise.
	Fingerprint tlsfp.Fingerprint
	// Result is ResultOK or a Reason constant.
	Result string
	// ClientAddr is the client: the PROXY header's source when a trusted
	// peer sent one, else PeerAddr.
	ClientAddr netip.AddrPort
	// PeerAddr is the TCP peer (the load balancer behind PROXY protocol).
	PeerAddr netip.AddrPort
	// ProxyProtocol reports that ClientAddr came from a PROXY header.
	ProxyProtocol bool
}

// HasFingerprint reports whether a ClientHello was fingerprinted.
func (f *Facts) HasFingerprint() bool { return f.Fingerprint.JA4 != "" }

// VersionLabel is a metric label: the negotiated version, else the highest
// one the client offered (so refused clients are counted by what they
// wanted), else "unknown".
func (f *Facts) VersionLabel() string {
	if f.Version != 0 {
		return tlsfp.VersionLabel(f.Version)
	}
	if f.HasFingerprint() {
		return tlsfp.VersionLabel(f.Fingerprint.MaxVersion)
	}
	return "unknown"
}

// FactsFromConn returns the Facts of a connection from Listen (the
// *tls.Conn or the *Conn), nil for any other connection.
func FactsFromConn(c net.Conn) *Facts {
	switch c := c.(type) {
	case *Conn:
		return &c.facts
	case *tls.Conn:
		if w, ok := c.NetConn().(*Conn); ok {
			return &w.facts
		}
	}
	return nil
}

type factsKey struct{}

// ConnContext is an http.Server.ConnContext: it puts the connection's Facts
// in the context of every request on it, so FactsFrom is a lookup with no
// allocation.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if f := FactsFromConn(c); f != nil {
		return context.WithValue(ctx, factsKey{}, f)
	}
	return ctx
}

// FactsFrom returns the Facts put in ctx by ConnContext, nil if none.
func FactsFrom(ctx context.Context) *Facts {
	f, _ := ctx.Value(factsKey{}).(*Facts)
	return f
}

// handshakeResult maps a handshake error to a Result. crypto/tls has no
// typed errors for version, cipher or group mismatches, so those are
// recognised by the messages of handshake_server*.go (Go 1.26); the
// listener tests drive each case with real clients and catch a change.
func handshakeResult(err error, f *Facts, minVersion uint16) string {
	if err == nil {
		return ResultOK
	}
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) {
		return ReasonNotTLS
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return ReasonClientClosed
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		// The alert type is unexported but is a uint8 alert code.
		if v := reflect.ValueOf(oe.Err); v.Kind() == reflect.Uint8 {
			switch v.Uint() {
			case 42, 43, 44, 45, 46, 48: // bad/unsupported/revoked/expired/unknown certificate, unknown_ca
				return ReasonBadCertificate
			case 70: // protocol_version
				return versionReason(f, minVersion)
			case 71: // insufficient_security
				return ReasonNoSharedCipher
			}
		}
		return ReasonHandshakeError
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "version older than"):
		return versionReason(f, minVersion)
	case strings.Contains(msg, "no cipher suite supported by both"):
		return ReasonNoSharedCipher
	case strings.Contains(msg, "no key exchanges supported"), strings.Contains(msg, "no ECDHE curve"),
		strings.Contains(msg, "incompatible point formats"):
		return ReasonNoSharedGroup
	case strings.Contains(msg, "certificate"):
		return ReasonBadCertificate
	}
	return ReasonHandshakeError
}

func versionReason(f *Facts, minVersion uint16) string {
	if f.HasFingerprint() && f.Fingerprint.MaxVersion < minVersion {
		return ReasonLegacyVersion
	}
	return ReasonUnsupportedVersion
}
