package detections_test

import (
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/tlsfp"
)

// TestIdentitySubjectIsSubject: an operator's ban by value
// (IdentitySubject) names the very subject a request with that value is
// keyed by (KeySpec.Subject), and the hash is stable: bans and buckets
// already in the store are keyed by it.
func TestIdentitySubjectIsSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec   []string
		values []string
		golden string // "" : not pinned
	}{
		{[]string{"header:X-Api-Key"}, []string{"k-123"}, "id:017400ea3f7b48d95d7b3ad7d09a3c7e"},
		{[]string{"jwt:sub", "ip"}, []string{"alice", "192.0.2.1"}, "id:de198ffb8119df08c95522c47149373c"},
		{[]string{"ja4", "header:x-tenant"}, []string{"t13d1516h2_a_b", "acme"}, ""},
	} {
		spec, err := detections.ParseKeySpec(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		r := reqFrom("192.0.2.1")
		claims := map[string]string{}
		for i, p := range spec {
			switch p.Kind {
			case "header":
				r.Header.Set(p.Name, tc.values[i])
			case "jwt":
				claims[p.Name] = tc.values[i]
			case "ja4":
				r.TLS = &detections.TLS{Fingerprint: tlsfp.Fingerprint{JA4: tc.values[i]}}
			case "ip":
				if r.ClientKey != tc.values[i] {
					t.Fatalf("client key %q, want %q", r.ClientKey, tc.values[i])
				}
			}
		}
		r.Credential = &detections.Credential{Kind: "jwt", Verified: true, Claim: func(n string) (string, bool) { v, ok := claims[n]; return v, ok }}
		fromRequest, ok := spec.Subject(r)
		if !ok {
			t.Fatalf("%s: no identity in the request", spec)
		}
		byValue, err := detections.IdentitySubject(spec, tc.values...)
		if err != nil {
			t.Fatal(err)
		}
		if fromRequest != byValue {
			t.Errorf("%s: Subject %q, IdentitySubject %q: a ban by value would miss the request", spec, fromRequest, byValue)
		}
		if tc.golden != "" && byValue != tc.golden {
			t.Errorf("%s: subject %q, want %q (the stored bans' key)", spec, byValue, tc.golden)
		}
	}
}
