// Package gateway is the request path: client IP, blocklist, request view,
// detection chain, reverse proxy, response observers, events and metrics.
package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/rampartgw/rampart/detections"
)

// Config configures the gateway. The YAML file and GATEWAY_* variables are
// mapped onto it in cmd/gateway.
type Config struct {
	// Listen is the proxy's address.
	Listen string
	// Upstream is the protected API's base URL.
	Upstream string
	// PreserveHost forwards the client's Host header instead of the
	// upstream's host.
	PreserveHost bool
	// TrustedProxies lists the CIDRs whose forwarding headers are believed.
	// Empty: the socket peer is the client. 0.0.0.0/0 and ::/0 are refused.
	TrustedProxies []string
	// ClientIPHeader is the header trusted proxies put the client in:
	// X-Forwarded-For (right-most untrusted address wins) or a single-valued
	// header such as X-Real-IP or CF-Connecting-IP.
	ClientIPHeader string
	// IPv6Prefix groups IPv6 clients (default /64) for every per-client key.
	IPv6Prefix int
	// MaxBodyBytes caps a buffered request body; over it: 413.
	MaxBodyBytes int64
	// MaxHeaderBytes caps request headers.
	MaxHeaderBytes int
	// UpstreamTimeout is how long to wait for the upstream's response
	// headers before answering 504.
	UpstreamTimeout time.Duration
	// UpstreamDialTimeout bounds connecting to the upstream.
	UpstreamDialTimeout time.Duration
	// Server timeouts: slow clients cannot hold connections.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	// ObserveTimeout bounds response observers (after the response is sent).
	ObserveTimeout time.Duration
	// Replica names this instance in logs, bans and events.
	Replica string
	// BanCacheSize bounds the local cache of known bans and over-limit
	// clients (each).
	BanCacheSize int
	// BanCacheMaxStale is the longest a locally cached ban is trusted
	// without asking the store again, in case an unban notification was lost.
	BanCacheMaxStale time.Duration
	// BlocklistOnStoreError: with no local ban known and the store down,
	// allow (fail open, default) or block (503).
	BlocklistOnStoreError detections.StorePolicy
	// DefaultBanDuration is used for a verdict with BlockFor but no duration
	// (never, today), and for operator bans without a duration.
	DefaultBanDuration time.Duration
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Listen:              ":8080",
		Upstream:            "http://127.0.0.1:5000",
		ClientIPHeader:      "X-Forwarded-For",
		IPv6Prefix:          detections.DefaultIPv6Prefix,
		MaxBodyBytes:        1 << 20,
		MaxHeaderBytes:      64 << 10,
		UpstreamTimeout:     30 * time.Second,
		UpstreamDialTimeout: 5 * time.Second,
		ReadHeaderTimeout:   5 * time.Second,
		ReadTimeout:         30 * time.Second,
		WriteTimeout:        60 * time.Second,
		IdleTimeout:         120 * time.Second,
		ShutdownTimeout:     15 * time.Second,
		ObserveTimeout:      time.Second,
		BanCacheSize:        100_000,
		BanCacheMaxStale:    30 * time.Second,
		DefaultBanDuration:  10 * time.Minute,
	}
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.Upstream)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("upstream: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("upstream: %q must be an http:// or https:// URL", c.Upstream))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("upstream: %q has no host", c.Upstream))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: empty address"))
	}
	trusted, err := detections.ParseIPSet(c.TrustedProxies)
	if err != nil {
		errs = append(errs, fmt.Errorf("trusted_proxies: %w", err))
	} else if trusted.ContainsAll() {
		errs = append(errs, errors.New("trusted_proxies: 0.0.0.0/0 or ::/0 would let any client choose its own IP; list your proxies' CIDRs"))
	}
	if http.CanonicalHeaderKey(c.ClientIPHeader) == "" {
		errs = append(errs, errors.New("client_ip_header: empty"))
	}
	if c.IPv6Prefix < 1 || c.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("ipv6_prefix: %d is not within 1..128", c.IPv6Prefix))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_body_bytes: %d must be > 0", c.MaxBodyBytes))
	}
	for name, d := range map[string]time.Duration{
		"upstream_timeout": c.UpstreamTimeout, "read_header_timeout": c.ReadHeaderTimeout,
		"read_timeout": c.ReadTimeout, "write_timeout": c.WriteTimeout, "idle_timeout": c.IdleTimeout,
		"observe_timeout":  c.ObserveTimeout,
		"shutdown_timeout": c.ShutdownTimeout, "upstream_dial_timeout": c.UpstreamDialTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %v must be > 0", name, d))
		}
	}
	if c.WriteTimeout > 0 && c.UpstreamTimeout >= c.WriteTimeout {
		errs = append(errs, fmt.Errorf("write_timeout (%v) must exceed upstream_timeout (%v), or a 504 could never be written", c.WriteTimeout, c.UpstreamTimeout))
	}
	if c.BanCacheSize <= 0 {
		errs = append(errs, errors.New("ban_cache_size must be > 0"))
	}
	if c.BanCacheMaxStale <= 0 {
		errs = append(errs, errors.New("ban_cache_max_stale must be > 0"))
	}
	return errors.Join(errs...)
}
