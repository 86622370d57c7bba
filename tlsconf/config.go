// Package tlsconf holds the gateway's TLS listener pieces: certificates
// chosen by SNI and reloaded without dropping connections, session-ticket
// keys shared by replicas, a listener that accepts PROXY protocol only from
// trusted peers and fingerprints every TLS handshake (accepted or refused),
// and the per-connection Facts that requests read through their context.
package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// CertPair names a certificate chain and its private key (PEM files).
type CertPair struct {
	// CertFile is the certificate chain (PEM); KeyFile its private key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Config configures TLS termination. The yaml keys are the names used in
// Validate's messages.
type Config struct {
	// CertFile and KeyFile are the default certificate; when set they come
	// before Certificates.
	// CertFile is the certificate chain (PEM); KeyFile its private key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Certificates are chosen by SNI (exact name, then wildcard); the first
	// pair overall is the default.
	Certificates []CertPair `yaml:"certificates"`
	// MinVersion is "1.0", "1.1", "1.2" or "1.3". Clients below it are
	// refused with the legacy_version reason (and fingerprinted).
	MinVersion string `yaml:"min_version"`
	// ReloadInterval is how often the files are checked for changes; 0
	// disables polling (Reload still works, e.g. on SIGHUP).
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// HandshakeTimeout bounds a TLS handshake (the PROXY header has its
	// own ProxyHeaderTimeout).
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// TicketRotation is how often a new session-ticket key is made; the
	// KeySource applies it (MemoryKeySource here, Redis in the gateway).
	TicketRotation time.Duration `yaml:"ticket_rotation"`
	// TicketKeysKept is how many previous ticket keys still decrypt.
	TicketKeysKept int `yaml:"ticket_keys_kept"`
	// ProxyProtocol is "off", "optional" or "required" (see ProxyMode). It
	// applies only to peers in ProxyTrustedCIDRs.
	ProxyProtocol string `yaml:"proxy_protocol"`
	// ProxyTrustedCIDRs are the load balancers allowed to send a PROXY
	// header; required unless ProxyProtocol is "off".
	ProxyTrustedCIDRs []string `yaml:"proxy_trusted_cidrs"`
	// ProxyHeaderTimeout bounds the wait for the PROXY header.
	ProxyHeaderTimeout time.Duration `yaml:"proxy_header_timeout"`
}

// DefaultConfig returns the defaults: TLS 1.2 and up, files checked every
// 10 s, a new ticket key every hour with two previous keys kept, no PROXY
// protocol. Certificates must still be set.
func DefaultConfig() Config {
	return Config{
		MinVersion:         "1.2",
		ReloadInterval:     10 * time.Second,
		HandshakeTimeout:   10 * time.Second,
		TicketRotation:     time.Hour,
		TicketKeysKept:     2,
		ProxyProtocol:      "off",
		ProxyHeaderTimeout: 5 * time.Second,
	}
}

// maxTicketKeysKept bounds the decrypt-only keys (each one is tried on
// every resumption attempt that fails the newer ones).
const maxTicketKeysKept = 16

// Validate reports every problem at once, naming the yaml keys.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("tls: "+format, args...)) }
	if (c.CertFile == "") != (c.KeyFile == "") {
		add("cert_file and key_file must be set together")
	}
	for i, p := range c.Certificates {
		if p.CertFile == "" || p.KeyFile == "" {
			add("certificates[%d]: cert_file and key_file are both required", i)
		}
	}
	if len(c.Pairs()) == 0 && c.ProxyProtocol == "off" {
		// Without certificates, a load balancer terminates TLS and sends its
		// facts in PROXY v2: proxy_protocol must be on.
		add("no certificate: set cert_file and key_file, or certificates (or proxy_protocol, when a load balancer terminates TLS)")
	}
	if _, ok := versions[c.MinVersion]; !ok {
		add("min_version %q: want 1.0, 1.1, 1.2 or 1.3", c.MinVersion)
	}
	if c.ReloadInterval < 0 {
		add("reload_interval %v: must be >= 0 (0 disables polling)", c.ReloadInterval)
	}
	if c.HandshakeTimeout <= 0 {
		add("handshake_timeout %v: must be > 0", c.HandshakeTimeout)
	}
	if c.TicketRotation < time.Minute {
		add("ticket_rotation %v: must be >= 1m", c.TicketRotation)
	}
	if c.TicketKeysKept < 0 || c.TicketKeysKept > maxTicketKeysKept {
		add("ticket_keys_kept %d: must be in [0, %d]", c.TicketKeysKept, maxTicketKeysKept)
	}
	mode, err := ParseProxyMode(c.ProxyProtocol)
	if err != nil {
		add("proxy_protocol: %v", err)
	}
	if _, err := parseCIDRs(c.ProxyTrustedCIDRs); err != nil {
		add("proxy_trusted_cidrs: %v", err)
	}
	if mode != ProxyOff && len(c.ProxyTrustedCIDRs) == 0 {
		add("proxy_trusted_cidrs: required when proxy_protocol is %q", c.ProxyProtocol)
	}
	if mode != ProxyOff && c.ProxyHeaderTimeout <= 0 {
		add("proxy_header_timeout %v: must be > 0", c.ProxyHeaderTimeout)
	}
	return errors.Join(errs...)
}

// Pairs returns every configured pair, the default first.
func (c Config) Pairs() []CertPair {
	var out []CertPair
	if c.CertFile != "" || c.KeyFile != "" {
		out = append(out, CertPair{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	return append(out, c.Certificates...)
}

var versions = map[string]uint16{
	"1.0": tls.VersionTLS10,
	"1.1": tls.VersionTLS11,
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

// TLSVersion returns MinVersion as a crypto/tls constant (TLS 1.2 if
// invalid; Validate reports that).
func (c Config) TLSVersion() uint16 {
	if v, ok := versions[c.MinVersion]; ok {
		return v
	}
	return tls.VersionTLS12
}

// TLSConfig returns the server tls.Config: MinVersion from c, certificates
// from certs by SNI, ALPN h2 then http/1.1, Go's default cipher suites and
// groups. Pass it in Options.TLS.
func (c Config) TLSConfig(certs *Certificates) *tls.Config {
	return &tls.Config{
		MinVersion:     c.TLSVersion(),
		GetCertificate: certs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// ListenOptions returns the Options for Listen built from c; tlsConfig is
// nil when a load balancer terminates TLS.
func (c Config) ListenOptions(tlsConfig *tls.Config, onHandshake func(Facts, error)) (Options, error) {
	mode, err := ParseProxyMode(c.ProxyProtocol)
	if err != nil {
		return Options{}, err
	}
	cidrs, err := parseCIDRs(c.ProxyTrustedCIDRs)
	if err != nil {
		return Options{}, err
	}
	return Options{
		TLS:                tlsConfig,
		ProxyProtocol:      mode,
		TrustedProxies:     cidrs,
		ProxyHeaderTimeout: c.ProxyHeaderTimeout,
		HandshakeTimeout:   c.HandshakeTimeout,
		OnHandshake:        onHandshake,
	}, nil
}

// ProxyMode says whether a trusted peer may or must start with a PROXY
// protocol (v1 or v2) header. A peer outside the trusted CIDRs is never
// asked for one: its bytes are passed on untouched, so a header it sends is
// not believed and breaks its own TLS handshake (reason not_tls).
type ProxyMode uint8

// Proxy modes.
const (
	// ProxyOff never reads a PROXY header.
	ProxyOff ProxyMode = iota
	// ProxyOptional uses a header when a trusted peer sends one, and serves
	// the trusted peer itself otherwise (e.g. load-balancer health checks).
	ProxyOptional
	// ProxyRequired refuses a trusted peer that sends no valid header.
	ProxyRequired
)

// ParseProxyMode parses "off" (or ""), "optional" and "required".
func ParseProxyMode(s string) (ProxyMode, error) {
	switch s {
	case "", "off":
		return ProxyOff, nil
	case "optional":
		return ProxyOptional, nil
	case "required":
		return ProxyRequired, nil
	}
	return ProxyOff, fmt.Errorf("%q: want off, optional or required", s)
}

func parseCIDRs(ss []string) ([]netip.Prefix, error) {
	var (
		out  []netip.Prefix
		errs []error
	)
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				p, err = a.Prefix(a.BitLen())
			}
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%q: not a CIDR or address", s))
		case p.Bits() == 0:
			errs = append(errs, fmt.Errorf("%q: trusting every address would let anyone forge client addresses", s))
		default:
			out = append(out, p.Masked())
		}
	}
	return out, errors.Join(errs...)
}
