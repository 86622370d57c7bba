package main

// White-box tests of the session-ticket keys at start: the first
// connections already get tickets every replica can read.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rampartgw/rampart/tlsconf"
)

// slowKeySource is a shared key source slow to answer: it returns key
// after delay, or with delay < 0 never (until its context ends), as a
// store that is down.
type slowKeySource struct {
	delay time.Duration
	key   [32]byte
}

func (s slowKeySource) TicketKeys(ctx context.Context) ([][32]byte, error) {
	var answer <-chan time.Time
	if s.delay >= 0 {
		answer = time.After(s.delay)
	}
	select {
	case <-answer:
		return [][32]byte{s.key}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// withTicketKeySource makes the server read src.
func withTicketKeySource(src tlsconf.KeySource) func(*server) {
	return func(s *server) { s.ticketSource = src }
}

// tlsFixture is a server terminating TLS for a.test (not running its
// loop: the listener handshakes on its own), and its certificate.
func tlsFixture(t *testing.T, opts ...func(*server)) (*reloadFixture, tls.Certificate) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writeTestPair(t, dir, "a.test")
	f := newReloadFixture(t, fmt.Sprintf("listen: 127.0.0.1:0\nadmin:\n  listen: \"off\"\ntls:\n  cert_file: %s\n  key_file: %s\n",
		certFile, keyFile), nil, opts...)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return f, pair
}

// handshake connects to addr with cfg and reads what the server sends
// after the handshake (TLS 1.3 tickets), and reports whether the session
// resumed.
func handshake(t *testing.T, addr string, cfg *tls.Config) bool {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = c.Read(make([]byte, 1))
	return c.ConnectionState().DidResume
}

// TestTicketKeysBeforeFirstHandshake: the shared ticket keys are on the
// listener before it handshakes anyone, even when the store is slow to
// answer: a client that connects as soon as the port is open gets a
// ticket sealed with the shared key, which another replica (here a plain
// crypto/tls server holding only that key) resumes.
func TestTicketKeysBeforeFirstHandshake(t *testing.T) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		t.Fatal(err)
	}
	f, pair := tlsFixture(t, withTicketKeySource(slowKeySource{delay: 300 * time.Millisecond, key: key}))

	other := &tls.Config{Certificates: []tls.Certificate{pair}}
	other.SetSessionTicketKeys([][32]byte{key})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", other)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("x"))
				}
			}()
		}
	}()

	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, MinVersion: v, MaxVersion: v,
			ClientSessionCache: tls.NewLRUClientSessionCache(4)}
		if handshake(t, f.s.ln.Addr().String(), cfg) {
			t.Fatalf("TLS %x: the first connection resumed", v)
		}
		if !handshake(t, ln.Addr().String(), cfg) {
			t.Errorf("TLS %x: the gateway's first ticket is not sealed with the shared key: another replica cannot resume it", v)
		}
	}
}

// TestTicketKeysStoreDownAtStart: a store that does not answer delays the
// start by ticketKeysStartTimeout at most; the gateway logs it and
// handshakes with keys of its own.
func TestTicketKeysStoreDownAtStart(t *testing.T) {
	start := time.Now()
	f, _ := tlsFixture(t, withTicketKeySource(slowKeySource{delay: -1}), func(s *server) { s.ticketStartTimeout = 100 * time.Millisecond })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("newServer took %v with the store down", took)
	}
	if n := len(f.log.lines(t, "tls_ticket_keys_unavailable")); n != 1 {
		t.Errorf("%d tls_ticket_keys_unavailable lines, want 1", n)
	}
	cfg := &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	handshake(t, f.s.ln.Addr().String(), cfg) // fails the test if the handshake does
	if !handshake(t, f.s.ln.Addr().String(), cfg) {
		t.Error("no resumption on this replica with its own keys")
	}
}
