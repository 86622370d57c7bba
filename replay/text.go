package replay

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteText writes r as an aligned, human-readable summary. Every string
// that came from the traffic is escaped (control bytes and invalid UTF-8 as
// \xHH), so a hostile log line cannot drive the terminal.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	t := r.Totals

	p("Replay: current vs candidate configuration\n\n")

	p("Inputs\n")
	in := newTable("SOURCE", "FORMAT", "RECORDS>", "INVALID>")
	for _, i := range r.Inputs {
		in.add(printable(i.Source, 80), string(i.Format), num(i.Records), num(i.Invalid))
	}
	in.write(bw, "  ")
	if len(r.Inputs) == 0 {
		p("  (no input records)\n")
	}

	if len(r.Capabilities) > 0 {
		p("\nWhat these inputs cannot show\n")
		for _, c := range r.Capabilities {
			p("  %s lacks: %s\n", c.Format, strings.Join(c.Lacks, "; "))
			nj := newTable("NOT JUDGED", "SCOPE", "WHY")
			for _, l := range c.NotJudged {
				nj.add(l.Detection, l.Scope, l.Why)
			}
			nj.write(bw, "    ")
			for _, cv := range c.Caveats {
				p("    note: %s\n", cv)
			}
		}
	}

	p("\nClock\n")
	if r.Clock.First != nil {
		p("  first request   %s\n", r.Clock.First.Format(time.RFC3339Nano))
		p("  last request    %s\n", r.Clock.Last.Format(time.RFC3339Nano))
	}
	p("  recorded times  %s\n", num(r.Clock.Recorded))
	p("  synthetic times %s (each %s after the previous record; the first at %s)\n",
		num(r.Clock.Synthetic), seconds(r.Config.IntervalSeconds), r.Config.Start.Format(time.RFC3339))
	p("  out of order    %s", num(r.Clock.OutOfOrder))
	if r.Clock.OutOfOrder > 0 {
		p(" (judged at the previous record's time; largest step back %s)", seconds(r.Clock.MaxBackwardSeconds))
	}
	p("\n")
	for _, e := range r.Clock.Examples {
		p("    %s  recorded %s, clock at %s\n", printable(e.Where, 120), e.Time.Format(time.RFC3339Nano), e.Previous.Format(time.RFC3339Nano))
	}
	for _, s := range r.Clock.Shifted {
		p("  shifted         %s by %s (it starts before the previous input ends)\n", printable(s.Source, 80), seconds(s.Seconds))
	}

	p("\nSummary\n")
	sum := newTable("", ">", "")
	sum.add("requests judged", num(t.Requests), "")
	sum.add("blocked by current", num(t.BlockedCurrent), pct(t.BlockedCurrent, t.Requests))
	sum.add("blocked by candidate", num(t.BlockedCandidate), pct(t.BlockedCandidate, t.Requests))
	nb := ""
	if t.NewlyBlocked > 0 && (t.NewlyBlockedBans > 0 || t.NewlyBlockedRateLimited > 0) {
		nb = fmt.Sprintf("%s ban refusals, %s rate-limited", num(t.NewlyBlockedBans), num(t.NewlyBlockedRateLimited))
	}
	sum.add("newly blocked", num(t.NewlyBlocked), nb)
	sum.add("newly allowed", num(t.NewlyAllowed), "")
	sum.add("cause changed", num(t.CauseChanged), "both block, for another detection, rule or status")
	sum.add("unchanged", num(t.Unchanged), "")
	sum.add("bans issued", "", fmt.Sprintf("current %s, candidate %s", num(t.BansCurrent), num(t.BansCandidate)))
	sum.add("invalid records", num(t.Invalid), "")
	sum.add("judge errors", num(t.JudgeErrors), "")
	sum.write(bw, "  ")

	if len(r.Changes) > 0 {
		p("\nChanges\n")
		ch := newTable("KIND", "CURRENT", "CANDIDATE", "COUNT>")
		for _, c := range r.Changes {
			ch.add(c.Kind, printable(c.Current.String(), 60), printable(c.Candidate.String(), 60), num(c.Count))
		}
		ch.write(bw, "  ")
		p("\n  Examples (first %d per change)\n", r.Config.ExamplesPerChange)
		for _, c := range r.Changes {
			if len(c.Examples) == 0 {
				continue
			}
			p("  %s: %s -> %s\n", c.Kind, printable(c.Current.String(), 60), printable(c.Candidate.String(), 60))
			for _, e := range c.Examples {
				p("    %s  %s\n", printable(e.Where, 120), printable(e.RequestLine, 200))
				p("      client %s", printable(e.Client, 60))
				if e.ID != "" {
					p("  id %s", printable(e.ID, 80))
				}
				if e.Label != "" {
					p("  label %s", printable(e.Label, 20))
				}
				p("\n")
				for _, s := range []struct {
					name string
					side Side
				}{{"current", e.Current}, {"candidate", e.Candidate}} {
					if !s.side.Blocked {
						continue
					}
					p("      %-9s %s", s.name, printable(s.side.Decision.String(), 60))
					if s.side.Reason != "" {
						p("  reason %s", printable(s.side.Reason, 64))
					}
					if s.side.Location != "" {
						p("  at %s", printable(s.side.Location, 128))
					}
					p("\n")
				}
			}
		}
	}

	if len(r.ByDetection) > 0 {
		p("\nBy detection and rule\n")
		dt := newTable("DETECTION", "RULE", "REFUSAL", "CURRENT>", "CANDIDATE>", "NEWLY BLOCKED>", "NEWLY ALLOWED>")
		for _, d := range r.ByDetection {
			dt.add(printable(d.Detection, 40), printable(d.RuleID, 40), d.Refusal, num(d.Current), num(d.Candidate), num(d.NewlyBlocked), num(d.NewlyAllowed))
		}
		dt.write(bw, "  ")
	}

	writeRows := func(title string, rows []Row, total int) {
		if len(rows) == 0 {
			return
		}
		if total > len(rows) {
			p("\n%s (top %d of %d)\n", title, len(rows), total)
		} else {
			p("\n%s\n", title)
		}
		rt := newTable("KEY", "REQUESTS>", "CURRENT>", "CANDIDATE>", "NEWLY BLOCKED>", "NEWLY ALLOWED>", "CAUSE CHANGED>")
		for _, x := range rows {
			rt.add(printable(x.Key, 80), num(x.Requests), num(x.BlockedCurrent), num(x.BlockedCandidate), num(x.NewlyBlocked), num(x.NewlyAllowed), num(x.CauseChanged))
		}
		rt.write(bw, "  ")
	}
	writeRows("By route", r.ByRoute, r.Cardinality.Routes)
	writeRows("By client", r.ByClient, r.Cardinality.Clients)
	writeRows("By label", r.ByLabel, len(r.ByLabel))
	if r.Cardinality.RoutesOverflow > 0 || r.Cardinality.ClientsOverflow > 0 || r.Cardinality.CellsOverflow > 0 {
		p("  (bounded tables: %s requests under (other) routes, %s under (other) clients, %s changes outside the change table)\n",
			num(r.Cardinality.RoutesOverflow), num(r.Cardinality.ClientsOverflow), num(r.Cardinality.CellsOverflow))
	}

	writeProblems := func(title string, pr Problems) {
		p("\n%s: %s\n", title, num(pr.Count))
		if pr.Count == 0 {
			return
		}
		ct := newTable("CODE", "COUNT>")
		for _, c := range pr.ByCode {
			ct.add(c.Code, num(c.Count))
		}
		ct.write(bw, "  ")
		if len(pr.Examples) < pr.Count {
			p("  first %d:\n", len(pr.Examples))
		}
		ex := newTable("WHERE", "CODE", "DETAIL")
		for _, e := range pr.Examples {
			ex.add(printable(e.Where, 120), e.Code, printable(e.Detail, 200))
		}
		ex.write(bw, "  ")
	}
	writeProblems("Invalid records", r.Invalid)
	writeProblems("Judge errors", r.JudgeErrors)

	if len(r.Notes) > 0 {
		p("\nNotes\n")
		nt := newTable("NOTE", "RECORDS>", "MEANING")
		for _, n := range r.Notes {
			nt.add(n.Code, num(n.Count), n.Text)
		}
		nt.write(bw, "  ")
	}
	return bw.Flush()
}

// table is a minimal aligned table: a header cell ending in ">" marks a
// right-aligned (numeric) column.
type table struct {
	head  []string
	right []bool
	rows  [][]string
}

func newTable(head ...string) *table {
	t := &table{}
	for _, h := range head {
		r := strings.HasSuffix(h, ">")
		t.head = append(t.head, strings.TrimSuffix(h, ">"))
		t.right = append(t.right, r)
	}
	return t
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w *bufio.Writer, indent string) {
	if len(t.rows) == 0 {
		return
	}
	width := make([]int, len(t.head))
	all := append([][]string{t.head}, t.rows...)
	for _, r := range all {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	headed := false
	for _, h := range t.head {
		headed = headed || h != ""
	}
	if !headed {
		all = all[1:]
	}
	for _, r := range all {
		var line strings.Builder
		line.WriteString(indent)
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if t.right[i] {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
		}
		w.WriteString(strings.TrimRight(line.String(), " "))
		w.WriteByte('\n')
	}
}

// printable escapes control bytes, DEL and invalid UTF-8 as \xHH and clips
// the result to about n bytes.
func printable(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if b.Len() >= n {
			b.WriteString("…")
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
			for j := 0; j < size; j++ {
				fmt.Fprintf(&b, `\x%02X`, s[i+j])
			}
			if size == 0 {
				size = 1
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// num formats an integer with thousands separators.
func num(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func pct(n, total int) string {
	if total == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total))
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}
