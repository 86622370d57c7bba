package jwtstoretest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections/jwt"
)

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestMemoryAlgStore(t *testing.T) {
	clk := &fakeClock{}
	clk.ns.Store(time.Unix(1_750_000_000, 0).UnixNano())
	TestAlgStore(t, AlgStoreContract{
		New: func(*testing.T) jwt.AlgStore {
			return jwt.NewMemoryAlgStore(jwt.MemoryAlgStoreConfig{
				MaxKeys: 100, MaxWitnesses: 3, LearnTTL: time.Hour, SightingTTL: time.Minute, Now: clk.now,
			})
		},
		LearnTTL: time.Hour, SightingTTL: time.Minute, Advance: clk.advance,
	})
}

func TestMemorySecretCache(t *testing.T) {
	clk := &fakeClock{}
	clk.ns.Store(time.Unix(1_750_000_000, 0).UnixNano())
	TestSecretCache(t, SecretCacheContract{
		New:     func(*testing.T) jwt.SecretCache { return jwt.NewMemorySecretCache(100, clk.now) },
		Advance: clk.advance, TTL: time.Minute,
	})
}
