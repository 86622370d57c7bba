package payload

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/normalize"
)

// Severity scores, as in anomaly-scoring WAFs: one critical finding reaches
// the default threshold alone; weaker findings must add up.
const (
	ScoreCritical = 5
	ScoreError    = 4
	ScoreWarning  = 3
	ScoreNotice   = 2
)

// Finding is one analyzer match.
type Finding struct {
	// Rule is the stable rule id, e.g. "sqli" or "traversal_sensitive_file".
	Rule string
	// Score is the anomaly score the match adds.
	Score int
}

// Analyzer inspects one field of a request. Implementations are built once,
// are safe for concurrent use, and must not allocate for clean input that
// needs no decoding: Input gives them the normalised forms, computed once per
// field and shared by every analyzer.
type Analyzer interface {
	// Name is the stable analyzer id used in config (analyzers.<name>) and
	// as the prefix of its rule ids.
	Name() string
	// Analyze returns the strongest finding for in, if any.
	Analyze(in *Input) (Finding, bool)
}

// needer is optionally implemented by analyzers that can only find
// something in values holding a byte of some class (cls*): the detection
// then skips them, without a call, on fields without one. The analyzer
// still checks for itself; this only saves the call.
type needer interface {
	needs() uint64
}

// RequestAnalyzer is optionally implemented by analyzers that look at the
// request as a whole (method, protocol, header structure) rather than at one
// field. It runs once per request, before the fields.
type RequestAnalyzer interface {
	AnalyzeRequest(r *detections.Request) (Finding, bool)
}

// Input is one field with its normalised forms, computed lazily and cached
// for all analyzers. The byte slices alias a scratch buffer: analyzers must
// not keep them after Analyze returns.
type Input struct {
	Field   *detections.Field
	Request *detections.Request

	buf     *normalize.Buffer
	decoded []byte
	folded  []byte
	sql     []byte
	path    []byte
	b64     []byte
	done    uint16
	gset    gramSet
	binary  bool
	noisy   bool
	classes uint64

	// Per request: whether the raw body is binary, computed on first use.
	bodyChecked, bodyBinary bool

	// sub is a nested input for parts of this value (XML text nodes,
	// base64 content), with its own scratch buffer; root is the field's
	// input a sub input is part of (nil for the field's own).
	sub      *Input
	root     *Input
	subField detections.Field
	subBuf   normalize.Buffer

	// limit is the location of an inspection limit an analyzer reached in
	// this field ("" for none): the detection scores it as a
	// protocol_limit finding after the analyzers.
	limit string
}

const (
	doneFolded uint16 = 1 << iota
	doneSQL
	donePath
	doneBase64
	doneBinary
	doneNoisy
	doneGrams
)

// reset starts on field f. The byte classes are computed right away:
// every analyzer's first test reads them, so Has and Classes are field
// reads.
func (in *Input) reset(f *detections.Field) {
	in.Field, in.decoded, in.folded, in.sql, in.path, in.b64, in.done = f, nil, nil, nil, nil, nil, 0
	in.limit = ""
	in.computeClasses()
}

// limitReached records that an analyzer stopped reading the field at an
// inspection limit, named by its verdict location: what lies beyond was
// not inspected, which the detection scores as a protocol_limit finding.
func (in *Input) limitReached(loc string) {
	r := in
	if in.root != nil {
		r = in.root
	}
	r.limit = loc
}

// startRequest resets the per-request state for r.
func (in *Input) startRequest(r *detections.Request) {
	in.Request, in.bodyChecked, in.bodyBinary = r, false, false
}

// Sub returns an Input for value, a part of this field (an XML text node,
// the text inside a base64 value), normalised the same way. It shares the
// field's metadata and is valid until the next call of Sub.
func (in *Input) Sub(value string) *Input {
	if in.sub == nil {
		in.sub = &Input{}
		in.sub.buf = &in.sub.subBuf
		in.sub.root = in
		if in.root != nil {
			in.sub.root = in.root
		}
	}
	// The per-request state is the parent's, computed once per request
	// (not once per part: an XML body has thousands).
	if !in.bodyChecked && in.Request != nil {
		in.bodyChecked, in.bodyBinary = true, isBinary(in.Request.Body)
	}
	in.sub.Request, in.sub.bodyChecked, in.sub.bodyBinary = in.Request, true, in.bodyBinary
	in.sub.subField = *in.Field
	in.sub.subField.Value = value
	in.sub.reset(&in.sub.subField)
	return in.sub
}

// Classes returns the union of the byte classes (cls*) in the decoded
// value, computed once per field (see computeClasses).
func (in *Input) Classes() uint64 { return in.classes }

// computeClasses decodes the value and takes its byte classes: the classes
// of the raw value tell whether there is anything to decode (an escape
// introducer or a byte >= 0x80); when there is not, the decoded value is
// the raw one and one pass did both jobs.
func (in *Input) computeClasses() {
	v := in.Field.Value
	if len(v) > normalize.MaxInput {
		v = v[:normalize.MaxInput]
	}
	raw := unsafe.Slice(unsafe.StringData(v), len(v))
	in.classes = byteClasses(raw)
	introducers := clsPercent | clsAmp | clsBackslash | clsHigh
	if in.Field.Plus {
		introducers |= clsPlus
	}
	if in.classes&introducers == 0 {
		in.decoded = raw
	} else {
		in.decoded = in.buf.Decode(in.Field.Value, in.Field.Plus)
		in.classes = byteClasses(in.decoded)
	}
}

// Has reports whether the decoded value holds a byte of any class in mask.
func (in *Input) Has(mask uint64) bool { return in.classes&mask != 0 }

// Binary reports whether the decoded value is binary data rather than text
// (compressed or image bodies sent without a content type, protobuf): at
// least 256 bytes, more than one in eight of them control bytes or invalid
// UTF-8. Text analyzers skip binary values: their markup and quote
// characters are noise. Short values full of such bytes are evasions
// ("..%c0%af"), not binary data, and stay subject to every analyzer.
//
// Form and multipart fields cut out of a binary body (a protobuf or
// compressed payload sent as a form) are binary too, however short.
func (in *Input) Binary() bool {
	if in.done&doneBinary == 0 {
		in.done |= doneBinary
		in.binary = isBinary(in.Decoded())
		if !in.binary && in.Request != nil && (in.Field.Kind == detections.FieldForm || in.Field.Kind == detections.FieldMultipart) {
			if !in.bodyChecked {
				in.bodyChecked = true
				in.bodyBinary = isBinary(in.Request.Body)
			}
			in.binary = in.bodyBinary
		}
	}
	return in.binary
}

func isBinary(b []byte) bool {
	if len(b) < 256 {
		return false
	}
	bad := 0
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
				bad++
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		// Invalid UTF-8, replacement characters and C1 controls: what
		// bytes look like after a lossy conversion to text.
		if r == utf8.RuneError || (r >= 0x80 && r < 0xa0) {
			bad++
		}
		i += n
	}
	return bad >= 4 && bad*8 > len(b)
}

// Noisy reports whether the value looks like random printable data (bot
// sensor payloads, encrypted tokens): at least 64 bytes using 20 or more
// distinct ASCII punctuation characters. Injections are built from a few
// kinds of punctuation; noise uses all of them. Analyzers drop their weak,
// sub-threshold signals on noisy values (see weak), never their critical
// ones, so appending noise to a payload does not hide it.
func (in *Input) Noisy() bool {
	if in.done&doneNoisy == 0 {
		in.done |= doneNoisy
		in.noisy = isNoisy(in.Decoded())
	}
	return in.noisy
}

func isNoisy(f []byte) bool {
	if len(f) < 64 {
		return false
	}
	var seen byteSet
	n := 0
	for _, c := range f {
		if c > ' ' && c < 0x7f && !isWordByte(c) && !seen.has(c) {
			seen[c>>6] |= 1 << (c & 63)
			n++
			if n >= 20 {
				return true
			}
		}
	}
	return false
}

// weak returns a sub-threshold finding unless the value is noise, where
// such signals are chance.
func (in *Input) weak(f Finding) (Finding, bool) {
	if in.Noisy() {
		return Finding{}, false
	}
	return f, true
}

// Decoded returns the field's value with URL escapes (repeatedly), HTML and
// XML character references, JavaScript escapes and overlong UTF-8 undone;
// case is preserved. It may alias the field's value: never modify it.
func (in *Input) Decoded() []byte { return in.decoded }

// grams returns the byte pairs of the folded value (see gramSet), computed
// once per field.
func (in *Input) grams() *gramSet {
	if in.done&doneGrams == 0 {
		in.done |= doneGrams
		in.gset = gramsOf(in.Folded())
	}
	return &in.gset
}

// Folded returns Decoded lower-cased, NFKC-normalised, with control bytes
// removed and whitespace collapsed: the form literal patterns match.
func (in *Input) Folded() []byte {
	if in.done&doneFolded == 0 {
		in.done |= doneFolded
		d := in.Decoded()
		if in.Classes()&(clsUpper|clsControl|clsHigh|clsNewline|clsTab) == 0 && (in.Classes()&clsSpace == 0 || !contains(d, "  ")) {
			// Already folded: lower-case ASCII, single spaces.
			in.folded = d
		} else {
			in.folded = in.buf.Fold(d)
		}
	}
	return in.folded
}

// SQL returns Folded with SQL comments taken out (see normalize.Buffer.SQL).
func (in *Input) SQL() []byte {
	if in.done&doneSQL == 0 {
		in.done |= doneSQL
		in.sql = in.buf.SQL(in.Folded())
	}
	return in.sql
}

// Path returns Decoded as a canonical path: lower case, every separator
// spelling turned into '/' (see normalize.Buffer.Path).
func (in *Input) Path() []byte {
	if in.done&donePath == 0 {
		in.done |= donePath
		in.path = in.buf.Path(in.Decoded())
	}
	return in.path
}

// Base64 returns the text inside the value when the value is plainly
// base64, nil otherwise (see normalize.Buffer.Base64).
//
// In a query or form value a '+' of the base64 alphabet has become a
// space; the raw value is tried then.
func (in *Input) Base64() []byte {
	if in.done&doneBase64 == 0 {
		in.done |= doneBase64
		in.b64 = in.buf.Base64(in.Decoded())
		if in.b64 == nil && in.Field.Plus && strings.IndexByte(in.Field.Value, '+') >= 0 && strings.IndexByte(in.Field.Value, '%') < 0 {
			in.b64 = in.buf.Base64(unsafe.Slice(unsafe.StringData(in.Field.Value), len(in.Field.Value)))
		}
	}
	return in.b64
}
