package gateway

import "testing"

// TestCleanPathAllocations: routing normalises every request's path; a
// path that is already clean costs no allocation.
func TestCleanPathAllocations(t *testing.T) {
	for _, p := range []string{"/echo", "/api/v1/items/42", "/"} {
		if n := testing.AllocsPerRun(100, func() { _ = cleanPath(p) }); n != 0 {
			t.Errorf("cleanPath(%q): %v allocations, want 0", p, n)
		}
	}
	for in, want := range map[string]string{"echo": "/echo", "/a//b/": "/a/b", "/a/./b/../c": "/a/c", `\a\b`: "/a/b", "/a;x=1/b": "/a/b", "/": ""} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}
