package tlsconf

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// KeySource supplies session-ticket keys. Replicas that share one source
// resume each other's sessions.
//
// TicketKeys returns the current keys, newest first: the first encrypts new
// tickets, every key decrypts. A shared implementation (Redis in the
// gateway) must return the same list to every replica; the replica that
// first finds no key generates one (crypto/rand, SET NX), a new key is added
// every ticket_rotation, and old keys are dropped after ticket_keys_kept
// rotations. To avoid a window where replica A issues tickets that replica B
// cannot read yet, a source should publish a new key as the second entry
// for one refresh interval before moving it first: the list is then
// [current, next, previous_1..previous_kept], and TicketKeys installs up to
// those 2+ticket_keys_kept keys. Keys are secrets: never log them.
type KeySource interface {
	TicketKeys(ctx context.Context) ([][32]byte, error)
}

// ErrNoTicketKeys is returned when a source has no key to give.
var ErrNoTicketKeys = errors.New("tls: key source returned no session-ticket key")

// MemoryKeySource is a KeySource for one process (and for tests): it makes
// its first key on first use and a new one every rotation, keeping kept
// previous keys.
type MemoryKeySource struct {
	rotation time.Duration
	kept     int
	now      func() time.Time

	mu      sync.Mutex
	keys    [][32]byte
	rotated time.Time
}

// NewMemoryKeySource returns a source rotating every rotation (at least a
// minute) and keeping kept previous keys.
func NewMemoryKeySource(rotation time.Duration, kept int) *MemoryKeySource {
	return &MemoryKeySource{rotation: max(rotation, time.Minute), kept: max(kept, 0), now: time.Now}
}

// TicketKeys implements KeySource.
func (m *MemoryKeySource) TicketKeys(context.Context) ([][32]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.keys) == 0 || m.now().Sub(m.rotated) >= m.rotation {
		if err := m.rotateLocked(); err != nil {
			return nil, err
		}
	}
	return slices.Clone(m.keys), nil
}

// Rotate makes a new key now.
func (m *MemoryKeySource) Rotate() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rotateLocked()
}

func (m *MemoryKeySource) rotateLocked() error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("generating a session-ticket key: %w", err)
	}
	m.keys = append([][32]byte{k}, m.keys...)
	if len(m.keys) > 1+m.kept {
		m.keys = m.keys[:1+m.kept]
	}
	m.rotated = m.now()
	return nil
}

// TicketKeys copies a KeySource's keys into tls.Configs
// (tls.Config.SetSessionTicketKeys). Attach the configs that serve
// connections (Listener.TLSConfig, since Listen clones its config), then
// call Refresh once and Run in the background.
type TicketKeys struct {
	src  KeySource
	kept int

	mu      sync.Mutex
	configs []*tls.Config
	last    [][32]byte
}

// NewTicketKeys returns a TicketKeys reading src, kept being the source's
// ticket_keys_kept: at most 2+kept keys are installed, the current one, the
// next one a shared source publishes ahead of its epoch (see KeySource),
// and kept previous ones.
func NewTicketKeys(src KeySource, kept int) *TicketKeys {
	return &TicketKeys{src: src, kept: max(kept, 0)}
}

// Attach adds configs; they get the current keys at once if any were read.
func (t *TicketKeys) Attach(configs ...*tls.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.configs = append(t.configs, configs...)
	if len(t.last) > 0 {
		for _, c := range configs {
			c.SetSessionTicketKeys(t.last)
		}
	}
}

// Refresh reads the source and installs its keys when they changed. On
// error the installed keys stay (tickets keep working until they expire).
func (t *TicketKeys) Refresh(ctx context.Context) error {
	keys, err := t.src.TicketKeys(ctx)
	if err != nil {
		return fmt.Errorf("reading session-ticket keys: %w", err)
	}
	if len(keys) == 0 {
		return ErrNoTicketKeys
	}
	if n := maxTicketKeys(t.kept); len(keys) > n {
		keys = keys[:n]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Equal(keys, t.last) {
		return nil
	}
	t.last = slices.Clone(keys)
	for _, c := range t.configs {
		c.SetSessionTicketKeys(t.last)
	}
	return nil
}

// maxTicketKeys is how many keys a source keeping kept previous keys may
// return: [current, next, previous_1..previous_kept]. Cutting the list
// shorter would drop the oldest previous key (its tickets stop resuming
// one epoch early) or, with kept 0, the next key (tickets another replica
// already issues with it would not resume here).
func maxTicketKeys(kept int) int { return 2 + kept }

// Run refreshes every interval until ctx is done, passing errors to report
// (if not nil). A refresh interval well below the rotation (say a minute for
// an hour) keeps replicas in step.
func (t *TicketKeys) Run(ctx context.Context, every time.Duration, report func(error)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := t.Refresh(ctx); err != nil && report != nil {
				report(err)
			}
		}
	}
}
