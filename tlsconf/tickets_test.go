package tlsconf

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/tlsfp"
)

// TestTicketsSharedByReplicas: two replicas (two listeners, two
// tls.Configs) share one KeySource; a session made on A resumes on B.
func TestTicketsSharedByReplicas(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tlsfp.VersionLabel(v), func(t *testing.T) {
			t.Parallel()
			src := NewMemoryKeySource(time.Hour, 1)
			a, b := startServer(t), startServer(t)
			// B serves A's certificate, as replicas do.
			b.certs.cur.Store(a.certs.cur.Load())
			tk := NewTicketKeys(src, 1)
			tk.Attach(a.l.TLSConfig(), b.l.TLSConfig())
			if err := tk.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			cfg := a.clientConfig()
			cfg.MinVersion, cfg.MaxVersion = v, v
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
			connect := func(s *server) bool { return resumed(t, s, cfg) }
			if connect(a) {
				t.Fatal("first connection resumed")
			}
			if !connect(b) {
				t.Fatal("a session made on A did not resume on B")
			}
			// One rotation: the previous key still decrypts.
			if err := src.Rotate(); err != nil {
				t.Fatal(err)
			}
			if err := tk.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !connect(a) {
				t.Fatal("no resumption after one rotation (previous key kept)")
			}
			// Two rotations past the key of a fresh ticket: it no longer
			// decrypts, the handshake is simply full.
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
			connect(b)
			for range 2 {
				if err := src.Rotate(); err != nil {
					t.Fatal(err)
				}
			}
			if err := tk.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			if connect(a) {
				t.Fatal("resumed with a key older than ticket_keys_kept")
			}
		})
	}
}

// TestReplicasWithoutSharedKeysDoNotResume is the control: each replica
// with its own keys, no cross-replica resumption.
func TestReplicasWithoutSharedKeysDoNotResume(t *testing.T) {
	t.Parallel()
	a, b := startServer(t), startServer(t)
	b.certs.cur.Store(a.certs.cur.Load())
	for _, s := range []*server{a, b} {
		tk := NewTicketKeys(NewMemoryKeySource(time.Hour, 1), 1)
		tk.Attach(s.l.TLSConfig())
		if err := tk.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	cfg := a.clientConfig()
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	for i, s := range []*server{a, b} {
		c, _, err := dialGo(t, s.addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "hi\n")
		if c.ConnectionState().DidResume {
			t.Fatalf("connection %d resumed across replicas with different keys", i)
		}
		_ = c.Close()
	}
}

func TestMemoryKeySource(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	m := NewMemoryKeySource(time.Hour, 2)
	m.now = func() time.Time { return now }
	k1, err := m.TicketKeys(t.Context())
	if err != nil || len(k1) != 1 {
		t.Fatalf("%d keys, %v", len(k1), err)
	}
	k1b, _ := m.TicketKeys(t.Context())
	if k1b[0] != k1[0] {
		t.Fatal("rotated before the period")
	}
	var seen [][32]byte
	for range 4 {
		now = now.Add(time.Hour)
		ks, _ := m.TicketKeys(t.Context())
		seen = append(seen, ks[0])
		if len(ks) > 3 {
			t.Fatalf("%d keys kept, want at most 3", len(ks))
		}
	}
	ks, _ := m.TicketKeys(t.Context())
	if ks[0] != seen[3] || ks[1] != seen[2] || ks[2] != seen[1] {
		t.Error("keys not newest first")
	}
	var zero [32]byte
	for _, k := range ks {
		if k == zero {
			t.Error("zero key")
		}
	}
}

type emptySource struct{}

func (emptySource) TicketKeys(context.Context) ([][32]byte, error) { return nil, nil }

func TestTicketKeysRejectsEmptySource(t *testing.T) {
	t.Parallel()
	tk := NewTicketKeys(emptySource{}, 1)
	tk.Attach(&tls.Config{})
	if err := tk.Refresh(t.Context()); !errors.Is(err, ErrNoTicketKeys) {
		t.Fatalf("Refresh: %v", err)
	}
}

// fixedSource returns the keys it holds, as a shared source would.
type fixedSource struct {
	mu   sync.Mutex
	keys [][32]byte
}

func (f *fixedSource) set(keys ...[32]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = keys
}

func (f *fixedSource) TicketKeys(context.Context) ([][32]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.keys), nil
}

// TestTicketKeysInstallsNextAndEveryKept: a shared source (the gateway's
// Redis store) returns [current, next, previous_1..previous_kept], 2+kept
// keys. All of them decrypt: a ticket issued kept epochs ago still
// resumes, and so does one issued under the next key by a replica whose
// epoch already turned.
func TestTicketKeysInstallsNextAndEveryKept(t *testing.T) {
	t.Parallel()
	key := func() (k [32]byte) { _, _ = rand.Read(k[:]); return k }
	for _, kept := range []int{0, 2} {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(fmt.Sprintf("kept=%d/%s", kept, tlsfp.VersionLabel(v)), func(t *testing.T) {
				t.Parallel()
				cur, next := key(), key()
				list := [][32]byte{cur, next}
				for range kept {
					list = append(list, key())
				}
				// The oldest key the source still gives: previous_kept, or
				// next without previous keys.
				oldest := list[len(list)-1]
				issuer, resumer := startServer(t), startServer(t)
				resumer.certs.cur.Store(issuer.certs.cur.Load())
				src := &fixedSource{}
				src.set(oldest)
				issuing := NewTicketKeys(src, kept)
				issuing.Attach(issuer.l.TLSConfig())
				if err := issuing.Refresh(t.Context()); err != nil {
					t.Fatal(err)
				}
				cfg := issuer.clientConfig()
				cfg.MinVersion, cfg.MaxVersion = v, v
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
				connect := func(s *server) bool { return resumed(t, s, cfg) }
				if connect(issuer) {
					t.Fatal("first connection resumed")
				}
				src.set(list...)
				tk := NewTicketKeys(src, kept)
				tk.Attach(resumer.l.TLSConfig())
				if err := tk.Refresh(t.Context()); err != nil {
					t.Fatal(err)
				}
				if !connect(resumer) {
					t.Fatalf("a ticket under key %d of the %d the source returns (ticket_keys_kept %d) did not resume", len(list), len(list), kept)
				}
			})
		}
	}
}

// resumed connects to s with cfg, exchanges a line, and reports whether
// the session was resumed.
func resumed(t *testing.T, s *server, cfg *tls.Config) bool {
	t.Helper()
	c, _, err := dialGo(t, s.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "hi\n")
	return c.ConnectionState().DidResume
}
