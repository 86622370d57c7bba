package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/rampartgw/rampart/tlsfp"
)

// Options configures Listen.
type Options struct {
	// TLS terminates TLS with this config (cloned; see Listener.TLSConfig).
	// Nil means a load balancer terminated TLS: connections are served as
	// they come, with TLS facts from PROXY v2 SSL TLVs when present.
	TLS *tls.Config
	// ProxyProtocol and TrustedProxies: see ProxyMode.
	ProxyProtocol  ProxyMode
	TrustedProxies []netip.Prefix
	// ProxyHeaderTimeout bounds the wait for a PROXY header (default 5s).
	ProxyHeaderTimeout time.Duration
	// HandshakeTimeout bounds a TLS handshake (default 10s).
	HandshakeTimeout time.Duration
	// OnHandshake, if set, is called once per TLS handshake, accepted or
	// refused, and once per refused PROXY header, with Facts.Result set and
	// the error (nil when ok). It runs on the handshake goroutine before the
	// connection is handed to Accept: keep it short (count, log).
	OnHandshake func(Facts, error)
}

// Defaults of Options.
const (
	defaultProxyHeaderTimeout = 5 * time.Second
	defaultHandshakeTimeout   = 10 * time.Second
)

// Listener wraps a net.Listener. Each accepted connection gets its PROXY
// header read (trusted peers only) and its TLS handshake done on its own
// goroutine, so a slow client never blocks Accept; Accept returns only
// connections whose handshake succeeded (a *tls.Conn over a *Conn, or a
// *Conn without TLS).
type Listener struct {
	inner      net.Listener
	opts       Options
	tlsConfig  *tls.Config
	userHook   func(*tls.ClientHelloInfo) (*tls.Config, error)
	minVersion uint16

	ready     chan net.Conn
	work      chan net.Conn // to an idle handshake worker
	done      chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error // permanent accept error, returned by Accept
}

// Conn is a connection accepted by Listener, carrying its Facts. It wraps
// the TCP connection (or the PROXY protocol connection reading past the
// header); with TLS, Accept returns a *tls.Conn over it.
type Conn struct {
	net.Conn
	facts Facts
}

// Facts returns the connection's facts.
func (c *Conn) Facts() *Facts { return &c.facts }

// Listen wraps inner. It fails on options that would trust anyone.
func Listen(inner net.Listener, opts Options) (*Listener, error) {
	if opts.ProxyProtocol != ProxyOff && len(opts.TrustedProxies) == 0 {
		return nil, errors.New("tls: PROXY protocol needs trusted proxy CIDRs")
	}
	for _, p := range opts.TrustedProxies {
		if p.Bits() == 0 {
			return nil, fmt.Errorf("tls: trusted proxy CIDR %v trusts every address", p)
		}
	}
	if opts.ProxyHeaderTimeout <= 0 {
		opts.ProxyHeaderTimeout = defaultProxyHeaderTimeout
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = defaultHandshakeTimeout
	}
	l := &Listener{
		inner: inner,
		opts:  opts,
		ready: make(chan net.Conn),
		work:  make(chan net.Conn),
		done:  make(chan struct{}),
	}
	if opts.TLS != nil {
		l.tlsConfig = opts.TLS.Clone()
		l.userHook = opts.TLS.GetConfigForClient
		l.tlsConfig.GetConfigForClient = l.getConfigForClient
		l.minVersion = opts.TLS.MinVersion
		if l.minVersion == 0 {
			l.minVersion = tls.VersionTLS12 // crypto/tls's server default
		}
	}
	go l.serve()
	return l, nil
}

// TLSConfig returns the config handshakes use (nil without TLS). Attach it
// to TicketKeys; changing other fields after Listen is not supported.
func (l *Listener) TLSConfig() *tls.Config { return l.tlsConfig }

// Accept returns the next connection whose PROXY header and TLS handshake
// succeeded.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close closes the inner listener; handshakes in progress finish or time
// out, and their connections are closed instead of returned.
func (l *Listener) Close() error {
	err := l.inner.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// serve accepts until the inner listener fails for good, backing off on
// temporary errors (EMFILE...) like net/http does.
func (l *Listener) serve() {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() && !errors.Is(err, net.ErrClosed) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.errMu.Lock()
			if l.err == nil && !errors.Is(err, net.ErrClosed) {
				l.err = err
			}
			l.errMu.Unlock()
			l.closeOnce.Do(func() { close(l.done) })
			return
		}
		delay = 0
		select {
		case l.work <- c:
		default:
			go l.worker(c)
		}
	}
}

// workerIdle is how long an idle handshake worker waits for the next
// connection before exiting.
const workerIdle = 10 * time.Second

// worker handles connections until it has been idle for workerIdle. Reusing
// goroutines matters: a handshake needs a deep stack (ML-KEM, ECDSA), and a
// fresh goroutine per connection would grow its stack every time (about 10%
// of a TLS 1.3 handshake's server CPU in BenchmarkHandshake). There is no
// cap: a connection never waits for a busy worker, so slow handshakes cannot
// delay others.
func (l *Listener) worker(c net.Conn) {
	l.handle(c)
	// The timer is re-armed only when it fires, not per connection.
	last := time.Now()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		select {
		case c := <-l.work:
			l.handle(c)
			last = time.Now()
		case now := <-idle.C:
			if left := workerIdle - now.Sub(last); left > 0 {
				idle.Reset(left)
				continue
			}
			return
		case <-l.done:
			return
		}
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return netip.AddrPortFrom(addrOf(a.IP), uint16(a.Port))
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func (l *Listener) trusted(a netip.Addr) bool {
	for _, p := range l.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// handle runs the PROXY header and the TLS handshake of one connection.
func (l *Listener) handle(raw net.Conn) {
	peer := addrPort(raw.RemoteAddr())
	c := &Conn{Conn: raw, facts: Facts{PeerAddr: peer, ClientAddr: peer}}
	if l.opts.ProxyProtocol != ProxyOff && l.trusted(peer.Addr()) {
		if err := l.readProxyHeader(c); err != nil {
			// go-proxyproto reports a header timeout as a missing header.
			c.facts.Result = ReasonProxyHeader
			l.hook(c.facts, fmt.Errorf("reading PROXY header: %w", err))
			_ = raw.Close()
			return
		}
	}
	if l.tlsConfig == nil {
		l.deliver(c)
		return
	}
	tc := tls.Server(c, l.tlsConfig)
	// A read deadline rather than HandshakeContext: no extra goroutine per
	// handshake, and one timer, not two. It bounds the handshake because
	// the server waits for the client at every step; the server's own
	// flights fit in the socket buffer.
	_ = c.SetReadDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	err := tc.Handshake()
	f := &c.facts
	f.Source = SourceSelf
	if err == nil {
		_ = c.SetReadDeadline(time.Time{})
		cs := tc.ConnectionState()
		f.Version, f.CipherSuite, f.CipherName = cs.Version, cs.CipherSuite, tls.CipherSuiteName(cs.CipherSuite)
		f.ServerName, f.ALPN, f.Resumed, f.Curve = cs.ServerName, cs.NegotiatedProtocol, cs.DidResume, cs.CurveID
	}
	f.Result = handshakeResult(err, f, l.minVersion)
	l.hook(*f, err)
	if err != nil {
		_ = tc.Close()
		return
	}
	l.deliver(tc)
}

func (l *Listener) hook(f Facts, err error) {
	if l.opts.OnHandshake != nil {
		l.opts.OnHandshake(f, err)
	}
}

func (l *Listener) deliver(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// getConfigForClient runs after the ClientHello is parsed and before
// version and cipher negotiation, so refused clients are fingerprinted too.
// The fingerprint goes on the connection: chi.Conn is our *Conn.
func (l *Listener) getConfigForClient(chi *tls.ClientHelloInfo) (*tls.Config, error) {
	if c, ok := chi.Conn.(*Conn); ok && !c.facts.HasFingerprint() {
		c.facts.Fingerprint = tlsfp.Compute(tlsfp.FromClientHello(chi))
	}
	if l.userHook != nil {
		return l.userHook(chi)
	}
	return nil, nil
}

// readProxyHeader reads the PROXY header of a trusted peer and records the
// client address and, from PP2_TYPE_SSL, the load balancer's TLS facts.
func (l *Listener) readProxyHeader(c *Conn) error {
	policy := proxyproto.USE
	if l.opts.ProxyProtocol == ProxyRequired {
		policy = proxyproto.REQUIRE
	}
	pc := proxyproto.NewConn(c.Conn, proxyproto.WithPolicy(policy), proxyproto.SetReadHeaderTimeout(l.opts.ProxyHeaderTimeout))
	c.Conn = pc
	// A zero-length read only processes the header (and returns its error).
	if _, err := pc.Read(nil); err != nil {
		return err
	}
	h := pc.ProxyHeader()
	if h == nil || !h.Command.IsProxy() {
		return nil // optional and absent, or LOCAL (health check)
	}
	if src := addrPort(h.SourceAddr); src.IsValid() {
		c.facts.ClientAddr = src
		c.facts.ProxyProtocol = true
	}
	tlvs, err := h.TLVs()
	if err != nil {
		return err
	}
	ssl, ok := tlvparse.FindSSL(tlvs)
	if !ok || !ssl.ClientSSL() || l.tlsConfig != nil {
		return nil // our own handshake is the truth when we terminate
	}
	f := &c.facts
	f.Source = SourceProxyProtocol
	f.Result = ResultOK
	if v, ok := ssl.SSLVersion(); ok {
		f.Version = VersionFromName(v)
	}
	if name, ok := ssl.SSLCipher(); ok {
		f.CipherName = name
		f.CipherSuite = CipherFromName(name)
	}
	for _, t := range tlvs {
		switch t.Type {
		case proxyproto.PP2_TYPE_AUTHORITY:
			f.ServerName = string(t.Value)
		case proxyproto.PP2_TYPE_ALPN:
			f.ALPN = string(t.Value)
		}
	}
	return nil
}

// VersionFromName maps OpenSSL protocol names (HAProxy ssl_fc_protocol,
// nginx $ssl_protocol) to versions, 0 if unknown.
func VersionFromName(s string) uint16 {
	switch s {
	case "TLSv1.3":
		return tls.VersionTLS13
	case "TLSv1.2":
		return tls.VersionTLS12
	case "TLSv1.1":
		return tls.VersionTLS11
	case "TLSv1", "TLSv1.0":
		return tls.VersionTLS10
	case "SSLv3":
		return 0x0300
	}
	return 0
}

// opensslNames maps OpenSSL's TLS 1.2 cipher names (what HAProxy and nginx
// report) to IANA ids, for the suites a modern load balancer negotiates;
// TLS 1.3 names are already IANA names (openssl ciphers -V).
var opensslNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": 0xc02b, "ECDHE-RSA-AES128-GCM-SHA256": 0xc02f,
	"ECDHE-ECDSA-AES256-GCM-SHA384": 0xc02c, "ECDHE-RSA-AES256-GCM-SHA384": 0xc030,
	"ECDHE-ECDSA-CHACHA20-POLY1305": 0xcca9, "ECDHE-RSA-CHACHA20-POLY1305": 0xcca8,
	"DHE-RSA-AES128-GCM-SHA256": 0x009e, "DHE-RSA-AES256-GCM-SHA384": 0x009f,
	"DHE-RSA-CHACHA20-POLY1305": 0xccaa,
	"ECDHE-ECDSA-AES128-SHA256": 0xc023, "ECDHE-RSA-AES128-SHA256": 0xc027,
	"ECDHE-ECDSA-AES256-SHA384": 0xc024, "ECDHE-RSA-AES256-SHA384": 0xc028,
	"ECDHE-ECDSA-AES128-SHA": 0xc009, "ECDHE-RSA-AES128-SHA": 0xc013,
	"ECDHE-ECDSA-AES256-SHA": 0xc00a, "ECDHE-RSA-AES256-SHA": 0xc014,
	"AES128-GCM-SHA256": 0x009c, "AES256-GCM-SHA384": 0x009d,
	"AES128-SHA256": 0x003c, "AES256-SHA256": 0x003d,
	"AES128-SHA": 0x002f, "AES256-SHA": 0x0035,
	"DES-CBC3-SHA": 0x000a, "ECDHE-RSA-DES-CBC3-SHA": 0xc012,
}

// CipherFromName maps an OpenSSL or IANA cipher name to its id, 0 if
// unknown.
func CipherFromName(s string) uint16 {
	if id, ok := opensslNames[s]; ok {
		return id
	}
	if st, ok := tlsfp.SuiteByName(strings.ToUpper(s)); ok {
		return st.ID
	}
	return 0
}
