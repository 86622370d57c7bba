package payload

import (
	"strings"
	"testing"
	"time"
)

// TestLinearScans: the per-match scans of the analyzers stay linear in the
// value's length on values built to make one match rescan what the others
// read (an unclosed call, tag or comment repeated).
//
// Each value is analysed at 32 KiB and at 256 KiB, the longest window a
// value is analysed in; the fastest of three runs counts. Linear work grows
// 8 times from the one to the other, quadratic work 64 times: the test fails
// when the long value takes more than 20 times the short one and over 100
// ms, so that a slow or busy machine, or the race detector, does not fail
// it, while the quadratic scans it guards against took seconds.
func TestLinearScans(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	for _, tc := range []struct {
		analyzer, prefix, unit string
	}{
		// A '(' after a comment closer searched back for its opener.
		{"php", "", "*/("},
		// A call never closed, as an SQL or Mongo operand.
		{"sqli", "=", "||x("},
		{"nosqli", "=", "||x("},
		{"sqli", "", "or a("},
		// A loading element never closed, its attributes read to the end.
		{"xss", "", "<layer "},
		{"xss", "", "<iframe "},
		{"xss", "", "<style "},
		// Exploit class names on a line that reads as a stack trace.
		{"java", "exception ", "java.lang.runtime "},
		// EL openers never closed.
		{"java", "", "${"},
		// A PowerShell lead ("(", "&") running over the separators.
		{"cmdi", "", "(&"},
		// A command after every separator with a long first argument.
		{"cmdi", `{"`, "data:x;base64,"},
		// A UTF-7 run never ended ('+' escaped: a form's '+' is a space).
		{"xss", "'", "%2bad"},
		// Template openers nested under one closer.
		{"ssti", "", strings.Repeat("${", 100) + "}"},
	} {
		var a Analyzer
		for _, b := range builtins(DefaultConfig()) {
			if b.Name() == tc.analyzer {
				a = b
			}
		}
		if a == nil {
			t.Fatalf("no analyzer %q", tc.analyzer)
		}
		t.Run(tc.analyzer+" "+tc.prefix+tc.unit[:min(len(tc.unit), 20)], func(t *testing.T) {
			var took [2]time.Duration
			for k, n := range []int{32 << 10, 256 << 10} {
				v := tc.prefix + strings.Repeat(tc.unit, (n-len(tc.prefix))/len(tc.unit))
				took[k] = time.Hour
				for range 3 {
					start := time.Now()
					analyze(a, form, false, "p", v)
					took[k] = min(took[k], time.Since(start))
					if took[k] > 2*time.Second {
						break // no need to time a quadratic scan again
					}
				}
			}
			t.Logf("32 KiB in %v, 256 KiB in %v", took[0], took[1])
			if took[1] > 20*took[0] && took[1] > 100*time.Millisecond {
				t.Errorf("%s on %q repeated: 32 KiB in %v, 256 KiB in %v", tc.analyzer, tc.unit, took[0], took[1])
			}
		})
	}
}
