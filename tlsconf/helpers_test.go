package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rampart test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

var serial struct {
	sync.Mutex
	n int64
}

// issue returns PEM certificate and key for names (ECDSA P-256), with cn
// as subject so tests can tell generations apart.
func (ca *testCA) issue(t testing.TB, cn string, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	serial.n++
	sn := serial.n + 100
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writePair writes a pair under dir and returns its CertPair.
func (ca *testCA) writePair(t testing.TB, dir, base, cn string, names ...string) CertPair {
	t.Helper()
	c, k := ca.issue(t, cn, names...)
	p := CertPair{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	writeFile(t, p.CertFile, c)
	writeFile(t, p.KeyFile, k)
	return p
}

// writeFile replaces a file atomically (rename), as deploy tools do.
func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// server is a Listener on loopback serving a tiny echo protocol: it
// answers each line with the line, so clients can keep a connection open
// and prove it still works.
type server struct {
	l      *Listener
	certs  *Certificates
	ca     *testCA
	events chan event
	facts  chan *Facts
}

type event struct {
	f   Facts
	err error
}

type serverOpt func(*Options, *Config)

// startServer starts a Listener with the echo loop.
func startServer(t testing.TB, opts ...serverOpt) *server {
	t.Helper()
	s := newServer(t, opts...)
	go s.serve()
	return s
}

// newServer starts a Listener that nobody accepts from yet.
func newServer(t testing.TB, opts ...serverOpt) *server {
	t.Helper()
	ca := newCA(t)
	dir := t.TempDir()
	pair := ca.writePair(t, dir, "default", "gen1", "localhost", "example.test")
	certs, err := LoadCertificates([]CertPair{pair})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.CertFile, cfg.KeyFile = pair.CertFile, pair.KeyFile
	s := &server{certs: certs, ca: ca, events: make(chan event, 64), facts: make(chan *Facts, 64)}
	o := Options{
		TLS: cfg.TLSConfig(certs),
		OnHandshake: func(f Facts, err error) {
			select {
			case s.events <- event{f, err}:
			default:
			}
		},
	}
	for _, opt := range opts {
		opt(&o, &cfg)
	}
	o.TLS.MinVersion = cfg.TLSVersion()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.l, err = Listen(inner, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.l.Close() })
	return s
}

func (s *server) addr() string { return s.l.Addr().String() }

func (s *server) serve() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.facts <- FactsFromConn(c)
		go func() {
			defer c.Close()
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// event waits for the next OnHandshake call.
func (s *server) event(t testing.TB) event {
	t.Helper()
	select {
	case e := <-s.events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no OnHandshake call")
		return event{}
	}
}

func (s *server) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: s.ca.pool, ServerName: "localhost"}
}

// roundTrip sends a line on c and checks the echo.
func roundTrip(t testing.TB, c net.Conn, line string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(line)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(line))
	if _, err := readFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != line {
		t.Fatalf("echo %q, want %q", buf, line)
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
