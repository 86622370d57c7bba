// Package gateway is the request path: client IP, blocklist, shared state,
// request view, detection chain, reverse proxy, response observers, events
// and metrics. Its files follow the flow: exchange.go is one request as a
// transaction, with a method per stage; blocklist.go the bans a replica
// knows; proxy.go the reverse proxy; events.go and metrics.go what is
// recorded; outcome.go how every refusal is answered and counted.
package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rampartgw/rampart/detections"
)

// Config configures the gateway. Its keys are the top level of the YAML
// file (decoded directly into this struct, strictly); Bans is the gateway's
// part of the bans section.
type Config struct {
	// Listen is the proxy's address.
	Listen string `yaml:"listen"`
	// Upstream is the protected API: one base URL, a list of instances, or
	// a pool (see UpstreamConfig). Empty: only routes are served, and a
	// request no route matches gets 404.
	Upstream UpstreamConfig `yaml:"upstream"`
	// PreserveHost forwards the client's Host header instead of the
	// upstream's host.
	PreserveHost bool `yaml:"preserve_host"`
	// TrustedProxies lists the CIDRs whose forwarding headers are believed.
	// Empty: the socket peer is the client. 0.0.0.0/0 and ::/0 are refused.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ClientIPHeader is the header trusted proxies put the client in:
	// X-Forwarded-For (right-most untrusted address wins) or a single-valued
	// header such as X-Real-IP or CF-Connecting-IP.
	ClientIPHeader string `yaml:"client_ip_header"`
	// IPv6Prefix groups IPv6 clients (default /64) for every per-client key.
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// MaxBodyBytes caps a buffered request body; over it: 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxHeaderBytes caps the request line and headers; over it: 431.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// Replica names this instance in logs, bans and events (default: the
	// host name).
	Replica string `yaml:"replica"`
	// Exempt clients are never blocked by any detection, never refused by
	// the blocklist and never banned (health checkers, office ranges).
	Exempt []string `yaml:"exempt"`
	// Timeouts bound every wait.
	Timeouts Timeouts `yaml:"timeouts"`

	// Bans is decoded from the bans section (with the store's escalation).
	Bans BansConfig `yaml:"-"`
	// TLS is the gateway's part of the tls section.
	TLS TLSOptions `yaml:"-"`
}

// Timeouts groups every timeout (the timeouts section).
type Timeouts struct {
	// Upstream is how long to wait for the upstream's response headers
	// before answering 504.
	Upstream time.Duration `yaml:"upstream"`
	// UpstreamDial bounds connecting to the upstream.
	UpstreamDial time.Duration `yaml:"upstream_dial"`
	// ReadHeader, Read, Write and Idle are the server's: slow clients
	// cannot hold connections.
	ReadHeader time.Duration `yaml:"read_header"`
	Read       time.Duration `yaml:"read"`
	Write      time.Duration `yaml:"write"`
	Idle       time.Duration `yaml:"idle"`
	// Shutdown bounds the wait for requests in flight on SIGTERM.
	Shutdown time.Duration `yaml:"shutdown"`
	// ShutdownDelay keeps serving after /readyz turns 503 on SIGTERM, so a
	// load balancer that polls readiness stops sending traffic first.
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
	// Observe bounds response observers (after the response is sent).
	Observe time.Duration `yaml:"observe"`
}

// RequestBound is how long a request can live at most under these
// timeouts (reading it, then writing its response, then observing it),
// with a margin: after a reload, the old policy is released this long
// after the new one took over.
func (t Timeouts) RequestBound() time.Duration {
	if t.Write <= 0 {
		return 10 * time.Minute
	}
	return t.ReadHeader + t.Read + t.Write + t.Observe + 10*time.Second
}

// BansConfig is the gateway's part of the bans section: the local ban
// cache and what happens when the store cannot answer.
type BansConfig struct {
	// CacheSize bounds the local cache of known bans and over-limit clients
	// (each), and how many active bans a replica loads from the ban index.
	CacheSize int `yaml:"cache_size"`
	// CacheMaxStale is the longest a locally cached ban is trusted without
	// asking the store again (an unban notification may have been lost).
	// While the store cannot answer, a known ban keeps biting until its own
	// expiry regardless.
	CacheMaxStale time.Duration `yaml:"cache_max_stale"`
	// OnStoreError: with no local ban known and the store down, allow (fail
	// open, default) or block (503, after StoreErrorGrace).
	OnStoreError detections.StorePolicy `yaml:"on_store_error"`
	// StoreErrorGrace is how long a failing store is bridged with the local
	// fallback limiter and the ban cache before fail-closed policies answer
	// 503, so one hiccup on a busy host does not refuse everyone.
	StoreErrorGrace time.Duration `yaml:"store_error_grace"`
	// SnapshotFile, when set, is where this replica keeps the bans it knows
	// (written every few seconds and at shutdown, read at start), so a
	// replica restarted while Redis is down still refuses banned clients.
	SnapshotFile string `yaml:"snapshot_file"`
	// DefaultDuration is used for operator bans without a duration.
	DefaultDuration time.Duration `yaml:"default_duration"`
}

// DefaultBansConfig returns the defaults documented in the README.
func DefaultBansConfig() BansConfig {
	return BansConfig{
		CacheSize:       100_000,
		CacheMaxStale:   30 * time.Second,
		StoreErrorGrace: 2 * time.Second,
		DefaultDuration: 10 * time.Minute,
	}
}

// defaultUpstream is the prototype's upstream.
func defaultUpstream() UpstreamConfig {
	u := DefaultUpstreamConfig()
	u.Instances = []string{"http://127.0.0.1:5000"}
	return u
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Listen:         ":8080",
		Upstream:       defaultUpstream(),
		ClientIPHeader: "X-Forwarded-For",
		IPv6Prefix:     detections.DefaultIPv6Prefix,
		MaxBodyBytes:   1 << 20,
		MaxHeaderBytes: 64 << 10,
		Timeouts: Timeouts{
			Upstream:     30 * time.Second,
			UpstreamDial: 5 * time.Second,
			ReadHeader:   5 * time.Second,
			Read:         30 * time.Second,
			Write:        60 * time.Second,
			Idle:         120 * time.Second,
			Shutdown:     15 * time.Second,
			Observe:      time.Second,
		},
		Bans: DefaultBansConfig(),
	}
}

// Validate reports every problem in c, under the keys of the YAML file.
func (c Config) Validate() error {
	var errs []error
	if !c.Upstream.IsZero() {
		if err := c.Upstream.Validate(); err != nil {
			errs = append(errs, prefixErrors("upstream", err))
		}
	}
	if err := ValidateListenAddr(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	trusted, err := detections.ParseIPSet(c.TrustedProxies)
	if err != nil {
		errs = append(errs, fmt.Errorf("trusted_proxies: %w", err))
	} else if trusted.ContainsAll() {
		errs = append(errs, errors.New("trusted_proxies: 0.0.0.0/0 or ::/0 would let any client choose its own IP; list your proxies' CIDRs"))
	}
	exempt, err := detections.ParseIPSet(c.Exempt)
	if err != nil {
		errs = append(errs, fmt.Errorf("exempt: %w", err))
	} else if exempt.ContainsAll() {
		errs = append(errs, errors.New("exempt: 0.0.0.0/0 or ::/0 would exempt every client from every detection"))
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
	if c.MaxHeaderBytes < 4096 {
		errs = append(errs, fmt.Errorf("max_header_bytes: %d must be at least 4096", c.MaxHeaderBytes))
	}
	if !printableLine(c.Replica) {
		errs = append(errs, fmt.Errorf("replica: %q must be printable text without spaces", c.Replica))
	}
	t := c.Timeouts
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"timeouts.upstream", t.Upstream}, {"timeouts.upstream_dial", t.UpstreamDial}, {"timeouts.read_header", t.ReadHeader},
		{"timeouts.read", t.Read}, {"timeouts.write", t.Write}, {"timeouts.idle", t.Idle},
		{"timeouts.shutdown", t.Shutdown}, {"timeouts.observe", t.Observe},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %v must be > 0", d.key, d.v))
		}
	}
	if t.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("timeouts.shutdown_delay: %v must be >= 0", t.ShutdownDelay))
	}
	if t.Write > 0 && t.Upstream >= t.Write {
		errs = append(errs, fmt.Errorf("timeouts.write: %v must exceed timeouts.upstream (%v), or a 504 could never be written", t.Write, t.Upstream))
	}
	return errors.Join(errs...)
}

// Validate reports every problem in c, under the keys of the bans section.
func (c BansConfig) Validate() error {
	var errs []error
	if c.CacheSize <= 0 {
		errs = append(errs, fmt.Errorf("cache_size: %d must be > 0", c.CacheSize))
	}
	if c.CacheMaxStale <= 0 {
		errs = append(errs, fmt.Errorf("cache_max_stale: %v must be > 0", c.CacheMaxStale))
	}
	if c.StoreErrorGrace < 0 {
		errs = append(errs, fmt.Errorf("store_error_grace: %v must be >= 0", c.StoreErrorGrace))
	}
	if c.DefaultDuration <= 0 || c.DefaultDuration > maxBan {
		errs = append(errs, fmt.Errorf("default_duration: %v must be within (0, %v]", c.DefaultDuration, maxBan))
	}
	return errors.Join(errs...)
}

// maxBan is the longest ban an operator can set.
const maxBan = 365 * 24 * time.Hour

// ValidateListenAddr reports an address net.Listen("tcp", addr) could not
// use for a reason visible without trying: no port, a port out of range,
// or a host that is not an address or a plausible name.
func ValidateListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (for example :8080 or 127.0.0.1:8080)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number in 0..65535", addr, port)
	}
	for _, c := range host {
		if c <= ' ' || c == '/' || c == '@' || c == '?' || c == '#' {
			return fmt.Errorf("%q: %q is not a host name or address", addr, host)
		}
	}
	return nil
}

// printableLine reports whether s is printable ASCII without spaces (names
// end up in logs, Redis hashes and the check script's line-based reply).
func printableLine(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
