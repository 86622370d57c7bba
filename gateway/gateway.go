package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampartgw/rampart/detections"
)

// Store is what the gateway needs from the shared store. *store.Redis and
// *store.Memory satisfy it.
type Store interface {
	// Check answers, in one round trip, whether client is banned and, if
	// not, the shared state q asks for.
	Check(ctx context.Context, client string, q *detections.StateQuery) (detections.Check, error)
	// Ban puts a client on the blocklist and tells every replica.
	Ban(ctx context.Context, req detections.BanRequest) (detections.Ban, error)
	// SubscribeBans delivers ban and unban notifications until ctx ends.
	SubscribeBans(ctx context.Context, fn func(detections.BanEvent))
	// Ping checks connectivity.
	Ping(ctx context.Context) error
	// Healthy reports whether the store is usable now (circuit closed).
	Healthy() bool
	// Shared reports whether state is shared between replicas.
	Shared() bool
	// ListCIDRBans returns the operators' range bans.
	ListCIDRBans(ctx context.Context) ([]detections.Ban, error)
}

// Policy is the part of the configuration that a reload swaps atomically:
// the chain and the client lists. Requests in flight keep the Policy they
// started with.
type Policy struct {
	Chain *detections.Chain
	// Exempt clients are never blocked by any detection nor the blocklist.
	Exempt func(netip.Addr) bool
	// Protected clients (exempt and allow-listed) are never banned.
	Protected func(netip.Addr) bool
}

// Options are the gateway's collaborators.
type Options struct {
	Store   Store
	Logger  *slog.Logger
	Metrics *Metrics
	Events  EventSink
}

// Gateway is the inline security gateway: an Echo server whose one handler
// runs the request flow and proxies to the upstream.
type Gateway struct {
	cfg      Config
	echo     *echo.Echo
	proxy    *httputil.ReverseProxy
	upstream *url.URL
	ips      *clientIPResolver
	store    Store
	policy   atomic.Pointer[Policy]
	bans     *ttlCache[banEntry]
	refusals *ttlCache[refusalEntry]
	log      *slog.Logger
	metrics  *Metrics
	rec      *recorder
	// cidrs is the local copy of range bans; cidrChanged wakes the syncer.
	cidrs       atomic.Pointer[cidrSet]
	cidrChanged chan struct{}
}

// banEntry is a locally cached ban.
type banEntry struct {
	until     time.Time
	reason    string
	detection string
}

// refusalEntry caches the store's answer for a client known to be refused
// until a time (over a rate limit): its requests are refused from the cache
// without a round trip. GCRA refuses every request until RetryAfter whatever
// other replicas do, so this never refuses what the store would admit.
type refusalEntry struct {
	state detections.ClientState
}

// New builds the gateway: the reverse proxy and its one transport, the Echo
// server with its timeouts, and the local caches.
func New(cfg Config, pol *Policy, opts Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
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
	if cfg.Replica == "" {
		cfg.Replica, _ = os.Hostname()
	}
	trusted, _ := detections.ParseIPSet(cfg.TrustedProxies) // validated above
	up, _ := url.Parse(cfg.Upstream)
	g := &Gateway{
		cfg:      cfg,
		upstream: up,
		ips:      newClientIPResolver(trusted, cfg.ClientIPHeader),
		store:    opts.Store,
		bans:     newTTLCache[banEntry](cfg.BanCacheSize),
		refusals: newTTLCache[refusalEntry](cfg.BanCacheSize),
		log:      opts.Logger.With(slog.String("component", "gateway")),
		metrics:  opts.Metrics,

		cidrChanged: make(chan struct{}, 1),
	}
	g.rec = &recorder{log: g.log, m: g.metrics, sink: opts.Events, replica: cfg.Replica}
	g.policy.Store(pol)
	g.proxy = g.newProxy()

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
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	g.echo = e
	return g, nil
}

// Handler returns the gateway's http.Handler (the Echo instance).
func (g *Gateway) Handler() http.Handler { return g.echo }

// Server returns the configured *http.Server.
func (g *Gateway) Server() *http.Server { return g.echo.Server }

// SetPolicy swaps the chain and lists (config reload). Counters and bans
// live in the store and local caches are kept, so nothing is lost.
func (g *Gateway) SetPolicy(p *Policy) { g.policy.Store(p) }

// Policy returns the active policy.
func (g *Gateway) Policy() *Policy { return g.policy.Load() }

// Metrics returns the gateway's metrics.
func (g *Gateway) Metrics() *Metrics { return g.metrics }

// Serve accepts connections on l until Shutdown.
func (g *Gateway) Serve(l net.Listener) error {
	err := g.echo.Server.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for requests in flight.
func (g *Gateway) Shutdown(ctx context.Context) error {
	return g.echo.Server.Shutdown(ctx)
}

// Run keeps the local ban cache and range bans in sync with the store until
// ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.syncCIDRBans(ctx, 10*time.Second)
	}()
	g.store.SubscribeBans(ctx, g.onBanEvent)
	<-done
}

func (g *Gateway) onBanEvent(ev detections.BanEvent) {
	switch {
	case ev.Reset:
		// Notifications may have been missed: forget what we cannot trust.
		g.bans.clear()
		g.refusals.clear()
		g.wakeCIDRSync()
	case ev.CIDR:
		g.wakeCIDRSync()
	case ev.Unban:
		g.bans.delete(ev.Client)
		g.refusals.delete(ev.Client)
		g.refusals.deletePrefix(ev.Client + "\x00")
	case !ev.Until.IsZero():
		g.cacheBan(ev.Client, banEntry{until: ev.Until})
	}
}

func (g *Gateway) wakeCIDRSync() {
	select {
	case g.cidrChanged <- struct{}{}:
	default:
	}
}

// cacheBan caches a ban locally, at most BanCacheMaxStale ahead.
func (g *Gateway) cacheBan(client string, b banEntry) {
	until := b.until
	if limit := time.Now().Add(g.cfg.BanCacheMaxStale); until.IsZero() || until.After(limit) {
		until = limit
	}
	g.bans.set(client, b, until)
}

// exchange is the per-request state, pooled: the request view, the body
// buffer, and what the proxy learns from the upstream.
type exchange struct {
	r       detections.Request
	state   detections.ClientState
	body    bytes.Buffer
	reader  bodyReader
	trusted bool // the peer is a trusted proxy
	// cachedRefusal: the shared state came from the local refusal cache.
	cachedRefusal bool
	status        int // upstream status, 0 if none
	header        http.Header
	upErr         error
	// hdr backs the forwarding-header values set in rewrite; the outbound
	// header map is dropped before the exchange is reused.
	hdr       [3][1]string
	upLatency time.Duration
}

type bodyReader struct{ bytes.Reader }

func (bodyReader) Close() error { return nil }

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

type exchangeKey struct{}

const maxPooledBody = 256 << 10

func (ex *exchange) reset() {
	ex.r.Reset()
	ex.state = detections.ClientState{}
	if ex.body.Cap() > maxPooledBody {
		ex.body = bytes.Buffer{}
	} else {
		ex.body.Reset()
	}
	ex.reader.Reset(nil)
	ex.trusted, ex.cachedRefusal, ex.status, ex.header, ex.upErr = false, false, 0, nil, nil
	ex.upLatency = 0
}

// Canned answers. A block never says which detection fired.
var (
	bodyDenied     = []byte(`{"error":"Access Denied"}` + "\n")
	statusBodies   = map[int][]byte{}
	statusBodiesMu sync.RWMutex
	headerJSON     = []string{"application/json"}
	headerNoSniff  = []string{"nosniff"}
	headerNoStore  = []string{"no-store"}
)

func errorBody(status int) []byte {
	if status == http.StatusForbidden {
		return bodyDenied
	}
	statusBodiesMu.RLock()
	b, ok := statusBodies[status]
	statusBodiesMu.RUnlock()
	if ok {
		return b
	}
	text := http.StatusText(status)
	if text == "" {
		text = "Error"
	}
	b = []byte(`{"error":` + strconv.Quote(text) + "}\n")
	statusBodiesMu.Lock()
	statusBodies[status] = b
	statusBodiesMu.Unlock()
	return b
}

// writeError writes a JSON error answer.
func writeError(w http.ResponseWriter, status int) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["X-Content-Type-Options"] = headerNoSniff
	h["Cache-Control"] = headerNoStore
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(status))
}

// handle is the request flow (STYLE.md §1): client IP, blocklist, shared
// state, request view, chain, proxy, observers.
func (g *Gateway) handle(c echo.Context) (err error) {
	req, w := c.Request(), c.Response()
	start := time.Now()
	ex := exchangePool.Get().(*exchange)
	r := &ex.r
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p) // the proxy aborting a broken response: let net/http drop the connection
			}
			g.log.LogAttrs(req.Context(), slog.LevelError, "panic", slog.String("request_id", r.ID),
				slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			if !w.Committed {
				writeError(w, http.StatusInternalServerError)
			}
			err = nil
		}
		ex.reset()
		exchangePool.Put(ex)
		g.metrics.requestDuration.Observe(time.Since(start).Seconds())
	}()
	pol := g.policy.Load()

	// 1. Client IP, under the trust policy only.
	ip, trusted := g.ips.resolve(req)
	ex.trusted = trusted
	r.ID = requestID(req)
	w.Header()["X-Request-Id"] = []string{r.ID}
	r.ClientIP, r.ClientKey = ip, detections.ClientKey(ip, g.cfg.IPv6Prefix)
	r.Method, r.Host, r.Proto, r.Header, r.Received = req.Method, req.Host, req.Proto, req.Header, start
	r.Path, r.RawPath, r.RawQuery = req.URL.Path, req.URL.EscapedPath(), req.URL.RawQuery
	exempt := pol.Exempt != nil && pol.Exempt(ip)

	if !exempt {
		// 2. Blocklist: local cache first, then (below) the store, before
		// the body is read.
		if b, _, ok := g.bans.get(r.ClientKey, start); ok {
			g.metrics.blocklistHits.WithLabelValues("local").Inc()
			g.refuseBanned(c, r, b)
			return nil
		}
		if e, ok := g.cidrs.Load().match(ip, start); ok {
			g.metrics.blocklistHits.WithLabelValues("local").Inc()
			g.refuseBanned(c, r, banEntry{until: e.until, reason: e.reason, detection: "admin"})
			return nil
		}
		// No per-request timer: the store call is bounded by redis.timeout
		// (microseconds while the circuit is open) and detections only
		// compute on what was fetched.
		ctx := req.Context()
		if done := g.fetchState(ctx, c, ex, pol); done {
			return nil
		}
		// 3. Request view: the body, bounded.
		if done := g.readBody(c, ex); done {
			return nil
		}
		// 4. The chain.
		d := pol.Chain.Run(ctx, r, g.rec)
		if d.Verdict.Action == detections.ActionBlock {
			g.enforce(ctx, c, ex, pol, d)
			return nil
		}
	} else if done := g.readBody(c, ex); done {
		return nil
	}

	// 5. Proxy.
	g.metrics.reqProxied.Inc()
	g.serveProxy(c, ex)
	if g.log.Enabled(req.Context(), slog.LevelDebug) {
		g.log.LogAttrs(req.Context(), slog.LevelDebug, "request_allowed", slog.String("request_id", r.ID),
			slog.String("client", r.ClientKey), slog.String("method", r.Method), slog.String("route", route(r.Path)),
			slog.Int("status", ex.status), slog.Duration("upstream", ex.upLatency), slog.Bool("exempt", exempt))
	}

	// 6. Observers: upstream responses only, once the proxy has written the
	// response and before the handler returns, so the count (and a ban) is
	// in Redis before this client's next request can be read on any replica.
	// Statuses no observer wants cost nothing.
	if !exempt && ex.status != 0 && ex.upErr == nil && pol.Chain.Observes(ex.status) {
		g.observe(req.Context(), ex, pol)
	}
	return nil
}

// fetchState runs the one store round trip (blocklist + shared state). It
// reports true when the request was answered (banned, or store down with a
// fail-closed blocklist).
func (g *Gateway) fetchState(ctx context.Context, c echo.Context, ex *exchange, pol *Policy) bool {
	r := &ex.r
	var q detections.StateQuery
	pol.Chain.Query(r, &q)
	refusalKey := ""
	if !q.RateLimit.IsZero() {
		refusalKey = r.ClientKey // the default bucket: no allocation
		if q.RateKey != "" {
			refusalKey = r.ClientKey + "\x00" + q.RateKey
		}
		if e, until, ok := g.refusals.get(refusalKey, r.Received); ok {
			// Known over the limit: refuse from the cache, counting locally.
			ex.state = e.state
			ex.state.Rate.RetryAfter = until.Sub(r.Received)
			ex.state.Refused++
			g.refusals.update(refusalKey, r.Received, func(v *refusalEntry) { v.state.Refused++ })
			r.State = &ex.state
			ex.cachedRefusal = true
			g.metrics.blocklistHits.WithLabelValues("local").Inc()
			return false
		}
	}
	t0 := time.Now()
	check, err := g.store.Check(ctx, r.ClientKey, &q)
	g.metrics.storeLatency.Observe(time.Since(t0).Seconds())
	if err != nil {
		g.metrics.storeErrors.WithLabelValues("check").Inc()
		ex.state = detections.ClientState{Err: err}
		r.State = &ex.state
		if g.cfg.BlocklistOnStoreError == detections.StoreBlock {
			g.log.LogAttrs(ctx, slog.LevelWarn, "store_unavailable", slog.String("request_id", r.ID),
				slog.String("client", r.ClientKey), slog.String("error", err.Error()), slog.String("policy", "block"))
			g.metrics.requests.WithLabelValues(resultUnavailable).Inc()
			writeError(c.Response(), http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	if b := check.Ban; b != nil {
		g.metrics.blocklistHits.WithLabelValues("store").Inc()
		be := banEntry{until: b.Until, reason: b.Reason, detection: b.Detection}
		if b.TTL == 0 {
			be.until = time.Time{}
		}
		g.cacheBan(r.ClientKey, be)
		g.refuseBanned(c, r, be)
		return true
	}
	ex.state = check.State
	r.State = &ex.state
	// Refuse later requests from the cache only once counting refusals no
	// longer matters: with ban_after set, each refusal up to the threshold
	// goes to Redis, so the hammering count is exact across replicas (and
	// the ban, from then on, is served from the ban cache).
	if refusalKey != "" && ex.state.Rate.Allowed == 0 && ex.state.Rate.RetryAfter > 0 &&
		(q.BanAfter == 0 || ex.state.Refused >= int64(q.BanAfter)) {
		g.refusals.set(refusalKey, refusalEntry{state: ex.state}, r.Received.Add(ex.state.Rate.RetryAfter))
	}
	return false
}

// refuseBanned answers a banned client: 403 with Retry-After.
func (g *Gateway) refuseBanned(c echo.Context, r *detections.Request, b banEntry) {
	g.metrics.reqBanned.Inc()
	w := c.Response()
	left := time.Until(b.until)
	if !b.until.IsZero() && left > 0 {
		w.Header()["Retry-After"] = []string{strconv.Itoa(int((left + time.Second - 1) / time.Second))}
	}
	if g.log.Enabled(c.Request().Context(), slog.LevelDebug) {
		g.log.LogAttrs(c.Request().Context(), slog.LevelDebug, "banned_request", slog.String("request_id", r.ID),
			slog.String("client", r.ClientKey), slog.String("method", r.Method), slog.String("route", route(r.Path)),
			slog.String("detection", b.detection), slog.String("reason", b.reason))
	}
	writeError(w, http.StatusForbidden)
}

// readBody buffers the body up to MaxBodyBytes and puts the same bytes back
// for the proxy. It reports true when it answered the request itself.
func (g *Gateway) readBody(c echo.Context, ex *exchange) bool {
	req, w := c.Request(), c.Response()
	if req.ContentLength > g.cfg.MaxBodyBytes {
		g.refuseTooLarge(c, ex)
		return true
	}
	if req.Body == nil || req.Body == http.NoBody {
		return false
	}
	_, err := ex.body.ReadFrom(io.LimitReader(req.Body, g.cfg.MaxBodyBytes+1))
	if int64(ex.body.Len()) > g.cfg.MaxBodyBytes {
		g.refuseTooLarge(c, ex)
		return true
	}
	if err != nil {
		status := http.StatusBadRequest
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			status = http.StatusRequestTimeout
		}
		g.metrics.requests.WithLabelValues(resultBadRequest).Inc()
		g.log.LogAttrs(req.Context(), slog.LevelInfo, "request_body_unreadable", slog.String("request_id", ex.r.ID),
			slog.String("client", ex.r.ClientKey), slog.Int("status", status), slog.String("error", err.Error()))
		w.Header()["Connection"] = []string{"close"}
		writeError(w, status)
		return true
	}
	if ex.body.Len() > 0 {
		ex.r.Body = ex.body.Bytes()
	}
	ex.reader.Reset(ex.r.Body)
	req.Body = &ex.reader
	req.ContentLength = int64(len(ex.r.Body))
	req.TransferEncoding = nil
	return false
}

func (g *Gateway) refuseTooLarge(c echo.Context, ex *exchange) {
	g.metrics.requests.WithLabelValues(resultTooLarge).Inc()
	g.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request_too_large", slog.String("request_id", ex.r.ID),
		slog.String("client", ex.r.ClientKey), slog.String("method", ex.r.Method), slog.String("route", route(ex.r.Path)),
		slog.Int64("content_length", c.Request().ContentLength), slog.Int64("max_body_bytes", g.cfg.MaxBodyBytes))
	// The rest of the body is not read: close the connection after answering.
	c.Response().Header()["Connection"] = []string{"close"}
	writeError(c.Response(), http.StatusRequestEntityTooLarge)
}

// enforce answers a blocked request and, when the verdict asks for it, bans
// the client.
func (g *Gateway) enforce(ctx context.Context, c echo.Context, ex *exchange, pol *Policy, d detections.Decision) {
	r, w := &ex.r, c.Response()
	v := d.Verdict
	if ex.cachedRefusal && v.RetryAfter > 0 && v.BlockFor == 0 {
		// A repeat of a refusal the store already made: count it, do not
		// flood the logs and the event stream.
		g.metrics.reqBanned.Inc()
	} else {
		g.metrics.reqBlocked.Inc()
		g.rec.blocked(ctx, r, d)
	}
	if v.BlockFor > 0 && (pol.Protected == nil || !pol.Protected(r.ClientIP)) {
		g.ban(ctx, r, d.Detection, v)
	}
	h := w.Header()
	for k, vs := range v.Header {
		h[k] = vs
	}
	if v.RetryAfter > 0 {
		h["Retry-After"] = []string{strconv.Itoa(int((v.RetryAfter + time.Second - 1) / time.Second))}
	}
	writeError(w, d.Status)
}

// ban records a ban in the store (synchronously, so the next request on any
// replica sees it) and in the local cache.
func (g *Gateway) ban(ctx context.Context, r *detections.Request, detection string, v detections.Verdict) {
	dur := v.BlockFor
	b, err := g.store.Ban(context.WithoutCancel(ctx), detections.BanRequest{
		Client: r.ClientKey, Reason: v.Reason, Detection: detection, Duration: dur,
		Replica: g.cfg.Replica, Escalate: true,
	})
	if err != nil {
		g.metrics.storeErrors.WithLabelValues("ban").Inc()
		g.log.LogAttrs(ctx, slog.LevelWarn, "ban_failed", slog.String("request_id", r.ID),
			slog.String("client", r.ClientKey), slog.String("detection", detection), slog.String("error", err.Error()))
		// Still refuse locally for the base duration: the replica knows.
		g.cacheBan(r.ClientKey, banEntry{until: time.Now().Add(dur), reason: v.Reason, detection: detection})
		return
	}
	g.cacheBan(r.ClientKey, banEntry{until: b.Until, reason: b.Reason, detection: b.Detection})
	if b.New {
		g.rec.banned(ctx, r, b)
	}
}

// observe shows the upstream response to the observers; a block there
// feeds the blocklist.
func (g *Gateway) observe(ctx context.Context, ex *exchange, pol *Policy) {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ObserveTimeout)
	defer cancel()
	d := pol.Chain.Observe(octx, &ex.r, detections.Response{Status: ex.status, Header: ex.header, Latency: ex.upLatency}, g.rec)
	if d.Verdict.Action != detections.ActionBlock {
		return
	}
	g.metrics.decisions.WithLabelValues(d.Detection, detections.ModeEnforce.String(), "block").Inc()
	if d.Verdict.BlockFor > 0 && (pol.Protected == nil || !pol.Protected(ex.r.ClientIP)) {
		g.ban(octx, &ex.r, d.Detection, d.Verdict)
	}
}

// requestID keeps a well-formed incoming X-Request-ID (so traces join up)
// and otherwise makes a new one. Ill-formed ids are replaced: they end up in
// logs.
func requestID(req *http.Request) string {
	if v := req.Header["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		return v[0]
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	const hexd = "0123456789abcdef"
	var out [32]byte
	for i, c := range b {
		out[i*2], out[i*2+1] = hexd[c>>4], hexd[c&0xf]
	}
	return string(out[:])
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
