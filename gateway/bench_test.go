package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

// BenchmarkGateway measures the whole request path in process (client IP,
// blocklist, store round trip, chain, proxy to a local upstream) with the
// prototype's chain, on the in-memory store and on a real redis-server; the
// difference is what Redis adds. Each request comes from a new client, so
// no limit is reached. Latency claims come from this real-Redis run, never
// from miniredis.
func BenchmarkGateway(b *testing.B) {
	run := func(b *testing.B, gs gateway.Store) {
		s := newSetup(b, gs)
		var n atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				req := httptest.NewRequest(http.MethodGet, "http://gw/api/endpoint?page=2", nil)
				req.RemoteAddr = "127.0.0.1:40000"
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255))
				req.Header.Set("User-Agent", "bench/1.0")
				w := httptest.NewRecorder()
				s.g.Handler().ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
	b.Run("memory", func(b *testing.B) {
		st := store.NewMemory(store.DefaultMemoryConfig())
		run(b, st)
	})
	b.Run("redis", func(b *testing.B) {
		srv := storetest.RealOwned(b)
		st := storetest.NewOn(b, srv.Addr)
		rdb := srv.Client()
		before := storetest.CommandStats(b, rdb)["evalsha"]
		run(b, st)
		b.StopTimer()
		if got := storetest.CommandStats(b, rdb)["evalsha"] - before; got > 0 {
			b.ReportMetric(float64(got)/float64(b.N), "redis-calls/op")
		}
	})
}
