package main_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil"
	"github.com/rampartgw/rampart/testutil/redistest"
	"github.com/rampartgw/rampart/tlsfp"
)

// writeCert writes a self-signed ECDSA certificate for localhost and
// 127.0.0.1, and returns the files and a pool that trusts it.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// helloJA4 computes, independently of the gateway, the JA4 of the
// ClientHello a client sends: it captures the first bytes the client
// writes to a raw TCP listener and parses them.
func helloJA4(t *testing.T, dial func(addr string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for {
			n, err := c.Read(tmp)
			buf = append(buf, tmp[:n]...)
			if _, perr := tlsfp.Parse(buf); perr == nil || err != nil {
				break
			}
		}
		got <- buf
	}()
	dial(ln.Addr().String())
	b := <-got
	h, err := tlsfp.Parse(b)
	if err != nil {
		t.Fatalf("parsing the captured ClientHello: %v", err)
	}
	return tlsfp.JA4(h)
}

// startTLSGateway starts the demo upstream and a gateway terminating TLS.
func startTLSGateway(t *testing.T, extra string, env ...string) *stack {
	t.Helper()
	certFile, keyFile, _ := writeCert(t)
	cfg := writeConfig(t, "tls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\n  forward_fingerprint_header: X-JA4\n"+extra)
	return startStack(t, cfg, env...)
}

func tlsClient(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

func metricValue(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			var v float64
			_, _ = fmtSscan(rest, &v)
			return v
		}
	}
	return 0
}

func fmtSscan(s string, v *float64) (int, error) {
	f, err := json.Number(strings.TrimSpace(s)).Float64()
	*v = f
	return 1, err
}

// TestTLSTermination: Go clients over TLS 1.2 and 1.3, with and without
// resumption, HTTP/2; the JA4 the gateway computes (forwarded upstream)
// equals the one computed from the client's own ClientHello bytes; a
// blocked request's event carries the fingerprint.
func TestTLSTermination(t *testing.T) {
	s := startTLSGateway(t, "")
	base := "https://" + s.gw
	for _, v := range []struct {
		name string
		ver  uint16
	}{{"1.2", tls.VersionTLS12}, {"1.3", tls.VersionTLS13}} {
		t.Run("tls"+v.name, func(t *testing.T) {
			cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: v.ver, MaxVersion: v.ver, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
			want := helloJA4(t, func(addr string) {
				// The first connection's hello: the same settings as the
				// transport's (ALPN h2, a session cache, still empty).
				c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: v.ver, MaxVersion: v.ver,
					NextProtos: []string{"h2", "http/1.1"}, ClientSessionCache: tls.NewLRUClientSessionCache(8)})
				if err == nil {
					c.Close()
				}
			})
			// New connection each time: the second one resumes.
			for i, wantResumed := range []bool{false, true} {
				tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
				cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
				resp, err := cl.Get(base + "/echo")
				if err != nil {
					t.Fatal(err)
				}
				var e struct {
					Headers map[string][]string `json:"headers"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				tr.CloseIdleConnections()
				if resp.TLS == nil || resp.TLS.Version != v.ver || resp.TLS.DidResume != wantResumed {
					t.Errorf("connection %d: TLS %+v, want version %x resumed %v", i, resp.TLS, v.ver, wantResumed)
				}
				if resp.ProtoMajor != 2 {
					t.Errorf("connection %d: %s, want HTTP/2", i, resp.Proto)
				}
				if i == 0 {
					if got := strings.Join(e.Headers["X-Ja4"], ","); got != want {
						t.Errorf("JA4 forwarded upstream %q, computed from the ClientHello %q", got, want)
					}
				}
			}
		})
	}
	if n := metricValue(t, s.admin, `rampart_tls_handshakes_total{result="ok",version="1.3"}`); n < 2 {
		t.Errorf("ok TLS 1.3 handshakes counted: %v", n)
	}
	// A blocked request's event names its fingerprint and TLS version.
	cl := tlsClient(t, &tls.Config{InsecureSkipVerify: true})
	if code, _ := call(t, cl, "GET", base+"/echo?q=1'+OR+1=1--", ""); code != 403 {
		t.Fatalf("sqli over TLS: %d", code)
	}
	testutil.Eventually(t, 5*time.Second, 20*time.Millisecond, func() bool {
		b, _ := os.ReadFile(s.logFile)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"msg":"request_blocked"`) && strings.Contains(line, `"ja4":"t13`) && strings.Contains(line, `"tls_version":"1.3"`) {
				return true
			}
		}
		return false
	}, "no request_blocked event with ja4 and tls_version")
}

// TestTLSRefusals: legacy protocols and weak-only suites offered with
// Debian's openssl are refused, counted, and logged with the fingerprint.
func TestTLSRefusals(t *testing.T) {
	testutil.NeedTool(t, "openssl", "openssl")
	s := startTLSGateway(t, "")
	for _, tc := range []struct {
		name, result, version string
		args                  []string
	}{
		{"tls1.0", "legacy_version", "1.0", []string{"-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"}},
		{"tls1.1", "legacy_version", "1.1", []string{"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"}},
		{"anonymous and NULL suites only", "no_shared_cipher", "1.2", []string{"-tls1_2", "-cipher", "aNULL:eNULL:@SECLEVEL=0"}},
		{"static RSA only", "no_shared_cipher", "1.2", []string{"-tls1_2", "-cipher", "kRSA:@SECLEVEL=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			series := `rampart_tls_handshakes_total{result="` + tc.result + `",version="` + tc.version + `"}`
			before := metricValue(t, s.admin, series)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "openssl", append([]string{"s_client", "-connect", s.gw}, tc.args...)...)
			cmd.Stdin = strings.NewReader("")
			out, _ := cmd.CombinedOutput()
			if strings.Contains(string(out), "Verify return code") && !strings.Contains(string(out), "alert") && strings.Contains(string(out), "Cipher is") && !strings.Contains(string(out), "Cipher is (NONE)") {
				t.Fatalf("handshake succeeded:\n%s", out)
			}
			testutil.Eventually(t, 5*time.Second, 20*time.Millisecond, func() bool {
				return metricValue(t, s.admin, series) > before
			}, "%s not counted", series)
		})
	}
	b, _ := os.ReadFile(s.logFile)
	if n := strings.Count(string(b), `"msg":"tls_handshake_refused"`); n < 4 {
		t.Errorf("%d tls_handshake_refused lines, want 4", n)
	}
	if !strings.Contains(string(b), `"ja4":"t10`) {
		t.Error("the TLS 1.0 refusal was not logged with its fingerprint")
	}
}

// TestTLSCurlAndDenyList: curl over TLS 1.2 and 1.3; a JA4 on the tls
// detection's deny list is refused (the JA4 computed from curl's own
// ClientHello), other clients are not.
func TestTLSCurlAndDenyList(t *testing.T) {
	testutil.NeedTool(t, "curl", "curl")
	curl := func(addr string, extra ...string) (string, error) {
		args := append([]string{"-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"}, extra...)
		out, err := exec.Command("curl", append(args, "https://"+addr+"/echo")...).Output()
		return string(out), err
	}
	ja4 := helloJA4(t, func(addr string) { _, _ = curl(addr, "--tlsv1.2", "--tls-max", "1.2") })
	s := startTLSGateway(t, "detections:\n  tls:\n    deny: ["+ja4+"]\n")
	if got, _ := curl(s.gw, "--tlsv1.3"); got != "200" {
		t.Errorf("curl TLS 1.3: %s", got)
	}
	if got, _ := curl(s.gw, "--tlsv1.2", "--tls-max", "1.2"); got != "403" {
		t.Errorf("curl TLS 1.2 with its JA4 %s denied: %s", ja4, got)
	}
	cl := tlsClient(t, &tls.Config{InsecureSkipVerify: true})
	if code, _ := call(t, cl, "GET", "https://"+s.gw+"/echo", ""); code != 200 {
		t.Errorf("Go client: %d", code)
	}
}

// TestTicketKeysSharedThroughRedis: a session made on one replica resumes
// on another: they share ticket keys through Redis.
func TestTicketKeysSharedThroughRedis(t *testing.T) {
	r := redistest.StartRedis(t, redistest.Options{})
	certFile, keyFile, _ := writeCert(t)
	cfg := writeConfig(t, "tls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\n")
	a := startStack(t, cfg, "REDIS_URL="+r.URL())
	b := startStack(t, cfg, "REDIS_URL="+r.URL())
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cache := tls.NewLRUClientSessionCache(8)
		get := func(addr string) *tls.ConnectionState {
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v, ClientSessionCache: cache})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// TLS 1.3 tickets arrive after the handshake: read an answer.
			_, _ = io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			_, _ = io.Copy(io.Discard, c)
			st := c.ConnectionState()
			return &st
		}
		if st := get(a.gw); st.DidResume {
			t.Fatalf("version %x: first connection resumed", v)
		}
		if st := get(b.gw); !st.DidResume {
			t.Errorf("version %x: a session made on replica A did not resume on replica B", v)
		}
	}
}
