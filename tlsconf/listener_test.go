package tlsconf

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/rampartgw/rampart/tlsfp"
)

// recordConn keeps the first bytes a client writes: its ClientHello.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.out.Len() < 1<<16 {
		c.out.Write(b)
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// independentJA4 parses the bytes a client wrote, a path independent of
// the server's FromClientHello.
func (c *recordConn) independentJA4(t *testing.T) tlsfp.Fingerprint {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	h, err := tlsfp.Parse(c.out.Bytes())
	if err != nil {
		t.Fatalf("parsing the client's ClientHello: %v", err)
	}
	return tlsfp.Compute(h)
}

// dialGo connects a Go TLS client, recording its ClientHello.
func dialGo(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, *recordConn, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordConn{Conn: raw}
	c := tls.Client(rc, cfg)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	err = c.Handshake()
	if err != nil {
		_ = c.Close()
		return nil, rc, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, rc, nil
}

func (s *server) accepted(t *testing.T) *Facts {
	t.Helper()
	select {
	case f := <-s.facts:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no accepted connection")
		return nil
	}
}

func TestGoClients(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tlsfp.VersionLabel(v), func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			cfg := s.clientConfig()
			cfg.MinVersion, cfg.MaxVersion = v, v
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
			for i, wantResumed := range []bool{false, true} {
				c, rc, err := dialGo(t, s.addr(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				roundTrip(t, c, "ping\n") // also reads the TLS 1.3 ticket
				if got := c.ConnectionState().DidResume; got != wantResumed {
					t.Fatalf("connection %d: DidResume = %v", i, got)
				}
				e := s.event(t)
				f := s.accepted(t)
				if e.err != nil || e.f.Result != ResultOK {
					t.Fatalf("handshake: %v %s", e.err, e.f.Result)
				}
				if f.Source != SourceSelf || f.Version != v || f.Resumed != wantResumed || f.ServerName != "localhost" ||
					f.CipherSuite != c.ConnectionState().CipherSuite || f.CipherName == "" || f.ALPN != "" {
					t.Errorf("facts %+v", *f)
				}
				want := rc.independentJA4(t)
				if f.Fingerprint.JA4 != want.JA4 || f.Fingerprint.JA4RO != want.JA4RO || f.Fingerprint.JA3N != want.JA3N {
					t.Errorf("server JA4 %s, independent %s", f.Fingerprint.JA4, want.JA4)
				}
				if !f.Fingerprint.Modern || f.Fingerprint.Weak != 0 && f.Fingerprint.Weak != tlsfp.WeakSHA1Signatures {
					t.Errorf("classification %+v", f.Fingerprint)
				}
				// The PSK extension (0x0029) is what changes JA4 on a
				// TLS 1.3 resumption (FoxIO README).
				if v == tls.VersionTLS13 && wantResumed != strings.Contains(want.JA4R, "0029") {
					t.Errorf("resumed=%v but JA4_r %s", wantResumed, want.JA4R)
				}
				if e.f.Fingerprint.JA4 != f.Fingerprint.JA4 || e.f.ClientAddr != f.ClientAddr {
					t.Error("OnHandshake facts differ from the connection's")
				}
				_ = c.Close()
			}
		})
	}
}

func TestRefusedGoClients(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client func(*tls.Config)
		reason string
		check  func(*testing.T, tlsfp.Fingerprint)
	}{
		{
			name:   "TLS 1.1 only",
			client: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 },
			reason: ReasonLegacyVersion,
			check: func(t *testing.T, fp tlsfp.Fingerprint) {
				if fp.MaxVersion != tls.VersionTLS11 || !strings.HasPrefix(fp.JA4, "t11d") {
					t.Errorf("fingerprint %s max %#x", fp.JA4, fp.MaxVersion)
				}
			},
		},
		{
			name: "static RSA suites only",
			client: func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}
			},
			reason: ReasonNoSharedCipher,
			check: func(t *testing.T, fp tlsfp.Fingerprint) {
				if !fp.Weak.Has(tlsfp.WeakNoForwardSecrecy) || fp.Modern {
					t.Errorf("weak %s modern %v", fp.Weak, fp.Modern)
				}
			},
		},
		{
			name: "3DES and RC4 only",
			client: func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}
			},
			reason: ReasonNoSharedCipher,
			check: func(t *testing.T, fp tlsfp.Fingerprint) {
				if !fp.Weak.Has(tlsfp.Weak3DES|tlsfp.WeakRC4) || fp.Weak.Has(tlsfp.WeakNoForwardSecrecy) || fp.Modern {
					t.Errorf("weak %s modern %v", fp.Weak, fp.Modern)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			cfg := s.clientConfig()
			tc.client(cfg)
			_, rc, err := dialGo(t, s.addr(), cfg)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			e := s.event(t)
			if e.err == nil || e.f.Result != tc.reason {
				t.Fatalf("result %q (%v), want %s", e.f.Result, e.err, tc.reason)
			}
			if e.f.Version != 0 || e.f.VersionLabel() != tlsfp.VersionLabel(e.f.Fingerprint.MaxVersion) {
				t.Errorf("version %#x label %s", e.f.Version, e.f.VersionLabel())
			}
			if want := rc.independentJA4(t); e.f.Fingerprint.JA4 != want.JA4 {
				t.Errorf("server JA4 %s, independent %s", e.f.Fingerprint.JA4, want.JA4)
			}
			tc.check(t, e.f.Fingerprint)
		})
	}
}

func TestRefusedRawClients(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		send   []byte
		reason string
	}{
		{"plain HTTP", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ReasonNotTLS},
		{"silence", nil, ReasonTimeout},
		{"half a ClientHello then close", []byte{22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3}, ReasonClientClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, func(o *Options, _ *Config) { o.HandshakeTimeout = 300 * time.Millisecond })
			c, err := net.Dial("tcp", s.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.send != nil {
				_, _ = c.Write(tc.send)
			}
			if tc.reason == ReasonClientClosed {
				_ = c.Close()
			}
			e := s.event(t)
			if e.f.Result != tc.reason || e.f.HasFingerprint() {
				t.Errorf("result %q (%v) fingerprint %q", e.f.Result, e.err, e.f.Fingerprint.JA4)
			}
		})
	}
}

// TestHTTP2 serves HTTP/2 and HTTP/1.1 through the listener with
// http.Server; every request on one connection reads the same Facts.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	l := s.l
	srv := &http.Server{
		ConnContext: ConnContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f := FactsFrom(r.Context())
			if f == nil {
				http.Error(w, "no facts", 500)
				return
			}
			fmt.Fprintf(w, "%d %s %s %p", r.ProtoMajor, f.ALPN, f.Fingerprint.JA4, f)
		}),
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	for _, proto := range []string{"h2", "http/1.1"} {
		t.Run(proto, func(t *testing.T) {
			tc := s.clientConfig()
			tc.NextProtos = []string{proto}
			tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: proto == "h2"}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			var first string
			for i := range 3 {
				resp, err := client.Get("https://" + l.Addr().String() + "/")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				f := strings.Fields(string(body))
				wantMajor := map[string]string{"h2": "2", "http/1.1": "1"}[proto]
				if len(f) != 4 || f[0] != wantMajor || f[1] != proto || !strings.HasPrefix(f[2], "t13d") {
					t.Fatalf("response %q", body)
				}
				if i == 0 {
					first = f[3]
				} else if f[3] != first {
					t.Errorf("request %d read Facts %s, first read %s", i, f[3], first)
				}
			}
		})
	}
}

func proxyHeader(t *testing.T, version byte, src string, tlvs []proxyproto.TLV) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:443")))
	if len(tlvs) > 0 {
		if err := h.SetTLVs(tlvs); err != nil {
			t.Fatal(err)
		}
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialProxied sends a PROXY header (if any) and then a Go TLS handshake.
func dialProxied(t *testing.T, s *server, header []byte) error {
	t.Helper()
	raw, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write(header); err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, s.clientConfig())
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		return err
	}
	roundTrip(t, c, "x")
	return nil
}

func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		mode    ProxyMode
		trusted []netip.Prefix
		header  []byte
		result  string
		client  string // "" = the TCP peer
	}{
		{"v1 from trusted peer", ProxyRequired, loopback, proxyHeader(t, 1, "203.0.113.7:5555", nil), ResultOK, "203.0.113.7:5555"},
		{"v2 from trusted peer", ProxyRequired, loopback, proxyHeader(t, 2, "[2001:db8::7]:6666", nil), ResultOK, "[2001:db8::7]:6666"},
		{"optional, absent", ProxyOptional, loopback, nil, ResultOK, ""},
		{"required, absent", ProxyRequired, loopback, nil, ReasonProxyHeader, ""},
		{"untrusted peer's header is not believed", ProxyRequired, elsewhere, proxyHeader(t, 2, "203.0.113.7:5555", nil), ReasonNotTLS, ""},
		{"untrusted peer without header is served", ProxyRequired, elsewhere, nil, ResultOK, ""},
		{"off ignores nothing", ProxyOff, nil, proxyHeader(t, 1, "203.0.113.7:5555", nil), ReasonNotTLS, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, func(o *Options, _ *Config) {
				o.ProxyProtocol, o.TrustedProxies = tc.mode, tc.trusted
				o.ProxyHeaderTimeout = 500 * time.Millisecond
			})
			err := dialProxied(t, s, tc.header)
			e := s.event(t)
			if e.f.Result != tc.result || (err == nil) != (tc.result == ResultOK) {
				t.Fatalf("result %q (%v), client error %v", e.f.Result, e.err, err)
			}
			if tc.result != ResultOK {
				return
			}
			want := e.f.PeerAddr.String()
			if tc.client != "" {
				want = tc.client
			}
			if e.f.ClientAddr.String() != want || e.f.ProxyProtocol != (tc.client != "") || !e.f.PeerAddr.Addr().IsLoopback() {
				t.Errorf("client %v peer %v proxy %v, want client %s", e.f.ClientAddr, e.f.PeerAddr, e.f.ProxyProtocol, want)
			}
			if f := s.accepted(t); f.ClientAddr != e.f.ClientAddr || !f.HasFingerprint() {
				t.Errorf("accepted facts %+v", *f)
			}
		})
	}
}

// TestProxySSLTLVs: a load balancer terminated TLS and passed what it
// negotiated in PP2_TYPE_SSL; this process serves plain connections.
func TestProxySSLTLVs(t *testing.T) {
	t.Parallel()
	ssl, err := tlvparse.PP2SSL{
		Client: tlvparse.PP2_BITFIELD_CLIENT_SSL,
		TLV: []proxyproto.TLV{
			{Type: proxyproto.PP2_SUBTYPE_SSL_VERSION, Value: []byte("TLSv1.2")},
			{Type: proxyproto.PP2_SUBTYPE_SSL_CIPHER, Value: []byte("ECDHE-RSA-AES128-GCM-SHA256")},
		},
	}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tlvs := []proxyproto.TLV{
		ssl,
		{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("api.example.test")},
		{Type: proxyproto.PP2_TYPE_ALPN, Value: []byte("h2")},
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(inner, Options{ProxyProtocol: ProxyRequired, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(append(proxyHeader(t, 2, "198.51.100.9:1234", tlvs), "GET / HTTP/1.1\r\n"...)); err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	f := FactsFromConn(sc)
	if f == nil || f.Source != SourceProxyProtocol || f.Version != tls.VersionTLS12 || f.CipherSuite != tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 ||
		f.ServerName != "api.example.test" || f.ALPN != "h2" || f.ClientAddr.String() != "198.51.100.9:1234" || f.HasFingerprint() {
		t.Fatalf("facts %+v", f)
	}
	// The application reads past the header.
	buf := make([]byte, 16)
	if _, err := readFull(sc, buf); err != nil || string(buf) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("read %q %v", buf, err)
	}
	if got := sc.RemoteAddr().String(); got != "198.51.100.9:1234" {
		t.Errorf("RemoteAddr %s", got)
	}
}

func TestListenRefusesTrustingEveryone(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	for _, o := range []Options{
		{ProxyProtocol: ProxyOptional},
		{ProxyProtocol: ProxyRequired, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
	} {
		if _, err := Listen(inner, o); err == nil {
			t.Errorf("Listen accepted %+v", o)
		}
	}
}

func TestListenerClose(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	if err := s.l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}
