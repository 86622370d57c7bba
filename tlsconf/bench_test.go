package tlsconf

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The handshake benchmarks run the TLS client in a child process (this test
// binary, TestBenchClientProcess) so that the CPU time measured here
// (getrusage RUSAGE_SELF, user+system) is the server's alone. Each
// iteration asks the child for one connection over a pipe: TCP connect, TLS
// handshake, one byte each way (so a TLS 1.3 ticket is read), close.
// Run with -cpu 1: one core for the server.

const benchClientEnv = "TLSCONF_BENCH_CLIENT"

// TestBenchClientProcess is the benchmark's client, run as a child process.
func TestBenchClientProcess(t *testing.T) {
	spec := os.Getenv(benchClientEnv)
	if spec == "" {
		t.Skip("only run as the handshake benchmark's client process")
	}
	var (
		addr, caFile string
		version      uint16
		resume       bool
	)
	if _, err := fmt.Sscanf(spec, "%s %s %d %t", &addr, &caFile, &version, &resume); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: version, MaxVersion: version}
	if resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		res := "ok"
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Client(raw, cfg)
		one := [1]byte{1}
		if _, err := c.Write(one[:]); err != nil {
			res = err.Error()
		} else if _, err := io.ReadFull(c, one[:]); err != nil {
			res = err.Error()
		} else if c.ConnectionState().DidResume {
			res = "resumed"
		}
		_ = c.Close()
		fmt.Println(res)
	}
}

// benchServer serves the benchmark protocol (after the handshake: read one
// byte, write it back, close) through tls.NewListener or Listen, on a
// certificate of s.
func benchServer(b *testing.B, s *server, ours bool) net.Listener {
	cfg := DefaultConfig().TLSConfig(s.certs)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serve := func(c net.Conn) {
		defer c.Close()
		if tc, ok := c.(*tls.Conn); ok {
			if err := tc.Handshake(); err != nil { // a no-op for ours
				return
			}
		}
		if ours && FactsFromConn(c) == nil {
			panic("no facts")
		}
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil {
			return
		}
		_, _ = c.Write(one[:])
	}
	var ln net.Listener
	if ours {
		l, err := Listen(inner, Options{TLS: cfg})
		if err != nil {
			b.Fatal(err)
		}
		ln = l
	} else {
		ln = tls.NewListener(inner, cfg)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln
}

// benchClient starts a client process for addr and returns a function that
// makes it connect once and checks the result.
func benchClient(b *testing.B, s *server, addr string, version uint16, resume bool) func() {
	caFile := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, s.ca.pem, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchClientProcess$")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", fmt.Sprintf("%s=%s %s %d %t", benchClientEnv, addr, caFile, version, resume))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	out := bufio.NewScanner(stdout)
	connect := func() string {
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			b.Fatal(err)
		}
		if !out.Scan() {
			b.Fatal("client process exited")
		}
		return out.Text()
	}
	if got := connect(); got != "ok" { // warm up; gets the ticket
		b.Fatalf("first connection: %s", got)
	}
	want := "ok"
	if resume {
		want = "resumed"
	}
	return func() {
		if got := connect(); got != want {
			b.Fatalf("connection: %s, want %s", got, want)
		}
	}
}

func handshakeBench(b *testing.B, ours bool, version uint16, resume bool) {
	s := newServer(b)
	connect := benchClient(b, s, benchServer(b, s, ours).Addr().String(), version, resume)
	b.ReportAllocs()
	before := cpuTime()
	for b.Loop() {
		connect()
	}
	// CPU time is far steadier than wall time on a shared machine.
	b.ReportMetric(float64((cpuTime()-before).Nanoseconds())/1e3/float64(b.N), "server-cpu-µs/op")
}

// BenchmarkHandshakeOverhead alternates one connection through tls.Listen
// and one through Listen in each iteration, so both see the same machine
// load, and reports the server CPU of each and the difference.
func BenchmarkHandshakeOverhead(b *testing.B) {
	for _, mode := range []struct {
		name   string
		resume bool
	}{{"full", false}, {"resumed", true}} {
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			b.Run(mode.name+"/"+map[uint16]string{tls.VersionTLS13: "1.3", tls.VersionTLS12: "1.2"}[v], func(b *testing.B) {
				s := newServer(b)
				plain := benchClient(b, s, benchServer(b, s, false).Addr().String(), v, mode.resume)
				ours := benchClient(b, s, benchServer(b, s, true).Addr().String(), v, mode.resume)
				var tPlain, tOurs time.Duration
				measure := func(connect func(), total *time.Duration) {
					t0 := cpuTime()
					connect()
					*total += cpuTime() - t0
				}
				i := 0
				for b.Loop() {
					// Alternate the order, so neither always runs first.
					if i++; i%2 == 0 {
						measure(plain, &tPlain)
						measure(ours, &tOurs)
					} else {
						measure(ours, &tOurs)
						measure(plain, &tPlain)
					}
				}
				n := float64(b.N)
				b.ReportMetric(float64(tPlain.Nanoseconds())/1e3/n, "tls.Listen-cpu-µs/op")
				b.ReportMetric(float64(tOurs.Nanoseconds())/1e3/n, "tlsconf-cpu-µs/op")
				b.ReportMetric((float64(tOurs)/float64(tPlain)-1)*100, "overhead-%")
			})
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkHandshake(b *testing.B) {
	for _, mode := range []struct {
		name   string
		resume bool
	}{{"full", false}, {"resumed", true}} {
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			for _, impl := range []struct {
				name string
				ours bool
			}{{"tls.Listen", false}, {"tlsconf.Listen", true}} {
				name := mode.name + "/" + map[uint16]string{tls.VersionTLS13: "1.3", tls.VersionTLS12: "1.2"}[v] + "/" + impl.name
				b.Run(name, func(b *testing.B) { handshakeBench(b, impl.ours, v, mode.resume) })
			}
		}
	}
}

// BenchmarkFingerprintHook is the CPU this package adds to a handshake in
// GetConfigForClient: FromClientHello + Compute on a real Go ClientHello.
func BenchmarkFingerprintHook(b *testing.B) {
	var chi tls.ClientHelloInfo
	cli, srv := net.Pipe()
	go func() {
		_ = tls.Client(cli, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}).Handshake()
		_ = cli.Close()
	}()
	_ = tls.Server(srv, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		chi = *h
		return nil, errors.New("captured")
	}}).Handshake()
	_ = srv.Close()
	l := &Listener{}
	c := &Conn{}
	chi.Conn = c
	b.ReportAllocs()
	for b.Loop() {
		c.facts = Facts{}
		_, _ = l.getConfigForClient(&chi)
	}
	if !c.facts.HasFingerprint() {
		b.Fatal("no fingerprint")
	}
}

var sinkFacts *Facts

// BenchmarkFactsFrom is the per-request cost on a kept-alive connection:
// the request context is derived from the connection's, as in net/http.
func BenchmarkFactsFrom(b *testing.B) {
	c := &Conn{facts: Facts{Source: SourceSelf}}
	ctx := ConnContext(context.Background(), tls.Server(c, &tls.Config{}))
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, nil)
	ctx, cancel := context.WithCancel(ctx) // the connection's
	defer cancel()
	req, cancelReq := context.WithCancel(ctx) // the request's
	defer cancelReq()
	b.ReportAllocs()
	for b.Loop() {
		sinkFacts = FactsFrom(req)
	}
	if sinkFacts != &c.facts {
		b.Fatal("wrong facts")
	}
}
