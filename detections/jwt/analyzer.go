package jwt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the dependencies of an Analyzer. Every field is optional.
type Options struct {
	// AlgStore shares learnt issuer algorithms; nil: a MemoryAlgStore
	// bounded by the config.
	AlgStore AlgStore
	// SecretCache shares weak-secret verdicts; nil: a MemorySecretCache.
	SecretCache SecretCache
	// Getenv reads the HMAC secrets named in the config (os.LookupEnv in
	// cmd, a map in tests).
	Getenv func(string) (string, bool)
	// HTTPClient fetches JWKS URLs; nil: a client that follows only https
	// redirects on the URL's own host. Timeouts come from fetch_timeout
	// either way.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives JWKS and audit events (never tokens or secrets).
	Logger *slog.Logger
}

// Analyzer finds, parses and checks tokens. Build it once with New, start
// its background work with Run; it is safe for concurrent use.
type Analyzer struct {
	cfg     Config
	lim     Limits
	loc     *Locator
	allowed algSet
	now     func() time.Time
	log     *slog.Logger

	algStore AlgStore
	algLocal *ttlCache[stateID, AlgFamilies]
	sighted  *ttlCache[sightMemo, struct{}]

	audit *auditor

	providers []*provider
	byIssuer  map[string]*provider
	catchAll  *provider

	algErrs, algFull atomic.Uint64
}

// New checks cfg, reads the wordlist and any JWKS file, and resolves the
// HMAC secrets. It does no network I/O: JWKS URLs load in Run.
func New(cfg Config, opt Options) (*Analyzer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Analyzer{cfg: cfg, lim: cfg.Limits(), loc: NewLocator(cfg.Locations), now: opt.Now, log: opt.Logger}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "jwt")
	for _, name := range cfg.AllowedAlgs {
		a.allowed |= setOf(parseAlg(name))
	}
	if ac := cfg.AlgConfusion; ac.Enabled {
		a.algStore = opt.AlgStore
		if a.algStore == nil {
			a.algStore = NewMemoryAlgStore(MemoryAlgStoreConfig{
				MaxKeys: ac.MaxIssuers, MaxWitnesses: ac.MinSightings,
				LearnTTL: ac.LearnTTL, SightingTTL: ac.SightingTTL, Now: a.now,
			})
		}
		a.algLocal = newTTLCache[stateID, AlgFamilies](2*ac.MaxIssuers, ac.CacheTTL, a.now)
		a.sighted = newTTLCache[sightMemo, struct{}](4*ac.MaxIssuers, ac.CacheTTL, a.now)
	}
	var list *secretList
	if ws := cfg.WeakSecret; ws.Enabled {
		var err error
		if list, err = newSecretList(ws.Builtin, ws.WordlistFile, ws.MaxWordlistEntries); err != nil {
			return nil, fmt.Errorf("jwt.weak_secret: %w", err)
		}
		cache := opt.SecretCache
		if cache == nil {
			cache = NewMemorySecretCache(64*ws.Queue, a.now)
		}
		a.audit = newAuditor(ws, list, cache, a.now, a.log)
	}
	getenv := opt.Getenv
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	client := opt.HTTPClient
	if client == nil {
		client = &http.Client{CheckRedirect: httpsRedirectsOnly}
	}
	a.byIssuer = make(map[string]*provider)
	for _, pc := range cfg.Providers {
		p, err := newProvider(pc, getenv, list, client, a.now, a.log)
		if err != nil {
			return nil, err
		}
		a.providers = append(a.providers, p)
		if pc.Issuer == "" {
			a.catchAll = p
		} else {
			a.byIssuer[pc.Issuer] = p
		}
	}
	return a, nil
}

// httpsRedirectsOnly follows at most two redirects, to https URLs on the
// configured URL's host (and port): a JWKS is trusted for its URL, so a
// redirect elsewhere (an open redirect on the issuer, a compromised path)
// must not choose the keys.
func httpsRedirectsOnly(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("too many redirects")
	}
	if req.URL.Scheme != "https" {
		return errors.New("redirect to a non-https URL")
	}
	if len(via) > 0 && !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
		return errors.New("redirect to another host")
	}
	return nil
}

// Run starts the audit workers and the JWKS refreshers and blocks until
// ctx ends. Without Run no HMAC trial ever happens and JWKS URLs never
// load: requests still get every other check.
func (a *Analyzer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if a.audit != nil {
		for range a.cfg.WeakSecret.Workers {
			wg.Go(func() { a.audit.run(ctx) })
		}
	}
	for _, p := range a.providers {
		wg.Go(func() { p.run(ctx) })
	}
	wg.Wait()
	return nil
}

// Locator returns the locator built from the config.
func (a *Analyzer) Locator() *Locator { return a.loc }

// Result is the analysis of one token.
type Result struct {
	// Token is nil when the value is not a JWT or is malformed.
	Token    *Token
	Findings []Finding
	Verify   VerifyStatus
	// Verified is set when Verify is VerifyOK.
	Verified *Verified
}

// Has reports whether rule is among the findings.
func (r Result) Has(rule string) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Rule == rule })
}

// Analyze checks one token value. witness identifies who presented it
// (the gateway's client key): algorithm learning counts distinct
// witnesses, so pass the same value for the same client; an empty witness
// is one anonymous witness, which alone never reaches a min_sightings
// above 1. A value that is not a JWT gives an empty Result. A non-nil
// error means shared state could not be read or written: the findings
// that did not need it are still there (fail-open is the caller's call).
func (a *Analyzer) Analyze(ctx context.Context, raw, witness string) (Result, error) {
	var res Result
	t, err := Parse(raw, a.lim)
	if err != nil {
		if me, ok := errors.AsType[*MalformedError](err); ok {
			if me.Reason == reasonTooLarge {
				res.Findings = append(res.Findings, finding(RuleOversize, ""))
			} else {
				res.Findings = append(res.Findings, finding(RuleMalformed, me.Reason))
				// A laxer verifier may still take it, and read its header
				// otherwise: alg none and key injection must not hide
				// behind a monitor rule.
				res.Findings = a.lenientFindings(raw, res.Findings)
			}
		}
		return res, nil
	}
	res.Token = t
	now := a.now()
	res.Findings = a.keyless(t, now, res.Findings)
	if t.Kind == KindJWE {
		return res, nil
	}
	h := &t.Header
	fam := algs[h.alg].fam
	var p *provider
	sigOK := false
	if len(a.providers) > 0 {
		if p = a.providerFor(t.Claims.Iss); p == nil {
			res.Findings = append(res.Findings, finding(RuleUnknownIssuer, ""))
			res.Verify = VerifyFailed
		} else {
			sigOK = a.verify(p, t, now, &res)
		}
	}
	var errs []error
	if a.algStore != nil && fam != 0 && !res.Has(RuleAlgConfusion) {
		// A token that already looks forged (bad signature shape, key
		// injection...) must not teach the baseline it would poison.
		clean := !slices.ContainsFunc(res.Findings, func(f Finding) bool { return f.Severity >= SeverityHigh })
		confused, err := a.confusion(ctx, t, p, sigOK, clean, witness)
		if err != nil {
			errs = append(errs, err)
		}
		if confused {
			res.Findings = append(res.Findings, finding(RuleAlgConfusion, "learnt_asymmetric"))
		}
	}
	// A token verified with a configured secret needs no audit: that
	// secret was checked against the list at start-up.
	if a.audit != nil && fam == FamilyHMAC && len(t.Signature) == algs[h.alg].sigMin && !sigOK {
		weak, err := a.audit.check(ctx, t)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading weak-secret verdict: %w", err))
		}
		if weak {
			res.Findings = append(res.Findings, finding(RuleWeakSecret, ""))
		}
	}
	return res, errors.Join(errs...)
}

func (a *Analyzer) providerFor(iss string) *provider {
	if p := a.byIssuer[iss]; p != nil {
		return p
	}
	return a.catchAll
}

// verify checks t against p and records the outcome in res. It returns
// whether the signature verified (the token may still fail on claims).
func (a *Analyzer) verify(p *provider, t *Token, now time.Time, res *Result) bool {
	h := &t.Header
	res.Verify = VerifyFailed
	if algs[h.alg].fam == 0 || len(t.Signature) == 0 {
		// alg none or unknown, or no signature: already reported.
		return false
	}
	set := p.keys()
	if set != nil && algs[h.alg].fam == FamilyHMAC && !set.hasHMAC {
		// The provider only has public keys: an HMAC token can only have
		// been made with one of them as the secret (CVE-2016-10555).
		res.Findings = append(res.Findings, finding(RuleAlgConfusion, "no_hmac_key"), finding(RuleInvalidSignature, "alg_not_allowed"))
		return false
	}
	detail, err := p.verify(t)
	if err != nil {
		res.Verify = VerifyUnavailable
		return false
	}
	if detail != "" {
		res.Findings = append(res.Findings, finding(RuleInvalidSignature, detail))
		return false
	}
	if len(p.cfg.Audiences) > 0 && !slices.ContainsFunc(t.Claims.Aud, func(s string) bool { return slices.Contains(p.cfg.Audiences, s) }) {
		res.Findings = append(res.Findings, finding(RuleAudienceMismatch, ""))
		return true
	}
	for _, f := range res.Findings {
		switch f.Rule {
		case RuleExpired, RuleNotYetValid, RuleMissingExp, RuleCritUnsupported, RuleTimeInconsistent, RuleTypUnexpected, RuleAlgNotAllowed:
			// The signature is genuine but a strict verifier would still
			// refuse the token.
			return true
		}
	}
	res.Verify = VerifyOK
	res.Verified = &Verified{
		Provider: p.cfg.Name, Issuer: t.Claims.Iss, Subject: t.Claims.Sub,
		KeyID: h.Kid, Alg: h.Alg, claims: &t.Claims,
	}
	return true
}

// confusion checks t's algorithm family against what its issuer (and the
// issuer's kid) is known to use, and learns from t when it may: from
// verified tokens at once when the issuer's keys are configured (and only
// from those), else once MinSightings distinct witnesses presented the
// family, and never from a token with a high or critical finding. An HMAC
// token for an issuer known only for public-key algorithms is never
// learnt from: that is the attack.
func (a *Analyzer) confusion(ctx context.Context, t *Token, p *provider, sigOK, clean bool, witness string) (bool, error) {
	fam := algs[t.Header.alg].fam
	keys := [2]stateID{stateKey(kindAlg, t.Claims.Iss)}
	n := 1
	if t.Header.Kid != "" {
		keys[1] = stateKey(kindAlg, t.Claims.Iss, t.Header.Kid)
		n = 2
	}
	var learned [2]AlgFamilies
	for i, k := range keys[:n] {
		l, err := a.learned(ctx, k)
		if err != nil {
			a.algErrs.Add(1)
			return false, fmt.Errorf("reading learnt algorithms: %w", err)
		}
		learned[i] = l
		if fam == FamilyHMAC && l.asymmetricOnly() {
			return true, nil
		}
	}
	if !clean || p != nil && !sigOK {
		return false, nil
	}
	for i, k := range keys[:n] {
		if learned[i].Has(fam) {
			continue
		}
		if err := a.teach(ctx, k, fam, learned[i], sigOK, witness); err != nil {
			a.algErrs.Add(1)
			return false, fmt.Errorf("learning algorithms: %w", err)
		}
	}
	return false, nil
}

func (a *Analyzer) learned(ctx context.Context, id stateID) (AlgFamilies, error) {
	if l, ok := a.algLocal.get(id); ok {
		return l, nil
	}
	l, err := a.algStore.Learned(ctx, id.key(kindAlg))
	if err != nil {
		return 0, err
	}
	// Only what is learnt is cached: an issuer still learning must see
	// what other replicas teach at once.
	if l != 0 {
		a.algLocal.put(id, l)
	}
	return l, nil
}

// sightMemo is the local memo of a sighting already recorded, so that a
// witness stuck below the threshold does not write to the store on every
// request.
type sightMemo struct {
	id      stateID
	fam     AlgFamily
	witness string
}

func (a *Analyzer) teach(ctx context.Context, id stateID, fam AlgFamily, learned AlgFamilies, trusted bool, witness string) error {
	key := id.key(kindAlg)
	if !trusted {
		memo := sightMemo{id: id, fam: fam, witness: witness}
		if _, seen := a.sighted.get(memo); seen {
			return nil
		}
		n, err := a.algStore.Sight(ctx, key, fam, Identity(witness))
		if errors.Is(err, ErrStoreFull) {
			a.algFull.Add(1)
			return nil
		}
		if err != nil {
			return err
		}
		a.sighted.put(memo, struct{}{})
		if n < a.cfg.AlgConfusion.MinSightings {
			return nil
		}
	}
	if err := a.algStore.Learn(ctx, key, fam); err != nil {
		if errors.Is(err, ErrStoreFull) {
			a.algFull.Add(1)
			return nil
		}
		return err
	}
	a.algLocal.put(id, learned.With(fam))
	return nil
}

// kindAlg is the kind of AlgStore keys.
const kindAlg = "alg"

// Report is the analysis of every token of one request.
type Report struct {
	// Results holds one Result per distinct token-like value.
	Results []Result
	// Findings gathers the findings of all Results plus request-level
	// ones (jwt_multiple_tokens, with detail "too_many" when tokens were
	// left out).
	Findings []Finding
	// Verified is the first verified token, if any.
	Verified *Verified
}

// AnalyzeRequest locates the tokens of a request and analyses each
// distinct one. A request without any candidate costs a few map lookups
// and no allocation. More than one distinct token is jwt_multiple_tokens;
// more than Locate takes (eight) is jwt_multiple_tokens with detail
// "too_many", as the ones left out were not analysed.
func (a *Analyzer) AnalyzeRequest(ctx context.Context, h http.Header, rawQuery, witness string) (Report, error) {
	var buf [maxCandidates]Candidate
	// Locate keeps only distinct token-like values.
	cands, more := a.loc.locate(h, rawQuery, buf[:0])
	if len(cands) == 0 {
		return Report{}, nil
	}
	var rep Report
	var errs []error
	for _, c := range cands {
		res, err := a.Analyze(ctx, c.Value, witness)
		if err != nil {
			errs = append(errs, err)
		}
		rep.Results = append(rep.Results, res)
		rep.Findings = append(rep.Findings, res.Findings...)
		if rep.Verified == nil {
			rep.Verified = res.Verified
		}
	}
	switch {
	case more:
		rep.Findings = append(rep.Findings, finding(RuleMultipleTokens, "too_many"))
	case len(cands) > 1:
		rep.Findings = append(rep.Findings, finding(RuleMultipleTokens, ""))
	}
	return rep, errors.Join(errs...)
}

// Stats are counters for metrics.
type Stats struct {
	// AuditQueued is the current audit queue length.
	AuditQueued int
	// AuditDropped counts jobs refused by a full queue.
	AuditDropped uint64
	// AuditTrials counts HMAC trials (worker goroutines only).
	AuditTrials uint64
	// AuditSweeps counts full wordlist sweeps; AuditDeferred those put
	// off by sweeps_per_minute.
	AuditSweeps, AuditDeferred uint64
	// WeakFamilies counts families whose secret was found.
	WeakFamilies uint64
	// SecretCacheErrors and AlgStoreErrors count shared-state failures;
	// AlgStoreFull counts refusals of a full store.
	SecretCacheErrors, AlgStoreErrors, AlgStoreFull uint64
	// JWKSFetches and JWKSFailures count JWKS loads over all providers.
	JWKSFetches, JWKSFailures uint64
}

// Stats returns the current counters.
func (a *Analyzer) Stats() Stats {
	s := Stats{AlgStoreErrors: a.algErrs.Load(), AlgStoreFull: a.algFull.Load()}
	if w := a.audit; w != nil {
		s.AuditQueued = len(w.q)
		s.AuditDropped, s.AuditTrials = w.drops.Load(), w.trials.Load()
		s.AuditSweeps, s.AuditDeferred = w.sweeps.Load(), w.deferred.Load()
		s.WeakFamilies, s.SecretCacheErrors = w.weak.Load(), w.errs.Load()
	}
	for _, p := range a.providers {
		s.JWKSFetches += p.fetches.Load()
		s.JWKSFailures += p.fails.Load()
	}
	return s
}

// RefreshKeys reloads every provider's JWKS now (e.g. from an admin
// endpoint) and returns the joined failures; last-good keys stay in use.
func (a *Analyzer) RefreshKeys(ctx context.Context) error {
	var errs []error
	for _, p := range a.providers {
		errs = append(errs, p.refresh(ctx))
	}
	return errors.Join(errs...)
}
