package store_test

import (
	"testing"
	"time"

	"github.com/rampartgw/rampart/ipfeed/ipfeedtest"
	"github.com/rampartgw/rampart/store/storetest"
)

// TestFeedStoreContract runs the ipfeed contracts on miniredis and on a
// real Redis.
func TestFeedStoreContract(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		s, mr := storetest.New(t)
		ipfeedtest.SetStore(t, s.FeedStore())
		ipfeedtest.Lease(t, s.FeedLease("r1"), time.Second, func(d time.Duration) { mr.FastForward(d) })
	})
	t.Run("redis", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs redis-server")
		}
		s := storetest.NewFor(t, storetest.Real(t))
		ipfeedtest.SetStore(t, s.FeedStore())
		ipfeedtest.Lease(t, s.FeedLease("r1"), 300*time.Millisecond, func(d time.Duration) { time.Sleep(d) })
	})
}
