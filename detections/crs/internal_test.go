package crs

import (
	"net/http"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampartgw/rampart/detections"
)

// broken is a transaction whose every method panics (a nil embedded
// interface), standing in for a bug inside Coraza.
type broken struct{ types.Transaction }

func TestPanicIsError(t *testing.T) {
	t.Parallel()
	c := &CRS{}
	r := &detections.Request{Method: "GET", Path: "/", RawPath: "/", Header: http.Header{}}
	v, err := c.run(t.Context(), broken{}, r)
	if err == nil || !strings.Contains(err.Error(), "coraza panicked") || v.Action != detections.ActionAllow {
		t.Fatalf("run: %+v, %v", v, err)
	}
	if err := finish(broken{}); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("finish: %v", err)
	}
}

func TestDirectives(t *testing.T) {
	t.Parallel()
	src := "# head\n\nSecRuleEngine On\nSecRule A \"b\" \\\n  \"id:1\"\n  # inside\nSecDataset x `\na\nb\n`\n\n  SecAction \"id:2\"\n"
	got := directives(src)
	want := []int{3, 4, 7, 12}
	if len(got) != len(want) {
		t.Fatalf("%d directives: %+v", len(got), got)
	}
	for i, d := range got {
		if d.line != want[i] {
			t.Errorf("directive %d starts on line %d, want %d", i, d.line, want[i])
		}
		if !strings.HasPrefix(src, d.through) || (i > 0 && len(d.through) <= len(got[i-1].through)) {
			t.Errorf("directive %d: prefix %q", i, d.through)
		}
	}
	if last := got[len(got)-1].through; last != src {
		t.Errorf("last prefix %q is not the whole file", last)
	}
}

func TestEmbedded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"@owasp_crs/REQUEST-942-APPLICATION-ATTACK-SQLI.conf", "@owasp_crs/REQUEST-942-APPLICATION-ATTACK-SQLI.conf", true},
		{"@owasp_crs/unix-shell.data", "@owasp_crs/unix-shell.data", true},
		{"/etc/rampart/@owasp_crs/REQUEST-942-APPLICATION-ATTACK-SQLI.conf", "@owasp_crs/REQUEST-942-APPLICATION-ATTACK-SQLI.conf", true},
		{"@crs-setup.conf.example", "@crs-setup.conf.example", true},
		{"/etc/rampart/x@owasp_crs/a.conf", "", false},
		{"/etc/rampart/patch.conf", "", false},
	} {
		out, ok := embedded(tc.in)
		if out != tc.out || ok != tc.ok {
			t.Errorf("embedded(%q) = %q, %v", tc.in, out, ok)
		}
	}
	if _, err := (rootFS{}).ReadFile("@owasp_crs/REQUEST-942-APPLICATION-ATTACK-SQLI.conf"); err != nil {
		t.Fatal(err)
	}
	m, err := (rootFS{}).Glob("@owasp_crs/REQUEST-9[1-9]*.conf")
	if err != nil || len(m) < 10 {
		t.Fatalf("glob: %v %v", m, err)
	}
}
