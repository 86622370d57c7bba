package crs_test

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/crs"
	"github.com/rampartgw/rampart/detections/internal/corpustest"
)

// The development corpora sit beside the repository (see
// ../shared/corpus/README.md).
var corpusFiles = []string{
	"../../../shared/corpus/dev.jsonl.gz",
	"../../../shared/corpus/dev-extra.jsonl.gz",
}

// Environment knobs of the corpus measurement:
//
//	RAMPART_CRS_CORPUS=1        run both corpora and print the tables
//	RAMPART_CRS_PL=1,2          paranoia levels to measure (default 1,2)
//	RAMPART_CRS_SHOW=N          list N false positives and N misses (default 0)
//	RAMPART_CRS_INCLUDE=re      only categories matching re
//	RAMPART_CRS_EXCLUDE=id,id   exclude_rules, to measure a tuning
const (
	envCorpus  = "RAMPART_CRS_CORPUS"
	envPL      = "RAMPART_CRS_PL"
	envShow    = "RAMPART_CRS_SHOW"
	envInclude = "RAMPART_CRS_INCLUDE"
	envExclude = "RAMPART_CRS_EXCLUDE"
)

// corpusRecord is one corpus line.
type corpusRecord = corpustest.Record

func loadCorpus(t testing.TB, path string) []corpusRecord {
	return (&corpustest.File{Path: path}).Load(t)
}

// corpusView builds the request view as the gateway does behind the
// corpus runner (corpustest.Request), with the request ID, the client and
// the Content-Length the runner sends.
func corpusView(rec *corpusRecord) *detections.Request {
	r := corpustest.Request(rec)
	if r == nil {
		return nil
	}
	r.ID, r.ClientIP = rec.ID, netip.MustParseAddr("198.18.0.1")
	if len(r.Body) > 0 {
		r.Header["Content-Length"] = []string{strconv.Itoa(len(r.Body))}
	}
	return r
}

type tally struct{ n, blocked int }

func (t tally) rate() float64 {
	if t.n == 0 {
		return 0
	}
	return float64(t.blocked) / float64(t.n)
}

// TestCorpus measures the crs detection on both development corpora at
// each paranoia level: detection rate per category, false-positive rate on
// the benign traffic, and the time Inspect takes on one core. It runs only
// with RAMPART_CRS_CORPUS=1 (about a minute).
func TestCorpus(t *testing.T) {
	if os.Getenv(envCorpus) == "" {
		t.Skip("set " + envCorpus + "=1 to measure the crs detection on the development corpora")
	}
	levels := []int{1, 2}
	if s := os.Getenv(envPL); s != "" {
		levels = ints(t, envPL, s)
	}
	var exclude []int
	if s := os.Getenv(envExclude); s != "" {
		exclude = ints(t, envExclude, s)
	}
	show, _ := strconv.Atoi(os.Getenv(envShow))
	// One core, as the throughput target is stated: the garbage
	// collector's work counts against the requests.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var include *regexp.Regexp
	if s := os.Getenv(envInclude); s != "" {
		include = regexp.MustCompile(s)
	}
	for _, path := range corpusFiles {
		recs := loadCorpus(t, path)
		if include != nil {
			recs = slices.DeleteFunc(recs, func(r corpusRecord) bool { return !include.MatchString(r.Category) })
		}
		views := make([]*detections.Request, len(recs))
		for i := range recs {
			views[i] = corpusView(&recs[i])
		}
		for _, pl := range levels {
			cfg := crs.DefaultConfig()
			cfg.ParanoiaLevel, cfg.ExcludeRules = pl, exclude
			c, err := crs.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			measure(t, path[strings.LastIndexByte(path, '/')+1:], pl, c, recs, views, show)
			_ = c.Close()
		}
	}
}

func measure(t *testing.T, corpus string, pl int, c *crs.CRS, recs []corpusRecord, views []*detections.Request, show int) {
	cats := map[string]*tally{}
	expect := map[string]string{}
	var attack, benign tally
	sources := map[string]*[2]tally{}
	rules := map[string]*[2]int{}
	var fps, misses []string
	var took []time.Duration
	var total time.Duration
	refused, failed := 0, 0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs, bytes := ms.Mallocs, ms.TotalAlloc
	cpu0 := cpuTime(t)
	for i := range recs {
		rec := &recs[i]
		blocked := false
		var v detections.Verdict
		if r := views[i]; r == nil {
			refused++
		} else {
			s := time.Now()
			var err error
			v, err = c.Inspect(t.Context(), r)
			d := time.Since(s)
			took, total = append(took, d), total+d
			if err != nil {
				failed++
				t.Logf("%s: %v", rec.ID, err)
			}
			blocked = v.Action == detections.ActionBlock
		}
		k := 1
		tt := &benign
		if rec.Expect == "attack" {
			k, tt = 0, &attack
		}
		tt.n++
		ct := cats[rec.Category]
		if ct == nil {
			ct = &tally{}
			cats[rec.Category] = ct
		}
		expect[rec.Category] = rec.Expect
		ct.n++
		st := sources[rec.Source]
		if st == nil {
			st = &[2]tally{}
			sources[rec.Source] = st
		}
		st[k].n++
		if blocked {
			tt.blocked++
			ct.blocked++
			st[k].blocked++
			rc := rules[v.Rule]
			if rc == nil {
				rc = &[2]int{}
				rules[v.Rule] = rc
			}
			rc[k]++
			if k == 1 && len(fps) < show {
				fps = append(fps, fmt.Sprintf("  %-45s %-8s %-16s %-36.36s score=%d %s %.120q", rec.ID, v.Rule, v.Reason, v.Location, v.Score, rec.Method, rec.Path))
			}
		} else if k == 0 && len(misses) < show {
			misses = append(misses, fmt.Sprintf("  %-45s %.160q", rec.ID, rec.Payload))
		}
	}
	cpu := cpuTime(t) - cpu0
	runtime.ReadMemStats(&ms)
	n := len(took)
	slices.Sort(took)
	var b strings.Builder
	fmt.Fprintf(&b, "\n== %s, paranoia level %d, %d rules ==\n", corpus, pl, c.Rules())
	fmt.Fprintf(&b, "%-45s %-7s %6s %8s %8s\n", "category", "expect", "n", "blocked", "rate")
	names := make([]string, 0, len(cats))
	for n := range cats {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%-45s %-7s %6d %8d %8.4f\n", n, expect[n], cats[n].n, cats[n].blocked, cats[n].rate())
	}
	b.WriteString("per source:\n")
	srcs := make([]string, 0, len(sources))
	for s := range sources {
		srcs = append(srcs, s)
	}
	slices.Sort(srcs)
	for _, s := range srcs {
		st := sources[s]
		fmt.Fprintf(&b, "  %-11s tpr=%.4f (%d/%d) fpr=%.4f (%d/%d)\n", s, st[0].rate(), st[0].blocked, st[0].n, st[1].rate(), st[1].blocked, st[1].n)
	}
	if show > 0 {
		b.WriteString("blocks by rule (attack, benign):\n")
		rn := make([]string, 0, len(rules))
		for r := range rules {
			rn = append(rn, r)
		}
		slices.Sort(rn)
		for _, r := range rn {
			fmt.Fprintf(&b, "  %-8s %6d %6d\n", r, rules[r][0], rules[r][1])
		}
		fmt.Fprintf(&b, "false positives (first %d):\n%s\n", len(fps), strings.Join(fps, "\n"))
		fmt.Fprintf(&b, "misses (first %d):\n%s\n", len(misses), strings.Join(misses, "\n"))
	}
	fmt.Fprintf(&b, "overall: tpr=%.4f (%d/%d) fpr=%.4f (%d/%d); %d refused by net/http, %d errors\n",
		attack.rate(), attack.blocked, attack.n, benign.rate(), benign.blocked, benign.n, refused, failed)
	if n > 0 {
		// CPU time is the process's (user + system, garbage collection
		// included): on a shared machine it is steadier than wall time.
		fmt.Fprintf(&b, "throughput (GOMAXPROCS=1, Inspect only): %d requests; CPU %v = %.0f req/s per core, %.1f µs CPU per request; wall %v = %.0f req/s; wall per request: mean %.1f µs, p50 %.1f µs, p90 %.1f µs, p99 %.1f µs, max %.1f ms; %.0f allocs and %.1f KiB per request\n",
			n, cpu.Round(time.Millisecond), float64(n)/cpu.Seconds(), us(cpu/time.Duration(n)),
			total.Round(time.Millisecond), float64(n)/total.Seconds(), us(total/time.Duration(n)),
			us(took[n/2]), us(took[n*9/10]), us(took[n*99/100]), float64(took[n-1].Microseconds())/1000,
			float64(ms.Mallocs-mallocs)/float64(n), float64(ms.TotalAlloc-bytes)/float64(n)/1024)
	}
	t.Log(b.String())
	if failed > 0 {
		t.Errorf("%d requests failed", failed)
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// cpuTime is the process's user and system CPU time so far.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ints(t *testing.T, env, s string) []int {
	t.Helper()
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		out = append(out, n)
	}
	return out
}
