package payload_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/internal/corpustest"
	"github.com/rampartgw/rampart/detections/payload"
)

// The labelled development corpora sit beside the repository (see
// ../shared/corpus/README.md): dev.jsonl.gz (attacks and real browsing
// traffic) and dev-extra.jsonl.gz (attack families in six placements). The
// corpus tests skip when a file is absent.
const (
	corpusPath      = "../../../shared/corpus/dev.jsonl.gz"
	corpusExtraPath = "../../../shared/corpus/dev-extra.jsonl.gz"
)

// Environment knobs of the corpus report:
//
//	RAMPART_CORPUS_REPORT=1      run the whole corpus and print the tables
//	RAMPART_CORPUS_SHOW=N        list N false positives and N misses (default 20)
//	RAMPART_CORPUS_INCLUDE=re    only categories matching re
//	RAMPART_CORPUS_OUT=file      write one JSON line per request
const (
	envReport  = "RAMPART_CORPUS_REPORT"
	envShow    = "RAMPART_CORPUS_SHOW"
	envInclude = "RAMPART_CORPUS_INCLUDE"
	envOut     = "RAMPART_CORPUS_OUT"
)

// corpusRecord is one corpus line.
type corpusRecord = corpustest.Record

var (
	devCorpus   = &corpustest.File{Path: corpusPath}
	extraCorpus = &corpustest.File{Path: corpusExtraPath}
)

// loadCorpus reads the development corpus; it skips t when the file is
// absent.
func loadCorpus(t testing.TB) []corpusRecord { return devCorpus.Load(t) }

// corpusRequest is the record's request view (see corpustest.Request).
func corpusRequest(rec *corpusRecord) *detections.Request { return corpustest.Request(rec) }

type corpusResult struct {
	rec     *corpusRecord
	blocked bool
	v       detections.Verdict
}

func runCorpus(t testing.TB, d *payload.Detection, recs []corpusRecord, keep func(*corpusRecord) bool) []corpusResult {
	t.Helper()
	var out []corpusResult
	for i := range recs {
		rec := &recs[i]
		if keep != nil && !keep(rec) {
			continue
		}
		res := corpusResult{rec: rec}
		if r := corpusRequest(rec); r != nil {
			v, err := d.Inspect(t.Context(), r)
			if err != nil {
				t.Fatalf("%s: %v", rec.ID, err)
			}
			res.v, res.blocked = v, v.Action == detections.ActionBlock
		}
		out = append(out, res)
	}
	return out
}

func reportMode() bool { return os.Getenv(envReport) != "" }

type tally struct{ n, blocked int }

func rate(t tally) float64 {
	if t.n == 0 {
		return 0
	}
	return float64(t.blocked) / float64(t.n)
}

func summarise(results []corpusResult) (attack, benign tally) {
	for _, r := range results {
		tt := &benign
		if r.rec.Expect == "attack" {
			tt = &attack
		}
		tt.n++
		if r.blocked {
			tt.blocked++
		}
	}
	return attack, benign
}

// TestCorpus checks the detection and false-positive rates of the default
// configuration on the labelled corpus. By default it runs a fixed sample
// (every 7th record) and asserts the targets; with RAMPART_CORPUS_REPORT=1
// it runs everything and prints per-category and per-rule tables, the
// false positives and the misses.
func TestCorpus(t *testing.T) {
	recs := loadCorpus(t)
	results, attack, benign := corpusRun(t, recs, 7)
	if reportMode() {
		return
	}
	if attack.n > 0 && rate(attack) < 0.97 {
		t.Errorf("detection rate %.4f < 0.97 on the sample", rate(attack))
	}
	var oas tally
	for _, r := range results {
		if r.rec.Source == "openappsec" {
			oas.n++
			if r.blocked {
				oas.blocked++
			}
		}
	}
	if oas.n > 0 && rate(oas) > 0.002 {
		t.Errorf("false-positive rate %.4f > 0.002 on the sample's open-appsec traffic", rate(oas))
	}
	if benign.n > 0 && rate(benign) > 0.01 {
		t.Errorf("false-positive rate %.4f > 0.01 on the sample", rate(benign))
	}
}

// TestCorpusExtra checks the detection rate per attack family on
// dev-extra.jsonl.gz: a fixed sample (every 5th record) by default, every
// record with RAMPART_CORPUS_REPORT=1. Each category with at least 20
// sampled requests must reach 0.95.
func TestCorpusExtra(t *testing.T) {
	recs := extraCorpus.Load(t)
	results, _, _ := corpusRun(t, recs, 5)
	if reportMode() {
		return
	}
	cats := map[string]*tally{}
	for _, r := range results {
		c := cats[r.rec.Category]
		if c == nil {
			c = &tally{}
			cats[r.rec.Category] = c
		}
		c.n++
		if r.blocked {
			c.blocked++
		}
	}
	for name, c := range cats {
		if c.n >= 20 && rate(*c) < 0.95 {
			t.Errorf("%s: detection rate %.4f < 0.95 on the sample (n=%d)", name, rate(*c), c.n)
		}
	}
}

// corpusRun inspects every every-th record of recs (every record in report
// mode, where it also prints the tables) and returns the results.
func corpusRun(t *testing.T, recs []corpusRecord, every int) ([]corpusResult, tally, tally) {
	t.Helper()
	d, err := payload.New(payload.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	report := reportMode()
	var include *regexp.Regexp
	if s := os.Getenv(envInclude); s != "" {
		include = regexp.MustCompile(s)
	}
	i := 0
	results := runCorpus(t, d, recs, func(rec *corpusRecord) bool {
		i++
		if include != nil && !include.MatchString(rec.Category) {
			return false
		}
		return report || i%every == 0
	})
	attack, benign := summarise(results)
	t.Logf("tpr=%.4f fpr=%.4f n=%d (attack %d, benign %d)", rate(attack), rate(benign), attack.n+benign.n, attack.n, benign.n)
	if report {
		printReport(t, results)
	}
	return results, attack, benign
}

func printReport(t *testing.T, results []corpusResult) {
	show := 20
	if s := os.Getenv(envShow); s != "" {
		show, _ = strconv.Atoi(s)
	}
	cats := map[string]*tally{}
	expect := map[string]string{}
	sources := map[string][2]tally{}
	rules := map[string][2]int{}
	placements := map[string]*tally{}
	var fps, misses []corpusResult
	for _, r := range results {
		if r.rec.Expect == "attack" {
			p := placements[r.rec.Placeholder]
			if p == nil {
				p = &tally{}
				placements[r.rec.Placeholder] = p
			}
			p.n++
			if r.blocked {
				p.blocked++
			}
		}
		c := cats[r.rec.Category]
		if c == nil {
			c = &tally{}
			cats[r.rec.Category] = c
		}
		expect[r.rec.Category] = r.rec.Expect
		c.n++
		s := sources[r.rec.Source]
		k := 1
		if r.rec.Expect == "attack" {
			k = 0
		}
		s[k].n++
		if r.blocked {
			c.blocked++
			s[k].blocked++
			rc := rules[r.v.Rule]
			rc[k]++
			rules[r.v.Rule] = rc
			if k == 1 {
				fps = append(fps, r)
			}
		} else if k == 0 {
			misses = append(misses, r)
		}
		sources[r.rec.Source] = s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-45s %-7s %6s %8s %8s\n", "category", "expect", "n", "blocked", "rate")
	names := make([]string, 0, len(cats))
	for n := range cats {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := cats[n]
		fmt.Fprintf(&b, "%-45s %-7s %6d %8d %8.4f\n", n, expect[n], c.n, c.blocked, rate(*c))
	}
	b.WriteString("\nper source:\n")
	srcNames := make([]string, 0, len(sources))
	for n := range sources {
		srcNames = append(srcNames, n)
	}
	sort.Strings(srcNames)
	for _, n := range srcNames {
		s := sources[n]
		fmt.Fprintf(&b, "  %-11s tpr=%.4f (%d/%d) fpr=%.4f (%d/%d)\n", n, rate(s[0]), s[0].blocked, s[0].n, rate(s[1]), s[1].blocked, s[1].n)
	}
	if len(placements) > 1 {
		b.WriteString("\nattacks per placement:\n")
		pn := make([]string, 0, len(placements))
		for n := range placements {
			pn = append(pn, n)
		}
		sort.Strings(pn)
		for _, n := range pn {
			p := placements[n]
			fmt.Fprintf(&b, "  %-14s %6d %6d %8.4f\n", n, p.n, p.blocked, rate(*p))
		}
	}
	b.WriteString("\nblocks by rule (attack, benign):\n")
	rn := make([]string, 0, len(rules))
	for n := range rules {
		rn = append(rn, n)
	}
	sort.Strings(rn)
	for _, n := range rn {
		fmt.Fprintf(&b, "  %-32s %6d %6d\n", n, rules[n][0], rules[n][1])
	}
	fmt.Fprintf(&b, "\nfalse positives (%d):\n", len(fps))
	for i, r := range fps {
		if i >= show {
			break
		}
		fmt.Fprintf(&b, "  %-50s %-28s %-30s score=%d %s %.160q\n", r.rec.ID, r.v.Rule, trunc(r.v.Location, 30), r.v.Score, r.rec.Method, r.rec.Path)
	}
	fmt.Fprintf(&b, "\nmissed attacks (%d):\n", len(misses))
	for i, r := range misses {
		if i >= show {
			break
		}
		p := r.rec.Payload
		if p == "" {
			p = r.rec.Path
			if r.rec.Body != "" {
				p += " BODY " + r.rec.Body
			}
		}
		fmt.Fprintf(&b, "  %-40s %-12s %.200q\n", r.rec.ID, r.rec.Placeholder, p)
	}
	attack, benign := summarise(results)
	fmt.Fprintf(&b, "\ntpr=%.4f fpr=%.4f n=%d\n", rate(attack), rate(benign), attack.n+benign.n)
	t.Log(b.String())
	if out := os.Getenv(envOut); out != "" {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		enc := json.NewEncoder(f)
		for _, r := range results {
			_ = enc.Encode(map[string]any{"id": r.rec.ID, "category": r.rec.Category, "expect": r.rec.Expect,
				"blocked": r.blocked, "rule": r.v.Rule, "location": r.v.Location, "score": r.v.Score})
		}
	}
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
