package crs_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/crs"
	"github.com/rampartgw/rampart/detections/internal/corpustest"
)

// The payload detection's benchmark requests (corpustest), with the
// request ID, the client and the Content-Length the gateway's view holds.

func cleanGET() *detections.Request { return withClient(corpustest.CleanGET()) }

const jsonBody1K = corpustest.JSONBody1K

func jsonPOST(body string) *detections.Request {
	r := withClient(corpustest.JSONPOST(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return r
}

func withClient(r *detections.Request) *detections.Request {
	r.ID, r.ClientIP = "bench", netip.MustParseAddr("198.51.100.7")
	return r
}

// BenchmarkInspect measures one Coraza transaction with the CRS at PL1
// and PL2 over the payload benchmark's clean GET and 1 KiB JSON POST, and
// an attack for the cost of a block (matched-rule bookkeeping).
func BenchmarkInspect(b *testing.B) {
	if n := len(jsonBody1K); n < 1000 || n > 1100 {
		b.Fatalf("body is %d bytes", n)
	}
	for _, pl := range []int{1, 2} {
		c := atLevel(b, pl)
		// Only the attack's verdict is checked: what the CRS makes of the
		// benign requests depends on the level (at PL2 it blocks the JSON
		// body's page URL, rule 931130).
		for _, bc := range []struct {
			name  string
			r     *detections.Request
			block bool
		}{
			{"clean-get", cleanGET(), false},
			{"json-1k", jsonPOST(jsonBody1K), false},
			{"sqli-get", req{target: "/products?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--"}.view(), true},
		} {
			b.Run("pl"+strconv.Itoa(pl)+"/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu := cpuTime(b)
				for b.Loop() {
					v, err := c.Inspect(b.Context(), bc.r)
					if err != nil || bc.block && v.Action != detections.ActionBlock {
						b.Fatal(v, err)
					}
				}
				reportCPU(b, cpuTime(b)-cpu)
			})
		}
	}
}

// BenchmarkNew measures compiling the WAF with the CRS at PL1 (start-up
// and each config reload).
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		c, err := crs.New(crs.DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}

// reportCPU adds the process CPU time per operation (garbage collection
// included), steadier than ns/op on a shared machine.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
