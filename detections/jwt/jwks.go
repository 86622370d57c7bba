package jwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// provider is a configured issuer with its keys.
type provider struct {
	cfg     ProviderConfig
	hmac    []*verifyKey
	jwks    bool // a JWKS file or URL is configured
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
	set     atomic.Pointer[keySet] // JWKS keys plus hmac; nil until loaded
	kick    chan struct{}
	fetches atomic.Uint64
	fails   atomic.Uint64

	mu       sync.Mutex
	lastLoad time.Time
}

func newProvider(cfg ProviderConfig, getenv func(string) (string, bool), list *secretList,
	client *http.Client, now func() time.Time, log *slog.Logger) (*provider, error) {
	p := &provider{
		cfg: cfg.withDefaults(), jwks: cfg.JWKSFile != "" || cfg.JWKSURL != "",
		client: client, log: log.With("provider", cfg.Name), now: now, kick: make(chan struct{}, 1),
	}
	for _, hk := range cfg.HMACKeys {
		secret, ok := getenv(hk.SecretEnv)
		if !ok || secret == "" {
			return nil, fmt.Errorf("jwt.providers %s: environment variable %s is not set", cfg.Name, hk.SecretEnv)
		}
		a := parseAlg(hk.Alg)
		// RFC 7518 §3.2: a key of the same size as the hash output or
		// larger MUST be used.
		if n := algs[a].sigMin; len(secret) < n {
			return nil, fmt.Errorf("jwt.providers %s: secret in %s is shorter than %d bytes, the minimum for %s", cfg.Name, hk.SecretEnv, n, hk.Alg)
		}
		if list != nil && list.contains([]byte(secret)) {
			return nil, fmt.Errorf("jwt.providers %s: secret in %s is in the weak-secret list", cfg.Name, hk.SecretEnv)
		}
		p.hmac = append(p.hmac, &verifyKey{kid: hk.KeyID, algs: setOf(a), pub: []byte(secret)})
	}
	if !p.jwks {
		p.set.Store(newKeySet(p.hmac))
	}
	if cfg.JWKSFile != "" {
		// A file is local configuration: fail at start-up, not at the
		// first token.
		if err := p.refresh(context.Background()); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// keys returns the current key set, nil while a JWKS was never loaded.
func (p *provider) keys() *keySet { return p.set.Load() }

// refresh reloads the JWKS. On failure the last good set stays in use.
func (p *provider) refresh(ctx context.Context) error {
	if !p.jwks {
		return nil
	}
	p.mu.Lock()
	p.lastLoad = p.now()
	p.mu.Unlock()
	p.fetches.Add(1)
	data, err := p.fetch(ctx)
	var set *keySet
	skipped := 0
	if err == nil {
		set, skipped, err = parseJWKS(data)
	}
	if err != nil {
		p.fails.Add(1)
		p.log.LogAttrs(ctx, slog.LevelWarn, "jwt_jwks_refresh_failed", slog.String("error", err.Error()),
			slog.Bool("keeping_last_good", p.set.Load() != nil))
		return fmt.Errorf("loading JWKS of provider %s: %w", p.cfg.Name, err)
	}
	if len(p.hmac) > 0 {
		set = newKeySet(append(append([]*verifyKey(nil), set.all...), p.hmac...))
	}
	p.set.Store(set)
	p.log.LogAttrs(ctx, slog.LevelDebug, "jwt_jwks_loaded", slog.Int("keys", len(set.all)), slog.Int("skipped", skipped))
	return nil
}

func (p *provider) fetch(ctx context.Context) ([]byte, error) {
	limit := p.cfg.MaxJWKSBytes
	if p.cfg.JWKSFile != "" {
		f, err := os.Open(p.cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f, limit)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET JWKS: status %d", resp.StatusCode)
	}
	return readBounded(resp.Body, limit)
}

func readBounded(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("JWKS exceeds max_jwks_bytes (%d)", limit)
	}
	return data, nil
}

// unknownKID asks for an early reload (the issuer may have rotated its
// keys), at most once per MinRefresh; it never blocks.
func (p *provider) unknownKID() {
	if !p.jwks {
		return
	}
	p.mu.Lock()
	now := p.now()
	due := now.Sub(p.lastLoad) >= p.cfg.MinRefresh
	if due {
		// Count the kick as the load, so that a burst of unknown kids
		// queues one reload, not one per request.
		p.lastLoad = now
	}
	p.mu.Unlock()
	if due {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// run reloads the JWKS every Refresh and on kicks, until ctx ends. The
// first load of a URL happens here, not in New, so that start-up does no
// network I/O; until it succeeds, verification reports unavailable and
// retries follow MinRefresh.
func (p *provider) run(ctx context.Context) {
	if !p.jwks {
		return
	}
	if p.keys() == nil {
		_ = p.refresh(ctx)
	}
	for {
		wait := p.cfg.Refresh
		if p.keys() == nil {
			wait = p.cfg.MinRefresh
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-p.kick:
			t.Stop()
		}
		_ = p.refresh(ctx)
	}
}

// VerifyStatus is the outcome of verification.
type VerifyStatus uint8

// Verification outcomes.
const (
	// VerifySkipped: no provider is configured, or the token is no JWS.
	VerifySkipped VerifyStatus = iota
	// VerifyOK: signature, issuer, audience and time claims are valid.
	VerifyOK
	// VerifyFailed: see the findings for why.
	VerifyFailed
	// VerifyUnavailable: the provider's JWKS has not been loaded yet.
	VerifyUnavailable
)

// String returns "skipped", "ok", "failed" or "unavailable".
func (s VerifyStatus) String() string {
	return [...]string{"skipped", "ok", "failed", "unavailable"}[s]
}

// Verified is a token whose signature verified with a configured key and
// whose issuer, audience and time claims are valid. Use it to key
// per-identity state.
type Verified struct {
	// Provider is the name of the provider whose key verified the token.
	Provider string
	Issuer   string
	Subject  string
	KeyID    string
	Alg      string

	claims *Claims
}

// Claim returns a verified top-level claim as a string (see Claims.Claim).
func (v *Verified) Claim(name string) (string, bool) { return v.claims.Claim(name) }

// errUnavailable reports a provider whose JWKS was never loaded.
var errUnavailable = errors.New("keys unavailable")

// verify checks t against p's keys and returns the failure detail ("" when
// the signature verifies).
func (p *provider) verify(t *Token) (string, error) {
	set := p.keys()
	if set == nil {
		return "", errUnavailable
	}
	ks, unknown := set.candidates(t.Header.Kid)
	if unknown {
		p.unknownKID()
	}
	if len(ks) == 0 {
		return "unknown_kid", nil
	}
	tried := false
	for _, k := range ks {
		if !k.algs.has(t.Header.alg) {
			continue
		}
		tried = true
		if verifySignature(k, t.Header.alg, t.SigningInput(), t.Signature) {
			return "", nil
		}
	}
	if !tried {
		return "alg_not_allowed", nil
	}
	return "bad_signature", nil
}
