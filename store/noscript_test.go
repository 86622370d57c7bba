package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

// loadBetween is a hook that makes the first pipelined check race another
// client: the script is loaded after the pipeline's first call (which
// then fails with NOSCRIPT) and before the others (which run).
type loadBetween struct {
	once sync.Once
	rdb  *redis.Client
}

func (h *loadBetween) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *loadBetween) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}

func (h *loadBetween) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		first := false
		if len(cmds) > 1 && cmds[0].Name() == "evalsha" {
			h.once.Do(func() { first = true })
		}
		if !first {
			return next(ctx, cmds)
		}
		err := next(ctx, cmds[:1])
		if lerr := h.rdb.ScriptLoad(ctx, store.CheckScript()).Err(); lerr != nil {
			return lerr
		}
		return errorsJoin(err, next(ctx, cmds[1:]))
	}
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// TestCheckSubjectsNoScriptRace: when the script cache is empty and
// another client loads the script while a pipelined check runs, the calls
// that ran are not run again: an identity's bucket loses one token per
// request, not two.
func TestCheckSubjectsNoScriptRace(t *testing.T) {
	s, mr := storetest.New(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	s.AddHook(&loadBetween{rdb: rdb})
	limit := detections.Limit{Rate: 3, Burst: 3, Period: 60e9}
	q := &detections.StateQuery{}
	sq := q.Subject("id:00000000000000000000000000000001")
	sq.RateLimit = limit
	c, err := s.Check(t.Context(), "192.0.2.1", q)
	if err != nil {
		t.Fatal(err)
	}
	got := c.State.Of("id:00000000000000000000000000000001")
	if got == nil || got.Rate.Allowed != 1 || got.Rate.Remaining != 2 {
		t.Fatalf("first check: %+v, want allowed with 2 remaining (one token taken)", got)
	}
}

// TestHotPathAfterScriptFlush: with the server's script cache emptied
// (a restart, SCRIPT FLUSH), a check and a counter call send the script
// once with EVAL and run it once, both straight on a connection and
// through the autopipeline (64 in flight): every client's bucket loses one
// token per request and the counter counts once per call.
func TestHotPathAfterScriptFlush(t *testing.T) {
	s, mr := storetest.New(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	limit := detections.Limit{Rate: 5, Burst: 5, Period: 60e9}
	check := func(client string) detections.RateResult {
		t.Helper()
		c, err := s.Check(t.Context(), client, &detections.StateQuery{RateLimit: limit})
		if err != nil {
			t.Fatal(err)
		}
		return c.State.Rate
	}
	flush := func() {
		t.Helper()
		if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
	}

	flush()
	if r := check("192.0.2.1"); r.Allowed != 1 || r.Remaining != 4 {
		t.Fatalf("first check after a flush: %+v, want allowed with 4 remaining", r)
	}
	flush()
	if n, err := s.Incr(t.Context(), "192.0.2.1", 60e9); err != nil || n != 1 {
		t.Fatalf("counter after a flush: %d, %v; want 1", n, err)
	}

	flush()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			c, err := s.Check(context.Background(), "198.51.100.7", &detections.StateQuery{RateLimit: detections.Limit{Rate: 100, Burst: 100, Period: 60e9}})
			if err == nil && c.State.Rate.Allowed != 1 {
				err = errors.New("refused")
			}
			if err != nil {
				errs <- fmt.Errorf("check %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c, err := s.Check(t.Context(), "198.51.100.7", &detections.StateQuery{RateLimit: detections.Limit{Rate: 100, Burst: 100, Period: 60e9}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.State.Rate.Remaining; got != 100-65 {
		t.Errorf("after 65 checks the bucket holds %d tokens, want %d (each check ran once)", got, 100-65)
	}
}
