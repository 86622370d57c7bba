package replay

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMaskHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, want string
	}{
		{"Authorization", "Bearer eyJhbGciOi.x.y", "Bearer ***"},
		{"authorization", "Basic YWxpY2U6aHVudGVy", "Basic ***"},
		{"Authorization", "opaque-token-without-scheme", "***"},
		{"Proxy-Authorization", "Basic Zm9vOmJhcg==", "Basic ***"},
		{"Cookie", "sid=abc; theme=dark;flag", "sid=***; theme=***; ***"},
		{"Set-Cookie", "sid=abc; Path=/; HttpOnly", "sid=***"},
		{"X-Api-Key", "k-1", "***"},
		{"X-Auth-Token", "t", "***"},
		{"X-Session-Id", "s", "***"},
		{"X-Client-Secret", "s", "***"},
		{"X-Amz-Signature", "s", "***"},
		{"X-Upstream-Password", "p", "***"},
		{"Referer", "https://a.example/cb?code=1&access_token=xyz#frag", "https://a.example/cb?code=1&access_token=***#frag"},
		{"Origin", "https://a.example", "https://a.example"},
		{"User-Agent", "curl/8.5.0", "curl/8.5.0"},
		{"Accept", "*/*", "*/*"},
		{"X-Forwarded-For", "198.51.100.1", "198.51.100.1"},
	}
	for _, tc := range tests {
		if got := MaskHeader(tc.name, tc.value); got != tc.want {
			t.Errorf("MaskHeader(%q, %q) = %q, want %q", tc.name, tc.value, got, tc.want)
		}
	}
}

func TestMaskTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target, want string
	}{
		{"/", "/"},
		{"/search?q=%27%20OR%201=1--", "/search?q=%27%20OR%201=1--"},
		{"/cb?code=1&state=2", "/cb?code=1&state=2"},
		{"/a?api_key=k&x=1", "/a?api_key=***&x=1"},
		{"/a?API%5FKEY=k", "/a?API%5FKEY=***"},
		{"/a?password=hunter2&user=alice", "/a?password=***&user=alice"},
		{"/a?jwt=eyJ&SessionID=9", "/a?jwt=***&SessionID=***"},
		{"/a?token", "/a?token"},
		{"/a?token=&x=1", "/a?token=***&x=1"},
		{"/a?%zz=1&auth=2", "/a?%zz=1&auth=***"},
		{"/a?", "/a?"},
	}
	for _, tc := range tests {
		if got := MaskTarget(tc.target); got != tc.want {
			t.Errorf("MaskTarget(%q) = %q, want %q", tc.target, got, tc.want)
		}
	}
}

func TestIsSensitiveName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"Authorization": true, "Cookie": true, "x-api-key": true, "X-CSRF-Token": true, "passwd": true,
		"Credential": true, "Accept": false, "q": false, "page": false, "User-Agent": false,
	} {
		if got := IsSensitiveName(name); got != want {
			t.Errorf("IsSensitiveName(%q) = %v", name, got)
		}
	}
}

func TestPrintable(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"café", "café"},
		{"a\x1b[31mred", `a\x1B[31mred`},
		{"bad\xffutf8", `bad\xFFutf8`},
		{"c1\u0085", `c1\xC2\x85`},
		{strings.Repeat("x", 50), strings.Repeat("x", 40) + "…"},
	}
	for _, tc := range tests {
		if got := printable(tc.in, 40); got != tc.want {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExitStatus(t *testing.T) {
	t.Parallel()
	rep := func(nb, inv int) *Report {
		return &Report{Totals: Totals{NewlyBlocked: nb, Invalid: inv}}
	}
	tests := []struct {
		name string
		rep  *Report
		err  error
		gate Gate
		want int
	}{
		{"no change", rep(0, 0), nil, DefaultGate(), ExitOK},
		{"any new block fails the default gate", rep(1, 0), nil, DefaultGate(), ExitGate},
		{"within the gate", rep(5, 0), nil, Gate{MaxNewBlocks: 5}, ExitOK},
		{"over the gate", rep(6, 0), nil, Gate{MaxNewBlocks: 5}, ExitGate},
		{"gate disabled", rep(1000, 0), nil, Gate{MaxNewBlocks: -1}, ExitOK},
		{"invalid records alone are fine", rep(0, 3), nil, DefaultGate(), ExitOK},
		{"invalid records under strict", rep(0, 3), nil, Gate{Strict: true}, ExitFailed},
		{"strict before the gate", rep(9, 3), nil, Gate{Strict: true}, ExitFailed},
		{"run error", nil, errors.New("no such file"), DefaultGate(), ExitFailed},
		{"no report", nil, nil, DefaultGate(), ExitFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, msg := ExitStatus(tc.rep, tc.err, tc.gate)
			if got != tc.want || msg == "" {
				t.Errorf("ExitStatus = %d (%s), want %d", got, msg, tc.want)
			}
		})
	}
}

// fakeClock advances only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgress(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	var read int64
	var out bytes.Buffer
	const total = 10 << 20
	p := NewProgress(&out, total, func() int64 { return read }, clock.now)
	// 30 records, 100 ms apart, each reading 1/40 of the input.
	for range 30 {
		clock.t = clock.t.Add(100 * time.Millisecond)
		read += total / 40
		p.Record()
	}
	p.Finish()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// One line per simulated second (at 1 s, 2 s, 3 s), then the final one.
	want := []string{
		"replay: 2.6 MB of 10.5 MB (25%), 10 records, 10 req/s, ETA 3s",
		"replay: 5.2 MB of 10.5 MB (50%), 20 records, 10 req/s, ETA 2s",
		"replay: 7.9 MB of 10.5 MB (75%), 30 records, 10 req/s, ETA 1s",
		"replay: 7.9 MB of 10.5 MB (75%), 30 records, 10 req/s, done in 3s",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}

	// Small inputs report nothing; nil is safe to use.
	if p := NewProgress(&out, 1<<20, func() int64 { return 0 }, clock.now); p != nil {
		t.Error("progress for a 1 MB input")
	}
	var none *Progress
	none.Record()
	none.Finish()

	// Unknown size (stdin): no share, no ETA.
	out.Reset()
	p = NewProgress(&out, 0, func() int64 { return 5e6 }, clock.now)
	clock.t = clock.t.Add(4 * time.Second)
	p.Record()
	if got := strings.TrimSpace(out.String()); got != "replay: 5.0 MB, 1 records, 0 req/s" {
		t.Errorf("stdin progress %q", got)
	}
	// A run that ends before the first line prints nothing at all.
	out.Reset()
	p = NewProgress(&out, total, func() int64 { return total }, clock.now)
	p.Record()
	p.Finish()
	if out.Len() != 0 {
		t.Errorf("quick run printed %q", out.String())
	}
}
