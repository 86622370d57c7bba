package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/store/storetest"
)

// TestPoolKeepsWarmConnections: the pool holds connections open before the
// first request and again after Redis drops every client (what a restart
// or failover does), so a burst of concurrent checks does not dial inside
// redis.timeout: at start, and once the pool has seen the drop.
func TestPoolKeepsWarmConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("real redis")
	}
	srv := storetest.Real(t)
	s := storetest.NewFor(t, srv)
	waitIdle := func(what string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for s.IdleConns() < 5 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d idle connections after 3 s, want at least 5", what, s.IdleConns())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitIdle("at start, before any request")
	q := &detections.StateQuery{RateLimit: detections.Limit{Rate: 1000, Burst: 1000, Period: time.Minute}}
	burst := func(what string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Go(func() {
				if _, err := s.Check(context.Background(), fmt.Sprintf("192.0.2.%d", i), q); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", what, err)
		}
	}
	burst("first burst")
	// Redis drops every normal client; the first calls after it meet dead
	// connections (and may fail, as any client's would), then the pool
	// redials its idle set in the background.
	if err := srv.Client().ClientKillByFilter(context.Background(), "TYPE", "normal").Err(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		_, _ = s.Check(context.Background(), "192.0.2.250", q)
	}
	waitIdle("after every client was dropped")
	burst("burst after the drop")
}
