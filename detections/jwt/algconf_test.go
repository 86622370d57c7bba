package jwt

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"testing"
	"time"
)

const issuer = "https://issuer.example"

func rsToken(t *testing.T, kid string) string {
	t.Helper()
	h := `{"alg":"RS256","typ":"JWT"}`
	if kid != "" {
		h = fmt.Sprintf(`{"alg":"RS256","typ":"JWT","kid":%q}`, kid)
	}
	return mint(h, claimsJSON(issuer), rs256(keys(t).rsa))
}

// confusedToken is jwt_tool -X k: HS256 signed with the issuer's public
// key as the secret.
func confusedToken(t *testing.T, kid string) string {
	t.Helper()
	h := `{"alg":"HS256","typ":"JWT"}`
	if kid != "" {
		h = fmt.Sprintf(`{"alg":"HS256","typ":"JWT","kid":%q}`, kid)
	}
	pem := fmt.Sprintf("%x", keys(t).rsa.PublicKey.N.Bytes())
	return mint(h, claimsJSON(issuer), hs(pem, crypto.SHA256))
}

func TestAlgConfusionLearnt(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // MinSightings 2
	cfg.WeakSecret.Enabled = false
	a := newTestAnalyzer(t, cfg, Options{})
	steps := []struct {
		name, token, witness string
		confused             bool
	}{
		{"first RS256 sighting", rsToken(t, "k1"), "client-1", false},
		{"HS256 before learning is not judged", confusedToken(t, "k1"), "client-9", false},
		{"same witness again does not count", rsToken(t, "k1"), "client-1", false},
		{"HS256 still not judged", confusedToken(t, "k1"), "client-9", false},
		{"second witness teaches RS", rsToken(t, "k1"), "client-2", false},
		{"HS256 same kid", confusedToken(t, "k1"), "client-3", true},
		{"HS256 other kid (issuer level)", confusedToken(t, "k-new"), "client-4", true},
		{"HS256 without kid", confusedToken(t, ""), "client-5", true},
		{"RS256 still fine", rsToken(t, "k1"), "client-6", false},
	}
	for _, s := range steps {
		res := analyze(t, a, s.token, s.witness)
		if got := res.Has(RuleAlgConfusion); got != s.confused {
			t.Fatalf("%s: confusion %v, findings %v", s.name, got, rulesOf(res.Findings))
		}
	}
	// Poisoning: many witnesses presenting HS256 never teach HMAC for an
	// issuer known for RSA.
	for i := range 20 {
		if res := analyze(t, a, confusedToken(t, "k1"), fmt.Sprintf("bot-%d", i)); !res.Has(RuleAlgConfusion) {
			t.Fatalf("HS256 from bot %d accepted", i)
		}
	}
	l, err := a.algStore.Learned(t.Context(), stateKey(kindAlg, issuer).key(kindAlg))
	if err != nil || l.Has(FamilyHMAC) || !l.Has(FamilyRSA) {
		t.Errorf("learnt %b, %v", l, err)
	}
}

func TestAlgConfusionHMACIssuerNotFlagged(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WeakSecret.Enabled = false
	a := newTestAnalyzer(t, cfg, Options{})
	secret := "an-hmac-issuer-secret-that-is-long-enough"
	for i := range 5 {
		tok := mint(`{"alg":"HS256"}`, claimsJSON(issuer), hs(secret, crypto.SHA256))
		if res := analyze(t, a, tok, fmt.Sprintf("c%d", i)); len(res.Findings) != 0 {
			t.Fatalf("HMAC issuer: %v", rulesOf(res.Findings))
		}
	}
	// An issuer that learnt HMAC first and RSA later uses both: no flag.
	for i := range 2 {
		analyze(t, a, rsToken(t, ""), fmt.Sprintf("r%d", i))
	}
	tok := mint(`{"alg":"HS256"}`, claimsJSON(issuer), hs(secret, crypto.SHA256))
	if res := analyze(t, a, tok, "c1"); res.Has(RuleAlgConfusion) {
		t.Error("issuer with both families flagged")
	}
}

// TestAlgConfusionAcrossReplicas shares one store between two analyzers:
// sightings on A and B add up, and what is learnt is known to both.
func TestAlgConfusionAcrossReplicas(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WeakSecret.Enabled = false
	store := NewMemoryAlgStore(MemoryAlgStoreConfig{MaxKeys: 100, MaxWitnesses: 2, LearnTTL: time.Hour, SightingTTL: time.Hour,
		Now: func() time.Time { return testNow }})
	a := newTestAnalyzer(t, cfg, Options{AlgStore: store})
	b := newTestAnalyzer(t, cfg, Options{AlgStore: store})
	// B looks first, so a stale local "nothing learnt" would show.
	if res := analyze(t, b, confusedToken(t, "k1"), "x"); res.Has(RuleAlgConfusion) {
		t.Fatal("flagged before anything was learnt")
	}
	analyze(t, a, rsToken(t, "k1"), "client-1")
	analyze(t, b, rsToken(t, "k1"), "client-2")
	for name, r := range map[string]*Analyzer{"A": a, "B": b} {
		if res := analyze(t, r, confusedToken(t, "k1"), "x"); !res.Has(RuleAlgConfusion) {
			t.Errorf("replica %s did not flag", name)
		}
	}
}

func TestMemoryAlgStoreBounds(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := NewMemoryAlgStore(MemoryAlgStoreConfig{MaxKeys: 3, MaxWitnesses: 2, LearnTTL: time.Hour, SightingTTL: time.Minute, Now: clk.Now})
	ctx := t.Context()
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Learn(ctx, k, FamilyRSA); err != nil {
			t.Fatal(err)
		}
	}
	// Full of learnt issuers: a minted one is refused, none is evicted.
	if _, err := s.Sight(ctx, "minted", FamilyHMAC, "w"); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("sight in a full store: %v", err)
	}
	if s.Len() != 3 {
		t.Fatalf("len %d", s.Len())
	}
	// Witnesses are capped and distinct.
	if err := s.Learn(ctx, "a", FamilyECDSA); err != nil {
		t.Fatal(err)
	}
	for i, w := range []string{"w1", "w1", "w2", "w3"} {
		n, err := s.Sight(ctx, "b", FamilyECDSA, w)
		if want := min(2, []int{1, 1, 2, 2}[i]); err != nil || n != want {
			t.Fatalf("sight %d: %d, %v; want %d", i, n, err, want)
		}
	}
	// Sightings expire.
	clk.Advance(2 * time.Minute)
	if n, _ := s.Sight(ctx, "b", FamilyECDSA, "w1"); n != 1 {
		t.Errorf("after sighting TTL: %d", n)
	}
	// Learnt families expire, and an expired entry makes room.
	clk.Advance(2 * time.Hour)
	if l, _ := s.Learned(ctx, "a"); l != 0 {
		t.Errorf("after learn TTL: %b", l)
	}
	if _, err := s.Sight(ctx, "new", FamilyRSA, "w"); err != nil {
		t.Errorf("sight after expiry: %v", err)
	}
	if s.Len() > 3 {
		t.Errorf("len %d", s.Len())
	}
}

// TestAlgConfusionStoreCapUnderFlood mints issuers until the default
// store is full and checks that the learnt issuer survives.
func TestAlgConfusionStoreCapUnderFlood(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WeakSecret.Enabled = false
	cfg.AlgConfusion.MaxIssuers = 10
	a := newTestAnalyzer(t, cfg, Options{})
	analyze(t, a, rsToken(t, ""), "c1")
	analyze(t, a, rsToken(t, ""), "c2")
	for i := range 200 {
		tok := mint(`{"alg":"RS256"}`, claimsJSON(fmt.Sprintf("https://minted-%d.example", i)), rs256(keys(t).rsa))
		analyze(t, a, tok, fmt.Sprintf("bot-%d", i))
	}
	if n := a.algStore.(*MemoryAlgStore).Len(); n > 10 {
		t.Errorf("store grew to %d", n)
	}
	if res := analyze(t, a, confusedToken(t, ""), "x"); !res.Has(RuleAlgConfusion) {
		t.Error("learnt issuer lost under flood")
	}
}

// failingAlgStore fails every call.
type failingAlgStore struct{}

func (failingAlgStore) Learned(context.Context, string) (AlgFamilies, error) {
	return 0, errors.New("store down")
}
func (failingAlgStore) Sight(context.Context, string, AlgFamily, string) (int, error) {
	return 0, errors.New("store down")
}
func (failingAlgStore) Learn(context.Context, string, AlgFamily) error {
	return errors.New("store down")
}

func TestAlgStoreFailureFailsOpen(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, testConfig(), Options{AlgStore: failingAlgStore{}})
	res, _ := a.Analyze(t.Context(), mint(`{"alg":"none"}`, claimsJSON(issuer), nil), "c")
	if !res.Has(RuleAlgNone) {
		t.Errorf("keyless finding lost: %v", rulesOf(res.Findings))
	}
	res, err := a.Analyze(t.Context(), rsToken(t, ""), "c")
	if err == nil || len(res.Findings) != 0 || a.Stats().AlgStoreErrors == 0 {
		t.Errorf("err %v, findings %v, stats %+v", err, rulesOf(res.Findings), a.Stats())
	}
}

// TestAlgConfusionForgedTokensDoNotTeach: at cold start, HS256 tokens with
// an impossible signature or injected keys from many witnesses teach
// nothing, so they cannot pre-empt the issuer's RSA baseline.
func TestAlgConfusionForgedTokensDoNotTeach(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WeakSecret.Enabled = false
	a := newTestAnalyzer(t, cfg, Options{})
	forged := []string{
		mint(`{"alg":"HS256"}`, claimsJSON(issuer), fixed(make([]byte, 20))),
		mint(`{"alg":"HS256","jku":"https://attacker.example/"}`, claimsJSON(issuer), hs("x", crypto.SHA256)),
		mint(`{"alg":"HS256","kid":"../../dev/null"}`, claimsJSON(issuer), hs("", crypto.SHA256)),
	}
	for i := range 10 {
		for _, tok := range forged {
			analyze(t, a, tok, fmt.Sprintf("bot-%d", i))
		}
	}
	if l, _ := a.algStore.Learned(t.Context(), stateKey(kindAlg, issuer).key(kindAlg)); l != 0 {
		t.Fatalf("forged tokens taught %b", l)
	}
	analyze(t, a, rsToken(t, ""), "c1")
	analyze(t, a, rsToken(t, ""), "c2")
	if res := analyze(t, a, confusedToken(t, ""), "x"); !res.Has(RuleAlgConfusion) {
		t.Error("baseline poisoned")
	}
}
