package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"sync/atomic"
)

// DefaultMaxRecordBytes bounds one JSON line, log line or HAR entry. The
// largest record of the development corpus is 370 KB (a real 0.4 MB body).
const DefaultMaxRecordBytes = 8 << 20

// ReadConfig configures the input readers.
type ReadConfig struct {
	// Format forces a format; FormatAuto (the default) detects it per file
	// from the content (see DetectFormat).
	Format Format
	// MaxRecordBytes bounds one line or HAR entry; a longer one is reported
	// as invalid (too_large) and skipped without being buffered.
	MaxRecordBytes int
}

// DefaultReadConfig returns the reader defaults.
func DefaultReadConfig() ReadConfig {
	return ReadConfig{Format: FormatAuto, MaxRecordBytes: DefaultMaxRecordBytes}
}

// Validate reports every problem of c.
func (c ReadConfig) Validate() error {
	var errs []error
	if _, err := ParseFormat(string(c.Format)); err != nil {
		errs = append(errs, err)
	}
	if c.MaxRecordBytes < 1024 {
		errs = append(errs, fmt.Errorf("replay: max record bytes %d is below 1024", c.MaxRecordBytes))
	}
	return errors.Join(errs...)
}

// Input is a sequence of recordings read one after the other, each streamed
// (never loaded whole), plain, gzip or zlib (recognised by magic bytes).
type Input struct {
	cfg   ReadConfig
	files []inputFile
	size  int64
	read  atomic.Int64
	cur   io.Closer
	used  bool
}

type inputFile struct {
	name string
	path string    // "" for a reader
	r    io.Reader // nil for a path
}

// Open prepares the files at paths ("-" is standard input). It checks that
// each exists and is a regular file (or stdin) up front, so a typo is a usage
// error before any work; the files themselves are opened one at a time.
func Open(paths []string, cfg ReadConfig) (*Input, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, errors.New("replay: no input files")
	}
	in := &Input{cfg: cfg}
	for _, p := range paths {
		if p == "-" {
			in.files = append(in.files, inputFile{name: "stdin", r: os.Stdin})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("replay: %s is not a regular file", p)
		}
		in.size += st.Size()
		in.files = append(in.files, inputFile{name: p, path: p})
	}
	return in, nil
}

// NewInput reads one recording from r; name appears in record locations.
func NewInput(name string, r io.Reader, cfg ReadConfig) (*Input, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Input{cfg: cfg, files: []inputFile{{name: name, r: r}}}, nil
}

// Size returns the total size of the input files in bytes (compressed size
// for compressed files), 0 when unknown (stdin, a reader).
func (in *Input) Size() int64 { return in.size }

// BytesRead returns how many bytes of the files have been consumed so far
// (compressed bytes for compressed files), for progress and ETA. It is safe
// to call from another goroutine.
func (in *Input) BytesRead() int64 { return in.read.Load() }

// Close closes the file being read, if any. Records closes each file when it
// is done, so Close matters only when iteration stops early.
func (in *Input) Close() error {
	if in.cur == nil {
		return nil
	}
	err := in.cur.Close()
	in.cur = nil
	return err
}

// Records returns the records of every file in order. Each element is either
// a record, an *InvalidRecordError (non-fatal: iteration goes on), or
// another error, which is fatal (unreadable file, corrupt gzip, undetectable
// format, broken HAR structure) and ends the sequence. An Input can be
// iterated once.
func (in *Input) Records() iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		if in.used {
			yield(nil, errors.New("replay: input already read"))
			return
		}
		in.used = true
		for _, f := range in.files {
			if !in.readFile(f, yield) {
				return
			}
		}
	}
}

// readFile yields the records of one file; false means stop.
func (in *Input) readFile(f inputFile, yield func(*Record, error) bool) bool {
	r := f.r
	if r == nil {
		fh, err := os.Open(f.path)
		if err != nil {
			yield(nil, fmt.Errorf("replay: %w", err))
			return false
		}
		in.cur = fh
		defer in.Close()
		r = fh
	}
	dec, closeDec, err := newDecoder(f.name, &countingReader{r: r, n: &in.read}, in.cfg)
	if err != nil {
		yield(nil, err)
		return false
	}
	defer closeDec()
	for {
		rec, err := dec.next()
		if err == io.EOF {
			return true
		}
		var inv *InvalidRecordError
		if err != nil && !errors.As(err, &inv) {
			yield(nil, fmt.Errorf("replay: %s: %w", f.name, err))
			return false
		}
		if !yield(rec, err) {
			return false
		}
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// decoder yields records: io.EOF at the end, *InvalidRecordError for a
// record it skipped, any other error when it cannot go on.
type decoder interface {
	next() (*Record, error)
}

const peekBytes = 64 << 10

func newDecoder(name string, r io.Reader, cfg ReadConfig) (decoder, func(), error) {
	noop := func() {}
	br := bufio.NewReaderSize(r, 256<<10)
	var content io.Reader = br
	closeFn := noop
	magic, _ := br.Peek(2)
	switch {
	case len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, noop, fmt.Errorf("replay: %s: %w", name, err)
		}
		content, closeFn = zr, func() { zr.Close() }
	case len(magic) == 2 && isZlibHeader(magic[0], magic[1]):
		// mitmproxy writes .zhar files with zlib.compress.
		zr, err := zlib.NewReader(br)
		if err != nil {
			return nil, noop, fmt.Errorf("replay: %s: %w", name, err)
		}
		content, closeFn = zr, func() { zr.Close() }
	}
	cr := br
	if content != io.Reader(br) {
		cr = bufio.NewReaderSize(content, 256<<10)
	}
	if bom, _ := cr.Peek(3); bytes.Equal(bom, []byte{0xef, 0xbb, 0xbf}) {
		cr.Discard(3)
	}
	format := cfg.Format
	if format == FormatAuto || format == "" {
		head, err := cr.Peek(peekBytes)
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			closeFn()
			return nil, noop, fmt.Errorf("replay: %s: %w", name, err)
		}
		format, err = DetectFormat(head)
		if err != nil {
			closeFn()
			return nil, noop, fmt.Errorf("replay: %s: %w", name, err)
		}
	}
	switch format {
	case FormatJSONL:
		return &jsonlDecoder{lines: newLineReader(cr, cfg.MaxRecordBytes), name: name}, closeFn, nil
	case FormatCombined:
		return &combinedDecoder{lines: newLineReader(cr, cfg.MaxRecordBytes), name: name}, closeFn, nil
	case FormatHAR:
		return newHARDecoder(name, cr, cfg.MaxRecordBytes), closeFn, nil
	}
	closeFn()
	return nil, noop, fmt.Errorf("replay: %s: unsupported format %q", name, format)
}

// isZlibHeader recognises the RFC 1950 header every common zlib writer
// produces (deflate with a 32 KiB window, valid check bits, no preset
// dictionary). Of the four such byte pairs only "x^" is printable, and no
// JSON document or log line starts with it.
func isZlibHeader(cmf, flg byte) bool {
	return cmf == 0x78 && (uint16(cmf)<<8|uint16(flg))%31 == 0 && flg&0x20 == 0
}

// ErrUnknownFormat is returned when auto-detection cannot name the format.
var ErrUnknownFormat = errors.New("replay: cannot detect the input format (not JSON lines, a HAR object or a combined/common log); use -format")

// DetectFormat names the format of an input from its first bytes
// (decompressed): an object whose first key is "log" is HAR, another object
// is JSON lines, and lines in the combined or common log layout are a
// combined log. Empty input reads as JSON lines (zero records).
func DetectFormat(head []byte) (Format, error) {
	s := bytes.TrimLeft(head, " \t\r\n")
	if len(s) == 0 {
		return FormatJSONL, nil
	}
	switch s[0] {
	case '{':
		k := bytes.TrimLeft(s[1:], " \t\r\n")
		if bytes.HasPrefix(k, []byte(`"log"`)) {
			return FormatHAR, nil
		}
		return FormatJSONL, nil
	case '[':
		return "", fmt.Errorf("%w: a JSON array (a HAR file is an object with a log key)", ErrUnknownFormat)
	}
	// A combined log: any of the first few complete lines parses.
	lines := bytes.Split(s, []byte{'\n'})
	if len(lines) > 1 {
		lines = lines[:len(lines)-1] // the last may be cut by the peek
	}
	for i, l := range lines {
		if i == 8 {
			break
		}
		if _, err := parseLogLine(string(bytes.TrimRight(l, "\r"))); err == nil {
			return FormatCombined, nil
		}
	}
	return "", ErrUnknownFormat
}

// lineReader reads lines of at most max bytes, counting them; a longer line
// is skipped (not buffered) and reported.
type lineReader struct {
	br   *bufio.Reader
	max  int
	line int
	buf  []byte
}

func newLineReader(br *bufio.Reader, max int) *lineReader {
	return &lineReader{br: br, max: max}
}

// next returns the next line without its line ending. The slice is valid
// until the following call. tooLong reports a line over max.
// record returns the next non-blank line, or the too_large record error
// that invalid builds for a line longer than the bound (it is skipped).
func (l *lineReader) record(invalid func(code, detail string) *InvalidRecordError) ([]byte, error) {
	for {
		line, tooLong, err := l.next()
		if err != nil {
			return nil, err
		}
		if tooLong {
			return nil, invalid(InvalidTooLarge, "line longer than "+strconv.Itoa(l.max)+" bytes")
		}
		if !isBlank(line) {
			return line, nil
		}
	}
}

func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	l.buf = l.buf[:0]
	got := false
	for {
		frag, err := l.br.ReadSlice('\n')
		if len(frag) > 0 {
			got = true
		}
		if !tooLong {
			if err == nil && len(l.buf) == 0 {
				// The common case: the whole line is in the buffer, no copy.
				l.line++
				if t := trimEOL(frag); len(t) <= l.max {
					return t, false, nil
				}
				return nil, true, nil
			}
			if len(l.buf)+len(frag) > l.max+2 { // +2: CRLF is not content
				tooLong = true
				l.buf = l.buf[:0]
			} else {
				l.buf = append(l.buf, frag...)
			}
		}
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil:
		case io.EOF:
			if !got {
				return nil, false, io.EOF
			}
		default:
			return nil, false, err
		}
		l.line++
		if tooLong {
			return nil, true, nil
		}
		line = trimEOL(l.buf)
		if len(line) > l.max {
			return nil, true, nil
		}
		return line, false, nil
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }
