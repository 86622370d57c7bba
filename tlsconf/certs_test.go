package tlsconf

import (
	"context"
	"crypto/tls"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCertificatesBySNI(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := t.TempDir()
	pairs := []CertPair{
		ca.writePair(t, dir, "default", "default", "default.test"),
		ca.writePair(t, dir, "api", "api", "api.example.com"),
		ca.writePair(t, dir, "wild", "wild", "*.example.com"),
		ca.writePair(t, dir, "deep", "deep", "*.deep.example.com", "exact.deep.example.com"),
	}
	certs, err := LoadCertificates(pairs)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ sni, want string }{
		{"api.example.com", "api"},
		{"API.Example.COM.", "api"},
		{"www.example.com", "wild"},
		{"example.com", "default"},         // a wildcard does not cover the apex
		{"a.b.example.com", "default"},     // nor two labels
		{"x.deep.example.com", "deep"},     // the closest wildcard
		{"exact.deep.example.com", "deep"}, // exact beats wildcard
		{"", "default"},
		{"unknown.test", "default"},
	}
	for _, tc := range tests {
		c, err := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Leaf.Subject.CommonName; got != tc.want {
			t.Errorf("SNI %q: got %s, want %s", tc.sni, got, tc.want)
		}
	}
	if na := certs.NotAfter(); na.IsZero() || na.Before(time.Now()) {
		t.Errorf("NotAfter %v", na)
	}
}

func TestLoadCertificatesErrors(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := t.TempDir()
	good := ca.writePair(t, dir, "good", "good", "a.test")
	other := ca.writePair(t, dir, "other", "other", "b.test")
	mismatched := CertPair{CertFile: good.CertFile, KeyFile: other.KeyFile}
	missing := CertPair{CertFile: dir + "/nope.crt", KeyFile: dir + "/nope.key"}
	_, err := LoadCertificates([]CertPair{good, mismatched, missing})
	if err == nil || !strings.Contains(err.Error(), "nope.crt") || !strings.Contains(err.Error(), "other.key") {
		t.Errorf("error should name both bad pairs: %v", err)
	}
	if _, err := LoadCertificates(nil); err == nil {
		t.Error("no pairs accepted")
	}
}

func cn(t *testing.T, certs *Certificates) string {
	t.Helper()
	c, err := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.Subject.CommonName
}

func TestReloadKeepsOldPairOnFailure(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := t.TempDir()
	p := ca.writePair(t, dir, "site", "gen1", "localhost")
	certs, err := LoadCertificates([]CertPair{p})
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := certs.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("unchanged files: changed=%v err=%v", changed, err)
	}
	// A half-finished deployment: new certificate, old key.
	c2, k2 := ca.issue(t, "gen2", "localhost")
	writeFile(t, p.CertFile, c2)
	changed, err := certs.ReloadIfChanged()
	if changed || err == nil {
		t.Fatalf("mismatched pair: changed=%v err=%v", changed, err)
	}
	if got := cn(t, certs); got != "gen1" {
		t.Fatalf("serving %s after a failed reload", got)
	}
	// Not retried (nor reported) until the files change again.
	if _, err := certs.ReloadIfChanged(); err != nil {
		t.Fatalf("retried an unchanged broken pair: %v", err)
	}
	writeFile(t, p.KeyFile, k2)
	if changed, err := certs.ReloadIfChanged(); !changed || err != nil {
		t.Fatalf("completed deployment: changed=%v err=%v", changed, err)
	}
	if got := cn(t, certs); got != "gen2" {
		t.Fatalf("serving %s", got)
	}
	if err := os.Remove(p.KeyFile); err != nil {
		t.Fatal(err)
	}
	if err := certs.Reload(); err == nil {
		t.Fatal("Reload with a missing key succeeded")
	}
	if got := cn(t, certs); got != "gen2" {
		t.Fatalf("serving %s after a failed Reload", got)
	}
}

// TestRotationWithOpenConnection rotates the certificate on disk while a
// client keeps its connection open: the open connection keeps working, new
// handshakes get the new certificate, picked up by Watch.
func TestRotationWithOpenConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu      sync.Mutex
		reports []error
	)
	go s.certs.Watch(ctx, 20*time.Millisecond, func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() })

	peer := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].Subject.CommonName }
	old, _, err := dialGo(t, s.addr(), s.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, old, "before\n")
	if peer(old) != "gen1" {
		t.Fatalf("first certificate %s", peer(old))
	}

	c2, k2 := s.ca.issue(t, "gen2", "localhost")
	pair := s.certs.pairs[0]
	writeFile(t, pair.KeyFile, k2) // key first: the pair is broken for a moment
	time.Sleep(60 * time.Millisecond)
	writeFile(t, pair.CertFile, c2)

	deadline := time.Now().Add(5 * time.Second)
	for cn(t, s.certs) != "gen2" {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the new pair")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cfg := s.clientConfig()
	cfg.ClientSessionCache = nil
	fresh, _, err := dialGo(t, s.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if peer(fresh) != "gen2" {
		t.Errorf("new connection got %s", peer(fresh))
	}
	roundTrip(t, old, "after\n") // the old connection was not dropped
	roundTrip(t, fresh, "new\n")
	mu.Lock()
	defer mu.Unlock()
	if len(reports) > 1 {
		t.Errorf("%d reports for one broken state: %v", len(reports), reports)
	}
}
