package jwt

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func hsToken(iss, kid, secret string, extra ...string) string {
	h := `{"alg":"HS256","typ":"JWT"}`
	if kid != "" {
		h = fmt.Sprintf(`{"alg":"HS256","typ":"JWT","kid":%q}`, kid)
	}
	return mint(h, claimsJSON(iss, extra...), hs(secret, crypto.SHA256))
}

func weakConfig() Config {
	c := testConfig()
	c.AlgConfusion.Enabled = false
	return c
}

// TestWeakSecretNeverOnRequestPath is the off-path proof: without workers
// no trial ever runs, however many requests come; each request only reads
// a verdict and queues at most one job per family. After the worker ran,
// requests report the finding, still without a single trial of their own.
func TestWeakSecretNeverOnRequestPath(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, weakConfig(), Options{})
	tok := hsToken(issuer, "k1", "secret")
	for range 100 {
		if res := analyze(t, a, tok, "c"); res.Has(RuleWeakSecret) {
			t.Fatal("verdict before any worker ran")
		}
	}
	if s := a.Stats(); s.AuditTrials != 0 || s.AuditQueued != 1 {
		t.Fatalf("request path: %+v", s)
	}
	if n := a.audit.processQueued(t.Context()); n != 1 {
		t.Fatalf("processed %d jobs", n)
	}
	afterWorker := a.Stats().AuditTrials
	if afterWorker == 0 || a.Stats().WeakFamilies != 1 {
		t.Fatalf("worker: %+v", a.Stats())
	}
	for range 100 {
		if res := analyze(t, a, tok, "c"); !res.Has(RuleWeakSecret) {
			t.Fatalf("no finding after the sweep: %v", rulesOf(res.Findings))
		}
	}
	if s := a.Stats(); s.AuditTrials != afterWorker || s.AuditQueued != 0 {
		t.Errorf("request path ran trials or queued jobs: %+v", s)
	}
	res := analyze(t, a, tok, "c")
	if f := res.Findings[len(res.Findings)-1]; f.Rule != RuleWeakSecret || f.Action != ActionBlock || f.Severity != SeverityCritical {
		t.Errorf("finding %+v", f)
	}
}

// TestWeakSecretPerTokenConfirmation: once a family is known to be weak,
// each token is confirmed on its own (one HMAC on a worker), so a genuine
// token with a strong secret is never reported.
func TestWeakSecretPerTokenConfirmation(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, weakConfig(), Options{})
	ctx := t.Context()
	// An attacker mints a token for a real issuer with a guessed secret.
	forged := hsToken(issuer, "k1", "changeme", `"role":"admin"`)
	analyze(t, a, forged, "attacker")
	a.audit.processQueued(ctx)
	if !analyze(t, a, forged, "attacker").Has(RuleWeakSecret) {
		t.Fatal("forged token not reported")
	}
	// The issuer's genuine tokens use a strong secret.
	genuine := hsToken(issuer, "k1", "b3f1c0e5a9d24e7f8a6b5c4d3e2f1a0b9c8d7e6f", `"jti":"1"`)
	if analyze(t, a, genuine, "user").Has(RuleWeakSecret) {
		t.Fatal("genuine token reported before confirmation")
	}
	before := a.Stats().AuditTrials
	if n := a.audit.processQueued(ctx); n != 1 {
		t.Fatalf("processed %d", n)
	}
	if got := a.Stats().AuditTrials - before; got != 1 {
		t.Errorf("confirmation took %d trials, want 1", got)
	}
	for range 3 {
		if res := analyze(t, a, genuine, "user"); res.Has(RuleWeakSecret) {
			t.Fatal("genuine token reported")
		}
	}
	// Another forged token of the family is confirmed and reported.
	forged2 := hsToken(issuer, "k1", "changeme", `"role":"root"`)
	analyze(t, a, forged2, "attacker")
	a.audit.processQueued(ctx)
	if !analyze(t, a, forged2, "attacker").Has(RuleWeakSecret) {
		t.Error("second forged token not reported")
	}
	if a.Stats().AuditSweeps != 1 {
		t.Errorf("sweeps %d, want 1", a.Stats().AuditSweeps)
	}
}

// TestWeakSecretNegativeFamilyCoversOneToken: a family swept clean with
// one token (an attacker's junk signature) does not clear the family's
// later tokens, which get their own sweep; a hit makes the family weak.
func TestWeakSecretNegativeFamilyCoversOneToken(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, weakConfig(), Options{})
	ctx := t.Context()
	hdr := `{"alg":"HS256","typ":"JWT","kid":"k1"}`
	junk := mint(hdr, claimsJSON(issuer), fixed(make([]byte, 32)))
	analyze(t, a, junk, "attacker")
	a.audit.processQueued(ctx)
	if s := a.Stats(); s.AuditSweeps != 1 || s.WeakFamilies != 0 {
		t.Fatalf("junk sweep: %+v", s)
	}
	// The swept token itself is settled: no new job.
	if analyze(t, a, junk, "attacker").Has(RuleWeakSecret) || a.Stats().AuditQueued != 0 {
		t.Fatalf("junk token: %+v", a.Stats())
	}
	forged := hsToken(issuer, "k1", "secret", `"role":"admin"`)
	for range 10 {
		if analyze(t, a, forged, "attacker").Has(RuleWeakSecret) {
			t.Fatal("verdict before the sweep")
		}
	}
	if s := a.Stats(); s.AuditQueued != 1 {
		t.Fatalf("queued %d jobs for one token", s.AuditQueued)
	}
	a.audit.processQueued(ctx)
	if s := a.Stats(); s.AuditSweeps != 2 || s.WeakFamilies != 1 {
		t.Fatalf("token sweep: %+v", s)
	}
	if !analyze(t, a, forged, "attacker").Has(RuleWeakSecret) {
		t.Fatal("token signed with a listed secret not reported in a family swept clean")
	}
	// The family is now known weak: later tokens are confirmed with one
	// trial, not swept.
	forged2 := hsToken(issuer, "k1", "secret", `"role":"root"`)
	genuine := hsToken(issuer, "k1", "b3f1c0e5a9d24e7f8a6b5c4d3e2f1a0b9c8d7e6f", `"jti":"1"`)
	analyze(t, a, forged2, "attacker")
	analyze(t, a, genuine, "user")
	before := a.Stats().AuditTrials
	a.audit.processQueued(ctx)
	if s := a.Stats(); s.AuditTrials-before != 2 || s.AuditSweeps != 2 {
		t.Errorf("confirmations: %d trials, %+v", s.AuditTrials-before, s)
	}
	if !analyze(t, a, forged2, "attacker").Has(RuleWeakSecret) || analyze(t, a, genuine, "user").Has(RuleWeakSecret) {
		t.Error("confirmation")
	}
	// The swept junk token keeps its own verdict.
	if analyze(t, a, junk, "attacker").Has(RuleWeakSecret) {
		t.Error("junk token reported")
	}
}

// TestWeakSecretTokenSweepsBudgetAndClaim: the sweeps of a clean family's
// tokens spend the sweeps_per_minute budget, once per token, and a token
// claimed by another replica is not swept twice.
func TestWeakSecretTokenSweepsBudgetAndClaim(t *testing.T) {
	t.Parallel()
	cfg := weakConfig()
	cfg.WeakSecret.SweepsPerMinute = 2
	clk := newClock()
	cache := NewMemorySecretCache(1000, clk.Now)
	a := newTestAnalyzer(t, cfg, Options{Now: clk.Now, SecretCache: cache})
	ctx := t.Context()
	strong := func(jti string) string {
		return hsToken(issuer, "k1", "b3f1c0e5a9d24e7f8a6b5c4d3e2f1a0b9c8d7e6f", `"jti":"`+jti+`"`)
	}
	first, second := strong("1"), strong("2")
	weak := hsToken(issuer, "k1", "password", `"role":"admin"`)
	analyze(t, a, first, "u")
	a.audit.processQueued(ctx) // family sweep: 1 of 2
	analyze(t, a, second, "u")
	analyze(t, a, weak, "attacker")
	a.audit.processQueued(ctx) // second: 2 of 2; weak: deferred
	if s := a.Stats(); s.AuditSweeps != 2 || s.AuditDeferred != 1 {
		t.Fatalf("budget: %+v", s)
	}
	// Swept tokens are settled; the deferred one is retried when seen
	// again, once the budget refills.
	analyze(t, a, first, "u")
	analyze(t, a, second, "u")
	analyze(t, a, weak, "attacker")
	if s := a.Stats(); s.AuditQueued != 1 {
		t.Fatalf("queued %d, want the deferred token only", s.AuditQueued)
	}
	a.audit.processQueued(ctx)
	if s := a.Stats(); s.AuditSweeps != 2 || s.AuditDeferred != 2 {
		t.Fatalf("budget still spent: %+v", s)
	}
	clk.Advance(time.Minute)
	analyze(t, a, weak, "attacker")
	a.audit.processQueued(ctx)
	if !analyze(t, a, weak, "attacker").Has(RuleWeakSecret) {
		t.Fatalf("deferred token: %+v", a.Stats())
	}
	// Another replica sharing the cache: a token claimed elsewhere is not
	// swept again.
	b := newTestAnalyzer(t, cfg, Options{Now: clk.Now, SecretCache: cache})
	clean := func(jti string) string {
		return hsToken(issuer, "k2", "b3f1c0e5a9d24e7f8a6b5c4d3e2f1a0b9c8d7e6f", `"jti":"`+jti+`"`)
	}
	analyze(t, a, clean("1"), "u")
	a.audit.processQueued(ctx) // family k2 swept clean on A
	third := clean("2")
	if ok, _ := cache.Claim(ctx, stateKey(kindToken, third).key(kindClaim), time.Minute); !ok {
		t.Fatal("claim")
	}
	analyze(t, b, third, "u")
	b.audit.processQueued(ctx)
	if s := b.Stats(); s.AuditTrials != 0 || s.AuditSweeps != 0 {
		t.Errorf("B swept a token claimed elsewhere: %+v", s)
	}
	fourth := clean("3")
	analyze(t, b, fourth, "u")
	b.audit.processQueued(ctx)
	if s := b.Stats(); s.AuditSweeps != 1 {
		t.Errorf("B did not sweep an unclaimed token: %+v", s)
	}
}

// TestWeakSecretFleetSweepsOnce shares one SecretCache between replicas:
// a family swept on A is known on B without trials, and a family another
// replica has claimed is not swept again.
func TestWeakSecretFleetSweepsOnce(t *testing.T) {
	t.Parallel()
	cache := NewMemorySecretCache(1000, func() time.Time { return testNow })
	a := newTestAnalyzer(t, weakConfig(), Options{SecretCache: cache})
	b := newTestAnalyzer(t, weakConfig(), Options{SecretCache: cache})
	ctx := t.Context()
	tok := hsToken(issuer, "k1", "your-256-bit-secret")
	analyze(t, a, tok, "c")
	analyze(t, b, tok, "c")
	a.audit.processQueued(ctx)
	b.audit.processQueued(ctx)
	if got := b.Stats().AuditTrials; got != 0 {
		t.Errorf("B ran %d trials for a family A swept", got)
	}
	if !analyze(t, b, tok, "c").Has(RuleWeakSecret) {
		t.Error("B does not know A's verdict")
	}
	// A sweep in progress elsewhere: the claim is taken, no verdict yet.
	other := hsToken("https://other.example", "", "secret")
	if ok, _ := cache.Claim(ctx, stateKey(kindFamily, "https://other.example", "", "HS256").key(kindClaim), time.Minute); !ok {
		t.Fatal("claim")
	}
	analyze(t, b, other, "c")
	before := b.Stats().AuditTrials
	b.audit.processQueued(ctx)
	if b.Stats().AuditTrials != before {
		t.Error("B swept a family claimed by another replica")
	}
}

func TestWeakSecretQueueDrops(t *testing.T) {
	t.Parallel()
	cfg := weakConfig()
	cfg.WeakSecret.Queue = 2
	a := newTestAnalyzer(t, cfg, Options{})
	for i := range 5 {
		analyze(t, a, hsToken(fmt.Sprintf("https://iss-%d.example", i), "", "secret"), "c")
	}
	if s := a.Stats(); s.AuditQueued != 2 || s.AuditDropped != 3 || s.AuditTrials != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestWeakSecretWordlistAndBudget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	list := filepath.Join(dir, "words.txt")
	if err := os.WriteFile(list, []byte("alpha\r\nhunter2-company-default\n\nbeta\n"+strings.Repeat("x", 2000)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := weakConfig()
	cfg.WeakSecret.Builtin = false
	cfg.WeakSecret.WordlistFile = list
	cfg.WeakSecret.SweepsPerMinute = 1
	clk := newClock()
	a := newTestAnalyzer(t, cfg, Options{Now: clk.Now})
	if n := len(a.audit.list.words); n != 3 {
		t.Fatalf("%d words", n)
	}
	ctx := t.Context()
	tok := hsToken(issuer, "", "hunter2-company-default")
	other := hsToken("https://other.example", "", "alpha")
	analyze(t, a, tok, "c")
	analyze(t, a, other, "c")
	a.audit.processQueued(ctx)
	if s := a.Stats(); s.AuditSweeps != 1 || s.AuditDeferred != 1 {
		t.Fatalf("budget: %+v", s)
	}
	if !analyze(t, a, tok, "c").Has(RuleWeakSecret) {
		t.Error("wordlist secret not found")
	}
	// The deferred family is swept once the budget refills.
	clk.Advance(time.Minute)
	analyze(t, a, other, "c")
	a.audit.processQueued(ctx)
	if !analyze(t, a, other, "c").Has(RuleWeakSecret) {
		t.Errorf("deferred family: %+v", a.Stats())
	}
	cfg.WeakSecret.MaxWordlistEntries = 1
	if _, err := New(cfg, Options{}); err == nil {
		t.Error("wordlist over max_wordlist_entries accepted")
	}
	cfg.WeakSecret.WordlistFile = filepath.Join(dir, "missing.txt")
	if _, err := New(cfg, Options{}); err == nil {
		t.Error("missing wordlist accepted")
	}
}

// TestWeakSecretWithRun runs the real workers.
func TestWeakSecretWithRun(t *testing.T) {
	t.Parallel()
	cfg := weakConfig()
	cfg.WeakSecret.Workers = 2
	a := newTestAnalyzer(t, cfg, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	tok := hsToken(issuer, "", "")
	deadline := time.Now().Add(5 * time.Second)
	for !analyze(t, a, tok, "c").Has(RuleWeakSecret) {
		if time.Now().After(deadline) {
			t.Fatalf("no verdict within 5s: %+v", a.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestWeakSecretSkipsNonHMAC(t *testing.T) {
	t.Parallel()
	a := newTestAnalyzer(t, weakConfig(), Options{})
	analyze(t, a, rsToken(t, ""), "c")
	analyze(t, a, mint(`{"alg":"HS256"}`, claimsJSON(issuer), fixed(make([]byte, 31))), "c")
	if s := a.Stats(); s.AuditQueued != 0 {
		t.Errorf("queued %d", s.AuditQueued)
	}
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	id := Identity("eyJhbGciOiJIUzI1NiJ9.e30.x")
	if len(id) != 32 || id != Identity("eyJhbGciOiJIUzI1NiJ9.e30.x") || id == Identity("eyJhbGciOiJIUzI1NiJ9.e30.y") {
		t.Errorf("Identity = %q", id)
	}
	if strings.Contains(id, "eyJ") {
		t.Error("raw token in identity")
	}
	if stateKey("k", "ab", "c") == stateKey("k", "a", "bc") || stateKey("k", "a") == stateKey("j", "a") {
		t.Error("stateKey parts are ambiguous")
	}
	long := strings.Repeat("i", 600) // hashed incrementally, not from the stack
	if first, again := stateKey("k", long, "x"), stateKey("k", long, "x"); first != again || first == stateKey("k", long, "y") {
		t.Error("long stateKey")
	}
	if k := stateKey("k", "a").key("alg"); len(k) != len("alg:")+32 || !strings.HasPrefix(k, "alg:") {
		t.Errorf("key %q", k)
	}
}

// TestHMACTrialMatchesCryptoHMAC checks the sweep's reusable HMAC against
// crypto/hmac for every hash and key lengths around the block size.
func TestHMACTrialMatchesCryptoHMAC(t *testing.T) {
	msg := strings.Repeat("eyJhbGciOiJIUzI1NiJ9.payload", 20)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		ht := newHMACTrial(h)
		for _, n := range []int{0, 1, 31, 32, 63, 64, 65, 127, 128, 129, 300} {
			key := []byte(strings.Repeat("k", n))
			mac := hs(string(key), h)(msg)
			if !ht.matches(key, msg, mac) {
				t.Errorf("%v key %d: no match", h, n)
			}
			other := append([]byte("x"), key...)
			if ht.matches(other, msg, mac) || ht.matches(key, msg+"x", mac) || ht.matches(key, msg, mac[1:]) {
				t.Errorf("%v key %d: false match", h, n)
			}
		}
	}
	ht := newHMACTrial(crypto.SHA256)
	mac := hs("secret", crypto.SHA256)(msg)
	cand := []byte("candidate")
	if n := testing.AllocsPerRun(100, func() { ht.matches(cand, msg, mac) }); n != 0 {
		t.Errorf("%v allocs per trial", n)
	}
}

// countingCache counts the reads of a SecretCache.
type countingCache struct {
	SecretCache
	loads atomic.Int64
}

func (c *countingCache) Load(ctx context.Context, key string) (SecretVerdict, bool, error) {
	c.loads.Add(1)
	return c.SecretCache.Load(ctx, key)
}

// TestWeakSecretVerdictReadLocally: once a token's verdict is known, its
// requests read neither the shared cache nor anything but the local copy,
// in a clean family as in a weak one.
func TestWeakSecretVerdictReadLocally(t *testing.T) {
	t.Parallel()
	cache := &countingCache{SecretCache: NewMemorySecretCache(100, func() time.Time { return testNow })}
	a := newTestAnalyzer(t, weakConfig(), Options{SecretCache: cache})
	ctx := t.Context()
	clean := hsToken(issuer, "k1", "b3f1c0e5a9d24e7f8a6b5c4d3e2f1a0b9c8d7e6f")
	weak := hsToken("https://other.example", "k1", "secret")
	for _, tok := range []string{clean, weak} {
		analyze(t, a, tok, "c")
		a.audit.processQueued(ctx)
		want := tok == weak
		before := cache.loads.Load()
		for range 50 {
			if got := analyze(t, a, tok, "c").Has(RuleWeakSecret); got != want {
				t.Fatalf("weak %v, want %v", got, want)
			}
		}
		if n := cache.loads.Load() - before; n != 0 || a.Stats().AuditQueued != 0 {
			t.Errorf("%d shared-cache reads, %d jobs for a known verdict", n, a.Stats().AuditQueued)
		}
	}
}
