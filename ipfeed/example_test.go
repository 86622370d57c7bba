package ipfeed_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/rampartgw/rampart/ipfeed"
)

// A single instance: no lease or store given, so in-memory ones are used.
// With Redis, every replica passes the same Lease and SetStore and the
// fleet fetches each feed once per refresh.
func ExampleManager() {
	cfg := ipfeed.Config{Feeds: []ipfeed.FeedConfig{
		{Name: "drop", File: "testdata/drop.txt"},
		{Name: "level1", File: "testdata/firehol.netset", Mode: ipfeed.ModeMonitor},
	}}
	m, err := ipfeed.NewManager(cfg, nil, nil, ipfeed.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := m.Sync(ctx); err != nil { // before serving: load every list once
		fmt.Println(err)
	}
	// go m.Run(ctx) keeps them fresh.
	for _, ip := range []string{"192.0.2.10", "10.1.2.3", "203.0.113.1", "2001:db8:4000::1", "198.18.0.1"} {
		if hit, ok := m.Match(netip.MustParseAddr(ip)); ok {
			fmt.Println(ip, "listed by", hit.Feed, hit.Mode)
		} else {
			fmt.Println(ip, "not listed")
		}
	}
	for _, st := range m.Status() {
		fmt.Println(st.Feed, st.Entries, "entries,", st.Ranges, "ranges")
	}
	// Output:
	// 192.0.2.10 listed by drop enforce
	// 10.1.2.3 listed by level1 monitor
	// 203.0.113.1 listed by level1 monitor
	// 2001:db8:4000::1 listed by drop enforce
	// 198.18.0.1 not listed
	// drop 4 entries, 4 ranges
	// level1 6 entries, 5 ranges
}
