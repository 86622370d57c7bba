package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/replay"
	"github.com/rampartgw/rampart/store"
)

// The replay engine: each configuration gets its own gateway, built from
// its file by the same load and buildPolicy the gateway runs at start, on
// its own in-memory store, on a simulated clock, behind a fake upstream.
// Requests go through the gateway's real http.Handler in process, one at a
// time, so rate limits, enumeration counters, bans and escalation evolve as
// they would have on one replica that saw the recorded traffic.

const replayUsage = `usage: gateway replay [flags] -candidate CANDIDATE.yaml FILE...

Replays recorded requests through the current configuration (-config,
defaults when omitted) and a candidate one, in process (no network), and
reports what the candidate would change. Each configuration runs the real
detection chain on its own in-memory store, on a clock set from the records'
timestamps (records without one are -interval apart), so rate limits,
enumeration, bans and escalation replay as they would have happened.

Inputs (-format auto detects each file): corpus JSON lines, HAR 1.2
(browser or proxy exports), nginx/Apache combined or common logs; plain,
gzip or zlib; "-" is standard input.

What a combined log cannot show, so cannot be judged from it: bodies (payload
and crs analysis of forms, JSON, multipart, XML), cookies and every header
but User-Agent and Referer (cookie and header locations, jwt, content-type
and charset protocol checks), TLS facts (tls); user_agent on common-format
lines (no User-Agent logged). Its 1-second times make same-second requests
arrive at once. The report lists these limits for every format it read.
Whatever the format, nothing runs in the background and nothing is fetched:
no TLS connection (tls judges only facts a trusted proxy's recorded headers
carry), no JWKS keys or weak-secret sweeps (jwt), no ip feeds; each
configuration starts with an empty store (no operator bans).

Exit status: 0 within the gate, 1 when the candidate blocks more than
-max-new-blocks requests the current configuration allowed, 2 on a usage or
input error (with -strict, also on invalid records and judge errors).

Flags:
`

// replayDefaultClient is the address of records that have none when
// -clients keep leaves them without one: TEST-NET-1 (RFC 5737), one
// client for all of them.
var replayDefaultClient = netip.AddrFrom4([4]byte{192, 0, 2, 1})

// replayFlags is the replay command line.
type replayFlags struct {
	current, candidate string
	output             string
	maxNewBlocks       int
	strict             bool
	interval           time.Duration
	format             string
	examples           int
	clients            string
	start              string
	upstream           string
	recordedStatus     bool
	routeDepth         int
	hashClients        bool
	progress           bool
	files              []string
}

func parseReplayFlags(args []string, stderr io.Writer) (replayFlags, error) {
	fs := flag.NewFlagSet("gateway replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		fs.PrintDefaults()
	}
	var f replayFlags
	fs.StringVar(&f.current, "config", "", "the current configuration file; empty: the built-in defaults")
	fs.StringVar(&f.candidate, "candidate", "", "the candidate configuration file (required)")
	fs.StringVar(&f.output, "o", "text", "report format: text or json")
	fs.IntVar(&f.maxNewBlocks, "max-new-blocks", 0, "exit 1 when the candidate blocks more than this many requests the current configuration allowed (negative: no gate)")
	fs.BoolVar(&f.strict, "strict", false, "exit 2 on any invalid record or judge error")
	fs.DurationVar(&f.interval, "interval", 100*time.Millisecond, "simulated time between records without a timestamp")
	fs.StringVar(&f.format, "format", "auto", "input format: auto, jsonl, har or combined")
	fs.IntVar(&f.examples, "examples", 3, "examples kept per kind of change")
	fs.StringVar(&f.clients, "clients", "each", "client of records without an address: each (its own synthetic address), one (all one client), keep (all "+replayDefaultClient.String()+")")
	fs.StringVar(&f.start, "start", replay.DefaultStart.Format(time.RFC3339), "simulated time of the first record when it has no timestamp (RFC 3339)")
	fs.StringVar(&f.upstream, "upstream-status", "200", "what the fake upstream answers records without a recorded status: a status, and PATH_PREFIX=STATUS overrides, comma-separated (e.g. 404,/api/=200)")
	fs.BoolVar(&f.recordedStatus, "recorded-status", true, "the fake upstream answers a record's recorded status (HAR, combined logs, jsonl status) when it has one, so enumeration counts what the upstream answered")
	fs.IntVar(&f.routeDepth, "route-depth", 2, "path segments of the by-route table")
	fs.BoolVar(&f.hashClients, "hash-clients", false, "show clients as keyed hashes in the report")
	fs.BoolVar(&f.progress, "progress", true, "report progress on standard error for inputs of 4 MB or more")
	if err := fs.Parse(args); err != nil {
		return f, errUsage
	}
	f.files = fs.Args()
	var problems []string
	if f.candidate == "" {
		problems = append(problems, "-candidate is required")
	}
	if len(f.files) == 0 {
		problems = append(problems, "no input files")
	}
	if f.output != "text" && f.output != "json" {
		problems = append(problems, fmt.Sprintf("-o %q is not text or json", f.output))
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "gateway replay: %s\n", strings.Join(problems, "; "))
		fs.Usage()
		return f, errUsage
	}
	return f, nil
}

// exitError carries a process exit status other than 0 (see
// replay.ExitStatus: 1 the gate failed, 2 a usage or input error), for
// main to exit with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Unwrap returns the cause (errUsage after a usage message).
func (e *exitError) Unwrap() error { return e.err }

// ExitCode returns the process exit status.
func (e *exitError) ExitCode() int { return e.code }

// runReplay is the replay subcommand: it writes the report to stdout and
// the gate's verdict to stderr, and returns an *exitError when the exit
// status is not 0.
func runReplay(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	fl, err := parseReplayFlags(args, stderr)
	if err != nil {
		return &exitError{code: replay.ExitFailed, err: err}
	}
	fail := func(err error) error {
		code, _ := replay.ExitStatus(nil, err, replay.Gate{})
		return &exitError{code: code, err: fmt.Errorf("replay: %w", err)}
	}
	rc := replay.DefaultRunConfig()
	rc.Interval, rc.Examples, rc.RouteDepth, rc.HashClients = fl.interval, fl.examples, fl.routeDepth, fl.hashClients
	rc.ClientIPs = replay.ClientIPPolicy(fl.clients)
	if rc.Start, err = time.Parse(time.RFC3339Nano, fl.start); err != nil {
		return fail(fmt.Errorf("-start: %w", err))
	}
	format, err := replay.ParseFormat(fl.format)
	if err != nil {
		return fail(err)
	}
	if err := rc.Validate(); err != nil {
		return fail(err)
	}
	up, err := parseUpstreamStatus(fl.upstream)
	if err != nil {
		return fail(fmt.Errorf("-upstream-status: %w", err))
	}
	eo := engineOptions{upstream: up, recordedStatus: fl.recordedStatus, getenv: getenv, share: new(requestShare)}
	current, err := newReplayEngineFile(fl.current, "current", eo)
	if err != nil {
		return fail(err)
	}
	candidate, err := newReplayEngineFile(fl.candidate, "candidate", eo)
	if err != nil {
		return fail(err)
	}
	in, err := replay.Open(fl.files, replay.ReadConfig{Format: format, MaxRecordBytes: replay.DefaultMaxRecordBytes})
	if err != nil {
		return fail(err)
	}
	defer in.Close()
	if fl.progress {
		rc.Progress = replay.NewProgress(stderr, in.Size(), in.BytesRead, time.Now)
	}
	rep, runErr := replay.Run(ctx, in.Records(), current, candidate, rc)
	if rep != nil {
		var werr error
		if fl.output == "json" {
			werr = replay.WriteJSON(stdout, rep)
		} else {
			werr = replay.WriteText(stdout, rep)
		}
		if werr != nil && runErr == nil {
			runErr = fmt.Errorf("writing the report: %w", werr)
		}
	}
	for _, e := range []*replayEngine{current, candidate} {
		if s := e.stats.summary(); s != "" {
			fmt.Fprintf(stderr, "gateway replay: %s: %s\n", e.name, s)
		}
	}
	code, why := replay.ExitStatus(rep, runErr, replay.Gate{MaxNewBlocks: fl.maxNewBlocks, Strict: fl.strict})
	if code == replay.ExitOK {
		fmt.Fprintf(stderr, "gateway replay: %s\n", why)
		return nil
	}
	if runErr != nil {
		return &exitError{code: code, err: fmt.Errorf("replay: %w", runErr)}
	}
	return &exitError{code: code, err: errors.New("replay: " + why)}
}

// engineOptions are the settings both engines share.
type engineOptions struct {
	upstream upstreamStatus
	// recordedStatus answers a record's recorded status when it has one.
	recordedStatus bool
	getenv         func(string) (string, bool)
	// share, when set, is the record parse the engines share (one replay's
	// current and candidate).
	share *requestShare
}

// newReplayEngineFile loads path (empty: defaults) as the gateway does at
// start, every error at once, and builds its engine.
func newReplayEngineFile(path, name string, o engineOptions) (*replayEngine, error) {
	l, err := load(path, o.getenv)
	if err != nil {
		return nil, fmt.Errorf("%s configuration %s: %w", name, displayPath(path), err)
	}
	e, err := newReplayEngine(l, name, o)
	if err != nil {
		return nil, fmt.Errorf("%s configuration %s: %w", name, displayPath(path), err)
	}
	return e, nil
}

// replayEngine judges records under one configuration: a replay.Judge
// that owns one in-process gateway. Judge is called from one goroutine, in
// record order (replay.Run's contract); the fields below are per request.
type replayEngine struct {
	name    string
	handler http.Handler
	opts    engineOptions
	// maxHeader is the request-line-plus-headers size net/http refuses
	// with 431 before any handler runs.
	maxHeader int
	// clock is the simulated now (Unix nanoseconds), read by the gateway
	// and the stores.
	clock atomic.Int64
	// bans turns the capture of banned_request lines on once the first
	// ban exists: only then can a request be refused as banned.
	bans  atomic.Bool
	stats engineStats

	// The request being judged.
	rec      *replay.Record
	proxied  bool
	upStatus int
	blocked  record.Event
	hasBlock bool
	ban      record.Event
	hasBan   bool
	banned   struct{ detection, reason string }
	w        replayWriter
	body     replayBody
	resp     http.Response
	// shared is the record parse both engines of a replay use.
	shared *requestShare
}

// engineStats counts what a replay cannot put in the comparison: detection
// failures (the gateway fails open) and monitor-mode would-blocks.
type engineStats struct {
	detectionErrors, wouldBlock int
}

func (s engineStats) summary() string {
	var parts []string
	if s.detectionErrors > 0 {
		parts = append(parts, fmt.Sprintf("%d detection errors (the gateway failed open on them)", s.detectionErrors))
	}
	if s.wouldBlock > 0 {
		parts = append(parts, fmt.Sprintf("%d would_block events of monitor-mode detections (counted as allowed)", s.wouldBlock))
	}
	return strings.Join(parts, ", ")
}

// replayStoreEntries bounds the replay's memory store for a configuration
// whose production store is Redis (which does not evict): room for a few
// hundred thousand clients' buckets, counters and bans.
const replayStoreEntries = 2_000_000

// newReplayEngine builds the gateway of a loaded configuration for replay.
// The store is always the in-memory one (redis.url is ignored: a replay
// never touches shared state), and so is the fallback limiter, both on the
// simulated clock. The ban snapshot file is not read. Logs, metrics and
// events go nowhere but into the judgement.
func newReplayEngine(l *loaded, name string, o engineOptions) (*replayEngine, error) {
	e := &replayEngine{name: name, opts: o, shared: o.share}
	if e.shared == nil {
		e.shared = new(requestShare)
	}
	e.clock.Store(replay.DefaultStart.UnixNano())
	e.w.h = http.Header{}
	now := e.now
	discard := slog.New(slog.DiscardHandler)
	rc, mc := l.storeConfigs(discard)
	if rc.URL != "" {
		// Production shares state in Redis, which does not evict: the
		// memory store standing in for it gets more room than memory's.
		mc.MaxEntries = max(mc.MaxEntries, replayStoreEntries)
	}
	mc.Now = now
	mem := store.NewMemory(mc)
	fc := store.DefaultMemoryConfig()
	fc.Now = now
	getenv := o.getenv
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	// TLS facts are not recorded, so the jwt detection's "credentials over
	// the plain-HTTP listener" cannot be told apart: every replayed request
	// counts as arriving on the main listener.
	dp := deps{counter: mem, fallback: store.NewMemory(fc),
		jwt: detections.JWTDeps{Spread: mem, Getenv: getenv, Logger: discard}}
	pol, err := l.buildPolicy(dp)
	if err != nil {
		return nil, err
	}
	gc := l.gatewayConfig()
	gc.Bans.SnapshotFile = ""
	gc.Replica = "replay-" + name
	g, err := gateway.New(gc, pol, gateway.Options{
		Store:     mem,
		Logger:    slog.New(banLog{e}),
		Metrics:   gateway.NewMetrics(),
		Events:    eventCapture{e},
		Clock:     now,
		Transport: fakeUpstream{e},
	})
	if err != nil {
		return nil, err
	}
	e.handler = g.Handler()
	e.maxHeader = gc.MaxHeaderBytes + 4096 // net/http's read limit: MaxHeaderBytes plus its bufio slack
	return e, nil
}

func (e *replayEngine) now() time.Time { return time.Unix(0, e.clock.Load()).UTC() }

// Reasons and rule ids of the refusals that are the gateway's own, not a
// detection's (Outcome.Detection "gateway").
const (
	replayGateway         = "gateway"
	reasonBadRequest      = "bad_request"
	reasonHeaderTooLarge  = "header_too_large"
	reasonRequestTooLarge = "request_too_large"
	reasonUnavailable     = "unavailable"
	reasonNoRoute         = "no_route"
	replayRuleMaxBody     = "max_body_bytes"
	replayRuleMaxHeader   = "max_header_bytes"
	replayRuleTarget      = "request_target"
	rateLimitField        = "Ratelimit" // set by rate_limit refusals only
)

// Judge runs r through the gateway at r.At and says what it did.
func (e *replayEngine) Judge(ctx context.Context, r *replay.Record) (replay.Outcome, error) {
	at := r.At
	if at.IsZero() {
		at = r.Time
	}
	if at.IsZero() {
		at = replay.DefaultStart
	}
	e.clock.Store(at.UnixNano())

	req, o, ok := e.request(ctx, r)
	if !ok {
		return o, nil
	}
	e.rec, e.proxied, e.upStatus, e.hasBlock, e.hasBan = r, false, 0, false, false
	e.banned.detection, e.banned.reason = "", ""
	e.w.reset()
	e.handler.ServeHTTP(&e.w, req)
	e.rec = nil
	return e.outcome(), nil
}

// outcome reads what the request did from the fake upstream (was it
// proxied?), the events the gateway emitted during it, the banned_request
// line and the answer.
func (e *replayEngine) outcome() replay.Outcome {
	var o replay.Outcome
	if e.hasBan {
		o.BanFor, _ = time.ParseDuration(e.ban.BanFor)
	}
	if e.proxied {
		// Allowed; a ban by a response observer (enumeration) bites from
		// the next request on.
		o.Status = e.upStatus
		return o
	}
	o.Blocked, o.Status = true, e.w.status
	switch {
	case e.hasBlock:
		ev := &e.blocked
		o.Detection, o.Reason, o.RuleID, o.Location = ev.Detection, ev.Reason, ev.Rule, ev.Location
		if ev.Status != 0 {
			o.Status = ev.Status
		}
		o.RateLimited = ev.Reason == detections.ReasonRateLimited
	case len(e.w.h[rateLimitField]) > 0:
		// A repeat refusal of a client the store already found over its
		// limit, answered from the gateway's refusal cache without an event:
		// only rate_limit sets the RateLimit field.
		o.Detection, o.Reason, o.RateLimited = "rate_limit", detections.ReasonRateLimited, true
	case e.banned.detection != "" || (o.Status == http.StatusForbidden && e.bans.Load()):
		o.Banned, o.Detection, o.Reason = true, e.banned.detection, e.banned.reason
	case o.Status == http.StatusRequestEntityTooLarge:
		o.Detection, o.Reason, o.RuleID = replayGateway, reasonRequestTooLarge, replayRuleMaxBody
	case o.Status == http.StatusServiceUnavailable:
		o.Detection, o.Reason = replayGateway, reasonUnavailable
	case o.Status == http.StatusNotFound:
		// The gateway's own 404: no route matches and there is no
		// top-level upstream.
		o.Detection, o.Reason = replayGateway, reasonNoRoute
	default:
		o.Detection, o.Reason = replayGateway, strings.ToLower(strings.ReplaceAll(http.StatusText(o.Status), " ", "_"))
	}
	return o
}

// request builds the *http.Request net/http's server would hand the
// gateway for r. ok is false when net/http would refuse the request itself
// (the outcome says how).
func (e *replayEngine) request(ctx context.Context, r *replay.Record) (*http.Request, replay.Outcome, bool) {
	p := e.shared.parse(r, e.clientIP(r))
	switch {
	case p.size > e.maxHeader:
		return nil, refusal(http.StatusRequestHeaderFieldsTooLarge, reasonHeaderTooLarge, replayRuleMaxHeader), false
	case p.bad != "":
		return nil, refusal(http.StatusBadRequest, reasonBadRequest, p.bad), false
	}
	// The URL is copied: the gateway and the proxy may change their
	// request's; the header map is only read (the proxy clones it).
	u := *p.url
	req := &http.Request{
		Method: r.Method, URL: &u, Proto: p.proto, ProtoMajor: p.major, ProtoMinor: p.minor,
		Header: p.header, Host: p.host, RequestURI: r.Target, Body: http.NoBody,
		RemoteAddr: p.remote,
	}
	if len(r.Body) > 0 {
		e.body.Reset(r.Body)
		req.Body, req.ContentLength = &e.body, int64(len(r.Body))
	}
	return req.WithContext(ctx), replay.Outcome{}, true
}

func refusal(status int, reason, rule string) replay.Outcome {
	return replay.Outcome{Blocked: true, Status: status, Detection: replayGateway, Reason: reason, RuleID: rule}
}

// requestShare is what the engines of one replay share: the parse of the
// record being judged, made once for both (each judges the same record in
// turn).
type requestShare struct {
	key    shareKey
	parsed parsedRecord
}

// shareKey tells records apart: the same *Record is judged by both
// engines before the next one comes.
type shareKey struct {
	rec    *replay.Record
	source string
	line   int
	entry  int
	at     time.Time
	target string
	client netip.Addr
}

// parsedRecord is a record as net/http's server would have parsed it.
type parsedRecord struct {
	url          *url.URL
	proto        string
	major, minor int
	header       http.Header
	host, remote string
	size         int    // request line and headers, as net/http bounds them
	bad          string // why net/http would answer 400 ("" when it would not)
}

// parse returns r's parse, from the share when the other engine already
// made it.
func (s *requestShare) parse(r *replay.Record, client netip.Addr) *parsedRecord {
	k := shareKey{r, r.Source, r.Line, r.Entry, r.At, r.Target, client}
	if s.key == k && s.parsed.header != nil {
		return &s.parsed
	}
	s.key, s.parsed = k, parseRecord(r, client)
	return &s.parsed
}

func parseRecord(r *replay.Record, client netip.Addr) parsedRecord {
	p := parsedRecord{proto: r.Proto, host: r.Host, header: make(http.Header, len(r.Headers)+1)}
	p.size = len(r.Method) + len(r.Target) + len(r.Proto) + 4 + len(r.Host) + 8
	// One backing array for the values: a field seen once (the usual
	// case) takes a one-element slice of it; a repeated one grows its own.
	values := make([]string, len(r.Headers))
	for i, f := range r.Headers {
		p.size += len(f.Name) + len(f.Value) + 4
		k := textproto.CanonicalMIMEHeaderKey(f.Name)
		v := strings.Trim(f.Value, " \t")
		if vs, ok := p.header[k]; ok {
			p.header[k] = append(vs, v)
			continue
		}
		values[i] = v
		p.header[k] = values[i : i+1 : i+1]
	}
	if len(r.Body) > 0 {
		if _, ok := p.header["Content-Length"]; !ok {
			// Recordings never keep framing headers; every client that
			// sends a body with a length sends this one.
			p.header["Content-Length"] = []string{strconv.Itoa(len(r.Body))}
		}
	}
	if p.proto == "" {
		p.proto = "HTTP/1.1"
	}
	var ok bool
	if p.major, p.minor, ok = http.ParseHTTPVersion(p.proto); !ok {
		p.bad = "proto"
	}
	if r.Target == "*" {
		p.url = &url.URL{Path: "*"}
	} else {
		u, err := url.ParseRequestURI(r.Target)
		if err != nil {
			u, p.bad = &url.URL{}, replayRuleTarget
		}
		p.url = u
	}
	if p.url.Host != "" {
		p.host = p.url.Host // absolute-form: its authority wins, as in net/http
	}
	p.remote = netip.AddrPortFrom(client, 40000).String()
	return p
}

// clientIP is the socket peer of the replayed request: the recorded
// address, or replayDefaultClient. The configuration's trusted_proxies
// apply to it as at run time, so a record whose peer is a trusted load
// balancer is judged by its X-Forwarded-For.
func (e *replayEngine) clientIP(r *replay.Record) netip.Addr {
	if r.ClientIP.IsValid() {
		return r.ClientIP
	}
	return replayDefaultClient
}

// replayBody is the request body: the record's bytes, read once.
type replayBody struct{ bytes.Reader }

func (*replayBody) Close() error { return nil }

// replayWriter is the response writer: it keeps the status and headers,
// and throws the body away (the client's answer is not part of the
// judgement).
type replayWriter struct {
	h      http.Header
	status int
}

func (w *replayWriter) reset() {
	clear(w.h)
	w.status = 0
}

func (w *replayWriter) Header() http.Header { return w.h }

func (w *replayWriter) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
}

func (w *replayWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

// Flush does nothing: there is no client to flush to.
func (w *replayWriter) Flush() {}

// fakeUpstream is the upstream: it answers without a network, with the
// record's recorded status (when it has one and -recorded-status is on)
// or the -upstream-status for its path.
type fakeUpstream struct{ e *replayEngine }

func (f fakeUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	e := f.e
	status := 0
	if r := e.rec; r != nil {
		if e.opts.recordedStatus && r.Status >= 200 && r.Status <= 599 {
			status = r.Status
		} else {
			status = e.opts.upstream.status(r.Path())
		}
	}
	if status == 0 {
		status = http.StatusOK
	}
	e.proxied, e.upStatus = true, status
	// One response per engine, reused: the proxy is done with it when the
	// gateway's handler returns.
	h := e.resp.Header
	if h == nil {
		h = http.Header{}
	}
	clear(h)
	e.resp = http.Response{
		StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Request: req,
	}
	return &e.resp, nil
}

// eventCapture is the gateway's event sink: it keeps the request's block
// and ban events for the outcome and counts the rest.
type eventCapture struct{ e *replayEngine }

func (c eventCapture) Emit(ev record.Event) {
	e := c.e
	switch ev.Type {
	case record.EventRequestBlocked:
		e.blocked, e.hasBlock = ev, true
	case record.EventClientBlocklisted:
		e.ban, e.hasBan = ev, true
		e.bans.Store(true)
	case record.EventDetectionFailed:
		e.stats.detectionErrors++
	case record.EventWouldBlock:
		e.stats.wouldBlock++
	}
}

// banLog is the gateway's logger. It keeps one line, banned_request
// (debug level, with the ban's detection and reason): a refusal of a
// client already banned has no event. It is enabled only once a ban
// exists, so an allowed request builds no debug line before then.
type banLog struct{ e *replayEngine }

func (b banLog) Enabled(_ context.Context, l slog.Level) bool {
	return l == slog.LevelDebug && b.e.bans.Load()
}

func (b banLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "banned_request" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "detection":
			b.e.banned.detection = a.Value.String()
		case "reason":
			b.e.banned.reason = a.Value.String()
		}
		return true
	})
	return nil
}

func (b banLog) WithAttrs([]slog.Attr) slog.Handler { return b }
func (b banLog) WithGroup(string) slog.Handler      { return b }

// upstreamStatus is the -upstream-status flag: a default status and
// path-prefix overrides, the longest matching prefix winning.
type upstreamStatus struct {
	def      int
	prefixes []statusPrefix // longest first
}

type statusPrefix struct {
	prefix string
	status int
}

func parseUpstreamStatus(s string) (upstreamStatus, error) {
	u := upstreamStatus{def: http.StatusOK}
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		prefix, st, hasPrefix := strings.Cut(item, "=")
		if !hasPrefix {
			st, prefix = prefix, ""
		}
		n, err := strconv.Atoi(strings.TrimSpace(st))
		if err != nil || n < 200 || n > 599 {
			errs = append(errs, fmt.Errorf("%q: the status must be within 200..599", item))
			continue
		}
		if !hasPrefix {
			u.def = n
			continue
		}
		if !strings.HasPrefix(prefix, "/") {
			errs = append(errs, fmt.Errorf("%q: the path prefix must start with /", item))
			continue
		}
		u.prefixes = append(u.prefixes, statusPrefix{prefix, n})
	}
	slices.SortStableFunc(u.prefixes, func(a, b statusPrefix) int { return len(b.prefix) - len(a.prefix) })
	return u, errors.Join(errs...)
}

// status is the answer for a request to path.
func (u upstreamStatus) status(path string) int {
	for _, p := range u.prefixes {
		if strings.HasPrefix(path, p.prefix) {
			return p.status
		}
	}
	if u.def == 0 {
		return http.StatusOK
	}
	return u.def
}

var (
	_ replay.Judge      = (*replayEngine)(nil)
	_ http.RoundTripper = fakeUpstream{}
	_ gateway.EventSink = eventCapture{}
	_ slog.Handler      = banLog{}
	_ http.Flusher      = (*replayWriter)(nil)
)
