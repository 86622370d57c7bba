package ipfeed_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/rampartgw/rampart/ipfeed"
	"github.com/rampartgw/rampart/ipfeed/ipfeedtest"
)

func TestMemoryStoreContract(t *testing.T) {
	t.Parallel()
	ipfeedtest.SetStore(t, ipfeed.NewMemoryStore())
}

func TestMemoryLeaseContract(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	l := ipfeed.NewMemoryLease(func() time.Time { return now })
	ipfeedtest.Lease(t, l, time.Minute, func(d time.Duration) { now = now.Add(d) })
}

// TestMetaJSON: the Redis store keeps Meta as JSON; every field must
// survive.
func TestMetaJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	m := ipfeed.Meta{
		Version: 3, Digest: "d", Source: "s", Fetched: at, Checked: at.Add(time.Hour), Attempted: at.Add(2 * time.Hour),
		LastError: "e", ETag: `"x"`, LastModified: "lm", Entries: 1, Ranges: 2, Invalid: 3, Dropped: 4,
		Problems: []string{"p"}, Replica: "r",
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back ipfeed.Meta
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, m) {
		t.Fatalf("round trip: %+v, %v\n%s", back, err, b)
	}
	rv := reflect.ValueOf(m)
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			t.Errorf("field %s not covered", rv.Type().Field(i).Name)
		}
	}
}
