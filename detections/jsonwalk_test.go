package detections

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValidJSON checks the walker's JSON validator against encoding/json's:
// a body the two judged differently would be walked as fields by one and
// inspected as raw text by the other.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":[1,-2.5e+3,true,false,null,"\u00e9\n"]}`, `[1,]`, `{"a" 1}`, `01`, `-`, `1.`,
		`"\x"`, `"\u12"`, "\"\x01\"", ` [ { } , [ ] ] `, `{"a":1}{`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000), `{"a":{"b":[{"c":"d"}]}}`, "\xff", `"\xff"`, `{"a":1,}`,
		`[true false]`, `nul`, `1e`, `-0.0e-0`, `"\uD83D\uDE00"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", s, got, want)
		}
	})
}
