package replay

import (
	"fmt"
	"io"
	"time"
)

// ProgressMinBytes is the input size from which NewProgress reports: a
// smaller input is replayed before a line would be useful.
const ProgressMinBytes = 4 << 20

// Progress writes at most one line per second to w (standard error) while
// records are replayed: bytes read, records, requests per second and, when
// the input size is known, the share done and an ETA. Its methods do nothing
// on a nil *Progress, so callers need not check.
type Progress struct {
	w         io.Writer
	total     int64
	bytesRead func() int64
	now       func() time.Time
	every     time.Duration

	start, last time.Time
	records     int64
	printed     bool
}

// NewProgress returns a Progress for an input of total bytes (0 when
// unknown: stdin) whose consumption bytesRead reports, with now as the
// clock (time.Now, or a fake in tests). It returns nil, which reports
// nothing, for a known size under ProgressMinBytes.
func NewProgress(w io.Writer, total int64, bytesRead func() int64, now func() time.Time) *Progress {
	if w == nil || bytesRead == nil || (total > 0 && total < ProgressMinBytes) {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	t := now()
	return &Progress{w: w, total: total, bytesRead: bytesRead, now: now, every: time.Second, start: t, last: t}
}

// Record counts one record (valid or not) and writes a line when a second
// has passed since the last one.
func (p *Progress) Record() {
	if p == nil {
		return
	}
	p.records++
	t := p.now() // tens of nanoseconds; judging a request costs microseconds
	if t.Sub(p.last) < p.every {
		return
	}
	p.last = t
	p.line(t, false)
}

// Finish writes a final line if any line was written.
func (p *Progress) Finish() {
	if p == nil || !p.printed {
		return
	}
	p.line(p.now(), true)
	p.printed = false
}

func (p *Progress) line(t time.Time, done bool) {
	p.printed = true
	elapsed := t.Sub(p.start)
	read := p.bytesRead()
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(p.records) / s
	}
	msg := fmt.Sprintf("replay: %s", mb(read))
	if p.total > 0 {
		pct := 100 * float64(read) / float64(p.total)
		msg += fmt.Sprintf(" of %s (%.0f%%)", mb(p.total), pct)
	}
	msg += fmt.Sprintf(", %d records, %.0f req/s", p.records, rate)
	switch {
	case done:
		msg += fmt.Sprintf(", done in %s", elapsed.Round(time.Second))
	case p.total > 0 && read > 0 && read < p.total:
		eta := time.Duration(float64(elapsed) * float64(p.total-read) / float64(read))
		msg += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
	}
	fmt.Fprintln(p.w, msg)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
