package replay

import (
	"fmt"
)

// Exit statuses, as wafeval uses them.
const (
	ExitOK     = 0 // the candidate is within the gate
	ExitGate   = 1 // the candidate newly blocks more than Gate.MaxNewBlocks requests
	ExitFailed = 2 // usage or input error (or, with Gate.Strict, invalid records or judge errors)
)

// Gate is the CI gate of a replay.
type Gate struct {
	// MaxNewBlocks is how many requests the current configuration allowed
	// that the candidate may block; negative disables the gate. The default
	// 0 fails on any new block, the way diff(1) exits 1 on any difference.
	MaxNewBlocks int
	// Strict makes invalid records and judge errors an input error (exit
	// 2). Without it they are reported but do not change the status.
	Strict bool
}

// DefaultGate returns the default gate: no new block allowed, not strict.
func DefaultGate() Gate { return Gate{MaxNewBlocks: 0} }

// ExitStatus maps a run's result to a process exit status and a one-line
// reason. runErr is the error from Open or Run; rep may be nil with it.
func ExitStatus(rep *Report, runErr error, g Gate) (int, string) {
	if runErr != nil {
		return ExitFailed, "error: " + runErr.Error()
	}
	if rep == nil {
		return ExitFailed, "error: no report"
	}
	t := rep.Totals
	if g.Strict && (t.Invalid > 0 || t.JudgeErrors > 0) {
		return ExitFailed, fmt.Sprintf("strict: %d invalid records, %d judge errors", t.Invalid, t.JudgeErrors)
	}
	if g.MaxNewBlocks >= 0 && t.NewlyBlocked > g.MaxNewBlocks {
		return ExitGate, fmt.Sprintf("gate failed: the candidate newly blocks %d requests (max %d)", t.NewlyBlocked, g.MaxNewBlocks)
	}
	if g.MaxNewBlocks < 0 {
		return ExitOK, fmt.Sprintf("ok: %d newly blocked (no gate), %d newly allowed", t.NewlyBlocked, t.NewlyAllowed)
	}
	return ExitOK, fmt.Sprintf("ok: %d newly blocked (max %d), %d newly allowed", t.NewlyBlocked, g.MaxNewBlocks, t.NewlyAllowed)
}
