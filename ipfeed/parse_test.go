package ipfeed

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a := netip.MustParseAddr(s)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func parseFile(t *testing.T, name string, format Format) (*ParseResult, error) {
	t.Helper()
	fh, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	return Parse(fh, ParseOptions{Format: format})
}

func TestParseTestdata(t *testing.T) {
	t.Parallel()
	plain := prefixes(t, "192.0.2.1", "198.51.100.0/24", "203.0.113.7", "10.1.0.0/16", "2001:db8::1", "2001:db8:1::/48", "192.0.2.200")
	netset := prefixes(t, "10.0.0.0/8", "100.64.0.0/10", "192.0.2.0/24", "198.51.100.77", "203.0.113.0/24")
	drop := prefixes(t, "192.0.2.0/24", "198.51.100.0/25", "203.0.113.64/26", "2001:db8:4000::/34")
	tests := []struct {
		name    string
		file    string
		format  Format
		want    []netip.Prefix
		extra   []Range // ranges not expressible as the prefixes above
		entries int
		invalid int
		ranges  int
	}{
		{name: "plain auto", file: "plain.txt", want: plain, extra: []Range{{netip.MustParseAddr("172.16.0.10"), netip.MustParseAddr("172.16.0.20")}}, entries: 8, ranges: 8},
		{name: "plain", file: "plain.txt", format: FormatPlain, want: plain, extra: []Range{{netip.MustParseAddr("172.16.0.10"), netip.MustParseAddr("172.16.0.20")}}, entries: 8, ranges: 8},
		{name: "netset auto", file: "firehol.netset", want: netset, entries: 6, ranges: 5},
		{name: "netset", file: "firehol.netset", format: FormatNetset, want: netset, entries: 6, ranges: 5},
		{name: "drop text", file: "drop.txt", format: FormatSpamhaus, want: drop, entries: 4, ranges: 4},
		{name: "drop text auto", file: "drop.txt", want: drop, entries: 4, ranges: 4},
		{name: "drop json v4", file: "drop_v4.json", format: FormatSpamhaus, want: drop[:3], entries: 3, ranges: 3},
		{name: "drop json v6 auto", file: "drop_v6.json", want: prefixes(t, "2001:db8:4000::/34", "2001:db8:8000::/33"), entries: 2, ranges: 1},
		{name: "bad lines", file: "bad.txt", want: prefixes(t, "192.0.2.1", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "192.0.2.64/26", "198.51.100.200"), entries: 6, invalid: 5, ranges: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := parseFile(t, tc.file, tc.format)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var b builder
			for _, p := range tc.want {
				addPrefix(&b, p)
			}
			for _, r := range tc.extra {
				b.add4(uint32(addr6(r.From).lo), uint32(addr6(r.To).lo))
			}
			if want := b.set(); !res.Set.Equal(want) {
				t.Errorf("set = %v\nwant  %v", res.Set.Ranges(), want.Ranges())
			}
			if res.Entries != tc.entries || res.Invalid != tc.invalid || res.Set.Len() != tc.ranges {
				t.Errorf("entries, invalid, ranges = %d, %d, %d; want %d, %d, %d (problems %v)",
					res.Entries, res.Invalid, res.Set.Len(), tc.entries, tc.invalid, tc.ranges, res.Problems)
			}
		})
	}
}

func TestParseBadLinesReported(t *testing.T) {
	t.Parallel()
	res, err := parseFile(t, "bad.txt", FormatAuto)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line   int
		reason string
	}{
		{3, "not an address range"},
		{4, "not an address or CIDR"},
		{5, "a /0 would list every address"},
		{6, "address with a zone"},
		{7, "range ends before it starts"},
	}
	if len(res.Problems) != len(want) {
		t.Fatalf("problems = %v", res.Problems)
	}
	for i, w := range want {
		if p := res.Problems[i]; p.Line != w.line || p.Reason != w.reason {
			t.Errorf("problem %d = %v, want line %d %q", i, p, w.line, w.reason)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("1", 70<<10) // longer than the read buffer
	tests := []struct {
		name    string
		in      string
		format  Format
		max     int
		want    []string // prefixes of the set; nil with err
		err     error
		invalid int
		masked  int
		dropped int
	}{
		{name: "host bits masked", in: "192.0.2.77/24\n2001:db8::1/32\n", want: []string{"192.0.2.0/24", "2001:db8::/32"}, masked: 2},
		{name: "mapped unmapped", in: "::ffff:192.0.2.1\n::ffff:198.51.100.0/120\n", want: []string{"192.0.2.1/32", "198.51.100.0/24"}},
		{name: "mapped /96 is every address", in: "::ffff:0.0.0.0/96\n192.0.2.1\n", want: []string{"192.0.2.1/32"}, invalid: 1},
		{name: "adjacent merged", in: "192.0.2.0/25\n192.0.2.128/25\n192.0.2.5\n", want: []string{"192.0.2.0/24"}},
		{name: "bom and crlf", in: "\xef\xbb\xbf192.0.2.1\r\n198.51.100.1\r\n", want: []string{"192.0.2.1/32", "198.51.100.1/32"}},
		{name: "no trailing newline", in: "192.0.2.1", want: []string{"192.0.2.1/32"}},
		{name: "max entries keeps first", in: "192.0.2.1\nbad\n192.0.2.3\n192.0.2.5\n192.0.2.7\n", max: 2, want: []string{"192.0.2.1/32", "192.0.2.3/32"}, invalid: 1, dropped: 2},
		{name: "long line invalid", in: "192.0.2.1\n" + long + "\n192.0.2.2\n192.0.2.3\n", want: []string{"192.0.2.1/32", "192.0.2.2/31"}, invalid: 1},
		{name: "line over MaxLineBytes", in: "192.0.2.1 " + strings.Repeat("x", MaxLineBytes) + "\n192.0.2.2\n", want: []string{"192.0.2.2/32"}, invalid: 1},
		{name: "netset extra field", in: "192.0.2.1 junk\n198.51.100.1\n203.0.113.1\n", format: FormatNetset, want: []string{"198.51.100.1/32", "203.0.113.1/32"}, invalid: 1},
		{name: "netset semicolon is not a comment", in: "192.0.2.1 ; SBL1\n198.51.100.1\n203.0.113.1\n", format: FormatNetset, want: []string{"198.51.100.1/32", "203.0.113.1/32"}, invalid: 1},
		{name: "plain refuses json", in: "{\"cidr\":\"192.0.2.0/24\"}\n198.51.100.1\n203.0.113.1\n", format: FormatPlain, want: []string{"198.51.100.1/32", "203.0.113.1/32"}, invalid: 1},
		{name: "json without cidr", in: "{\"sblid\":\"SBL1\"}\n{\"cidr\":\"192.0.2.0/24\"}\n{\"cidr\":\"198.51.100.0/24\"}\n", want: []string{"192.0.2.0/24", "198.51.100.0/24"}, invalid: 1},
		{name: "json metadata count mismatch", in: "{\"cidr\":\"192.0.2.0/24\"}\n{\"cidr\":\"198.51.100.0/24\"}\n{\"type\":\"metadata\",\"records\":3}\n", want: []string{"192.0.2.0/24", "198.51.100.0/24"}, invalid: 1},
		{name: "empty", in: "", err: ErrNoEntries},
		{name: "comments only", in: "# nothing\n; here\n\n", err: ErrNoEntries},
		{name: "html error page", in: "<html>\n<body>503 Service Unavailable</body>\n</html>\n", err: ErrNoEntries},
		{name: "mostly invalid", in: "192.0.2.1\nfoo\nbar\n", err: ErrMostlyInvalid},
		{name: "too broad v4", in: "0.0.0.0/1\n128.0.0.0/2\n", err: ErrTooBroad},
		{name: "too broad v6", in: "2000::/4\n3000::/5\n", err: ErrTooBroad},
		{name: "range covering all refused", in: "0.0.0.0-255.255.255.255\n", err: ErrTooBroad},
		{name: "bogons pass", in: "0.0.0.0/8\n10.0.0.0/8\n224.0.0.0/3\n", want: []string{"0.0.0.0/8", "10.0.0.0/8", "224.0.0.0/3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Parse(strings.NewReader(tc.in), ParseOptions{Format: tc.format, MaxEntries: tc.max})
			if tc.err != nil {
				if !errors.Is(err, tc.err) || res == nil || res.Set != nil {
					t.Fatalf("err = %v, set = %v; want %v and no set", err, res.Set, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if want := SetOf(prefixes(t, tc.want...)...); !res.Set.Equal(want) {
				t.Errorf("set = %v, want %v", res.Set.Ranges(), want.Ranges())
			}
			if res.Invalid != tc.invalid || res.Masked != tc.masked || res.Dropped != tc.dropped {
				t.Errorf("invalid, masked, dropped = %d, %d, %d; want %d, %d, %d (%v)",
					res.Invalid, res.Masked, res.Dropped, tc.invalid, tc.masked, tc.dropped, res.Problems)
			}
		})
	}
}

func TestParseProblemsBounded(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for range 100 {
		b.WriteString("192.0.2.1\n198.51.100.1\nbad\n")
	}
	res, err := Parse(strings.NewReader(b.String()), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Invalid != 100 || len(res.Problems) != MaxProblems || res.Problems[0].Line != 3 || res.Problems[1].Line != 6 {
		t.Errorf("invalid %d, problems %d, first %v", res.Invalid, len(res.Problems), res.Problems[:2])
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"plain.txt", "firehol.netset", "drop.txt", "drop_v4.json", "drop_v6.json", "bad.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("192.0.2.1-192.0.2.0\n::-ffff::\n1.2.3.4/0\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, format := range []Format{FormatAuto, FormatNetset, FormatSpamhaus} {
			res, err := Parse(strings.NewReader(string(in)), ParseOptions{Format: format, MaxEntries: 50})
			if res == nil {
				t.Fatal("nil result")
			}
			if err != nil {
				continue
			}
			if res.Entries == 0 || res.Entries > 50 || res.Set.Len() > res.Entries {
				t.Fatalf("entries %d, ranges %d", res.Entries, res.Set.Len())
			}
			checkSorted(t, res.Set)
		}
	})
}
