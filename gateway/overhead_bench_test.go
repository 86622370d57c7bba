package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

// upstreamBody is the demo upstream's /api/endpoint answer.
var upstreamBody = []byte(`{"message":"API endpoint reached successfully"}` + "\n")

// inProcess answers every request in process, as the demo upstream does,
// so a benchmark measures the proxy and not the network or the upstream.
type inProcess struct{}

func (inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(upstreamBody)),
		ContentLength: int64(len(upstreamBody)),
		Request:       req,
	}, nil
}

// discardWriter is a reusable http.ResponseWriter that keeps nothing.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func (w *discardWriter) reset() {
	clear(w.h)
	w.status = 0
}

// defaultEntries is the default chain (every detection but the optional
// crs, enforcing) with a limit no benchmark client reaches.
func defaultEntries(b testing.TB, st detections.Counter) []detections.Entry {
	b.Helper()
	ip, err := detections.NewIP(detections.IPConfig{})
	if err != nil {
		b.Fatal(err)
	}
	tl, err := detections.NewTLS(detections.DefaultTLSConfig())
	if err != nil {
		b.Fatal(err)
	}
	jw, err := detections.NewJWT(detections.DefaultJWTConfig(), detections.JWTDeps{})
	if err != nil {
		b.Fatal(err)
	}
	ua, err := detections.NewUserAgent(detections.DefaultUserAgentConfig())
	if err != nil {
		b.Fatal(err)
	}
	rcfg := detections.DefaultRateLimitConfig()
	rcfg.Limit = detections.PerMinute(1 << 20)
	rl, err := detections.NewRateLimit(rcfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	en, err := detections.NewEnumeration(detections.DefaultEnumerationConfig(), st)
	if err != nil {
		b.Fatal(err)
	}
	pl, err := payload.New(payload.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	return []detections.Entry{{Detection: ip}, {Detection: tl}, {Detection: jw}, {Detection: ua}, {Detection: rl}, {Detection: en}, {Detection: pl}}
}

// cpuNow is the process's user and system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOverhead measures what the gateway adds to a plain
// httputil.ReverseProxy, with the upstream answered in process (the same
// canned answer for both): the default chain, the client's lookups and
// the store call, as bench-load's legitimate requests see them (a GET
// from one of 10,000 clients behind a trusted proxy). cpu-ns/op is the
// process's CPU per request: with Redis, the store client's own work
// without Redis' (another process). The redis cases need redis-server
// (GATEWAY_TEST_REDIS_ADDR to use a running one); redis-parallel keeps 64
// requests in flight, so calls go through the autopipeline as under load.
func BenchmarkOverhead(b *testing.B) {
	up, _ := url.Parse("http://upstream.test")
	serve := func(b *testing.B, h http.Handler, parallel bool) {
		var n atomic.Uint64
		one := func(w *discardWriter) {
			i := n.Add(1)
			req, _ := http.NewRequest(http.MethodGet, "http://gw.test/api/endpoint", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			req.Header["X-Forwarded-For"] = []string{fmt.Sprintf("10.0.%d.%d", (i/256)%40, i%256)}
			req.Header["User-Agent"] = []string{"rampart-loadgen/1.0"}
			req.Header["Accept"] = []string{"application/json"}
			w.reset()
			h.ServeHTTP(w, req)
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		c0 := cpuNow()
		if parallel {
			b.SetParallelism(32) // 64 in flight with GOMAXPROCS=2
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					one(w)
				}
			})
		} else {
			w := &discardWriter{h: http.Header{}}
			for b.Loop() {
				one(w)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuNow()-c0)/float64(b.N), "cpu-ns/op")
	}
	gw := func(b *testing.B, st gateway.Store) http.Handler {
		cfg := gateway.DefaultConfig()
		cfg.Upstream.Instances = []string{up.String()}
		cfg.Replica = "bench"
		cfg.TrustedProxies = []string{"127.0.0.1/32"}
		chain, err := detections.NewChain(defaultEntries(b, st.(detections.Counter))...)
		if err != nil {
			b.Fatal(err)
		}
		g, err := gateway.New(cfg, &gateway.Policy{Chain: chain}, gateway.Options{Store: st, Transport: inProcess{}})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		go g.Run(ctx)
		return g.Handler()
	}
	b.Run("plain", func(b *testing.B) {
		serve(b, &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
			Transport: inProcess{},
		}, false)
	})
	b.Run("gateway-memory", func(b *testing.B) {
		serve(b, gw(b, store.NewMemory(store.DefaultMemoryConfig())), false)
	})
	b.Run("gateway-redis", func(b *testing.B) {
		serve(b, gw(b, storetest.NewFor(b, storetest.Real(b))), false)
	})
	b.Run("gateway-redis-parallel", func(b *testing.B) {
		serve(b, gw(b, storetest.NewFor(b, storetest.Real(b))), true)
	})
}

// BenchmarkStoreCheck is the store client's cost of one legitimate
// request's check (a new client each time, 64 in flight).
func BenchmarkStoreCheck(b *testing.B) {
	srv := storetest.Real(b)
	for _, ap := range []bool{true, false} {
		b.Run(fmt.Sprintf("autopipeline=%v", ap), func(b *testing.B) {
			cfg := storetest.ConfigFor(srv)
			cfg.AutoPipeline = ap
			st, err := store.NewRedis(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			q := detections.StateQuery{RateLimit: detections.PerMinute(1 << 20), BanAfter: 10, InvalidWindow: 10 * time.Minute}
			var n atomic.Uint64
			b.ReportAllocs()
			b.SetParallelism(32)
			c0 := cpuNow()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					qq := q
					if _, err := st.Check(context.Background(), fmt.Sprintf("10.1.%d.%d", (i/256)%40, i%256), &qq); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuNow()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}
