package store

import "testing"

func TestCheckKeysMatchSchema(t *testing.T) {
	k := NewKeys("gw:")
	for _, tc := range []struct{ client, bucket string }{{"192.0.2.1", ""}, {"2001:db8::/64", "login"}} {
		got := k.check(tc.client, tc.bucket)
		want := [4]string{k.Ban(tc.client), k.Rate(tc.client, tc.bucket), k.Refused(tc.client, tc.bucket), k.Invalid(tc.client)}
		if got != want {
			t.Errorf("check keys %q, want %q", got, want)
		}
		for _, key := range got {
			if clientFromTagged(key) != tc.client {
				t.Errorf("%s: hash tag is not the client", key)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = k.check("192.0.2.1", "") }); n != 1 {
		t.Errorf("check keys: %.0f allocations, want 1", n)
	}
}

// TestCredentialKeysMatchSchema: the credential keys' names are the ones
// the README documents (operators find them with redis-cli).
func TestCredentialKeysMatchSchema(t *testing.T) {
	k := NewKeys("gw:")
	for got, want := range map[string]string{
		k.JWTAlg("ab12"):            "gw:jwt:alg:{ab12}",
		k.JWTAlgSighting("ab12", 4): "gw:jwt:alg:{ab12}:sight:4",
		k.JWTSecret("hs:cd34"):      "gw:jwt:ws:{hs:cd34}",
		k.TokenSpread("ef56"):       "gw:tokip:{ef56}",
	} {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
	}
	if c := clientFromTagged(k.TokenSpread("ef56")); c != "ef56" {
		t.Errorf("tokip hash tag %q, want the token id", c)
	}
}
