package tlsconf

// PROXY protocol with a real HAProxy (Debian's haproxy package): in TCP
// mode, where this process terminates TLS behind it, and terminating TLS
// itself, passing what it negotiated in PP2_TYPE_SSL TLVs.

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// startHAProxy runs haproxy in the foreground with cfg and waits until
// port accepts connections.
func startHAProxy(t *testing.T, cfg, port string) {
	t.Helper()
	bin := needBinary(t, "haproxy")
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const haproxyGlobal = `global
  log stderr format raw local0 err
defaults
  timeout connect 5s
  timeout client 10s
  timeout server 10s
`

// serveFacts runs http.Server on l, answering with the request's Facts.
func serveFacts(t *testing.T, l *Listener) {
	t.Helper()
	srv := &http.Server{
		ConnContext:       ConnContext,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f := FactsFrom(r.Context())
			fmt.Fprintf(w, "source=%s version=%#04x cipher=%#04x name=%s sni=%s client=%s proxy=%v ja4=%s remote=%s\n",
				f.Source, f.Version, f.CipherSuite, f.CipherName, f.ServerName, f.ClientAddr, f.ProxyProtocol, f.Fingerprint.JA4, r.RemoteAddr)
		}),
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func curlVia(t *testing.T, caFile, port string, extra ...string) string {
	t.Helper()
	curl := needBinary(t, "curl")
	args := append([]string{"-sS", "--max-time", "10", "--cacert", caFile, "--resolve", "localhost:" + port + ":127.0.0.1"}, extra...)
	out, err := run(t, curl, append(args, "https://localhost:"+port+"/")...)
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	return out
}

func TestHAProxyTCPModeSendProxyV2(t *testing.T) {
	t.Parallel()
	needBinary(t, "haproxy")
	s := newServer(t, func(o *Options, _ *Config) {
		o.ProxyProtocol = ProxyRequired
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	serveFacts(t, s.l)
	front := freePort(t)
	startHAProxy(t, haproxyGlobal+fmt.Sprintf(`
frontend fe
  mode tcp
  bind 127.0.0.1:%s
  default_backend be
backend be
  mode tcp
  server gw %s send-proxy-v2
`, front, s.addr()), front)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, s.ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	out := curlVia(t, caFile, front, "--tlsv1.3")
	e := s.event(t)
	for e.f.Result == ReasonClientClosed {
		e = s.event(t) // startHAProxy's readiness probe, relayed by HAProxy
	}
	// The TCP peer is HAProxy; ClientAddr is curl's own socket, which HAProxy
	// saw (same loopback address, curl's port).
	if !e.f.ProxyProtocol || e.f.ClientAddr == e.f.PeerAddr || e.f.Result != ResultOK || e.f.Source != SourceSelf || !strings.HasPrefix(e.f.Fingerprint.JA4, "t13d") {
		t.Fatalf("facts %+v", e.f)
	}
	if !strings.Contains(out, "client="+e.f.ClientAddr.String()) || !strings.Contains(out, "remote="+e.f.ClientAddr.String()) ||
		!strings.Contains(out, "ja4="+e.f.Fingerprint.JA4) {
		t.Errorf("response %q, facts %+v", out, e.f)
	}
}

func TestHAProxyTerminatesTLS(t *testing.T) {
	t.Parallel()
	needBinary(t, "haproxy")
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "haproxy", "localhost")
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "haproxy.pem")
	if err := os.WriteFile(pemFile, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(inner, Options{ProxyProtocol: ProxyRequired, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	serveFacts(t, l)
	front := freePort(t)
	startHAProxy(t, haproxyGlobal+fmt.Sprintf(`
frontend fe
  mode tcp
  bind 127.0.0.1:%s ssl crt %s
  default_backend be
backend be
  mode tcp
  server gw %s send-proxy-v2 proxy-v2-options ssl,ssl-cipher,authority
`, front, pemFile, l.Addr()), front)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--tlsv1.3"}, []string{"version=0x0304", "name=TLS_AES_", "cipher=0x130"}},
		{[]string{"--tlsv1.2", "--tls-max", "1.2"}, []string{"version=0x0303", "name=ECDHE-ECDSA-", "cipher=0xc0"}},
	} {
		out := curlVia(t, caFile, front, tc.args...)
		t.Logf("curl %v: %s", tc.args, strings.TrimSpace(out))
		for _, w := range append(tc.want, "source=proxy_protocol", "sni=localhost", "proxy=true", "ja4= ") {
			if !strings.Contains(out, w) {
				t.Errorf("curl %v: response %q lacks %q", tc.args, out, w)
			}
		}
	}
}
