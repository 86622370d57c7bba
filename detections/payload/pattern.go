package payload

import (
	"unsafe"

	"github.com/rampartgw/rampart/detections"
)

// RulePattern is the rule id of a match from the configured pattern list.
const RulePattern = "pattern"

// patternAnalyzer is the prototype's MALICIOUS_PAYLOAD list, grown up: each
// pattern (literal, glob or "re:" regex, case-insensitive) is matched
// against the folded form of every field, so encodings, case and whitespace
// tricks do not hide a listed word. A match is critical: listing a pattern
// means "block this".
type patternAnalyzer struct {
	set *detections.PatternSet
}

func (a *patternAnalyzer) Name() string { return RulePattern }

func (a *patternAnalyzer) Analyze(in *Input) (Finding, bool) {
	folded := in.Folded()
	if len(folded) == 0 {
		return Finding{}, false
	}
	// The string view lives only for this call; PatternSet keeps nothing.
	if _, ok := a.set.Match(unsafe.String(unsafe.SliceData(folded), len(folded))); ok {
		return Finding{Rule: RulePattern, Score: ScoreCritical}, true
	}
	return Finding{}, false
}
