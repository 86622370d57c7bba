package detections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rampartgw/rampart/detections/jwt"
)

const jwtName = "jwt"

// Rule ids of the jwt detection besides the jwt package's own (jwt_*).
const (
	RuleCredentialInQuery     = "credential_in_query"        // an API key or token in the URL (logged, cached, leaked in Referer)
	RuleCredentialOverPlain   = "credential_over_plain_http" // Authorization over plain HTTP while the gateway serves HTTPS
	RuleCredentialShared      = "credential_shared"          // one token used from more clients than max_clients
	ReasonCredential          = "weak_credential"
	defaultSharedMaxClients   = 20
	defaultSharedWindow       = time.Hour
	defaultSharedSamplePeriod = time.Minute
)

// JWTConfig configures the jwt detection: the token checks of package jwt
// (inline), per-rule modes, and the weak credential practices.
type JWTConfig struct {
	jwt.Config `yaml:",inline"`
	// Rules overrides a rule's mode (enforce, monitor, off). Defaults: alg
	// none, key injection and a guessed HMAC secret enforce; every other
	// rule monitors.
	Rules map[string]Mode `yaml:"rules"`
	// QueryCredentials are query parameter names that carry credentials
	// (rule credential_in_query).
	QueryCredentials []string `yaml:"query_credentials"`
	// Shared reports a token or API key used from many clients: a leaked
	// credential (rule credential_shared).
	Shared SharedCredentialConfig `yaml:"shared"`
}

// SharedCredentialConfig bounds how many distinct clients may use one
// credential within a window, counted across the fleet.
type SharedCredentialConfig struct {
	// MaxClients is how many distinct clients may use one token within
	// Window before credential_shared fires (0: never).
	MaxClients int `yaml:"max_clients"`
	// Window is the time clients are counted over.
	Window time.Duration `yaml:"window"`
	// APIKeyHeaders are headers whose values count as credentials too
	// (hashed), e.g. X-Api-Key.
	APIKeyHeaders []string `yaml:"api_key_headers"`
}

// DefaultJWTConfig returns the defaults.
func DefaultJWTConfig() JWTConfig {
	return JWTConfig{
		Config:           jwt.DefaultConfig(),
		QueryCredentials: []string{"api_key", "apikey", "access_token", "auth_token", "client_secret", "password"},
		Shared:           SharedCredentialConfig{MaxClients: defaultSharedMaxClients, Window: defaultSharedWindow},
	}
}

// Spreader counts the distinct clients that used a credential within a
// window, across the fleet (store.Redis, store.Memory).
type Spreader interface {
	Spread(ctx context.Context, token, member string, window time.Duration) (int64, error)
}

// JWTDeps are what the jwt detection gets when it is built.
type JWTDeps struct {
	AlgStore    jwt.AlgStore
	SecretCache jwt.SecretCache
	Spread      Spreader
	Getenv      func(string) (string, bool)
	// TLS says the gateway serves HTTPS: credentials over its plain-HTTP
	// listener are then a finding.
	TLS    bool
	Logger *slog.Logger
}

// JWT is the jwt detection: weak cryptography in tokens (alg none, key
// injection, guessed HMAC secrets, algorithm confusion...), optional
// verification with configured keys, and weak credential practices. It
// establishes the request's credential before the chain (Identifier), so
// limits can be keyed by a verified claim.
type JWT struct {
	a       *jwt.Analyzer
	modes   map[string]Mode
	query   []string
	shared  SharedCredentialConfig
	apiKeys []string
	spread  Spreader
	tls     bool
	sampled *sampleCache
}

// NewJWT builds the detection.
func NewJWT(cfg JWTConfig, deps JWTDeps) (*JWT, error) {
	var errs []error
	a, err := jwt.New(cfg.Config, jwt.Options{AlgStore: deps.AlgStore, SecretCache: deps.SecretCache, Getenv: deps.Getenv, Logger: deps.Logger})
	if err != nil {
		errs = append(errs, err)
	}
	d := &JWT{a: a, modes: map[string]Mode{}, shared: cfg.Shared, spread: deps.Spread, tls: deps.TLS,
		sampled: newSampleCache(10_000)}
	for _, r := range jwt.Rules() {
		d.modes[r.ID] = ModeMonitor
		if r.Default == jwt.ActionBlock {
			d.modes[r.ID] = ModeEnforce
		}
	}
	for _, id := range []string{RuleCredentialInQuery, RuleCredentialOverPlain, RuleCredentialShared} {
		d.modes[id] = ModeMonitor
	}
	for k, m := range cfg.Rules {
		k = strings.ReplaceAll(k, "-", "_")
		if _, ok := d.modes[k]; !ok {
			errs = append(errs, fmt.Errorf("rules.%s: unknown rule", k))
			continue
		}
		d.modes[k] = m
	}
	for _, q := range cfg.QueryCredentials {
		d.query = append(d.query, strings.ToLower(q))
	}
	for _, h := range cfg.Shared.APIKeyHeaders {
		d.apiKeys = append(d.apiKeys, http.CanonicalHeaderKey(h))
	}
	if cfg.Shared.MaxClients < 0 || cfg.Shared.Window < 0 {
		errs = append(errs, errors.New("shared: max_clients and window must be >= 0"))
	}
	if d.shared.Window == 0 {
		d.shared.Window = defaultSharedWindow
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// Name returns "jwt".
func (d *JWT) Name() string { return jwtName }

// Run runs the analyzer's background work (weak-secret sweeps, JWKS
// refreshes) until ctx ends.
func (d *JWT) Run(ctx context.Context) error { return d.a.Run(ctx) }

// Identify analyses the request's tokens once and establishes its
// credential.
func (d *JWT) Identify(ctx context.Context, r *Request) {
	found, _ := d.a.AnalyzeRequest(ctx, r.Header, r.RawQuery, r.ClientKey) // store errors leave findings intact
	if len(found.Results) == 0 {
		return
	}
	// A copy taken here, so only a request with a token allocates one.
	rep := found
	c := &Credential{Kind: jwtName, Report: &rep}
	if tok := rep.Results[0].Token; tok != nil {
		c.ID = SubjectPrefix + jwt.Identity(tok.Raw)
	}
	if v := rep.Verified; v != nil {
		c.Verified, c.Claim = true, v.Claim
	}
	r.Credential = c
}

// Inspect turns the findings into a verdict: the first enforced rule
// blocks; otherwise the first monitored one is reported.
func (d *JWT) Inspect(ctx context.Context, r *Request) (Verdict, error) {
	var monitored Verdict
	hit := func(rule, location string) (Verdict, bool) {
		switch d.modes[rule] {
		case ModeEnforce:
			v := Block(ReasonCredential)
			v.Rule, v.Location = rule, location
			return v, true
		case ModeMonitor:
			if monitored.Rule == "" {
				monitored = Verdict{Action: ActionMonitor, Reason: ReasonCredential, Rule: rule, Location: location}
			}
		}
		return Verdict{}, false
	}
	if c := r.Credential; c != nil {
		if rep, ok := c.Report.(*jwt.Report); ok {
			for _, f := range rep.Findings {
				if v, ok := hit(f.Rule, "token"); ok {
					return v, nil
				}
			}
		}
	}
	if name, ok := queryParam(r.RawQuery, d.query); ok {
		if v, ok := hit(RuleCredentialInQuery, "query:"+name); ok {
			return v, nil
		}
	}
	if d.tls && r.TLS == nil && r.Header.Get("Authorization") != "" {
		if v, ok := hit(RuleCredentialOverPlain, "header:Authorization"); ok {
			return v, nil
		}
	}
	if v, ok, err := d.checkShared(ctx, r, hit); err != nil {
		return Allow, err
	} else if ok {
		return v, nil
	}
	if monitored.Rule != "" {
		return monitored, nil
	}
	return Allow, nil
}

// checkShared counts the distinct clients of the request's credential in
// the store, once per (credential, client) per minute per replica.
func (d *JWT) checkShared(ctx context.Context, r *Request, hit func(string, string) (Verdict, bool)) (Verdict, bool, error) {
	if d.spread == nil || d.shared.MaxClients == 0 || d.modes[RuleCredentialShared] == ModeOff {
		return Verdict{}, false, nil
	}
	id := ""
	if c := r.Credential; c != nil && c.ID != "" {
		id = c.ID
	}
	for _, h := range d.apiKeys {
		if v := r.Header.Get(h); v != "" && id == "" {
			id = SubjectPrefix + jwt.Identity(v)
		}
	}
	if id == "" || !d.sampled.first(id+"\x00"+r.ClientKey, r.Received, defaultSharedSamplePeriod) {
		return Verdict{}, false, nil
	}
	n, err := d.spread.Spread(ctx, id, r.ClientKey, d.shared.Window)
	if err != nil {
		return Verdict{}, false, fmt.Errorf("counting the credential's clients: %w", err)
	}
	if n > int64(d.shared.MaxClients) {
		v, ok := hit(RuleCredentialShared, "token")
		return v, ok, nil
	}
	return Verdict{}, false, nil
}

// queryParam returns the first of names that the raw query has as a
// parameter name (case-insensitive, '&' or ';' separated). A name with
// escapes (api%5Fkey, pass%77ord) is that parameter upstream, so it is
// compared decoded, as the jwt locator reads names (url.QueryUnescape; a
// malformed escape is compared as it is); decoding allocates, so only a
// name containing '%' or '+' is decoded, once for all names.
func queryParam(q string, names []string) (string, bool) {
	best := len(names) // the index of the first name found so far
	for q != "" && best > 0 {
		var pair string
		if i := strings.IndexAny(q, "&;"); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			pair, q = q, ""
		}
		k, _, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			if u, err := url.QueryUnescape(k); err == nil {
				k = u
			}
		}
		for i, name := range names[:best] {
			if strings.EqualFold(k, name) {
				best = i
				break
			}
		}
	}
	if best == len(names) {
		return "", false
	}
	return names[best], true
}

// sampleCache remembers keys seen recently (bounded; arbitrary eviction):
// a client's repeated use of a credential costs one store call a period.
type sampleCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time
}

func newSampleCache(max int) *sampleCache {
	return &sampleCache{max: max, seen: map[string]time.Time{}}
}

func (s *sampleCache) first(key string, now time.Time, period time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.seen[key]; ok && now.Sub(t) < period {
		return false
	}
	if len(s.seen) >= s.max {
		for k := range s.seen {
			delete(s.seen, k)
			if len(s.seen) < s.max/2 {
				break
			}
		}
	}
	s.seen[key] = now
	return true
}

var (
	_ Detection  = (*JWT)(nil)
	_ Identifier = (*JWT)(nil)
)
