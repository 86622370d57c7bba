package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartgw/rampart/alert"
	"github.com/rampartgw/rampart/store/storetest"
)

// BenchmarkRequestPath measures requests through the gateway (one in ten
// blocked, so events flow) with the console and alerting off, then on: the
// monitor sampling the metrics and heartbeating, the event tail and the
// top-offender consumer, four live pages subscribed, and the alerter. On a
// real Redis when redis-server is installed (latency claims come from
// there only), else miniredis.
//
//	go test -run '^$' -bench RequestPath -benchtime 3s -count 3 ./console/
func BenchmarkRequestPath(b *testing.B) {
	var addr string
	if _, err := exec.LookPath("redis-server"); err == nil {
		addr = storetest.Real(b).Addr
	} else {
		_, mr := storetest.New(b)
		addr = mr.Addr()
	}
	for _, on := range []bool{false, true} {
		name := "console_off"
		if on {
			name = "console_on"
		}
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, harnessOpts{redisAddr: addr, token: testToken, replica: name, noMonitor: !on})
			var consumed atomic.Int64
			if on {
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for range 4 {
					sub := h.mon.Subscribe(64)
					wg.Go(func() {
						defer sub.Close()
						for {
							select {
							case <-ctx.Done():
								return
							case evs := <-sub.C():
								consumed.Add(int64(len(evs)))
							}
						}
					})
				}
				cfg := alert.DefaultConfig()
				al, err := alert.New(alert.Options{Config: cfg, Replica: name, Claimer: h.st.(alert.Claimer), Fleet: h.st, Health: h.g.Store()})
				if err != nil {
					b.Fatal(err)
				}
				sub := h.mon.Subscribe(1024)
				wg.Go(func() { al.Run(ctx, sub.C()); sub.Close() })
				b.Cleanup(func() { cancel(); wg.Wait() })
				time.Sleep(200 * time.Millisecond) // everything is running
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					path := "/api/items"
					if i%10 == 0 {
						path = "/api/items?q=malicious"
					}
					req, _ := http.NewRequest("GET", h.proxy.URL+path, nil)
					req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i%200))
					req.Header.Set("User-Agent", "bench")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.StopTimer()
			if on {
				b.ReportMetric(float64(consumed.Load())/4/float64(max(n.Load()/10, 1)), "live_events/block")
			}
		})
	}
}
