package tlsconf

// Black-box tests with real clients: curl and openssl s_client. The JA4
// the server computes (from crypto/tls's ClientHelloInfo) is checked against
// the JA4 of the same client's ClientHello bytes, captured on a raw TCP
// listener and parsed by tlsfp.Parse.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/testutil"
	"github.com/rampartgw/rampart/tlsfp"
)

func needBinary(t *testing.T, name string) string {
	t.Helper()
	return testutil.NeedTool(t, name, name)
}

// httpServer is the Listener under http.Server, answering with the JA4 the
// request's connection carries.
type httpServer struct {
	*server
	caFile string
	port   string
}

func startHTTP(t *testing.T) *httpServer {
	t.Helper()
	s := newServer(t)
	l := s.l
	srv := &http.Server{
		ConnContext:       ConnContext,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f := FactsFrom(r.Context())
			fmt.Fprintf(w, "%s %s %s\n", r.Proto, f.ALPN, f.Fingerprint.JA4)
		}),
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, s.ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return &httpServer{server: s, caFile: caFile, port: port}
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// captureHello runs a client against a raw TCP listener and returns the
// fingerprint of the ClientHello it sent.
func captureHello(t *testing.T, client func(port string) *exec.Cmd) tlsfp.Fingerprint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cmd := client(port)
	cmd.Stdin = strings.NewReader("")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if h, perr := tlsfp.Parse(buf); perr == nil {
			return tlsfp.Compute(h)
		}
		if err != nil {
			t.Fatalf("reading the ClientHello (%d bytes): %v", len(buf), err)
		}
	}
}

func TestCurl(t *testing.T) {
	t.Parallel()
	curl := needBinary(t, "curl")
	s := startHTTP(t)
	tests := []struct {
		name      string
		args      []string
		proto     string
		version   uint16
		wantALPN  string
		ja4Prefix string
	}{
		{"TLS 1.2", []string{"--tlsv1.2", "--tls-max", "1.2", "--http1.1"}, "HTTP/1.1", 0x0303, "http/1.1", "t12d"},
		{"TLS 1.3 HTTP/2", []string{"--tlsv1.3", "--http2"}, "HTTP/2.0", 0x0304, "h2", "t13d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := append([]string{"-sS", "--max-time", "10", "--cacert", s.caFile, "--resolve", "localhost:" + s.port + ":127.0.0.1"}, tc.args...)
			out, err := run(t, curl, append(base, "https://localhost:"+s.port+"/")...)
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			e := s.event(t)
			if e.err != nil || e.f.Version != tc.version || e.f.ALPN != tc.wantALPN {
				t.Fatalf("facts %+v err %v", e.f, e.err)
			}
			f := strings.Fields(out)
			if len(f) != 3 || f[0] != tc.proto || f[1] != tc.wantALPN || f[2] != e.f.Fingerprint.JA4 || !strings.HasPrefix(f[2], tc.ja4Prefix) {
				t.Fatalf("response %q, server JA4 %s", out, e.f.Fingerprint.JA4)
			}
			// The same curl command against a raw listener: its bytes.
			want := captureHello(t, func(port string) *exec.Cmd {
				b := append([]string{"-sS", "--max-time", "5", "--cacert", s.caFile, "--resolve", "localhost:" + port + ":127.0.0.1"}, tc.args...)
				return exec.Command(curl, append(b, "https://localhost:"+port+"/")...)
			})
			if got := e.f.Fingerprint; got.JA4 != want.JA4 || got.JA4RO != want.JA4RO || got.JA3 != want.JA3 || got.JA3N != want.JA3N {
				t.Errorf("server computed\n%s %s\nclient bytes give\n%s %s", got.JA4, got.JA3, want.JA4, want.JA3)
			}
			t.Logf("curl %s: JA4 %s JA3 %s", tc.name, want.JA4, want.JA3Hash)
		})
	}
}

func TestOpenSSLRefused(t *testing.T) {
	t.Parallel()
	openssl := needBinary(t, "openssl")
	s := startHTTP(t)
	tests := []struct {
		name   string
		args   []string
		reason string
		check  func(t *testing.T, fp tlsfp.Fingerprint)
	}{
		{
			"TLS 1.0", []string{"-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"}, ReasonLegacyVersion,
			func(t *testing.T, fp tlsfp.Fingerprint) {
				if fp.MaxVersion != 0x0301 || !strings.HasPrefix(fp.JA4, "t10d") || !fp.Weak.Has(tlsfp.WeakSHA1Signatures) {
					t.Errorf("%s max %#x weak %s", fp.JA4, fp.MaxVersion, fp.Weak)
				}
			},
		},
		{
			"TLS 1.1", []string{"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"}, ReasonLegacyVersion,
			func(t *testing.T, fp tlsfp.Fingerprint) {
				if fp.MaxVersion != 0x0302 || !strings.HasPrefix(fp.JA4, "t11d") {
					t.Errorf("%s max %#x", fp.JA4, fp.MaxVersion)
				}
			},
		},
		{
			"NULL and anonymous suites only", []string{"-tls1_2", "-cipher", "eNULL:aNULL:@SECLEVEL=0"}, ReasonNoSharedCipher,
			func(t *testing.T, fp tlsfp.Fingerprint) {
				if !fp.Weak.Has(tlsfp.WeakNull|tlsfp.WeakAnon) || fp.Modern {
					t.Errorf("weak %s modern %v", fp.Weak, fp.Modern)
				}
			},
		},
		{
			// Debian's OpenSSL 3 has no 3DES, RC4, DES or EXPORT suites left;
			// TestRefusedGoClients offers 3DES and RC4 with Go's client.
			"static RSA only", []string{"-tls1_2", "-cipher", "AES128-SHA:AES256-GCM-SHA384:@SECLEVEL=0"}, ReasonNoSharedCipher,
			func(t *testing.T, fp tlsfp.Fingerprint) {
				if !fp.Weak.Has(tlsfp.WeakNoForwardSecrecy) || fp.Modern {
					t.Errorf("weak %s modern %v", fp.Weak, fp.Modern)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"s_client", "-connect", "127.0.0.1:" + s.port, "-servername", "localhost"}, tc.args...)
			out, err := run(t, openssl, args...)
			if err == nil && !strings.Contains(out, "alert") {
				t.Fatalf("openssl connected:\n%s", out)
			}
			e := s.event(t)
			if e.err == nil || e.f.Result != tc.reason || !e.f.HasFingerprint() {
				t.Fatalf("result %q err %v fingerprint %q", e.f.Result, e.err, e.f.Fingerprint.JA4)
			}
			want := captureHello(t, func(port string) *exec.Cmd {
				return exec.Command(openssl, append([]string{"s_client", "-connect", "127.0.0.1:" + port, "-servername", "localhost"}, tc.args...)...)
			})
			if got := e.f.Fingerprint; got.JA4 != want.JA4 || got.JA4RO != want.JA4RO || got.JA3 != want.JA3 {
				t.Errorf("server computed %s %s, client bytes give %s %s", got.JA4, got.JA3, want.JA4, want.JA3)
			}
			tc.check(t, e.f.Fingerprint)
			t.Logf("refused %s: %s, JA4 %s, weak %q", tc.name, e.f.Result, e.f.Fingerprint.JA4, e.f.Fingerprint.Weak)
		})
	}
}
