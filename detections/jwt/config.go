package jwt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config configures the JWT analysis. The zero value is not useful: start
// from DefaultConfig.
type Config struct {
	// MaxTokenBytes bounds a token; longer ones are jwt_oversize and not
	// parsed.
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// MaxJSONDepth bounds the nesting of the header and claims.
	MaxJSONDepth int `yaml:"max_json_depth"`
	// Locations says where tokens are looked for.
	Locations LocationConfig `yaml:"locations"`
	// ClockSkew is tolerated on exp, nbf and iat (Envoy's default, 60 s).
	ClockSkew time.Duration `yaml:"clock_skew"`
	// RequireExp reports tokens without exp (RFC 8725 §3.10 favours
	// short-lived tokens; a token without exp never expires).
	RequireExp bool `yaml:"require_exp"`
	// MaxLifetime reports tokens valid for longer (exp-iat, or exp-now
	// without iat); 0 disables the check.
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// AllowedAlgs, when set, reports registered algorithms outside it.
	AllowedAlgs []string `yaml:"allowed_algs"`
	// ExpectedTypes, when set, reports a typ outside it (compared as RFC
	// 7515 §4.1.9 says), e.g. ["JWT", "at+jwt"]. A missing typ is allowed.
	ExpectedTypes []string `yaml:"expected_types"`
	// KeyURLHosts lists the hosts whose https jku/x5u URLs are tolerated;
	// any other jku or x5u is jwt_key_injection. Rampart never fetches
	// them either way.
	KeyURLHosts []string `yaml:"key_url_hosts"`
	// AllowX5C tolerates an x5c chain in the header (some issuers send
	// one); off, x5c is jwt_key_injection.
	AllowX5C bool `yaml:"allow_x5c"`
	// AlgConfusion configures the learning of issuers' algorithms.
	AlgConfusion AlgConfusionConfig `yaml:"alg_confusion"`
	// WeakSecret configures the off-path HMAC secret audit.
	WeakSecret WeakSecretConfig `yaml:"weak_secret"`
	// Providers are the issuers whose tokens are verified. None: the
	// analysis is keyless.
	Providers []ProviderConfig `yaml:"providers"`
}

// AlgConfusionConfig bounds what is learnt about issuers.
type AlgConfusionConfig struct {
	// Enabled turns the check on.
	Enabled bool `yaml:"enabled"`
	// MinSightings is how many distinct witnesses (client keys) must
	// present a family for an issuer before it is learnt, when the
	// issuer's keys are not configured. With keys, only verified tokens
	// teach, at once.
	MinSightings int `yaml:"min_sightings"`
	// MaxIssuers caps the issuer entries of the in-memory store.
	MaxIssuers int `yaml:"max_issuers"`
	// LearnTTL is how long a learnt family is kept without being seen.
	LearnTTL time.Duration `yaml:"learn_ttl"`
	// SightingTTL is how long sightings of a not yet learnt family count.
	SightingTTL time.Duration `yaml:"sighting_ttl"`
	// CacheTTL is how long a replica trusts its local copy of a learnt set
	// before asking the store again.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// WeakSecretConfig configures the HMAC secret audit. Trials run on worker
// goroutines, never on the request path.
type WeakSecretConfig struct {
	// Enabled turns the check on.
	Enabled bool `yaml:"enabled"`
	// Builtin adds the small built-in list of placeholder secrets.
	Builtin bool `yaml:"builtin"`
	// WordlistFile is an operator-supplied list, one secret per line.
	WordlistFile string `yaml:"wordlist_file"`
	// MaxWordlistEntries bounds the list read from WordlistFile.
	MaxWordlistEntries int `yaml:"max_wordlist_entries"`
	// Queue is the capacity of the audit queue; a full queue drops (and
	// counts) new jobs.
	Queue int `yaml:"queue"`
	// Workers is the number of audit goroutines.
	Workers int `yaml:"workers"`
	// Recheck is how long a token family's verdict is kept before the
	// family is swept again.
	Recheck time.Duration `yaml:"recheck"`
	// SweepsPerMinute bounds full wordlist sweeps per replica (a family's
	// first token; in a family swept clean, each new token), so tokens
	// minted with ever new issuers or signatures cannot keep the workers
	// busy.
	SweepsPerMinute int `yaml:"sweeps_per_minute"`
	// CacheTTL is how long a replica trusts its local copy of a verdict.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// ProviderConfig names an issuer and its keys. Zero durations and sizes
// take the defaults of DefaultProviderConfig.
type ProviderConfig struct {
	// Name identifies the provider in logs.
	Name string `yaml:"name"`
	// Issuer is matched exactly against iss; "" matches any issuer (at
	// most one provider may do so).
	Issuer string `yaml:"issuer"`
	// Audiences, when set, must share a member with aud.
	Audiences []string `yaml:"audiences"`
	// JWKSFile and JWKSURL (https) hold public keys.
	JWKSFile string `yaml:"jwks_file"`
	JWKSURL  string `yaml:"jwks_url"`
	// Refresh is how often the JWKS is reloaded.
	Refresh time.Duration `yaml:"refresh"`
	// MinRefresh is the least time between reloads that an unknown kid
	// triggers early (key rotation).
	MinRefresh time.Duration `yaml:"min_refresh"`
	// FetchTimeout bounds one JWKS download.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// MaxJWKSBytes bounds the JWKS document.
	MaxJWKSBytes int64 `yaml:"max_jwks_bytes"`
	// HMACKeys are shared secrets, read from the environment.
	HMACKeys []HMACKeyConfig `yaml:"hmac_keys"`
}

// HMACKeyConfig is one shared secret. The secret itself never appears in
// the config file.
type HMACKeyConfig struct {
	// KeyID is matched against kid; "" matches tokens without kid.
	KeyID string `yaml:"kid"`
	// Alg pins the algorithm: HS256, HS384 or HS512.
	Alg string `yaml:"alg"`
	// SecretEnv names the environment variable holding the secret.
	SecretEnv string `yaml:"secret_env"`
}

// DefaultConfig is keyless analysis with RFC 8725 defaults.
func DefaultConfig() Config {
	return Config{
		MaxTokenBytes: DefaultLimits().MaxTokenBytes,
		MaxJSONDepth:  DefaultLimits().MaxJSONDepth,
		Locations:     DefaultLocationConfig(),
		ClockSkew:     60 * time.Second,
		RequireExp:    true,
		MaxLifetime:   24 * time.Hour,
		AlgConfusion: AlgConfusionConfig{
			Enabled:      true,
			MinSightings: 3,
			MaxIssuers:   1000,
			LearnTTL:     30 * 24 * time.Hour,
			SightingTTL:  24 * time.Hour,
			CacheTTL:     30 * time.Second,
		},
		WeakSecret: WeakSecretConfig{
			Enabled:            true,
			Builtin:            true,
			MaxWordlistEntries: 1_000_000,
			Queue:              1024,
			Workers:            1,
			Recheck:            24 * time.Hour,
			SweepsPerMinute:    30,
			CacheTTL:           30 * time.Second,
		},
	}
}

// DefaultProviderConfig holds the defaults of a provider's durations and
// sizes (Envoy caches a JWKS for 5 minutes).
func DefaultProviderConfig() ProviderConfig {
	return ProviderConfig{
		Refresh:      5 * time.Minute,
		MinRefresh:   30 * time.Second,
		FetchTimeout: 5 * time.Second,
		MaxJWKSBytes: 512 << 10,
	}
}

func (p ProviderConfig) withDefaults() ProviderConfig {
	d := DefaultProviderConfig()
	if p.Refresh == 0 {
		p.Refresh = d.Refresh
	}
	if p.MinRefresh == 0 {
		p.MinRefresh = d.MinRefresh
	}
	if p.FetchTimeout == 0 {
		p.FetchTimeout = d.FetchTimeout
	}
	if p.MaxJWKSBytes == 0 {
		p.MaxJWKSBytes = d.MaxJWKSBytes
	}
	return p
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("jwt."+format, args...)) }
	if c.MaxTokenBytes < 256 || c.MaxTokenBytes > 1<<20 {
		bad("max_token_bytes: %d is outside [256, 1048576]", c.MaxTokenBytes)
	}
	if c.MaxJSONDepth < 2 || c.MaxJSONDepth > 64 {
		bad("max_json_depth: %d is outside [2, 64]", c.MaxJSONDepth)
	}
	l := c.Locations
	if len(l.BearerHeaders)+len(l.Headers)+len(l.Cookies)+len(l.Query) == 0 {
		bad("locations: no location to look for tokens")
	}
	for _, lists := range [][]string{l.BearerHeaders, l.Headers, l.Cookies, l.Query} {
		for _, n := range lists {
			if strings.TrimSpace(n) == "" || strings.ContainsAny(n, " \t;=&") {
				bad("locations: invalid name %q", n)
			}
		}
	}
	if c.ClockSkew < 0 || c.ClockSkew > 10*time.Minute {
		bad("clock_skew: %v is outside [0, 10m]", c.ClockSkew)
	}
	if c.MaxLifetime < 0 {
		bad("max_lifetime: %v is negative", c.MaxLifetime)
	}
	for _, a := range c.AllowedAlgs {
		switch p := parseAlg(a); p {
		case algUnknown:
			bad("allowed_algs: %q is not a JWS algorithm", a)
		case algNone:
			bad("allowed_algs: none cannot be allowed")
		}
	}
	for _, h := range c.KeyURLHosts {
		if h == "" || strings.ContainsAny(h, "/:@ ") {
			bad("key_url_hosts: %q is not a host name", h)
		}
	}
	if a := c.AlgConfusion; a.Enabled {
		if a.MinSightings < 1 {
			bad("alg_confusion.min_sightings: %d is below 1", a.MinSightings)
		}
		if a.MaxIssuers < 1 {
			bad("alg_confusion.max_issuers: %d is below 1", a.MaxIssuers)
		}
		if a.LearnTTL <= 0 || a.SightingTTL <= 0 || a.CacheTTL <= 0 {
			bad("alg_confusion: learn_ttl, sighting_ttl and cache_ttl must be positive")
		}
	}
	if w := c.WeakSecret; w.Enabled {
		if !w.Builtin && w.WordlistFile == "" {
			bad("weak_secret: enabled with neither builtin nor wordlist_file")
		}
		if w.MaxWordlistEntries < 0 {
			bad("weak_secret.max_wordlist_entries: %d is negative", w.MaxWordlistEntries)
		}
		if w.Queue < 1 {
			bad("weak_secret.queue: %d is below 1", w.Queue)
		}
		if w.Workers < 1 || w.Workers > 64 {
			bad("weak_secret.workers: %d is outside [1, 64]", w.Workers)
		}
		if w.Recheck <= 0 || w.CacheTTL <= 0 {
			bad("weak_secret: recheck and cache_ttl must be positive")
		}
		if w.SweepsPerMinute < 1 {
			bad("weak_secret.sweeps_per_minute: %d is below 1", w.SweepsPerMinute)
		}
	}
	names := map[string]bool{}
	issuers := map[string]bool{}
	for i, p := range c.Providers {
		where := fmt.Sprintf("providers[%d]", i)
		if p.Name == "" {
			bad("%s.name: empty", where)
		} else if names[p.Name] {
			bad("%s.name: %q is used twice", where, p.Name)
		}
		names[p.Name] = true
		if issuers[p.Issuer] {
			bad("%s.issuer: %q is used twice", where, p.Issuer)
		}
		issuers[p.Issuer] = true
		if p.JWKSFile == "" && p.JWKSURL == "" && len(p.HMACKeys) == 0 {
			bad("%s: no jwks_file, jwks_url or hmac_keys", where)
		}
		if p.JWKSFile != "" && p.JWKSURL != "" {
			bad("%s: jwks_file and jwks_url are exclusive", where)
		}
		if p.JWKSURL != "" {
			if u, err := url.Parse(p.JWKSURL); err != nil || u.Scheme != "https" || u.Host == "" {
				bad("%s.jwks_url: %q is not an https URL", where, p.JWKSURL)
			}
		}
		if p.Refresh < 0 || p.MinRefresh < 0 || p.FetchTimeout < 0 || p.MaxJWKSBytes < 0 {
			bad("%s: negative refresh, min_refresh, fetch_timeout or max_jwks_bytes", where)
		}
		kids := map[string]bool{}
		for j, k := range p.HMACKeys {
			if a := parseAlg(k.Alg); algs[a].fam != FamilyHMAC {
				bad("%s.hmac_keys[%d].alg: %q is not HS256, HS384 or HS512", where, j, k.Alg)
			}
			if k.SecretEnv == "" {
				bad("%s.hmac_keys[%d].secret_env: empty", where, j)
			}
			if kids[k.KeyID] {
				bad("%s.hmac_keys[%d].kid: %q is used twice", where, j, k.KeyID)
			}
			kids[k.KeyID] = true
		}
	}
	return errors.Join(errs...)
}

// Limits returns the parser limits of c.
func (c Config) Limits() Limits {
	return Limits{MaxTokenBytes: c.MaxTokenBytes, MaxJSONDepth: c.MaxJSONDepth}
}
