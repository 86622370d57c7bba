package payload_test

import (
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// TestStructureNotRecords: attacks are recognised by their structure, not
// by the spelling of one recorded payload, so the ordinary uses of the
// same words pass: a template filter is not an exploit, a user named Sam
// is not the Windows account database.
func TestStructureNotRecords(t *testing.T) {
	t.Parallel()
	d := newDefault(t)
	for _, tc := range []struct {
		name, field, value, rule string // rule "": allowed
	}{
		// A filter in a template expression is the template's own use.
		{"jinja join filter", "msg", "{{ tags|join }}", ""},
		{"jinja escape filter", "msg", "{{ name|e }}", ""},
		// A method called on a string literal probes the engine.
		{"method of a literal", "q", "{{'a'.toUpperCase()}}", payload.RuleSSTI},
		{"method of a literal in el", "q", `${"x".concat(1)}`, payload.RuleSSTI},
		{"method of data", "msg", "{{ user.name.upper() }}", ""},
		// "script" hidden by nesting, for filters that strip it (once
		// per pass).
		{"nested once", "q", "<scrscriptipt>alert(1)</scrscriptipt>", payload.RuleXSS},
		{"nested twice", "q", "<scrscrscriptiptipt>alert(1)</scrscrscriptiptipt>", payload.RuleXSS},
		{"nested four times", "q", "<scrscrscrscrscriptiptiptiptipt>alert(1)", payload.RuleXSS},
		{"a tag named like it", "q", "<scriptorium>", ""},
		// The SAM hive is under config\; a file named sam is not.
		{"avatar", "img", "../avatars/sam.png", ""},
		{"sam hive", "f", `..\..\windows\system32\config\sam`, payload.RuleTraversalFile},
		{"sam hive climbed to", "f", "../../config/sam", payload.RuleTraversalFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := inspect(t, d, formRequest(tc.field, tc.value))
			switch {
			case tc.rule == "" && v.Action != detections.ActionAllow:
				t.Errorf("%q: %v by %s, want allow", tc.value, v.Action, v.Rule)
			case tc.rule != "" && (v.Action != detections.ActionBlock || v.Rule != tc.rule):
				t.Errorf("%q: %v %s, want block %s", tc.value, v.Action, v.Rule, tc.rule)
			}
		})
	}
}
