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
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
)

// exchange is one request as a transaction (in the manner of Coraza's
// Transaction): it owns the echo.Context (its request and response
// writer) and the policy snapshot the request started with, and its stages
// are its methods, in the order of the request flow:
//
//	1 resolveClient  2 checkBlocklist  (identify)  3 fetchState
//	4 readBody       5 runChain        6 proxyUpstream  7 observe  8 finish
//
// A stage that answers the request returns the outcome (status, result,
// Retry-After, what to record) instead of writing anything; finish, run
// once by a defer, writes the refusal, counts the request exactly once,
// observes its duration and records the event, whatever happened before
// (a panic included). Exchanges are pooled: a request allocates little.
type exchange struct {
	g     *Gateway
	c     echo.Context
	req   *http.Request // c.Request()
	w     response      // wraps c.Response().Writer
	pol   *Policy
	start time.Time
	r     detections.Request
	state detections.ClientState

	body bytes.Buffer
	// guard is what the proxy reads the buffered body through (nil: none
	// was handed out). See bodyGuard.
	guard *bodyGuard

	// route is the request's route (nil: none matches and there is no
	// top-level upstream); chain is the chain it runs (the route's own or
	// the policy's); clean is the normalised path routes matched on.
	route *route
	chain *detections.Chain
	clean string

	trusted bool // the peer is a trusted proxy
	exempt  bool // on the exempt list: no blocklist, no chain
	// cachedRefusal: the shared state came from the local refusal cache.
	cachedRefusal bool
	// known is a ban this replica knows but has not refreshed within
	// cache_max_stale: it bites if the store cannot answer.
	known      banEntry
	knownUntil time.Time
	hasKnown   bool

	decision detections.Decision
	tls      detections.TLS // backs r.TLS for facts read from headers
	// subjects backs the state query's identities (no allocation for up
	// to four).
	subjects [4]detections.SubjectQuery

	// What the proxy learnt from the upstream.
	status    int // upstream status, 0 if none
	header    http.Header
	upErr     error
	upLatency time.Duration
	// hdr backs the forwarding-header values set in rewrite; the outbound
	// header map is dropped before the exchange is reused.
	hdr [3][1]string
	// proxy is the route's reverse proxy with this exchange's hooks (see
	// proxyUpstream); hooks are bound once, when the exchange is made.
	proxy httputil.ReverseProxy
	hooks proxyHooks

	out outcome
}

// proxyHooks are the ReverseProxy callbacks bound to one exchange, so the
// proxy finds the exchange without a context value or a request copy.
type proxyHooks struct {
	rewrite func(*httputil.ProxyRequest)
	modify  func(*http.Response) error
	failed  func(http.ResponseWriter, *http.Request, error)
}

// response is the client's http.ResponseWriter as the exchange writes to
// it: it records whether the answer has started, so the gateway never
// writes its own over an upstream's. Flush and Hijack reach the
// underlying writer through Unwrap (http.ResponseController).
type response struct {
	http.ResponseWriter
	committed bool
}

// WriteHeader sends the status once; an informational (1xx) status, which
// an upstream may send ahead of its answer, does not commit the response.
func (w *response) WriteHeader(code int) {
	if w.committed {
		return
	}
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.committed = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *response) Write(p []byte) (int, error) {
	if !w.committed {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap returns the client's writer (http.ResponseController).
func (w *response) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bodyGuard fences the pooled body buffer off from the upstream transport.
// A RoundTripper may go on reading a request body after RoundTrip, and so
// after the handler, has returned (an upstream that answers before it has
// read the body; net/http closes the body in another goroutine). The buffer
// is reused by the next request once the exchange is back in the pool, so
// every reader handed to the transport goes through the guard: release
// closes it, and from then on reads fail instead of returning another
// request's bytes. One allocation per request with a body.
type bodyGuard struct {
	mu     sync.Mutex
	closed bool
	data   []byte     // the buffered body (in the exchange's buffer)
	first  bodyReader // req.Body; getBody hands out more
}

type bodyReader struct {
	g *bodyGuard
	r bytes.Reader
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.g.mu.Lock()
	defer b.g.mu.Unlock()
	if b.g.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.r.Read(p)
}

// Close does nothing: the bytes stay readable until the exchange is
// released (a transport may read after Close; see ReverseProxy).
func (b *bodyReader) Close() error { return nil }

func (g *bodyGuard) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

var exchangePool = sync.Pool{New: func() any {
	ex := new(exchange)
	ex.hooks = proxyHooks{rewrite: ex.rewrite, modify: ex.modifyResponse, failed: ex.proxyError}
	return ex
}}

const maxPooledBody = 256 << 10

// handle runs one request through the flow.
func (g *Gateway) handle(c echo.Context) error {
	ex := exchangePool.Get().(*exchange)
	// The exchange writes to the connection's writer under its own
	// response (an upstream's 1xx must not commit echo.Response).
	ex.g, ex.c, ex.req, ex.w.ResponseWriter, ex.pol, ex.start = g, c, c.Request(), c.Response().Writer, g.policy.Load(), g.now()
	defer ex.finish()
	ex.run()
	return nil
}

// run is the request flow. Every path ends with ex.out set.
func (ex *exchange) run() {
	ex.resolveClient()
	if !ex.exempt {
		if ex.checkBlocklist() != nil {
			return
		}
		ex.chain.Identify(ex.req.Context(), &ex.r, ex.g.rec)
		if ex.fetchState() != nil {
			return
		}
	}
	if ex.readBody() != nil {
		return
	}
	if !ex.exempt && ex.runChain() != nil {
		return
	}
	ex.proxyUpstream()
	ex.observe()
}

// refuse records o as the request's outcome and returns it.
func (ex *exchange) refuse(o outcome) *outcome {
	ex.out = o
	return &ex.out
}

// debug reports whether debug lines are wanted (their attributes are only
// built then).
func (ex *exchange) debug() bool {
	return ex.g.log.Enabled(ex.req.Context(), slog.LevelDebug)
}

// 1. resolveClient finds the client under the trust policy only, and names
// the request.
func (ex *exchange) resolveClient() {
	g, req, r := ex.g, ex.req, &ex.r
	ip, trusted := g.ips.resolve(req)
	ex.trusted = trusted
	r.ID = requestID(req)
	ex.w.Header()["X-Request-Id"] = []string{r.ID}
	r.ClientIP, r.ClientKey = ip, detections.ClientKey(ip, g.cfg.IPv6Prefix)
	r.Method, r.Host, r.Proto, r.Header, r.Received = req.Method, req.Host, req.Proto, req.Header, ex.start
	r.TLS = g.requestTLS(req, trusted, &ex.tls)
	ex.exempt = ex.pol.exempt(ip)
	ex.route, ex.clean = ex.pol.matchRoute(req)
	r.Path, r.RawPath, r.RawQuery, r.CleanPath = req.URL.Path, req.URL.EscapedPath(), req.URL.RawQuery, ex.clean // "" without routes: RoutePath normalises Path
	ex.chain = ex.pol.Chain
	if ex.route != nil {
		r.Route = ex.route.name
		if ex.route.chain != nil {
			ex.chain = ex.route.chain
		}
	}
}

// 2. checkBlocklist refuses a client this replica knows is banned, before
// any store call and before the body is read.
func (ex *exchange) checkBlocklist() *outcome {
	e, until, st := ex.g.bl.lookup(ex.r.ClientKey, ex.r.ClientIP, ex.start)
	switch st {
	case bannedNow:
		ex.g.metrics.hitsLocal.Inc()
		return ex.refuseBanned(e, until)
	case bannedOnce:
		ex.known, ex.knownUntil, ex.hasKnown = e, until, true
	}
	return nil
}

// 3. fetchState runs the one store round trip: the blocklist entry and the
// shared state the chain asks for.
func (ex *exchange) fetchState() *outcome {
	g, r := ex.g, &ex.r
	q := detections.StateQuery{Subjects: ex.subjects[:0]}
	ex.chain.Query(r, &q)
	for _, k := range ex.pol.BanKeys {
		if subject, ok := k.Subject(r); ok {
			q.Subject(subject)
		}
	}
	// An identity this replica knows is banned is refused without a round
	// trip, like a banned IP.
	for i := range q.Subjects {
		if e, until, st := g.bl.lookup(q.Subjects[i].Subject, netip.Addr{}, ex.start); st == bannedNow {
			g.metrics.hitsLocal.Inc()
			return ex.refuseBanned(e, until)
		}
	}
	refusalKey := ""
	if !q.RateLimit.IsZero() && q.RateEnforced {
		refusalKey = r.ClientKey // the default bucket: no allocation
		if q.RateKey != "" {
			refusalKey = r.ClientKey + "\x00" + q.RateKey
		}
		if st, until, ok := g.bl.refusal(refusalKey, ex.start); ok {
			// Known over the limit: refuse from the cache, counting locally.
			ex.state = st
			ex.state.Rate.RetryAfter = until.Sub(ex.start)
			r.State, ex.cachedRefusal = &ex.state, true
			g.metrics.hitsLocal.Inc()
			return nil
		}
	}
	ctx := ex.req.Context()
	t0 := time.Now()
	check, err := g.store.Check(ctx, r.ClientKey, &q)
	g.metrics.storeLatency.Observe(time.Since(t0).Seconds())
	if err != nil {
		g.metrics.storeErrors.WithLabelValues("check").Inc()
		grace := g.store.FailingFor(time.Now()) < g.cfg.Bans.StoreErrorGrace
		ex.state = detections.ClientState{Err: err, StoreGrace: grace}
		r.State = &ex.state
		if ex.hasKnown {
			// A ban this replica knows keeps biting until its own expiry
			// while the store cannot answer.
			g.metrics.hitsLocal.Inc()
			return ex.refuseBanned(ex.known, ex.knownUntil)
		}
		if g.cfg.Bans.OnStoreError == detections.StoreBlock && !grace {
			return ex.refuse(outcome{result: resultUnavailable, status: http.StatusServiceUnavailable,
				msg: "store_unavailable", level: slog.LevelWarn,
				attrs: []slog.Attr{slog.String("error", err.Error()), slog.String("policy", "block")}})
		}
		return nil
	}
	if b := check.Ban; b != nil {
		g.metrics.hitsStored.Inc()
		g.bl.remember(b.Client, *b) // the client, or one of its identities
		until := b.Until
		if b.TTL <= 0 {
			until = time.Time{}
		}
		return ex.refuseBanned(banEntry{reason: b.Reason, detection: b.Detection}, until)
	}
	if ex.hasKnown {
		g.bl.forget(r.ClientKey) // unbanned; the notification was lost
	}
	ex.state = check.State
	r.State = &ex.state
	// Refuse later requests from the cache only once counting refusals no
	// longer matters: with ban_after set, each refusal up to the threshold
	// goes to the store, so the hammering count is exact across replicas
	// (and the ban, from then on, is served from the ban cache).
	if refusalKey != "" && ex.state.Rate.Allowed == 0 && ex.state.Rate.RetryAfter > 0 &&
		(q.BanAfter == 0 || ex.state.Refused >= int64(q.BanAfter)) {
		g.bl.refuseUntil(refusalKey, ex.state, ex.start.Add(ex.state.Rate.RetryAfter), ex.start)
	}
	return nil
}

// refuseBanned answers a banned client: 403 with Retry-After. Repeat
// refusals of a banned client are counted, and logged at debug level only:
// the ban itself was the event.
func (ex *exchange) refuseBanned(e banEntry, until time.Time) *outcome {
	o := outcome{result: resultBanned, status: http.StatusForbidden, msg: "banned_request", level: slog.LevelDebug}
	if !until.IsZero() {
		o.retryAfter = until.Sub(ex.start)
	}
	if ex.debug() {
		o.attrs = []slog.Attr{slog.String("detection", e.detection), slog.String("reason", e.reason)}
	}
	return ex.refuse(o)
}

// 4. readBody buffers the body up to max_body_bytes and puts the same bytes
// back for the proxy: the bytes forwarded are the bytes inspected.
func (ex *exchange) readBody() *outcome {
	req, limit := ex.req, ex.maxBody()
	if req.ContentLength > limit {
		return ex.refuseTooLarge()
	}
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	_, err := ex.body.ReadFrom(io.LimitReader(req.Body, limit+1))
	if int64(ex.body.Len()) > limit {
		return ex.refuseTooLarge()
	}
	if err != nil {
		o := outcome{result: resultBadRequest, status: http.StatusBadRequest, closeConn: true,
			msg: "request_body_unreadable", level: slog.LevelInfo}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			o.result, o.status = resultTimeout, http.StatusRequestTimeout
		}
		o.attrs = []slog.Attr{slog.Int("status", o.status), slog.String("error", err.Error())}
		return ex.refuse(o)
	}
	if ex.body.Len() > 0 {
		ex.r.Body = ex.body.Bytes()
	}
	req.ContentLength, req.TransferEncoding = int64(len(ex.r.Body)), nil
	if len(ex.r.Body) == 0 {
		// Nothing buffered, nothing to fence (and no allocation).
		req.Body, req.GetBody = http.NoBody, getNoBody
		return nil
	}
	g := &bodyGuard{data: ex.r.Body}
	g.first = bodyReader{g: g}
	g.first.r.Reset(g.data)
	ex.guard = g
	req.Body = &g.first
	req.GetBody = g.getBody // a pool may resend it to another instance
	return nil
}

func getNoBody() (io.ReadCloser, error) { return http.NoBody, nil }

// getBody returns the buffered body again (http.Request.GetBody), through
// the same guard.
func (g *bodyGuard) getBody() (io.ReadCloser, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, http.ErrBodyReadAfterClose
	}
	b := &bodyReader{g: g}
	b.r.Reset(g.data)
	return b, nil
}

// maxBody is the request's body limit: its route's, else max_body_bytes.
func (ex *exchange) maxBody() int64 {
	if ex.route != nil && ex.route.maxBody > 0 {
		return ex.route.maxBody
	}
	return ex.g.cfg.MaxBodyBytes
}

// refuseTooLarge answers 413 and closes the connection: the rest of the
// body is not read.
func (ex *exchange) refuseTooLarge() *outcome {
	return ex.refuse(outcome{result: resultTooLarge, status: http.StatusRequestEntityTooLarge, closeConn: true,
		msg: "request_too_large", level: slog.LevelInfo,
		attrs: []slog.Attr{slog.Int64("content_length", ex.req.ContentLength), slog.Int64("max_body_bytes", ex.maxBody())}})
}

// 5. runChain runs the detections; an enforced block is the answer and,
// when the verdict asks for it, bans the client first (so the ban exists
// before the client reads its 403).
func (ex *exchange) runChain() *outcome {
	g, r := ex.g, &ex.r
	ctx := ex.req.Context()
	ex.decision = ex.chain.Run(ctx, r, g.rec)
	d := &ex.decision
	if d.Verdict.Action != detections.ActionBlock {
		return nil
	}
	v := d.Verdict
	o := outcome{result: resultBlocked, status: d.Status, retryAfter: v.RetryAfter, header: v.Header, decision: d}
	if ex.cachedRefusal && v.RetryAfter > 0 && v.BlockFor == 0 {
		// A repeat of a refusal the store already made.
		o.result, o.quiet = resultBanned, true
	}
	if v.BlockFor > 0 {
		ex.ban(ctx, d.Detection, v)
	}
	return ex.refuse(o)
}

// ban bans the request's client for a detection's verdict.
func (ex *exchange) ban(ctx context.Context, detection string, v detections.Verdict) {
	who := ex.r.ClientKey
	if v.Subject != "" {
		who = v.Subject // an identity (hashed), not the IP
	}
	req := record.BanRequest{Client: who, Reason: v.Reason, Detection: detection, Duration: v.BlockFor, Escalate: true}
	_, _ = ex.g.bl.ban(ctx, ex.pol, req, ex.r.ClientIP, &ex.r) // failures are logged and counted there
}

// 6. proxyUpstream forwards the request (see proxy.go); a transport error
// becomes the outcome, answered by finish.
func (ex *exchange) proxyUpstream() {
	g, req := ex.g, ex.req
	if ex.route == nil {
		// No route and no top-level upstream: 404, which the observers
		// see like an upstream's (enumeration counts it).
		ex.status = http.StatusNotFound
		ex.out = outcome{result: resultNoRoute, status: http.StatusNotFound, msg: "no_route", level: slog.LevelDebug,
			attrs: []slog.Attr{slog.String("host", safePath(req.Host))}}
		return
	}
	// The route's proxy with this exchange's hooks: the proxy's callbacks
	// reach the exchange directly.
	ex.proxy = *ex.route.proxy
	ex.proxy.Rewrite, ex.proxy.ModifyResponse, ex.proxy.ErrorHandler = ex.hooks.rewrite, ex.hooks.modify, ex.hooks.failed
	t0 := time.Now()
	ex.proxy.ServeHTTP(&ex.w, req)
	ex.upLatency = time.Since(t0)
	g.metrics.upstreamLatency.Observe(ex.upLatency.Seconds())
	if ex.upErr == nil {
		ex.out = outcome{result: resultProxied}
		return
	}
	if errors.Is(req.Context().Err(), context.Canceled) {
		// The client went away; nobody to answer.
		ex.out = outcome{result: resultAborted, msg: "client_gone", level: slog.LevelDebug,
			attrs: []slog.Attr{slog.String("error", errorKind(ex.upErr))}}
		return
	}
	status, kind := http.StatusBadGateway, "unreachable"
	var ne net.Error
	if errors.Is(ex.upErr, context.DeadlineExceeded) || (errors.As(ex.upErr, &ne) && ne.Timeout()) {
		status, kind = http.StatusGatewayTimeout, "timeout"
	}
	g.metrics.upstreamErrors.WithLabelValues(kind).Inc()
	ex.out = outcome{result: resultUpstreamError, status: status, msg: "upstream_error", level: slog.LevelWarn,
		// The error's text can quote the upstream's bytes (a malformed
		// header line: a cookie, a token): only its kind is logged.
		attrs: []slog.Attr{slog.String("error", errorKind(ex.upErr)), slog.Int("status", status), slog.String("kind", kind)}}
}

// 7. observe shows the upstream response to the observers, once the proxy
// has written it and before the handler returns, so the count (and a ban)
// is in the store before this client's next request can be read on any
// replica. Statuses no observer wants cost nothing.
func (ex *exchange) observe() {
	g := ex.g
	if ex.exempt || ex.status == 0 || ex.upErr != nil || !ex.chain.Observes(ex.status) {
		return
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ex.req.Context()), g.cfg.Timeouts.Observe)
	defer cancel()
	d := ex.chain.Observe(octx, &ex.r, detections.Response{Status: ex.status, Header: ex.header, Latency: ex.upLatency}, g.rec)
	if d.Verdict.Action != detections.ActionBlock {
		return
	}
	g.metrics.decisions.WithLabelValues(d.Detection, detections.ModeEnforce.String(), "block").Inc()
	if d.Verdict.BlockFor > 0 {
		ex.ban(octx, d.Detection, d.Verdict)
	}
}

// 8. finish writes the refusal (when the gateway answers and nothing was
// written yet), counts the request once, observes its duration and records
// the outcome; then it returns the exchange to the pool. A panic anywhere
// in the flow ends here too: logged with its stack, answered 500, counted.
func (ex *exchange) finish() {
	if p := recover(); p != nil {
		if p == http.ErrAbortHandler {
			// The proxy aborting a broken response: count it, then let
			// net/http drop the connection.
			ex.out = outcome{result: resultAborted, msg: "response_aborted", level: slog.LevelDebug}
			ex.account()
			ex.release()
			panic(p)
		}
		ex.out = outcome{result: resultInternalError, status: http.StatusInternalServerError, msg: "panic", level: slog.LevelError,
			attrs: []slog.Attr{slog.Any("panic", p), slog.String("stack", string(debug.Stack()))}}
	}
	ex.respond()
	ex.account()
	if sh := ex.pol.Shadow; sh != nil && !ex.exempt && ex.ranChain() {
		sh.offer(ex)
	}
	ex.release()
}

// ranChain reports whether the live chain judged the request (it was not
// refused before, for its client or its form).
func (ex *exchange) ranChain() bool {
	switch ex.out.result {
	case resultProxied, resultUpstreamError, resultNoRoute:
		return true
	case resultBlocked:
		return ex.out.decision != nil && !ex.out.quiet
	}
	return false
}

// respond writes the gateway's own answer.
func (ex *exchange) respond() {
	o, w := &ex.out, &ex.w
	if o.status == 0 || w.committed {
		return
	}
	h := w.Header()
	for k, vs := range o.header {
		h[k] = vs
	}
	if o.retryAfter > 0 {
		h["Retry-After"] = []string{strconv.Itoa(detections.CeilSeconds(o.retryAfter))}
	}
	if o.closeConn {
		h["Connection"] = headerClose
	}
	writeError(w, o.status)
}

// account counts the request under its result and records it: a
// detection's block as a request_blocked event, other refusals as a log
// line, an allowed request at debug level.
func (ex *exchange) account() {
	g, o, r := ex.g, &ex.out, &ex.r
	g.metrics.byResult[o.result].Inc()
	g.metrics.requestDuration.Observe(g.now().Sub(ex.start).Seconds())
	ctx := ex.req.Context()
	switch {
	case o.decision != nil && !o.quiet:
		g.rec.blocked(ctx, r, o.decision)
	case o.msg != "" && g.log.Enabled(ctx, o.level):
		attrs := append([]slog.Attr{slog.String("request_id", r.ID), slog.String("client", r.ClientKey),
			slog.String("method", r.Method), slog.String("route", r.Route), slog.String("path", safePath(r.Path))}, o.attrs...)
		g.log.LogAttrs(ctx, o.level, o.msg, attrs...)
	case o.result == resultProxied && ex.debug():
		g.log.LogAttrs(ctx, slog.LevelDebug, "request_allowed", slog.String("request_id", r.ID),
			slog.String("client", r.ClientKey), slog.String("method", r.Method), slog.String("route", r.Route), slog.String("path", safePath(r.Path)),
			slog.Int("status", ex.status), slog.Duration("upstream", ex.upLatency), slog.Bool("exempt", ex.exempt))
	}
}

// release returns the exchange to the pool.
func (ex *exchange) release() {
	if ex.guard != nil {
		ex.guard.close() // no transport reads the buffer from here on
	}
	ex.r.Reset()
	if ex.body.Cap() > maxPooledBody {
		ex.body = bytes.Buffer{}
	} else {
		ex.body.Reset()
	}
	body, hooks := ex.body, ex.hooks
	*ex = exchange{body: body, hooks: hooks}
	exchangePool.Put(ex)
}

// newRequestID returns 32 random hex digits.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	const hexd = "0123456789abcdef"
	var out [32]byte
	for i, c := range b {
		out[i*2], out[i*2+1] = hexd[c>>4], hexd[c&0xf]
	}
	return string(out[:])
}
