package payload

import (
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

// Finding is one analyser match.
type Finding struct {
	// Rule is the stable rule id, e.g. "sqli" or "traversal-encoded".
	Rule string
	// Score is the anomaly score the match adds.
	Score int
}

// Analyzer inspects one field of a request. Implementations are built once,
// are safe for concurrent use, and must not allocate for clean input that
// needs no decoding: Input gives them the normalised forms, computed once per
// field and shared by every analyser.
type Analyzer interface {
	// Name is the stable analyser id used in config (analyzers.<name>) and
	// as the prefix of its rule ids.
	Name() string
	// Analyze returns the strongest finding for in, if any.
	Analyze(in *Input) (Finding, bool)
}

// RequestAnalyzer is optionally implemented by analysers that look at the
// request as a whole (method, protocol, header structure) rather than at one
// field. It runs once per request, before the fields.
type RequestAnalyzer interface {
	AnalyzeRequest(r *detections.Request) (Finding, bool)
}

// Input is one field with its normalised forms, computed lazily and cached
// for all analysers. The byte slices alias a scratch buffer: analysers must
// not keep them after Analyze returns.
type Input struct {
	Field   *detections.Field
	Request *detections.Request

	buf     *normalize.Buffer
	decoded []byte
	folded  []byte
	done    uint8
}

const (
	doneDecoded uint8 = 1 << iota
	doneFolded
)

func (in *Input) reset(f *detections.Field) {
	in.Field, in.decoded, in.folded, in.done = f, nil, nil, 0
}

// Decoded returns the field's value with URL escapes (repeatedly), HTML
// character references and overlong UTF-8 undone; case is preserved.
func (in *Input) Decoded() []byte {
	if in.done&doneDecoded == 0 {
		in.done |= doneDecoded
		in.decoded = in.buf.Decode(in.Field.Value, in.Field.Plus)
	}
	return in.decoded
}

// Folded returns Decoded lower-cased, NFKC-normalised, with control bytes
// removed and whitespace collapsed: the form literal patterns match.
func (in *Input) Folded() []byte {
	if in.done&doneFolded == 0 {
		in.done |= doneFolded
		in.folded = in.buf.Fold(in.Decoded())
	}
	return in.folded
}
