package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/store/storetest"
)

// TestCheckSubjectAllocs bounds what each subject adds to a Check's
// allocations, on a real Redis (miniredis would count the server's own):
// its command line (one slice, its four keys boxed), its keys' one
// buffer, the command and its reply. The flags and limits are boxed once
// for all (argTrue/argFalse, limitArgs' cache), not per subject. With
// the flags boxed per call and EvalSha copying each line it was 15.5 (8.5
// now, go-redis v9.23).
func TestCheckSubjectAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	s := storetest.NewFor(t, storetest.Real(t))
	ctx := context.Background()
	l := detections.Limit{Rate: 1_000_000, Burst: 1_000_000, Period: time.Second}
	query := func(subjects int) *detections.StateQuery {
		q := &detections.StateQuery{RateLimit: l, BanAfter: 3, InvalidWindow: time.Minute}
		for i := range subjects {
			q.Subjects = append(q.Subjects, detections.SubjectQuery{
				Subject: fmt.Sprintf("id:%032x", i), RateLimit: l, BanAfter: 3, InvalidWindow: time.Minute, CountInvalid: true,
			})
		}
		return q
	}
	allocs := func(q *detections.StateQuery) float64 {
		if _, err := s.Check(ctx, "192.0.2.1", q); err != nil { // loads the script
			t.Fatal(err)
		}
		return testing.AllocsPerRun(200, func() {
			if _, err := s.Check(ctx, "192.0.2.1", q); err != nil {
				t.Fatal(err)
			}
		})
	}
	one, three := allocs(query(1)), allocs(query(3))
	per := (three - one) / 2
	t.Logf("allocations per Check: %.0f with one subject, %.0f with three: %.1f per subject", one, three, per)
	// The bound leaves room for the pool's background work, which
	// AllocsPerRun counts too; boxing per subject again would exceed it.
	if per > 12 {
		t.Errorf("%.1f allocations per subject, want <= 12", per)
	}
}
