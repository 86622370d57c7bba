package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// NeedTool returns the path of the program name (Debian package pkg). When
// it is not installed the test is skipped with a message saying what to
// install, unless RAMPART_CI is set: CI installs every tool the suite
// needs, so there a missing one is a failure, never a silent skip.
func NeedTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("RAMPART_CI") != "" {
		t.Fatalf("%s not installed (apt-get install %s): CI must install it (.ci/run)", name, pkg)
	}
	t.Skipf("%s not installed (apt-get install %s); CI installs it", name, pkg)
	return ""
}

// SkipUnlessCI skips with why, or fails when RAMPART_CI is set (see
// NeedTool).
func SkipUnlessCI(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("RAMPART_CI") != "" {
		t.Fatalf("%s: CI must provide it (.ci/run)", why)
	}
	t.Skip(why)
}
