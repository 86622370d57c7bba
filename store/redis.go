// Package store is the only code that talks to Redis. It exposes domain verbs
// (Check, Ban, Unban, Incr, ...) over go-redis, keeps the key schema in
// keys.go, hides redis.Nil, and owns client options: short per-call timeouts
// and a circuit breaker, so a sick Redis costs a request milliseconds at
// most, and a dead one microseconds.
//
// Memory implements the same verbs in process for a single instance without
// Redis.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/detections"
)

// ErrUnavailable is returned while the circuit breaker is open. It wraps
// detections.ErrStore, as does every error caused by Redis.
var ErrUnavailable = fmt.Errorf("store: redis unavailable (circuit open): %w", detections.ErrStore)

// Escalation makes repeat offenders' automatic bans longer: the n-th ban
// within Memory lasts base × Factor^(n-1), capped at Max.
type Escalation struct {
	Factor float64       `yaml:"factor"`
	Max    time.Duration `yaml:"max"`
	Memory time.Duration `yaml:"memory"`
}

// Config configures the Redis store.
type Config struct {
	// URL is redis://[user:pass@]host:port/db or rediss:// for TLS. A
	// master_name=<name> query parameter selects Sentinel (the host is a
	// sentinel); extra addr=<host:port> parameters or Mode "cluster" select
	// Redis Cluster.
	URL string
	// Mode is "auto" (from the URL), "single", "cluster" or "sentinel".
	Mode string
	// Prefix namespaces every key; default "gw:".
	Prefix string
	// Timeout bounds each Redis call (read and write); tens of milliseconds,
	// so a sick Redis never stalls a request for long.
	Timeout time.Duration
	// DialTimeout bounds connecting.
	DialTimeout time.Duration
	// PoolSize is the connection pool size; 0 uses go-redis' default.
	PoolSize int
	// AutoPipeline batches concurrent hot-path calls into pipelines (one
	// write and one read for many requests). Exact: every call is still its
	// own atomic script.
	AutoPipeline bool
	// BreakerFailures consecutive failures open the circuit for
	// BreakerCooldown; then one probe decides.
	BreakerFailures int
	BreakerCooldown time.Duration
	// Escalation applies to automatic bans.
	Escalation Escalation
	// Replica names this instance in bans and events.
	Replica string
	// Logger receives connection-state changes.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Mode:            "auto",
		Prefix:          "gw:",
		Timeout:         50 * time.Millisecond,
		DialTimeout:     250 * time.Millisecond,
		AutoPipeline:    true,
		BreakerFailures: 5,
		BreakerCooldown: time.Second,
		Escalation:      Escalation{Factor: 2, Max: 24 * time.Hour, Memory: 7 * 24 * time.Hour},
	}
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("redis.timeout must be > 0"))
	}
	if c.Prefix == "" {
		errs = append(errs, errors.New("redis.prefix must not be empty"))
	}
	switch c.Mode {
	case "", "auto", "single", "cluster", "sentinel":
	default:
		errs = append(errs, fmt.Errorf("redis.mode: %q is not auto, single, cluster or sentinel", c.Mode))
	}
	if c.Escalation.Factor < 1 {
		errs = append(errs, errors.New("bans.escalation.factor must be >= 1"))
	}
	if c.Escalation.Max <= 0 || c.Escalation.Memory <= 0 {
		errs = append(errs, errors.New("bans.escalation.max and memory must be > 0"))
	}
	if c.BreakerFailures <= 0 || c.BreakerCooldown <= 0 {
		errs = append(errs, errors.New("redis.breaker_failures and breaker_cooldown must be > 0"))
	}
	return errors.Join(errs...)
}

// limitArgs are a limit's script arguments, formatted once: boxing a float
// or a large int into an interface allocates on every call otherwise.
type limitArgs struct {
	burst, rate, period, window any
}

type limitKey struct {
	l redis_rate.Limit
	w time.Duration
}

func (s *Redis) limitArgs(l redis_rate.Limit, window time.Duration) *limitArgs {
	k := limitKey{l, window}
	if v, ok := s.argCache.Load(k); ok {
		return v.(*limitArgs)
	}
	a := &limitArgs{
		burst:  strconv.Itoa(l.Burst),
		rate:   strconv.Itoa(l.Rate),
		period: strconv.FormatFloat(l.Period.Seconds(), 'f', -1, 64),
		window: strconv.FormatInt(window.Milliseconds(), 10),
	}
	s.argCache.Store(k, a) // a handful of distinct limits per process
	return a
}

// Redis is the shared store on Redis (one node, Sentinel or Cluster).
type Redis struct {
	argCache sync.Map // limitKey -> *limitArgs
	cfg      Config
	rdb      redis.UniversalClient
	ap       *redis.AutoPipeliner
	keys     Keys
	br       *breaker
	log      *slog.Logger
	// lastErr holds the last error seen, for /readyz.
	lastErr atomic.Pointer[string]
	// inflight counts hot-path calls under way, to pick the path (see
	// hotScripter).
	inflight atomic.Int32
}

// autoPipelineFrom is how many hot-path calls must already be in flight
// before a new one joins the autopipeline. Below it, a call goes straight
// out on a pooled connection: at low concurrency the hand-off to the
// pipeline's flusher goroutine costs more latency than batching saves;
// under load, batching many requests' scripts into one write and one read
// is what keeps throughput up. Both paths run the same atomic script.
var autoPipelineFrom int32 = 4

// hotScripter returns the client for one hot-path call; done must be
// called when it returns.
func (s *Redis) hotScripter() (redis.Scripter, func()) {
	n := s.inflight.Add(1)
	if s.ap != nil && n > autoPipelineFrom {
		return s.ap, s.doneHot
	}
	return s.rdb, s.doneHot
}

func (s *Redis) doneHot() { s.inflight.Add(-1) }

// NewRedis builds the client. It does not connect: the gateway starts while
// Redis is down and the breaker reports the state.
func NewRedis(cfg Config) (*Redis, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rdb, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return NewRedisWithClient(cfg, rdb)
}

// NewRedisWithClient wraps an existing client (tests, or callers with their
// own options).
func NewRedisWithClient(cfg Config, rdb redis.UniversalClient) (*Redis, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Redis{cfg: cfg, rdb: rdb, keys: NewKeys(cfg.Prefix), log: cfg.Logger}
	s.br = newBreaker(cfg.BreakerFailures, cfg.BreakerCooldown, func(open bool) {
		if open {
			s.log.Warn("redis_circuit_open", slog.String("error", s.LastError()))
		} else {
			s.log.Info("redis_circuit_closed")
		}
	})
	if cfg.AutoPipeline {
		ap, err := rdb.AutoPipeline()
		if err != nil {
			return nil, fmt.Errorf("starting autopipeline: %w", err)
		}
		s.ap = ap
	}
	return s, nil
}

func newClient(cfg Config) (redis.UniversalClient, error) {
	if cfg.URL == "" {
		return nil, errors.New("redis: empty URL")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing REDIS_URL: %w", redactURLError(err))
	}
	q := u.Query()
	mode := cfg.Mode
	if mode == "" || mode == "auto" {
		switch {
		case q.Has("master_name"):
			mode = "sentinel"
		case q.Has("addr"):
			mode = "cluster"
		default:
			mode = "single"
		}
	}
	switch mode {
	case "sentinel":
		o, err := redis.ParseFailoverURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("parsing REDIS_URL: %w", redactURLError(err))
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = cfg.DialTimeout, cfg.Timeout, cfg.Timeout
		o.ContextTimeoutEnabled, o.MaxRetries, o.PoolSize = true, -1, cfg.PoolSize
		o.DialerRetries, o.DialerRetryTimeout = 1, 10*time.Millisecond
		return redis.NewFailoverClient(o), nil
	case "cluster":
		o, err := redis.ParseClusterURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("parsing REDIS_URL: %w", redactURLError(err))
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = cfg.DialTimeout, cfg.Timeout, cfg.Timeout
		o.ContextTimeoutEnabled, o.MaxRedirects, o.PoolSize = true, 3, cfg.PoolSize
		o.DialerRetries, o.DialerRetryTimeout = 1, 10*time.Millisecond
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("parsing REDIS_URL: %w", redactURLError(err))
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = cfg.DialTimeout, cfg.Timeout, cfg.Timeout
		o.ContextTimeoutEnabled, o.MaxRetries, o.PoolSize = true, -1, cfg.PoolSize
		// Fail fast and let the breaker decide: go-redis would otherwise
		// retry dials and commands for over a second per call.
		o.DialerRetries, o.DialerRetryTimeout = 1, 10*time.Millisecond
		if o.TLSConfig != nil && o.TLSConfig.MinVersion < tls.VersionTLS12 {
			o.TLSConfig.MinVersion = tls.VersionTLS12
		}
		return redis.NewClient(o), nil
	}
}

// redactURLError keeps a password in REDIS_URL out of error messages.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New(ue.Op + " REDIS_URL: " + ue.Err.Error())
	}
	return err
}

// Client returns the underlying client (events writer, admin tools).
func (s *Redis) Client() redis.UniversalClient { return s.rdb }

// Keys returns the key schema.
func (s *Redis) Keys() Keys { return s.keys }

// Close releases connections.
func (s *Redis) Close() error {
	if s.ap != nil {
		_ = s.ap.Close()
	}
	return s.rdb.Close()
}

// Shared reports true: state in Redis is shared by every replica.
func (s *Redis) Shared() bool { return true }

// Healthy reports whether the circuit is closed.
func (s *Redis) Healthy() bool { return !s.br.isOpen() }

// LastError returns the last Redis error seen ("" if none).
func (s *Redis) LastError() string {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// BreakerOpen reports whether calls are currently refused without trying.
func (s *Redis) BreakerOpen() bool { return s.br.isOpen() }

// storeError wraps a Redis failure so that errors.Is(err, detections.ErrStore)
// holds while the cause stays visible.
type storeError struct {
	op  string
	err error
}

func (e *storeError) Error() string   { return e.op + ": " + e.err.Error() }
func (e *storeError) Unwrap() []error { return []error{detections.ErrStore, e.err} }

// begin asks the breaker for permission.
func (s *Redis) begin() error {
	if !s.br.allow() {
		return ErrUnavailable
	}
	return nil
}

// end records the outcome of a call and wraps failures.
func (s *Redis) end(op string, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		s.br.success()
		return nil
	}
	if isServerReply(err) {
		// Redis answered (script error, wrong type): healthy transport.
		s.br.success()
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := err.Error()
	s.lastErr.Store(&msg)
	s.br.failure()
	return &storeError{op: op, err: err}
}

// isServerReply reports errors that Redis itself returned (the connection
// is fine), as opposed to timeouts and connection failures.
func isServerReply(err error) bool {
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		// LOADING, READONLY, CLUSTERDOWN, MASTERDOWN mean "not serving".
		for _, p := range []string{"LOADING", "READONLY", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "BUSY"} {
			if strings.HasPrefix(msg, p) {
				return false
			}
		}
		return true
	}
	return false
}

// Ping checks connectivity; used by the health loop and /readyz.
func (s *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*4)
	defer cancel()
	err := s.rdb.Ping(ctx).Err()
	if err == nil {
		s.br.success()
		return nil
	}
	return s.end("ping", err)
}

// Check is the hot path: blocklist lookup, rate limit and enumeration
// counter for one request, in one round trip.
func (s *Redis) Check(ctx context.Context, client string, q *detections.StateQuery) (detections.Check, error) {
	if err := s.begin(); err != nil {
		return detections.Check{}, err
	}
	keys := s.keys.check(client, q.RateKey)
	doRL, countRefused, countInvalid := "0", "0", "0"
	if !q.RateLimit.IsZero() {
		doRL = "1"
		if q.BanAfter > 0 {
			countRefused = "1"
		}
	}
	if q.CountInvalid {
		countInvalid = "1"
	}
	la := s.limitArgs(q.RateLimit, q.InvalidWindow)
	sc, done := s.hotScripter()
	v, err := checkScript.Run(ctx, sc, keys[:], la.burst, la.rate, la.period, doRL, countRefused, la.window, countInvalid).Slice()
	done()
	if err = s.end("check", err); err != nil {
		return detections.Check{}, err
	}
	return parseCheck(client, q, v)
}

func parseCheck(client string, q *detections.StateQuery, v []any) (detections.Check, error) {
	if len(v) < 7 {
		return detections.Check{}, fmt.Errorf("check: unexpected reply of %d elements", len(v))
	}
	if toInt(v[0]) == 1 {
		ttl := time.Duration(toInt(v[1])) * time.Millisecond
		b := &detections.Ban{
			Client:    client,
			Reason:    toString(v[2]),
			Detection: toString(v[3]),
			Count:     toInt(v[4]),
			FirstSeen: time.UnixMilli(toInt(v[5])),
			Replica:   toString(v[6]),
			TTL:       ttl,
		}
		if ttl < 0 { // a ban without TTL, set by hand: permanent
			b.TTL = 0
		} else {
			b.Until = time.Now().Add(ttl)
		}
		return detections.Check{Ban: b}, nil
	}
	var c detections.Check
	if !q.RateLimit.IsZero() {
		retry, err1 := strconv.ParseFloat(toString(v[3]), 64)
		reset, err2 := strconv.ParseFloat(toString(v[4]), 64)
		if err := errors.Join(err1, err2); err != nil {
			return c, fmt.Errorf("check: parsing rate-limit reply: %w", err)
		}
		c.State.Rate = redis_rate.Result{
			Limit:      q.RateLimit,
			Allowed:    int(toInt(v[1])),
			Remaining:  int(toInt(v[2])),
			RetryAfter: secondsDur(retry),
			ResetAfter: secondsDur(reset),
		}
	}
	c.State.Refused = toInt(v[5])
	c.State.Invalid = toInt(v[6])
	return c, nil
}

// secondsDur mirrors redis_rate's conversion: -1 means "not applicable".
func secondsDur(f float64) time.Duration {
	if f == -1 {
		return -1
	}
	return time.Duration(f * float64(time.Second))
}

func toInt(v any) int64 {
	switch t := v.(type) {
	case int64:
		return t
	case string:
		n, _ := strconv.ParseInt(t, 10, 64)
		return n
	case float64:
		return int64(t)
	}
	return 0
}

func toString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case int64:
		return strconv.FormatInt(t, 10)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// Incr counts an invalid request for client in a fixed window shared by
// every replica (the enumeration counter).
func (s *Redis) Incr(ctx context.Context, client string, window time.Duration) (int64, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	sc, done := s.hotScripter()
	n, err := incrScript.Run(ctx, sc, []string{s.keys.Invalid(client)}, window.Milliseconds()).Int64()
	done()
	if err = s.end("incr", err); err != nil {
		return 0, err
	}
	return n, nil
}

// Allow runs the shared GCRA limit for a logical key outside the hot path
// (same script, same keys as Check).
func (s *Redis) Allow(ctx context.Context, client string, limit redis_rate.Limit) (*redis_rate.Result, error) {
	c, err := s.Check(ctx, client, &detections.StateQuery{RateLimit: limit})
	if err != nil {
		return nil, err
	}
	if c.Ban != nil {
		return &redis_rate.Result{Limit: limit, RetryAfter: c.Ban.TTL, ResetAfter: c.Ban.TTL}, nil
	}
	return &c.State.Rate, nil
}

// Ban puts a client on the blocklist (escalating repeat offenders when
// asked), indexes it and notifies every replica, in one pipelined round trip.
// A client already banned keeps its current ban.
func (s *Redis) Ban(ctx context.Context, req detections.BanRequest) (detections.Ban, error) {
	if err := s.begin(); err != nil {
		return detections.Ban{}, err
	}
	if req.Duration <= 0 {
		return detections.Ban{}, errors.New("ban: duration must be > 0")
	}
	esc := s.cfg.Escalation
	escalate := "0"
	if req.Escalate {
		escalate = "1"
	}
	replica := req.Replica
	if replica == "" {
		replica = s.cfg.Replica
	}
	maxMS := esc.Max.Milliseconds()
	if req.Duration > esc.Max {
		maxMS = req.Duration.Milliseconds()
	}
	replace := "0"
	if req.Replace {
		replace = "1"
	}
	v, err := banScript.Run(ctx, s.rdb, []string{s.keys.Ban(req.Client), s.keys.Offender(req.Client)},
		req.Reason, req.Detection, replica, req.Duration.Milliseconds(), escalate,
		esc.Factor, maxMS, esc.Memory.Milliseconds(), replace).Slice()
	if err = s.end("ban", err); err != nil {
		return detections.Ban{}, err
	}
	if len(v) < 9 {
		return detections.Ban{}, fmt.Errorf("ban: unexpected reply of %d elements", len(v))
	}
	b := detections.Ban{
		Client:    req.Client,
		TTL:       time.Duration(toInt(v[1])) * time.Millisecond,
		FirstSeen: time.UnixMilli(toInt(v[2])),
		Count:     toInt(v[3]),
		Until:     time.UnixMilli(toInt(v[4])),
		Reason:    toString(v[5]),
		Detection: toString(v[6]),
		Replica:   toString(v[7]),
		LastSeen:  time.UnixMilli(toInt(v[8])),
		New:       toInt(v[0]) == 1,
	}
	if b.New {
		pipe := s.rdb.Pipeline()
		indexScript.Run(ctx, pipe, []string{s.keys.BanIndex()}, req.Client, b.Until.UnixMilli())
		pipe.Publish(ctx, s.keys.BanChannel(), encodeBanEvent(detections.BanEvent{Client: req.Client, Until: b.Until}))
		_, err := pipe.Exec(ctx)
		if errors.Is(err, redis.Nil) || isNoScript(err) {
			// EVALSHA in a pipeline cannot fall back to EVAL; load and retry once.
			err = indexScript.Load(ctx, s.rdb).Err()
			if err == nil {
				err = indexScript.Run(ctx, s.rdb, []string{s.keys.BanIndex()}, req.Client, b.Until.UnixMilli()).Err()
			}
		}
		if err = s.end("ban index", err); err != nil {
			return b, err
		}
	}
	return b, nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// Unban removes a client's ban (its escalation history stays) and notifies
// every replica. It reports whether a ban existed.
func (s *Redis) Unban(ctx context.Context, client string) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	pipe := s.rdb.Pipeline()
	del := pipe.Del(ctx, s.keys.Ban(client))
	pipe.ZRem(ctx, s.keys.BanIndex(), client)
	pipe.Publish(ctx, s.keys.BanChannel(), encodeBanEvent(detections.BanEvent{Client: client, Unban: true}))
	_, err := pipe.Exec(ctx)
	if err = s.end("unban", err); err != nil {
		return false, err
	}
	return del.Val() > 0, nil
}

// GetBan returns client's active ban; found is false when there is none.
func (s *Redis) GetBan(ctx context.Context, client string) (b detections.Ban, found bool, err error) {
	if err := s.begin(); err != nil {
		return detections.Ban{}, false, err
	}
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, s.keys.Ban(client))
	ttl := pipe.PTTL(ctx, s.keys.Ban(client))
	_, err = pipe.Exec(ctx)
	if err = s.end("get ban", err); err != nil {
		return detections.Ban{}, false, err
	}
	if len(h.Val()) == 0 {
		return detections.Ban{}, false, nil
	}
	return banFromHash(client, h.Val(), ttl.Val()), true, nil
}

func banFromHash(client string, h map[string]string, ttl time.Duration) detections.Ban {
	ms := func(k string) time.Time {
		n, _ := strconv.ParseInt(h[k], 10, 64)
		if n == 0 {
			return time.Time{}
		}
		return time.UnixMilli(n)
	}
	count, _ := strconv.ParseInt(h["count"], 10, 64)
	b := detections.Ban{
		Client: client, Reason: h["reason"], Detection: h["detection"], Replica: h["replica"],
		FirstSeen: ms("first_seen"), LastSeen: ms("last_seen"), Until: ms("until"), Count: count,
	}
	if ttl > 0 {
		b.TTL = ttl
		b.Until = time.Now().Add(ttl).Truncate(time.Millisecond)
	}
	return b
}

// ListBans returns up to limit active bans, soonest expiry last.
func (s *Redis) ListBans(ctx context.Context, limit int) ([]detections.Ban, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	clients, err := s.rdb.ZRevRangeByScore(ctx, s.keys.BanIndex(), &redis.ZRangeBy{
		Min: strconv.FormatInt(time.Now().UnixMilli(), 10), Max: "+inf", Count: int64(limit),
	}).Result()
	if err = s.end("list bans", err); err != nil {
		return nil, err
	}
	if len(clients) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	hs := make([]*redis.MapStringStringCmd, len(clients))
	ttls := make([]*redis.DurationCmd, len(clients))
	for i, c := range clients {
		hs[i] = pipe.HGetAll(ctx, s.keys.Ban(c))
		ttls[i] = pipe.PTTL(ctx, s.keys.Ban(c))
	}
	_, err = pipe.Exec(ctx)
	if err = s.end("list bans", err); err != nil {
		return nil, err
	}
	out := make([]detections.Ban, 0, len(clients))
	for i, c := range clients {
		if len(hs[i].Val()) == 0 {
			continue // unbanned or expired since the index was read
		}
		out = append(out, banFromHash(c, hs[i].Val(), ttls[i].Val()))
	}
	return out, nil
}

// Counter names returned by Counters.
const (
	CounterRateResetAfter = "rate_limit_reset_after_seconds" // until the default bucket is full again
	CounterRateRefusals   = "rate_limit_refusals"            // refusals in the current period
	CounterInvalid        = "invalid_requests"               // enumeration count in the current window
	CounterStrikes        = "ban_strikes"                    // bans within the escalation memory
)

// Counters returns a client's shared counters, for operators, under the
// names above (absent counters are left out).
func (s *Redis) Counters(ctx context.Context, client string) (map[string]string, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	tat := pipe.Get(ctx, s.keys.Rate(client, ""))
	refused := pipe.Get(ctx, s.keys.Refused(client, ""))
	invalid := pipe.Get(ctx, s.keys.Invalid(client))
	strikes := pipe.HGet(ctx, s.keys.Offender(client), "strikes")
	_, err := pipe.Exec(ctx)
	if err = s.end("counters", err); err != nil {
		return nil, err
	}
	out := map[string]string{}
	if v, err := tat.Float64(); err == nil {
		out[CounterRateResetAfter] = resetAfter(v, time.Now())
	}
	for name, c := range map[string]*redis.StringCmd{CounterRateRefusals: refused, CounterInvalid: invalid, CounterStrikes: strikes} {
		if v, err := c.Result(); err == nil {
			out[name] = v
		}
	}
	return out, nil
}

// resetAfter turns a GCRA theoretical arrival time (seconds since 2017, as
// redis_rate stores it) into seconds until the bucket is full again.
func resetAfter(tat float64, now time.Time) string {
	left := tat - epochSeconds(now)
	if left < 0 {
		left = 0
	}
	return strconv.FormatFloat(math.Round(left*10)/10, 'f', -1, 64)
}

// SubscribeBans delivers ban and unban notifications from every replica to
// fn until ctx ends. After every (re)subscription it first delivers a Reset
// event, because notifications sent while disconnected are lost.
func (s *Redis) SubscribeBans(ctx context.Context, fn func(detections.BanEvent)) {
	ps := s.rdb.Subscribe(ctx, s.keys.BanChannel())
	// Receive does not return on cancellation alone; closing does.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	for ctx.Err() == nil {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// go-redis reconnects and resubscribes on the next Receive.
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.cfg.BreakerCooldown):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				fn(detections.BanEvent{Reset: true})
			}
		case *redis.Message:
			if ev, ok := decodeBanEvent(m.Payload); ok {
				fn(ev)
			}
		}
	}
}

// BanCIDR bans a whole range (operator action). Range bans are few; every
// replica keeps them in memory and reloads them when notified. They live in
// one hash, so the write, the pruning of expired ranges and the key's TTL
// are one atomic script.
func (s *Redis) BanCIDR(ctx context.Context, prefix netip.Prefix, dur time.Duration, reason, replica string) (detections.Ban, error) {
	if err := s.begin(); err != nil {
		return detections.Ban{}, err
	}
	if dur <= 0 {
		return detections.Ban{}, errors.New("ban: duration must be > 0")
	}
	p := prefix.Masked().String()
	v, err := cidrBanScript.Run(ctx, s.rdb, []string{s.keys.CIDRBans()}, p, dur.Milliseconds(), reason, replica).Int64Slice()
	if err = s.end("ban cidr", err); err != nil {
		return detections.Ban{}, err
	}
	now, until := time.UnixMilli(v[0]), time.UnixMilli(v[1])
	if err := s.end("ban cidr", s.rdb.Publish(ctx, s.keys.BanChannel(), "cidr "+p).Err()); err != nil {
		return detections.Ban{}, err
	}
	return detections.Ban{Client: p, CIDR: true, Reason: reason, Detection: "admin", Replica: replica,
		FirstSeen: now, LastSeen: now, Until: until, TTL: dur, Count: 1, New: true}, nil
}

// UnbanCIDR lifts a range ban.
func (s *Redis) UnbanCIDR(ctx context.Context, prefix netip.Prefix) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	p := prefix.Masked().String()
	pipe := s.rdb.Pipeline()
	n := pipe.HDel(ctx, s.keys.CIDRBans(), p)
	pipe.Publish(ctx, s.keys.BanChannel(), "cidr "+p)
	_, err := pipe.Exec(ctx)
	if err = s.end("unban cidr", err); err != nil {
		return false, err
	}
	return n.Val() > 0, nil
}

// ListCIDRBans returns the active range bans.
func (s *Redis) ListCIDRBans(ctx context.Context) ([]detections.Ban, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	// Expiry is judged on the Redis clock that wrote it, not this host's.
	pipe := s.rdb.Pipeline()
	hc := pipe.HGetAll(ctx, s.keys.CIDRBans())
	tc := pipe.Time(ctx)
	_, err := pipe.Exec(ctx)
	if err = s.end("list cidr bans", err); err != nil {
		return nil, err
	}
	h, now := hc.Val(), tc.Val()
	out := make([]detections.Ban, 0, len(h))
	for p, v := range h {
		if b, ok := cidrBan(p, v, now); ok {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Client < out[j].Client })
	return out, nil
}

// cidrBan decodes "until_ms<TAB>created_ms<TAB>replica<TAB>reason"; expired
// entries are reported as absent.
func cidrBan(p, v string, now time.Time) (detections.Ban, bool) {
	f := strings.SplitN(v, "\t", 4)
	if len(f) != 4 {
		return detections.Ban{}, false
	}
	untilMS, _ := strconv.ParseInt(f[0], 10, 64)
	createdMS, _ := strconv.ParseInt(f[1], 10, 64)
	until := time.UnixMilli(untilMS)
	if !now.Before(until) {
		return detections.Ban{}, false
	}
	created := time.UnixMilli(createdMS)
	return detections.Ban{Client: p, CIDR: true, Detection: "admin", Until: until, TTL: until.Sub(now), Count: 1,
		Replica: f[2], Reason: f[3], FirstSeen: created, LastSeen: created}, true
}

// encodeBanEvent writes "ban <client> <until_ms>" or "unban <client>"; a
// tiny format keeps redis-cli SUBSCRIBE output readable.
func encodeBanEvent(ev detections.BanEvent) string {
	if ev.Unban {
		return "unban " + ev.Client
	}
	return "ban " + ev.Client + " " + strconv.FormatInt(ev.Until.UnixMilli(), 10)
}

func decodeBanEvent(s string) (detections.BanEvent, bool) {
	f := strings.Fields(s)
	switch {
	case len(f) == 2 && f[0] == "unban":
		return detections.BanEvent{Client: f[1], Unban: true}, true
	case len(f) == 2 && f[0] == "cidr":
		return detections.BanEvent{Client: f[1], CIDR: true}, true
	case len(f) == 3 && f[0] == "ban":
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || ms <= 0 || ms > math.MaxInt64/2 {
			return detections.BanEvent{}, false
		}
		return detections.BanEvent{Client: f[1], Until: time.UnixMilli(ms)}, true
	}
	return detections.BanEvent{}, false
}
