package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
)

// Store is what the gateway needs from the shared store. *store.Redis and
// *store.Memory satisfy it.
type Store interface {
	// Check answers, in one round trip, whether client is banned and, if
	// not, the shared state q asks for.
	Check(ctx context.Context, client string, q *detections.StateQuery) (detections.Check, error)
	// Ban puts a client on the blocklist and tells every replica.
	Ban(ctx context.Context, req record.BanRequest) (record.Ban, error)
	// Unban lifts a ban and tells every replica; it reports whether one
	// existed. With forget it also drops the ban history (escalation).
	Unban(ctx context.Context, client string, forget bool) (bool, error)
	// BanCIDR and UnbanCIDR manage the operators' range bans.
	BanCIDR(ctx context.Context, prefix netip.Prefix, dur time.Duration, reason, replica string) (record.Ban, error)
	UnbanCIDR(ctx context.Context, prefix netip.Prefix) (bool, error)
	// ListCIDRBans returns the active range bans.
	ListCIDRBans(ctx context.Context) ([]record.Ban, error)
	// BanIndex returns up to limit active bans (client and expiry).
	BanIndex(ctx context.Context, limit int) ([]record.Ban, error)
	// SubscribeBans delivers ban and unban notifications until ctx ends,
	// starting with a Reset after every (re)subscription.
	SubscribeBans(ctx context.Context, fn func(record.BanEvent))
	// Ping checks connectivity.
	Ping(ctx context.Context) error
	// Healthy reports whether the store is usable now (circuit closed).
	Healthy() bool
	// Shared reports whether state is shared between replicas.
	Shared() bool
	// FailingFor reports how long calls have been failing (0 while healthy).
	FailingFor(now time.Time) time.Duration
}

// Policy is the part of the configuration that a reload swaps atomically:
// the chain and the client lists. Requests in flight keep the Policy they
// started with.
type Policy struct {
	Chain *detections.Chain
	// Exempt clients skip the blocklist and every detection, and are never
	// banned.
	Exempt *detections.IPSet
	// AllowListed, when set, reports clients that are never banned (the ip
	// detection's allow list).
	AllowListed func(netip.Addr) bool
	// BanKeys are identities (besides the IP) whose bans every request is
	// checked against (bans.identity_keys); identities that key a limit
	// are checked anyway.
	BanKeys []detections.KeySpec
	// Routes are matched in order; the first match wins (see RouteConfig).
	Routes []Route
	// Upstream, when set, replaces the configured top-level upstream (a
	// reload changes it); a zero one means routes only.
	Upstream *UpstreamConfig
	// Shadow, when set, is a candidate policy judged on a copy of every
	// request after it is answered (see Shadow).
	Shadow *Shadow

	// routes and fallback are Routes compiled, and the top-level upstream
	// (nil when unset), set by SetPolicy.
	routes   []*route
	fallback *route
}

func (p *Policy) exempt(ip netip.Addr) bool { return p.Exempt.Contains(ip) }

// runners is the background work of every chain of the policy.
func (p *Policy) runners() []detections.Runner {
	rs := p.Chain.Runners()
	for _, rt := range p.Routes {
		if rt.Chain != nil {
			rs = append(rs, rt.Chain.Runners()...)
		}
	}
	if p.Shadow != nil {
		rs = append(rs, p.Shadow.pol.runners()...)
		rs = append(rs, p.Shadow)
	}
	return rs
}

// neverBan reports clients that must never be added to the blocklist.
func (p *Policy) neverBan(ip netip.Addr) bool {
	return p.exempt(ip) || (p.AllowListed != nil && p.AllowListed(ip))
}

// Options are the gateway's collaborators.
type Options struct {
	Store   Store
	Logger  *slog.Logger
	Metrics *Metrics
	Events  EventSink
	// Clock, when set, replaces time.Now on the request path (replays run
	// recorded traffic on a simulated clock).
	Clock func() time.Time
	// Transport, when set, replaces the upstream transport (in-process
	// replays answer without a network).
	Transport http.RoundTripper
}

// Gateway is the inline security gateway: an Echo server whose one handler
// runs each request as a transaction (see exchange) and proxies to the
// upstream.
type Gateway struct {
	cfg  Config
	echo *echo.Echo
	// transport is the keep-alive transport to the upstreams (custom, when
	// Options gave one, replaces it); pools are the routes' upstream pools.
	transport *http.Transport
	custom    http.RoundTripper
	pools     *poolSet
	proxyLog  *log.Logger
	ips       *clientIPResolver
	store     Store
	policy    atomic.Pointer[Policy]
	bl        *blocklist
	log       *slog.Logger
	metrics   *Metrics
	rec       *recorder
	now       func() time.Time
	// fingerprints counts the TLS fingerprints the listener saw.
	fingerprints *topK
	// tlsForward is the canonical header that carries the JA4 upstream.
	tlsForward string
	// runMu guards the background work of the policy's detections: runCtx
	// is Run's context (nil before Run), stopRunners cancels the current
	// policy's.
	runMu       sync.Mutex
	runCtx      context.Context
	stopRunners context.CancelFunc
}

// New builds the gateway: the reverse proxy and its one transport, the Echo
// server with its timeouts, and the blocklist.
func New(cfg Config, pol *Policy, opts Options) (*Gateway, error) {
	if err := errors.Join(cfg.Validate(), cfg.Bans.Validate()); err != nil {
		return nil, err
	}
	if pol == nil || pol.Chain == nil {
		return nil, errors.New("gateway: no policy")
	}
	if opts.Store == nil {
		return nil, errors.New("gateway: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if cfg.Replica == "" {
		cfg.Replica, _ = os.Hostname()
	}
	trusted, _ := detections.ParseIPSet(cfg.TrustedProxies) // validated above
	g := &Gateway{
		cfg:     cfg,
		custom:  opts.Transport,
		ips:     newClientIPResolver(trusted, cfg.ClientIPHeader),
		store:   opts.Store,
		log:     opts.Logger.With(slog.String("component", "gateway")),
		metrics: opts.Metrics,
		now:     opts.Clock,

		fingerprints: newTopK(256),
		tlsForward:   http.CanonicalHeaderKey(cfg.TLS.ForwardHeader),
	}
	g.rec = &recorder{log: g.log, m: g.metrics, sink: opts.Events, replica: cfg.Replica, now: g.now}
	g.bl = newBlocklist(opts.Store, cfg.Bans, cfg.Replica, g.now, g.rec, g.metrics, g.log)
	if opts.Transport == nil {
		g.transport = g.newTransport()
	}
	g.proxyLog = slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)
	g.pools = newPoolSet(g)
	if err := g.SetPolicy(pol); err != nil {
		return nil, err
	}
	if err := g.metrics.Registry.Register(newStateCollector(g)); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(io.Discard)
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status := http.StatusInternalServerError
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
		}
		writeError(c.Response(), status)
	}
	// Every method and path goes through the same flow; RouteNotFound also
	// catches methods Echo does not know (WebDAV and others).
	e.Any("/*", g.handle)
	e.RouteNotFound("/*", g.handle)
	e.Server = &http.Server{
		Addr:              cfg.Listen,
		Handler:           e,
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader,
		ReadTimeout:       cfg.Timeouts.Read,
		WriteTimeout:      cfg.Timeouts.Write,
		IdleTimeout:       cfg.Timeouts.Idle,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		ConnContext:       g.connContext,
	}
	g.echo = e
	return g, nil
}

// Handler returns the gateway's http.Handler (the Echo instance).
func (g *Gateway) Handler() http.Handler { return g.echo }

// Server returns the configured *http.Server.
func (g *Gateway) Server() *http.Server { return g.echo.Server }

// SetPolicy swaps the chain, the routes and the lists (config reload).
// Counters and bans live in the store and the local caches are kept, so
// nothing is lost; an upstream pool whose route and settings did not
// change is kept with its health state. On error the running policy
// stays.
func (g *Gateway) SetPolicy(p *Policy) error {
	if p.Exempt == nil {
		p.Exempt = &detections.IPSet{}
	}
	if err := ValidateRoutes(routeConfigs(p.Routes), g.topUpstream(p)); err != nil {
		return err
	}
	for i := range p.Routes {
		if w, up := g.cfg.Timeouts.Write, p.Routes[i].Timeouts.Upstream; w > 0 && up >= w {
			return fmt.Errorf("routes[%d] (%s): timeouts.upstream %v must be under timeouts.write (%v), or a 504 could never be written",
				i, p.Routes[i].Name, up, w)
		}
	}
	g.runMu.Lock()
	defer g.runMu.Unlock()
	if err := g.compileRoutes(p); err != nil {
		return err
	}
	if p.Shadow != nil {
		p.Shadow.g = g
	}
	g.metrics.initChain(p.Chain)
	for _, rt := range p.routes {
		if rt.chain != nil {
			g.metrics.initChain(rt.chain)
		}
	}
	g.policy.Store(p)
	g.pools.sweep()
	if g.runCtx != nil {
		g.startRunners(p)
	}
	return nil
}

// topUpstream is p's top-level upstream.
func (g *Gateway) topUpstream(p *Policy) UpstreamConfig {
	if p.Upstream != nil {
		return *p.Upstream
	}
	return g.cfg.Upstream
}

func routeConfigs(rs []Route) []RouteConfig {
	out := make([]RouteConfig, len(rs))
	for i, r := range rs {
		out[i] = r.RouteConfig
	}
	return out
}

// startRunners starts the background work of p's detections and stops
// the previous policy's. runMu is held.
func (g *Gateway) startRunners(p *Policy) {
	if g.stopRunners != nil {
		g.stopRunners()
	}
	ctx, cancel := context.WithCancel(g.runCtx)
	g.stopRunners = cancel
	for _, r := range p.runners() {
		go func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				g.log.LogAttrs(ctx, slog.LevelWarn, "detection_background_failed", slog.String("error", err.Error()))
			}
		}()
	}
}

// Policy returns the active policy.
func (g *Gateway) Policy() *Policy { return g.policy.Load() }

// Metrics returns the gateway's metrics.
func (g *Gateway) Metrics() *Metrics { return g.metrics }

// Replica returns this instance's name.
func (g *Gateway) Replica() string { return g.cfg.Replica }

// Upstream returns the top-level upstream's instances without
// credentials ("" when there is none: routes only).
func (g *Gateway) Upstream() string { return g.topUpstream(g.Policy()).Redacted() }

// Store returns the store the gateway uses.
func (g *Gateway) Store() Store { return g.store }

// Serve accepts connections on l until Shutdown. Requests that net/http
// refuses before any handler runs (a malformed request line, headers over
// max_header_bytes) are answered in JSON and counted like every other
// refusal (see conn.go).
func (g *Gateway) Serve(l net.Listener) error {
	err := g.echo.Server.Serve(g.wrapListener(l))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for requests in flight.
func (g *Gateway) Shutdown(ctx context.Context) error {
	return g.echo.Server.Shutdown(ctx)
}

// Run keeps the blocklist in sync with the store and runs the detections'
// background work until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	g.runMu.Lock()
	g.runCtx = ctx
	g.startRunners(g.policy.Load())
	g.pools.run(ctx)
	g.runMu.Unlock()
	g.bl.run(ctx)
	g.runMu.Lock()
	if g.stopRunners != nil {
		g.stopRunners()
	}
	g.runCtx, g.stopRunners = nil, nil
	g.runMu.Unlock()
}

// Target is an operator's argument: one client (its key: an IPv4 address
// or an IPv6 /64), a CIDR range, or an identity (a hashed subject).
type Target struct {
	Key      string
	Prefix   netip.Prefix
	Range    bool
	Identity bool
}

// ParseTarget turns an address, a CIDR or an identity into a Target. A
// single address becomes its client key (IPv6: its prefix); a CIDR at
// client-key granularity is a client; a wider or narrower one is a range.
// An identity is written as its hashed subject ("id:" and 32 hex digits,
// as bans list shows it) or as key and value ("jwt:sub=alice",
// "header:X-Api-Key=k1"), which is hashed as the gateway hashes it.
func (g *Gateway) ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	if hexID, ok := strings.CutPrefix(s, detections.SubjectPrefix); ok {
		if len(hexID) != 32 || strings.Trim(hexID, "0123456789abcdef") != "" {
			return Target{}, fmt.Errorf("identity %q: want id: and 32 hex digits", s)
		}
		return Target{Key: s, Identity: true}, nil
	}
	if spec, value, ok := strings.Cut(s, "="); ok && strings.Contains(spec, ":") {
		ks, err := detections.ParseKeySpec(strings.Split(spec, "+"))
		// Errors name the key, never the value: it is a credential (an
		// API key, a token's subject) and errors reach logs and terminals.
		if err != nil || ks.IsIP() {
			return Target{}, fmt.Errorf("identity %q=…: want KEY=VALUE, e.g. jwt:sub=alice or header:X-Api-Key=k1", spec)
		}
		subject, err := detections.IdentitySubject(ks, strings.Split(value, ",")...)
		if err != nil {
			return Target{}, fmt.Errorf("identity %q=…: %w (values separated by commas)", spec, err)
		}
		return Target{Key: subject, Identity: true}, nil
	}
	p, err := detections.ParseClientKey(s)
	if err != nil {
		if strings.Trim(s, "0123456789abcdefABCDEF.:/[]") != "" {
			s = "…" // not address-like: it may be a key typed without its name
		}
		return Target{}, fmt.Errorf("client %q is not an IP address, CIDR or identity (jwt:sub=VALUE)", s)
	}
	bits := g.cfg.IPv6Prefix
	if p.Addr().Is4() {
		bits = 32
	}
	if p.Bits() == p.Addr().BitLen() || p.Bits() == bits {
		return Target{Key: detections.ClientKey(p.Addr(), g.cfg.IPv6Prefix), Prefix: p}, nil
	}
	return Target{Key: p.String(), Prefix: p, Range: true}, nil
}

// Ban bans a client or a range for dur (0: bans.default_duration), as an
// operator: through the same steps as an automatic ban, replacing an
// active ban of the client.
// CheckBan checks an operator's ban as the admin API and the console take
// it, before it reaches the store: duration as typed ("" for
// bans.default_duration), at most a year; the reason as typed. It returns
// the duration and the cleaned reason; an error is the operator's to fix.
func CheckBan(t Target, duration, reason string) (time.Duration, string, error) {
	var dur time.Duration
	if duration != "" {
		d, err := record.ParseDuration(duration)
		if err != nil || d <= 0 {
			return 0, "", fmt.Errorf("duration %q is not a positive duration such as 90s, 15m, 24h or 7d", duration)
		}
		dur = d
	}
	if dur > maxBan {
		return 0, "", errors.New("duration is longer than a year")
	}
	clean, ok := record.CleanReason(reason)
	if !ok {
		return 0, "", errors.New("reason must be printable UTF-8 text of at most 200 bytes, on one line")
	}
	if !t.Identity && t.Prefix.Bits() == 0 {
		return 0, "", errors.New("refusing to ban every address")
	}
	return dur, clean, nil
}

func (g *Gateway) Ban(ctx context.Context, t Target, dur time.Duration, reason string) (record.Ban, error) {
	if dur == 0 {
		dur = g.cfg.Bans.DefaultDuration
	}
	if dur < 0 || dur > maxBan {
		return record.Ban{}, fmt.Errorf("duration %v is not within (0, %v]", dur, maxBan)
	}
	if t.Range {
		return g.bl.banRange(ctx, t.Prefix, dur, reason)
	}
	var ip netip.Addr // an identity has no address to protect
	if !t.Identity {
		ip = t.Prefix.Addr()
	}
	return g.bl.ban(ctx, g.Policy(), record.BanRequest{Client: t.Key, Reason: reason, Detection: "admin", Duration: dur, Replace: true}, ip, nil)
}

// Unban lifts a client's or a range's ban everywhere; it reports whether
// one existed. With forget, the client's ban history goes too, so its next
// automatic ban is not escalated.
func (g *Gateway) Unban(ctx context.Context, t Target, by string, forget bool) (bool, error) {
	if t.Range {
		return g.bl.unbanRange(ctx, t.Prefix, by)
	}
	return g.bl.unban(ctx, t.Key, by, forget)
}

// CacheStatus reports the sizes of this replica's local caches.
type CacheStatus struct {
	Bans, Refusals, Ranges int
}

// Caches returns the sizes of the local caches.
func (g *Gateway) Caches() CacheStatus {
	b, r, c := g.bl.status()
	return CacheStatus{Bans: b, Refusals: r, Ranges: c}
}

// requestID keeps a well-formed incoming X-Request-ID (so traces join up)
// and otherwise makes a new one. Ill-formed ids are replaced: they end up in
// logs.
func requestID(req *http.Request) string {
	if v := req.Header["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		return v[0]
	}
	return newRequestID()
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
