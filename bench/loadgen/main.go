// Command loadgen drives HTTP load for scripts/bench-load.sh.
//
// Closed loop (-mode closed): -c connections send back to back for -d; the
// result is throughput. Open loop (-mode open): requests are scheduled at a
// fixed -rate; latency is measured from each request's scheduled start, not
// its actual start, so a stalled server is charged for the requests that
// queue behind it (corrected for coordinated omission). Attack (-mode
// attack): an open-loop legitimate stream plus a closed-loop flood from
// -flood-ips addresses; it reports the flood's refusals per second and the
// legitimate stream's latency.
//
// Every legitimate request carries X-Forwarded-For with a distinct client
// address (the gateway trusts it from 127.0.0.1), so per-IP limits are not
// reached; -ip-offset keeps rounds from reusing addresses. Output is one
// JSON object on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	url, path, mode         string
	conns, rate, floodConns int
	dur                     time.Duration
	ipOffset, ips, floodIPs uint64
	floodBase, maxReq       uint64
	badEvery                uint64
	badPath                 string
}

// Result is what one run measured.
type Result struct {
	Mode      string        `json:"mode"`
	Requests  int64         `json:"requests"`
	Errors    int64         `json:"errors"`
	Status    map[int]int64 `json:"status"`
	Seconds   float64       `json:"seconds"`
	RPS       float64       `json:"rps"`
	P50ms     float64       `json:"p50_ms"`
	P90ms     float64       `json:"p90_ms"`
	P99ms     float64       `json:"p99_ms"`
	P999ms    float64       `json:"p999_ms"`
	MaxMs     float64       `json:"max_ms"`
	Late      int64         `json:"late,omitempty"` // open loop: requests started after their slot
	Flood     *Result       `json:"flood,omitempty"`
	RejectRPS float64       `json:"reject_rps,omitempty"`
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "http://127.0.0.1:8080", "target base URL")
	flag.StringVar(&c.path, "path", "/api/endpoint", "request path")
	flag.StringVar(&c.mode, "mode", "closed", "closed, open or attack")
	flag.IntVar(&c.conns, "c", 64, "connections (closed loop) or maximum in flight (open loop)")
	flag.IntVar(&c.rate, "rate", 2000, "requests per second (open loop, attack's legitimate stream)")
	flag.DurationVar(&c.dur, "d", 10*time.Second, "duration")
	flag.Uint64Var(&c.ipOffset, "ip-offset", 0, "first client address index (keep rounds apart)")
	flag.Uint64Var(&c.ips, "ips", 1<<24, "distinct legitimate client addresses, cycled")
	flag.Uint64Var(&c.floodIPs, "flood-ips", 100, "attack: flooding addresses")
	flag.Uint64Var(&c.floodBase, "flood-base", 0, "attack: index of the first flooding address")
	flag.IntVar(&c.floodConns, "flood-c", 64, "attack: flood connections")
	flag.Uint64Var(&c.maxReq, "n", 0, "closed loop: stop after this many requests (0: run for -d)")
	flag.Uint64Var(&c.badEvery, "bad-every", 0, "every N-th request goes to -bad-path instead (0: never)")
	flag.StringVar(&c.badPath, "bad-path", "/api/endpoint?id=1%27%20OR%20%271%27=%271", "path of the malicious requests")
	flag.Parse()

	var res *Result
	switch c.mode {
	case "closed":
		res = closed(c, c.conns, c.ipOffset, c.ips, c.maxReq, c.dur)
	case "open":
		res = open(c, c.dur)
	case "attack":
		res = attack(c)
	default:
		fmt.Fprintln(os.Stderr, "loadgen: unknown -mode", c.mode)
		os.Exit(2)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// addr returns the n-th client address: 10.0.0.0/8 then 11.0.0.0/8, ...
func addr(n uint64) string {
	return fmt.Sprintf("%d.%d.%d.%d", 10+(n>>24)%100, (n>>16)&255, (n>>8)&255, n&255)
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		Timeout: 10 * time.Second,
	}
}

type recorder struct {
	mu     sync.Mutex
	lat    []time.Duration
	status map[int]int64
	errs   int64
}

func (r *recorder) add(lat []time.Duration, status map[int]int64, errs int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, lat...)
	for k, v := range status {
		r.status[k] += v
	}
	r.errs += errs
}

func (r *recorder) result(mode string, took time.Duration) *Result {
	slices.Sort(r.lat)
	pct := func(p float64) float64 {
		if len(r.lat) == 0 {
			return 0
		}
		i := int(p * float64(len(r.lat)-1))
		return float64(r.lat[i]) / 1e6
	}
	n := int64(len(r.lat))
	res := &Result{Mode: mode, Requests: n, Errors: r.errs, Status: r.status, Seconds: took.Seconds(),
		RPS: float64(n) / took.Seconds(), P50ms: pct(.5), P90ms: pct(.9), P99ms: pct(.99), P999ms: pct(.999)}
	if n > 0 {
		res.MaxMs = float64(r.lat[n-1]) / 1e6
	}
	return res
}

func do(cl *http.Client, url, ip string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Forwarded-For", ip)
	req.Header.Set("User-Agent", "rampart-loadgen/1.0")
	req.Header.Set("Accept", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// pick returns the URL of the n-th request: every badEvery-th is malicious.
func (c *config) pick(url string, n uint64) string {
	if c.badEvery > 0 && n%c.badEvery == c.badEvery-1 {
		return c.url + c.badPath
	}
	return url
}

// closed runs conns workers back to back; addresses cycle from offset over
// ips distinct values.
func closed(c config, conns int, offset, ips, maxReq uint64, d time.Duration) *Result {
	cl := newClient(conns)
	rec := &recorder{status: map[int]int64{}}
	var seq atomic.Uint64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	url := c.url + c.path
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			status := map[int]int64{}
			var errs int64
			for ctx.Err() == nil {
				n := seq.Add(1) - 1
				if maxReq > 0 && n >= maxReq {
					break
				}
				t0 := time.Now()
				code, err := do(cl, c.pick(url, n), addr(offset+n%ips))
				if err != nil {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				lat = append(lat, time.Since(t0))
				status[code]++
			}
			rec.add(lat, status, errs)
		})
	}
	wg.Wait()
	return rec.result("closed", time.Since(start))
}

// open schedules requests at c.rate for d; latency counts from the slot.
func open(c config, d time.Duration) *Result {
	cl := newClient(c.conns)
	rec := &recorder{status: map[int]int64{}}
	total := int64(c.rate) * int64(d) / int64(time.Second)
	interval := time.Second / time.Duration(c.rate)
	var seq atomic.Int64
	var late atomic.Int64
	url := c.url + c.path
	start := time.Now().Add(50 * time.Millisecond)
	var wg sync.WaitGroup
	for w := 0; w < c.conns; w++ {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			status := map[int]int64{}
			var errs int64
			for {
				i := seq.Add(1) - 1
				if i >= total {
					break
				}
				slot := start.Add(time.Duration(i) * interval)
				if wait := time.Until(slot); wait > 0 {
					time.Sleep(wait)
				} else if wait < -time.Millisecond {
					late.Add(1)
				}
				code, err := do(cl, c.pick(url, uint64(i)), addr(c.ipOffset+uint64(i)%c.ips))
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(slot))
				status[code]++
			}
			rec.add(lat, status, errs)
		})
	}
	wg.Wait()
	res := rec.result("open", time.Since(start))
	res.Late = late.Load()
	return res
}

// attack runs the open-loop legitimate stream and, at the same time, a
// closed-loop flood from c.floodIPs addresses starting at c.floodBase.
func attack(c config) *Result {
	var flood *Result
	var wg sync.WaitGroup
	wg.Go(func() { flood = closed(c, c.floodConns, c.floodBase, c.floodIPs, 0, c.dur) })
	legit := open(c, c.dur)
	wg.Wait()
	legit.Mode = "attack"
	legit.Flood = flood
	refused := int64(0)
	for code, n := range flood.Status {
		if code == http.StatusForbidden || code == http.StatusTooManyRequests {
			refused += n
		}
	}
	legit.RejectRPS = float64(refused) / flood.Seconds
	return legit
}
