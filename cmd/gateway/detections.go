package main

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/crs"
	"github.com/rampartgw/rampart/detections/payload"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

// Section is one detection's YAML mapping: the settings every detection
// has (mode, status, on_store_error) and the detection's own keys side by
// side.
type Section[C any] struct {
	detections.Settings `yaml:",inline"`
	Config              C `yaml:",inline"`
}

// IPSection is the ip detection's section. Its exempt key is the old
// spelling of the top-level exempt list, still accepted.
type IPSection struct {
	Section[detections.IPConfig] `yaml:",inline"`
	// Exempt is deprecated: use the top-level exempt list.
	Exempt []string `yaml:"exempt"`
}

// Detections is the detections section. Adding a detection is one file in
// detections/ plus a field here and a line in specs.
type Detections struct {
	// IP allows and denies clients by address, CIDR and subscribed
	// blocklist feeds.
	IP IPSection `yaml:"ip"`
	// TLS judges the client's TLS: legacy versions, weak ciphers, JA4/JA3
	// fingerprints (see docs/detections.md).
	TLS Section[detections.TLSConfig] `yaml:"tls"`
	// JWT checks bearer tokens (weaknesses, verification against the
	// configured providers, credentials in URLs or over plain HTTP, tokens
	// shared by many clients) and names verified identities for keys.
	JWT Section[detections.JWTConfig] `yaml:"jwt"`
	// UserAgent allows and denies clients by User-Agent.
	UserAgent Section[detections.UserAgentConfig] `yaml:"user_agent"`
	// RateLimit is the shared per-client (or per-identity) limit (GCRA, as
	// go-redis/redis_rate), with bans for clients that keep hammering.
	RateLimit Section[detections.RateLimitConfig] `yaml:"rate_limit"`
	// Enumeration bans clients with too many invalid answers (404 and the
	// like) within a window.
	Enumeration Section[detections.EnumerationConfig] `yaml:"enumeration"`
	// Payload inspects the path, query, headers, cookies and body with the
	// built-in analysers (SQLi, XSS, command injection, traversal, SSRF…).
	Payload Section[payload.Config] `yaml:"payload"`
	// CRS is the OWASP Core Rule Set on Coraza: not in the default chain
	// (it costs milliseconds per request); add "crs" to chain to run it.
	CRS Section[crs.Config] `yaml:"crs"`
}

func defaultDetections() Detections {
	return Detections{
		TLS:         Section[detections.TLSConfig]{Config: detections.DefaultTLSConfig()},
		JWT:         Section[detections.JWTConfig]{Config: detections.DefaultJWTConfig()},
		UserAgent:   Section[detections.UserAgentConfig]{Config: detections.DefaultUserAgentConfig()},
		RateLimit:   Section[detections.RateLimitConfig]{Config: detections.DefaultRateLimitConfig()},
		Enumeration: Section[detections.EnumerationConfig]{Config: detections.DefaultEnumerationConfig()},
		Payload:     Section[payload.Config]{Config: payload.DefaultConfig()},
		CRS:         Section[crs.Config]{Config: crs.DefaultConfig()},
	}
}

// deps are what stateful detections get when they are built.
type deps struct {
	counter  detections.Counter // the shared store
	fallback detections.Limiter // the per-replica fallback limiter
	jwt      detections.JWTDeps // the jwt detection's shared stores
	ip       detections.IPDeps  // the ip feeds' lease and store
	shadow   *store.Memory      // the shadow policy's state (nil: a new one)
}

// spec is one detection: its name (YAML key and chain entry), its
// settings and its constructor.
type spec struct {
	name     string
	settings detections.Settings
	build    func() (detections.Detection, error)
	built    detections.Detection
	// optional detections are not in the default chain, and are built
	// only when the chain lists them (check validates their section
	// otherwise): building them is costly.
	optional bool
	check    func() error
}

// specs lists every detection the gateway knows, in default chain order.
func (d *Detections) specs(dp deps) []spec {
	return []spec{
		{name: "ip", settings: d.IP.Settings, build: func() (detections.Detection, error) {
			return built(detections.NewIPWith(d.IP.Config, dp.ip))
		}},
		{name: "tls", settings: d.TLS.Settings, build: func() (detections.Detection, error) {
			return built(detections.NewTLS(d.TLS.Config))
		}},
		{name: "jwt", settings: d.JWT.Settings, build: func() (detections.Detection, error) {
			return built(detections.NewJWT(d.JWT.Config, dp.jwt))
		}},
		{name: "user_agent", settings: d.UserAgent.Settings, build: func() (detections.Detection, error) {
			return built(detections.NewUserAgent(d.UserAgent.Config))
		}},
		{name: "rate_limit", settings: d.RateLimit.Settings, build: func() (detections.Detection, error) {
			return built(detections.NewRateLimit(d.RateLimit.Config, dp.fallback))
		}},
		{name: "enumeration", settings: d.Enumeration.Settings, build: func() (detections.Detection, error) {
			return built(detections.NewEnumeration(d.Enumeration.Config, dp.counter))
		}},
		{name: "payload", settings: d.Payload.Settings, build: func() (detections.Detection, error) {
			return built(payload.New(d.Payload.Config))
		}},
		{name: "crs", settings: d.CRS.Settings, optional: true, check: d.CRS.Config.Validate, build: func() (detections.Detection, error) {
			return built(crs.New(d.CRS.Config))
		}},
	}
}

// closeChain releases what the chain's detections hold (the crs
// detection's compiled rules), for a chain no request uses any more.
func closeChain(c *detections.Chain) {
	if c == nil {
		return
	}
	for _, e := range c.Entries() {
		closeDetections([]detections.Detection{e.Detection})
	}
}

// closePolicy closes every chain of p (nil: nothing).
func closePolicy(p *gateway.Policy) {
	if p == nil {
		return
	}
	closeChain(p.Chain)
	for _, r := range p.Routes {
		closeChain(r.Chain)
	}
	if p.Shadow != nil {
		closePolicy(p.Shadow.Policy())
	}
}

// released, when set (tests), sees every detection closeDetections
// releases, Closer or not.
var released atomic.Pointer[func(detections.Detection)]

func closeDetections(ds []detections.Detection) {
	hook := released.Load()
	for _, d := range ds {
		if hook != nil {
			(*hook)(d)
		}
		if cl, ok := d.(io.Closer); ok {
			_ = cl.Close()
		}
	}
}

// built adapts a constructor's concrete result (a typed nil stays nil).
func built[D detections.Detection](d D, err error) (detections.Detection, error) {
	if err != nil {
		return nil, err
	}
	return d, nil
}

// feedSyncTimeout bounds loading a new policy's feeds before it serves.
const feedSyncTimeout = 15 * time.Second

// syncFeeds loads the feeds of every chain of p (from the fleet's store,
// or by fetching them) before p serves, so a new policy does not start
// with empty lists. A feed that cannot be loaded is logged (by ipfeed)
// and retried in the background.
func syncFeeds(ctx context.Context, p *gateway.Policy, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, feedSyncTimeout)
	defer cancel()
	chains := []*detections.Chain{p.Chain}
	for _, r := range p.Routes {
		if r.Chain != nil {
			chains = append(chains, r.Chain)
		}
	}
	for _, c := range chains {
		for _, e := range c.Entries() {
			if ip, ok := e.Detection.(*detections.IP); ok {
				if err := ip.Sync(ctx); err != nil {
					log.LogAttrs(ctx, slog.LevelWarn, "ip_feeds_not_loaded", slog.String("error", err.Error()),
						slog.String("detail", "the feeds that failed are retried in the background"))
				}
			}
		}
	}
}
