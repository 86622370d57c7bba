package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections/jwt"
	"github.com/rampartgw/rampart/detections/jwt/jwtstoretest"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

func TestJWTStoresOnMiniredis(t *testing.T) {
	s, mr := storetest.New(t)
	jwtstoretest.TestAlgStore(t, jwtstoretest.AlgStoreContract{
		New:      func(*testing.T) jwt.AlgStore { mr.FlushAll(); return s.JWTAlgStore(time.Hour, time.Minute) },
		LearnTTL: time.Hour, SightingTTL: time.Minute, Advance: mr.FastForward,
	})
	jwtstoretest.TestSecretCache(t, jwtstoretest.SecretCacheContract{
		New:     func(*testing.T) jwt.SecretCache { mr.FlushAll(); return s.JWTSecretCache() },
		Advance: mr.FastForward, TTL: time.Minute,
	})
}

func TestJWTStoresOnRealRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	srv := storetest.RealOwned(t)
	s := storetest.NewFor(t, srv)
	c := srv.Client()
	jwtstoretest.TestAlgStore(t, jwtstoretest.AlgStoreContract{
		New: func(t *testing.T) jwt.AlgStore {
			_ = c.FlushAll(t.Context()).Err()
			return s.JWTAlgStore(time.Second, 300*time.Millisecond)
		},
		LearnTTL: time.Second, SightingTTL: 300 * time.Millisecond, Advance: time.Sleep,
	})
	jwtstoretest.TestSecretCache(t, jwtstoretest.SecretCacheContract{
		New:     func(t *testing.T) jwt.SecretCache { _ = c.FlushAll(t.Context()).Err(); return s.JWTSecretCache() },
		Advance: time.Sleep, TTL: 300 * time.Millisecond,
	})
}

// TestSpread: distinct clients per token, within a window, on both stores.
func TestSpread(t *testing.T) {
	rs, mr := storetest.New(t)
	mem := store.NewMemory(store.DefaultMemoryConfig())
	for name, sp := range map[string]interface {
		Spread(ctx context.Context, token, member string, window time.Duration) (int64, error)
	}{"redis": rs, "memory": mem} {
		for i, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.3"} {
			n, err := sp.Spread(t.Context(), "id:tok", ip, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if want := []int64{1, 2, 2, 3}[i]; n != want {
				t.Errorf("%s: after %d uses, %d distinct, want %d", name, i+1, n, want)
			}
		}
	}
	mr.FastForward(2 * time.Minute)
	if n, _ := rs.Spread(t.Context(), "id:tok", "192.0.2.9", time.Minute); n != 1 {
		t.Errorf("window not reset: %d", n)
	}
}
