package ipfeed

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Parse errors. A feed that fails to parse never replaces the list in
// use: the Manager keeps the last good one.
var (
	// ErrNoEntries: the feed holds no valid entry (an empty download, an
	// HTML error page, the wrong format).
	ErrNoEntries = errors.New("ipfeed: no valid entry")
	// ErrMostlyInvalid: more lines were invalid than valid, so the feed is
	// probably not in the format we read it as.
	ErrMostlyInvalid = errors.New("ipfeed: more invalid lines than valid entries")
	// ErrTooBroad: the list covers more than half of the IPv4 space or of
	// the IPv6 global unicast space (2000::/3), which only a broken or
	// hostile feed does; applying it would block almost every client.
	ErrTooBroad = errors.New("ipfeed: list covers more than half of the address space")
	// ErrTooLarge: the feed is larger than its max_bytes.
	ErrTooLarge = errors.New("ipfeed: feed larger than max_bytes")
)

// MaxProblems is how many invalid lines a ParseResult describes; the rest
// are only counted.
const MaxProblems = 20

// ParseOptions tunes Parse.
type ParseOptions struct {
	// Format is the syntax; "" is FormatAuto.
	Format Format
	// MaxEntries keeps the first MaxEntries valid entries; 0 is
	// MaxEntriesLimit.
	MaxEntries int
}

// LineError describes one invalid line.
type LineError struct {
	Line   int    // 1-based
	Reason string // why it is invalid
	Text   string // the line's first 64 bytes
}

// Error formats the problem as "line N: reason: "text"".
func (e LineError) Error() string {
	return fmt.Sprintf("line %d: %s: %q", e.Line, e.Reason, e.Text)
}

// ParseResult is what Parse read.
type ParseResult struct {
	// Set is the parsed list; nil when Parse returned an error.
	Set *Set
	// Lines is the number of lines read.
	Lines int
	// Entries is the number of valid entries kept (before merging; Set.Len
	// counts the merged ranges).
	Entries int
	// Invalid is the number of invalid lines; Problems describes the first
	// MaxProblems of them.
	Invalid  int
	Problems []LineError
	// Masked counts CIDRs written with host bits set (1.2.3.4/24), which
	// were read as their network (1.2.3.0/24).
	Masked int
	// Dropped counts valid entries past MaxEntries, which were not kept.
	Dropped int
}

// Parse reads a feed: one entry per line, in the given format.
//
// Entries are IPv4 or IPv6 addresses, CIDRs (host bits are masked) and,
// in plain and auto formats, ranges "first-last". IPv4-mapped IPv6
// entries are unmapped. Blank lines and comments are skipped. A line that
// cannot be read, is longer than MaxLineBytes, or is /0, is counted as
// invalid with its line number, and reading goes on. Past MaxEntries,
// entries are counted as Dropped.
//
// The result is always returned, for its counts. The error is non-nil
// when reading failed, or when the feed is not worth applying:
// ErrNoEntries, ErrMostlyInvalid or ErrTooBroad. Then Set is nil.
func Parse(r io.Reader, opt ParseOptions) (*ParseResult, error) {
	p := parser{format: opt.Format, max: opt.MaxEntries, res: &ParseResult{}}
	if p.format == "" {
		p.format = FormatAuto
	}
	if p.max <= 0 || p.max > MaxEntriesLimit {
		p.max = MaxEntriesLimit
	}
	switch p.format {
	case FormatAuto, FormatPlain, FormatNetset, FormatSpamhaus:
	default:
		return p.res, fmt.Errorf("ipfeed: unknown format %q", p.format)
	}
	if err := p.read(r); err != nil {
		return p.res, err
	}
	return p.res, p.finish()
}

type parser struct {
	format Format
	max    int
	res    *ParseResult
	b      builder
	// Spamhaus JSON: the record count the metadata line announces, and
	// how many cidr objects were read.
	metaLine, metaRecords, jsonRecords int
}

func (p *parser) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			p.res.Lines++
			p.invalid("line longer than the limit", line)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading feed: %w", err)
			}
			continue
		}
		if len(line) > 0 {
			p.res.Lines++
			p.line(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading feed: %w", err)
		}
	}
}

func (p *parser) invalid(reason string, line []byte) {
	p.res.Invalid++
	if len(p.res.Problems) < MaxProblems {
		text := line
		if len(text) > 64 {
			text = text[:64]
		}
		text = bytes.TrimRight(text, "\r\n")
		p.res.Problems = append(p.res.Problems, LineError{Line: p.res.Lines, Reason: reason, Text: string(text)})
	}
}

var bom = []byte("\xef\xbb\xbf")

func (p *parser) line(raw []byte) {
	line := raw
	if p.res.Lines == 1 {
		line = bytes.TrimPrefix(line, bom)
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	if len(line) > MaxLineBytes {
		p.invalid("line longer than the limit", raw)
		return
	}
	if line[0] == '{' {
		if p.format != FormatAuto && p.format != FormatSpamhaus {
			p.invalid("JSON line in a "+string(p.format)+" list", raw)
			return
		}
		p.jsonLine(line, raw)
		return
	}
	comments := "#;"
	if p.format == FormatNetset {
		comments = "#"
	}
	if i := bytes.IndexAny(line, comments); i >= 0 {
		line = bytes.TrimSpace(line[:i])
		if len(line) == 0 {
			return
		}
	}
	field := line
	if i := bytes.IndexAny(line, " \t,"); i >= 0 {
		if p.format == FormatNetset || p.format == FormatSpamhaus {
			p.invalid("more than one field", raw)
			return
		}
		field = line[:i]
	}
	p.entry(string(field), raw)
}

func (p *parser) jsonLine(line, raw []byte) {
	var v struct {
		CIDR    string `json:"cidr"`
		Type    string `json:"type"`
		Records *int   `json:"records"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		p.invalid("not a JSON object", raw)
		return
	}
	if v.Type == "metadata" {
		if v.Records != nil {
			p.metaLine, p.metaRecords = p.res.Lines, *v.Records
		}
		return
	}
	p.jsonRecords++
	if v.CIDR == "" {
		p.invalid("JSON object without cidr", raw)
		return
	}
	p.entry(v.CIDR, raw)
}

func (p *parser) entry(s string, raw []byte) {
	var (
		reason string
		masked bool
	)
	n4, n6 := len(p.b.v4), len(p.b.v6)
	switch {
	case strings.Contains(s, "-"):
		reason = parseRange(&p.b, s)
	case strings.Contains(s, "/"):
		reason, masked = parseCIDR(&p.b, s)
	default:
		reason = parseAddr(&p.b, s)
	}
	if reason != "" {
		p.invalid(reason, raw)
		return
	}
	if p.res.Entries >= p.max {
		// Valid but over the cap: counted, then taken back out.
		p.b.v4, p.b.v6 = p.b.v4[:n4], p.b.v6[:n6]
		p.res.Dropped++
		return
	}
	p.res.Entries++
	if masked {
		p.res.Masked++
	}
}

func parseAddr(b *builder, s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "not an address or CIDR"
	}
	if a.Zone() != "" {
		return "address with a zone"
	}
	a = a.Unmap()
	addPrefix(b, netip.PrefixFrom(a, a.BitLen()))
	return ""
}

func parseCIDR(b *builder, s string) (reason string, masked bool) {
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		return "not an address or CIDR", false
	}
	if pf.Bits() == 0 || (pf.Addr().Is4In6() && pf.Bits() == 96) {
		return "a /0 would list every address", false
	}
	addPrefix(b, pf)
	return "", pf.Masked() != pf
}

func parseRange(b *builder, s string) string {
	from, to, _ := strings.Cut(s, "-")
	a, err1 := netip.ParseAddr(strings.TrimSpace(from))
	z, err2 := netip.ParseAddr(strings.TrimSpace(to))
	if err1 != nil || err2 != nil {
		return "not an address range"
	}
	if a.Zone() != "" || z.Zone() != "" {
		return "address with a zone"
	}
	a, z = a.Unmap(), z.Unmap()
	switch {
	case a.Is4() != z.Is4():
		return "range mixes IPv4 and IPv6"
	case z.Less(a):
		return "range ends before it starts"
	case a.Is4():
		x, y := a.As4(), z.As4()
		b.add4(binary.BigEndian.Uint32(x[:]), binary.BigEndian.Uint32(y[:]))
	default:
		b.add6(addr6(a), addr6(z))
	}
	return ""
}

func (p *parser) finish() error {
	res := p.res
	if p.metaLine > 0 && p.metaRecords != p.jsonRecords {
		p.problemAt(p.metaLine, fmt.Sprintf("metadata announces %d records, %d were read", p.metaRecords, p.jsonRecords))
	}
	first := ""
	if len(res.Problems) > 0 {
		first = "; first: " + res.Problems[0].Error()
	}
	switch {
	case res.Entries == 0:
		return fmt.Errorf("%w (%d lines, %d invalid%s)", ErrNoEntries, res.Lines, res.Invalid, first)
	case res.Invalid > res.Entries:
		return fmt.Errorf("%w (%d valid, %d invalid%s)", ErrMostlyInvalid, res.Entries, res.Invalid, first)
	}
	set := p.b.set()
	if v4, v6 := set.coverage(); v4 > 0.5 || v6 > 0.5 {
		return fmt.Errorf("%w (IPv4 %.0f%%, IPv6 global unicast %.0f%%)", ErrTooBroad, 100*v4, 100*v6)
	}
	res.Set = set
	return nil
}

// problemAt records an invalid line found after reading (the metadata
// check), keeping Problems in line order when it fits.
func (p *parser) problemAt(line int, reason string) {
	p.res.Invalid++
	if len(p.res.Problems) < MaxProblems {
		p.res.Problems = append(p.res.Problems, LineError{Line: line, Reason: reason, Text: `{"type":"metadata",…}`})
	}
}
