package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Certificates holds the configured key pairs, picks one per handshake by
// SNI and reloads them from disk. GetCertificate reads an atomic pointer, so
// a reload never blocks or drops a handshake, and open connections keep the
// certificate they were made with.
type Certificates struct {
	pairs []CertPair
	cur   atomic.Pointer[certSet]

	mu   sync.Mutex // serialises reloads
	seen [][2][32]byte
}

// certSet is one immutable generation of loaded pairs.
type certSet struct {
	certs []*tls.Certificate // index-aligned with Certificates.pairs
	exact map[string][]*tls.Certificate
	wild  map[string][]*tls.Certificate // "*.example.com" under "example.com"
}

// LoadCertificates loads every pair; all must load. The first pair is the
// default, served when no name matches (or no SNI is sent).
func LoadCertificates(pairs []CertPair) (*Certificates, error) {
	if len(pairs) == 0 {
		return nil, errors.New("tls: no certificate pairs")
	}
	c := &Certificates{pairs: append([]CertPair(nil), pairs...), seen: make([][2][32]byte, len(pairs))}
	certs := make([]*tls.Certificate, len(pairs))
	var errs []error
	for i, p := range pairs {
		cert, sums, err := loadPair(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		certs[i], c.seen[i] = cert, sums
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.cur.Store(newCertSet(certs))
	return c, nil
}

// loadPair reads and parses one pair, returning the files' digests.
func loadPair(p CertPair) (*tls.Certificate, [2][32]byte, error) {
	var sums [2][32]byte
	certPEM, err := os.ReadFile(p.CertFile)
	if err != nil {
		return nil, sums, fmt.Errorf("reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p.KeyFile)
	if err != nil {
		return nil, sums, fmt.Errorf("reading key of %s: %w", p.CertFile, err)
	}
	sums[0], sums[1] = sha256.Sum256(certPEM), sha256.Sum256(keyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, sums, fmt.Errorf("loading %s with %s: %w", p.CertFile, p.KeyFile, err)
	}
	return &cert, sums, nil
}

func newCertSet(certs []*tls.Certificate) *certSet {
	s := &certSet{certs: certs, exact: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}}
	for _, c := range certs {
		if c.Leaf == nil {
			continue
		}
		for _, name := range c.Leaf.DNSNames {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			if rest, ok := strings.CutPrefix(name, "*."); ok {
				s.wild[rest] = append(s.wild[rest], c)
			} else {
				s.exact[name] = append(s.exact[name], c)
			}
		}
	}
	return s
}

// GetCertificate implements tls.Config.GetCertificate: exact SNI match,
// then a wildcard for the parent domain (one label, RFC 6125 6.4.3), then
// the default. When several pairs match (say RSA and ECDSA), the first one
// the client supports wins.
func (c *Certificates) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := c.cur.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if cands, ok := s.exact[name]; ok {
			return pick(hello, cands), nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if cands, ok := s.wild[name[i+1:]]; ok {
				return pick(hello, cands), nil
			}
		}
	}
	return s.certs[0], nil
}

func pick(hello *tls.ClientHelloInfo, cands []*tls.Certificate) *tls.Certificate {
	if len(cands) > 1 {
		for _, c := range cands {
			if hello.SupportsCertificate(c) == nil {
				return c
			}
		}
	}
	return cands[0]
}

// Pairs returns the pairs c loads and reloads: those it was made with.
func (c *Certificates) Pairs() []CertPair { return append([]CertPair(nil), c.pairs...) }

// Reload reloads every pair from disk (call it on SIGHUP). A pair that fails
// to load keeps its previous certificate; the error names it.
func (c *Certificates) Reload() error {
	_, err := c.reload(true)
	return err
}

// ReloadIfChanged reloads the pairs whose files changed since they were
// last read (content digests, so a rewrite with the same mtime or a symlink
// swap counts). A failed pair is retried only after its files change again.
func (c *Certificates) ReloadIfChanged() (changed bool, err error) {
	return c.reload(false)
}

func (c *Certificates) reload(force bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur.Load()
	certs := append([]*tls.Certificate(nil), old.certs...)
	changed := false
	var errs []error
	for i, p := range c.pairs {
		if !force {
			sums, err := digests(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if sums == c.seen[i] {
				continue
			}
		}
		cert, sums, err := loadPair(p)
		c.seen[i] = sums
		if err != nil {
			errs = append(errs, fmt.Errorf("keeping the previous certificate: %w", err))
			continue
		}
		certs[i] = cert
		changed = true
	}
	if changed {
		c.cur.Store(newCertSet(certs))
	}
	return changed, errors.Join(errs...)
}

func digests(p CertPair) ([2][32]byte, error) {
	var sums [2][32]byte
	for i, f := range []string{p.CertFile, p.KeyFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			return sums, fmt.Errorf("checking %s: %w", f, err)
		}
		sums[i] = sha256.Sum256(b)
	}
	return sums, nil
}

// Watch checks the files every interval until ctx is done, reloading those
// that changed; report (if not nil) gets each reload error, and is called
// again only when the files change again. It returns when ctx is done.
func (c *Certificates) Watch(ctx context.Context, interval time.Duration, report func(error)) {
	if interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := c.ReloadIfChanged()
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if err != nil && msg != last && report != nil {
			report(err)
		}
		last = msg
	}
}

// NotAfter returns the earliest expiry among the loaded certificates (for an
// expiry metric), zero if none has a parsed leaf.
func (c *Certificates) NotAfter() time.Time {
	var t time.Time
	for _, cert := range c.cur.Load().certs {
		if cert.Leaf != nil && (t.IsZero() || cert.Leaf.NotAfter.Before(t)) {
			t = cert.Leaf.NotAfter
		}
	}
	return t
}
