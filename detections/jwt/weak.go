package jwt

import (
	"context"
	"crypto"
	"crypto/hmac"
	"encoding/binary"
	"hash"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The weak-secret audit tries the signature of HMAC tokens against known
// secrets. Trials cost a wordlist's worth of HMACs, so they never run on the
// request path: a request only reads a cached verdict and, when there is
// none yet, enqueues a job without blocking. The first token of a family
// (iss, kid, alg) is swept against the whole list, once per fleet and per
// weak_secret.recheck (Claim); if that finds the secret, each later token
// of the family is confirmed with one HMAC against just that secret, also
// off-path, and only confirmed tokens are reported. If it does not, the
// verdict covers only that token: each later token of the family with a
// signature of its own gets its own sweep (and claim, "wsc:" over the
// token's id), within the same sweeps_per_minute budget, and a hit makes
// the family weak. Reporting per token
// rather than per family is what keeps the rule safe to block on: an
// attacker who mints one token for a real issuer with a guessed secret
// makes that token blocked, not the issuer's genuine tokens.

// Kinds of SecretCache keys.
const (
	kindFamily = "wsf"
	kindToken  = "wst"
	kindClaim  = "wsc"
)

// claimTTL is how long a sweep claim holds: a replica that dies mid-sweep
// lets another retry after this.
const claimTTL = 10 * time.Minute

// minTokenVerdictTTL keeps per-token verdicts of tokens without a useful
// exp for at least this long.
const minTokenVerdictTTL = time.Minute

type auditJob struct {
	// dedup is the family id while the family is not swept, else the
	// token id: at most one job per id is queued.
	dedup        stateID
	famID, tokID stateID
	// memo is the token's key in the local cache (tokenMemo).
	memo  stateID
	hash  crypto.Hash
	input string
	sig   []byte
	exp   NumericDate
}

type auditor struct {
	cfg   WeakSecretConfig
	list  *secretList
	cache SecretCache
	local *ttlCache[stateID, SecretVerdict]
	now   func() time.Time
	log   *slog.Logger
	q     chan auditJob

	mu      sync.Mutex
	pending map[stateID]struct{}
	tokens  float64 // sweep budget, refilled at SweepsPerMinute
	refill  time.Time

	trials, drops, sweeps, deferred, weak, errs atomic.Uint64
}

func newAuditor(cfg WeakSecretConfig, list *secretList, cache SecretCache, now func() time.Time, log *slog.Logger) *auditor {
	return &auditor{
		cfg: cfg, list: list, cache: cache, now: now, log: log,
		local:   newTTLCache[stateID, SecretVerdict](16*cfg.Queue, cfg.CacheTTL, now),
		q:       make(chan auditJob, cfg.Queue),
		pending: make(map[stateID]struct{}, cfg.Queue),
		tokens:  float64(cfg.SweepsPerMinute),
		refill:  now(),
	}
}

// check is the request-path half: it returns whether t is known to be
// signed with a listed secret. It never computes an HMAC.
func (w *auditor) check(ctx context.Context, t *Token) (bool, error) {
	famID := stateKey(kindFamily, t.Claims.Iss, t.Header.Kid, t.Header.Alg)
	_, swept, err := w.load(ctx, famID, kindFamily)
	if err != nil {
		return false, err
	}
	// Until the family is swept one job per family is enough. After
	// that each token needs its own verdict, whatever the family's: a
	// confirmation against the family's secret when it has one, else a
	// sweep of its own, as "not weak" is only known of the token that
	// was swept. (Were it taken for the family, a junk signature would
	// clear it, for recheck, before tokens minted with a guessed secret.)
	memo := tokenMemo(t.Raw)
	if !swept {
		if w.isPending(famID) {
			return false, nil
		}
	} else if tv, ok := w.local.get(memo); ok {
		return tv.Weak, nil
	}
	tokID := stateKey(kindToken, t.Raw)
	dedup := famID
	if swept {
		dedup = tokID
		if w.isPending(dedup) {
			return false, nil
		}
		tv, found, err := w.cache.Load(ctx, tokID.key(kindToken))
		if err != nil {
			return false, err
		}
		if found {
			w.local.put(memo, tv)
			return tv.Weak, nil
		}
	}
	w.enqueue(auditJob{
		dedup: dedup, famID: famID, tokID: tokID, memo: memo, hash: algs[t.Header.alg].hash,
		input: t.SigningInput(), sig: t.Signature, exp: t.Claims.Exp,
	})
	return false, nil
}

// memoSeeds key tokenMemo; they are secret to the process.
var memoSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// tokenMemo is the local cache key of a token's verdict: a 128-bit seeded
// hash of the token, a fraction of the cost of its store id (SHA-256 over
// the whole token), which a request then only computes until the verdict
// is known locally. The seeds never leave the process, so colliding two
// tokens cannot be planned.
func tokenMemo(raw string) stateID {
	var id stateID
	binary.LittleEndian.PutUint64(id[:8], maphash.String(memoSeeds[0], raw))
	binary.LittleEndian.PutUint64(id[8:], maphash.String(memoSeeds[1], raw))
	return id
}

func (w *auditor) isPending(id stateID) bool {
	w.mu.Lock()
	_, ok := w.pending[id]
	w.mu.Unlock()
	return ok
}

func (w *auditor) load(ctx context.Context, id stateID, kind string) (SecretVerdict, bool, error) {
	if v, ok := w.local.get(id); ok {
		return v, true, nil
	}
	v, ok, err := w.cache.Load(ctx, id.key(kind))
	if err != nil || !ok {
		return v, ok, err
	}
	w.local.put(id, v)
	return v, true, nil
}

// enqueue hands a job to the workers without ever blocking; a full queue
// drops it (counted), a job already queued for the same key is skipped.
func (w *auditor) enqueue(j auditJob) {
	w.mu.Lock()
	if _, dup := w.pending[j.dedup]; dup {
		w.mu.Unlock()
		return
	}
	select {
	case w.q <- j:
		w.pending[j.dedup] = struct{}{}
	default:
		w.drops.Add(1)
	}
	w.mu.Unlock()
}

func (w *auditor) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.q:
			w.process(ctx, j)
		}
	}
}

// processQueued runs the jobs queued so far on the calling goroutine; it
// is the workers' loop body, for tests.
func (w *auditor) processQueued(ctx context.Context) int {
	n := 0
	for {
		select {
		case j := <-w.q:
			w.process(ctx, j)
			n++
		default:
			return n
		}
	}
}

func (w *auditor) process(ctx context.Context, j auditJob) {
	defer func() {
		w.mu.Lock()
		delete(w.pending, j.dedup)
		w.mu.Unlock()
	}()
	fv, ok, err := w.cache.Load(ctx, j.famID.key(kindFamily))
	if err != nil {
		w.fail(ctx, err)
		return
	}
	if !ok {
		w.sweepFamily(ctx, j)
		return
	}
	w.local.put(j.famID, fv)
	tv, found, err := w.cache.Load(ctx, j.tokID.key(kindToken))
	if err != nil {
		w.fail(ctx, err)
		return
	}
	if found {
		// Swept or confirmed by another replica meanwhile.
		w.local.put(j.memo, tv)
		return
	}
	if !fv.Weak {
		// The family's verdict is about the token that was swept, not
		// this one.
		w.sweepToken(ctx, j)
		return
	}
	secret, known := w.list.lookup(fv.SecretID)
	if !known {
		// Another replica found it in a list this one lacks: nothing to
		// confirm with.
		return
	}
	tv = SecretVerdict{}
	if w.try(newHMACTrial(j.hash), j, secret) {
		tv = fv
	}
	w.storeToken(ctx, j, tv)
}

// sweepFamily tries every listed secret on j's token, the first of its
// family, and records the verdict for the family and for the token.
func (w *auditor) sweepFamily(ctx context.Context, j auditJob) {
	v, ok := w.sweep(ctx, j, j.famID)
	if !ok {
		return
	}
	if err := w.cache.Store(ctx, j.famID.key(kindFamily), v, w.cfg.Recheck); err != nil {
		w.fail(ctx, err)
		return
	}
	w.local.put(j.famID, v)
	if v.Weak {
		w.found(ctx, j, v)
	}
	w.storeToken(ctx, j, v)
}

// sweepToken tries every listed secret on a token of a family known not
// to be weak from another token's sweep. A hit makes the family weak, so
// that its later tokens are confirmed with one trial.
func (w *auditor) sweepToken(ctx context.Context, j auditJob) {
	v, ok := w.sweep(ctx, j, j.tokID)
	if !ok {
		return
	}
	if v.Weak {
		if err := w.cache.Store(ctx, j.famID.key(kindFamily), v, w.cfg.Recheck); err != nil {
			w.fail(ctx, err)
			return
		}
		w.local.put(j.famID, v)
		w.found(ctx, j, v)
	}
	w.storeToken(ctx, j, v)
}

// sweep spends one unit of the sweep budget and takes the fleet-wide
// claim on id (a family or a token), then tries every listed secret on
// j's token. ok is false when the sweep did not happen (no budget, claimed
// elsewhere, store failure, shutdown): nothing must be recorded then.
func (w *auditor) sweep(ctx context.Context, j auditJob, id stateID) (v SecretVerdict, ok bool) {
	if !w.takeSweep() {
		w.deferred.Add(1)
		return v, false
	}
	claimed, err := w.cache.Claim(ctx, id.key(kindClaim), claimTTL)
	if err != nil {
		w.fail(ctx, err)
		return v, false
	}
	if !claimed {
		return v, false
	}
	w.sweeps.Add(1)
	ht := newHMACTrial(j.hash)
	for i, secret := range w.list.words {
		if i%1024 == 0 && ctx.Err() != nil {
			return v, false
		}
		if w.try(ht, j, secret) {
			return SecretVerdict{Weak: true, SecretID: Identity(string(secret))}, true
		}
	}
	return v, true
}

func (w *auditor) found(ctx context.Context, j auditJob, v SecretVerdict) {
	w.weak.Add(1)
	w.log.LogAttrs(ctx, slog.LevelWarn, "jwt_weak_secret_found",
		slog.String("family", j.famID.key(kindFamily)), slog.String("secret_id", v.SecretID))
}

func (w *auditor) storeToken(ctx context.Context, j auditJob, v SecretVerdict) {
	ttl := w.cfg.Recheck
	if j.exp.Set {
		left := time.Duration(j.exp.Unix-w.now().Unix()) * time.Second
		ttl = min(ttl, max(left, minTokenVerdictTTL))
	}
	if err := w.cache.Store(ctx, j.tokID.key(kindToken), v, ttl); err != nil {
		w.fail(ctx, err)
		return
	}
	w.local.putFor(j.memo, v, min(ttl, w.cfg.CacheTTL))
}

// try is the only place an HMAC trial runs; trials counts them.
func (w *auditor) try(ht *hmacTrial, j auditJob, secret []byte) bool {
	w.trials.Add(1)
	return ht.matches(secret, j.input, j.sig)
}

// hmacTrial computes HMAC (RFC 2104) for many keys over one message with
// reused hash states and buffers: crypto/hmac allocates a fresh state per
// key, which over a million-word sweep is millions of allocations and GC
// work the request path would pay for. A test checks it against
// crypto/hmac; verification of real tokens uses crypto/hmac. Not safe for
// concurrent use.
type hmacTrial struct {
	inner, outer hash.Hash
	ipad, opad   []byte
	sum          []byte
}

func newHMACTrial(h crypto.Hash) *hmacTrial {
	t := &hmacTrial{inner: h.New(), outer: h.New()}
	bs := t.inner.BlockSize()
	t.ipad, t.opad = make([]byte, bs), make([]byte, bs)
	t.sum = make([]byte, 0, t.inner.Size())
	return t
}

func (t *hmacTrial) matches(key []byte, msg string, mac []byte) bool {
	if len(mac) != t.inner.Size() {
		return false
	}
	if len(key) > len(t.ipad) {
		t.outer.Reset()
		t.outer.Write(key)
		key = t.outer.Sum(t.sum[:0])
	}
	clear(t.ipad)
	copy(t.ipad, key)
	copy(t.opad, t.ipad)
	for i := range t.ipad {
		t.ipad[i] ^= 0x36
		t.opad[i] ^= 0x5c
	}
	t.inner.Reset()
	t.inner.Write(t.ipad)
	t.inner.Write(bytesView(msg))
	sum := t.inner.Sum(t.sum[:0])
	t.outer.Reset()
	t.outer.Write(t.opad)
	t.outer.Write(sum)
	return hmac.Equal(t.outer.Sum(t.sum[:0]), mac)
}

// takeSweep spends one unit of the sweep budget.
func (w *auditor) takeSweep() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	per := float64(w.cfg.SweepsPerMinute)
	w.tokens = min(per, w.tokens+now.Sub(w.refill).Minutes()*per)
	w.refill = now
	if w.tokens < 1 {
		return false
	}
	w.tokens--
	return true
}

func (w *auditor) fail(ctx context.Context, err error) {
	w.errs.Add(1)
	w.log.LogAttrs(ctx, slog.LevelWarn, "jwt_secret_cache_failed", slog.String("error", err.Error()))
}
