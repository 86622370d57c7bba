// Package store is the only code that talks to Redis. It exposes domain verbs
// (Check, Ban, Unban, Incr, ...) over go-redis, keeps the key schema in
// keys.go, hides redis.Nil, and owns client options: short per-call timeouts
// and a circuit breaker, so a sick Redis costs a request milliseconds at
// most, and a dead one microseconds.
//
// Memory implements the same verbs in process for a single instance without
// Redis.
//
// The files follow the verbs: check.go is the per-request round trip,
// bans.go the blocklist, cidr.go range bans, pubsub.go ban notifications,
// events.go the security-event stream, counters.go the operators' view of a
// client, scripts.go the Lua scripts and keys.go the key schema.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/detections"
)

// ErrUnavailable is returned while the circuit breaker is open. It wraps
// detections.ErrStore, as does every error caused by Redis.
var ErrUnavailable = fmt.Errorf("store: redis unavailable (circuit open): %w", detections.ErrStore)

// Escalation makes repeat offenders' automatic bans longer: the n-th ban
// within Memory lasts base × Factor^(n-1), capped at Max.
type Escalation struct {
	// Factor multiplies each repeat ban: the n-th lasts base × factor^(n-1).
	Factor float64 `yaml:"factor"`
	// Max caps an escalated ban.
	Max time.Duration `yaml:"max"`
	// Memory is how long past bans count as repeats.
	Memory time.Duration `yaml:"memory"`
}

// DefaultEscalation doubles each repeat ban up to a day, remembering
// offenders for a week.
func DefaultEscalation() Escalation {
	return Escalation{Factor: 2, Max: 24 * time.Hour, Memory: 7 * 24 * time.Hour}
}

// Validate reports every problem in e.
func (e Escalation) Validate() error {
	var errs []error
	if e.Factor < 1 {
		errs = append(errs, fmt.Errorf("factor: %v must be >= 1", e.Factor))
	}
	if e.Max <= 0 {
		errs = append(errs, fmt.Errorf("max: %v must be > 0", e.Max))
	}
	if e.Memory <= 0 {
		errs = append(errs, fmt.Errorf("memory: %v must be > 0", e.Memory))
	}
	return errors.Join(errs...)
}

// Topology is how Redis is deployed.
type Topology string

// Topologies; TopologyAuto reads it from the URL.
const (
	TopologyAuto     Topology = "auto"
	TopologySingle   Topology = "single"
	TopologyCluster  Topology = "cluster"
	TopologySentinel Topology = "sentinel"
)

// UnmarshalText accepts auto, single, cluster or sentinel.
func (t *Topology) UnmarshalText(b []byte) error {
	switch v := Topology(b); v {
	case "", TopologyAuto, TopologySingle, TopologyCluster, TopologySentinel:
		if v == "" {
			v = TopologyAuto
		}
		*t = v
		return nil
	}
	return fmt.Errorf("%q is not auto, single, cluster or sentinel", b)
}

// Config configures the Redis store (the redis section of the YAML file).
type Config struct {
	// URL is redis://[user:pass@]host:port/db, rediss:// for TLS. A
	// master_name=<name> query parameter selects Sentinel (the hosts are
	// sentinels); extra addr=<host:port> parameters or Mode cluster select
	// Redis Cluster. Empty: the embedded in-memory store.
	URL string `yaml:"url"`
	// Mode is auto (from the URL), single, cluster or sentinel.
	Mode Topology `yaml:"mode"`
	// Prefix namespaces every key; default "gw:".
	Prefix string `yaml:"prefix"`
	// Timeout bounds each store call, including the wait for a pooled
	// connection and for a pipelined reply: a request never waits on Redis
	// longer than this, however many are in flight.
	Timeout time.Duration `yaml:"timeout"`
	// DialTimeout bounds connecting.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// PoolSize is the connection pool size; 0 uses go-redis' default.
	PoolSize int `yaml:"pool_size"`
	// AutoPipeline batches concurrent hot-path calls into pipelines (one
	// write and one read for many requests). Exact: every call is still its
	// own atomic script.
	AutoPipeline bool `yaml:"auto_pipeline"`
	// BreakerFailures consecutive failures open the circuit for
	// BreakerCooldown; then one probe decides.
	BreakerFailures int           `yaml:"breaker_failures"`
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
	// Partitions splits the global structures (event stream, ban index,
	// range bans) over this many keys with their own hash tags, so none
	// sits on one Cluster shard. 0: 16 on a Cluster, 1 (the plain key
	// names) otherwise.
	Partitions int `yaml:"partitions"`

	// Escalation applies to automatic bans (bans.escalation in the file).
	Escalation Escalation `yaml:"-"`
	// Replica names this instance in bans and events (top-level replica).
	Replica string `yaml:"-"`
	// Logger receives connection-state changes.
	Logger *slog.Logger `yaml:"-"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Mode:            TopologyAuto,
		Prefix:          "gw:",
		Timeout:         50 * time.Millisecond,
		DialTimeout:     250 * time.Millisecond,
		AutoPipeline:    true,
		BreakerFailures: 5,
		BreakerCooldown: time.Second,
		Escalation:      DefaultEscalation(),
	}
}

// Validate reports every problem in c, including a URL the client could
// not use, so that a configuration check catches what would fail at start.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: %v must be > 0", c.Timeout))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("dial_timeout: %v must be > 0", c.DialTimeout))
	}
	if c.Prefix == "" {
		errs = append(errs, errors.New("prefix: must not be empty"))
	}
	if c.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("pool_size: %d must be >= 0", c.PoolSize))
	}
	if c.Partitions < 0 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("partitions: %d must be in 0..1024", c.Partitions))
	}
	if c.BreakerFailures <= 0 {
		errs = append(errs, fmt.Errorf("breaker_failures: %d must be > 0", c.BreakerFailures))
	}
	if c.BreakerCooldown <= 0 {
		errs = append(errs, fmt.Errorf("breaker_cooldown: %v must be > 0", c.BreakerCooldown))
	}
	if c.URL != "" {
		if _, err := universalOptions(c); err != nil {
			errs = append(errs, fmt.Errorf("url: %w", err))
		}
	}
	return errors.Join(errs...)
}

// limitArgs are a limit's script arguments, formatted once: boxing a float
// or a large int into an interface allocates on every call otherwise.
type limitArgs struct {
	burst, rate, period, window any
}

type limitKey struct {
	l detections.Limit
	w time.Duration
}

// autoPipelineFrom is how many hot-path calls must already be in flight
// before a new one joins the autopipeline. Below it, a call goes straight
// out on a pooled connection: at low concurrency the hand-off to the
// pipeline's flusher goroutine costs more latency than batching saves;
// under load, batching many requests' scripts into one write and one read
// is what keeps throughput up. Both paths run the same atomic script.
const autoPipelineFrom = 4

// warmConns is how many idle connections the pool keeps open: one per
// direct call below autoPipelineFrom, and one for the autopipeline.
const warmConns = autoPipelineFrom + 1

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
	// autoPipelineFrom).
	inflight atomic.Int32
}

// NewRedis builds the client from cfg (one set of universal options,
// whatever the topology). It does not connect: the gateway starts while
// Redis is down and the breaker reports the state.
func NewRedis(cfg Config) (*Redis, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, errors.New("redis: empty URL")
	}
	opts, err := universalOptions(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var rdb redis.UniversalClient
	partitions := cfg.Partitions
	if opts.IsClusterMode {
		// The same options, as cluster options, plus a short state reload:
		// go-redis would keep sending a dead master's slots to it for 60 s.
		co := opts.Cluster()
		co.ClusterStateReloadInterval = time.Second
		rdb = redis.NewClusterClient(co)
		if partitions == 0 {
			partitions = 16
		}
	} else {
		rdb = redis.NewUniversalClient(opts)
	}
	s := &Redis{cfg: cfg, rdb: rdb, keys: NewPartitionedKeys(cfg.Prefix, max(partitions, 1)), log: cfg.Logger}
	s.br = newBreaker(cfg.BreakerFailures, cfg.BreakerCooldown, func(open bool) {
		if open {
			s.log.Warn("redis_circuit_open", slog.String("error", s.LastError()))
		} else {
			s.log.Info("redis_circuit_closed")
		}
	})
	if cfg.AutoPipeline {
		// The deferred face: a call waits for its result with its own
		// deadline (AutoFuture.WaitContext), so one stalled batch cannot
		// hold the calls queued behind it past redis.timeout.
		ap, err := rdb.AsyncAutoPipeline()
		if err != nil {
			_ = rdb.Close()
			return nil, fmt.Errorf("starting autopipeline: %w", err)
		}
		s.ap = ap
	}
	return s, nil
}

// universalOptions turns the URL into go-redis' one option set for every
// topology: a single node, Sentinel (master_name) or Cluster (addr=, or
// mode cluster). The short timeouts and "no retries" are the same for all:
// the breaker, not go-redis, decides what a failing Redis costs.
func universalOptions(cfg Config) (*redis.UniversalOptions, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, redactURLError(err)
	}
	switch u.Scheme {
	case "redis", "rediss":
	case "redis+sentinel", "rediss+sentinel":
		// The documented sentinel form: the hosts are sentinels and the
		// path names the master (redis+sentinel://s1:26379,s2:26379/mymaster).
		return sentinelURL(cfg, u)
	default:
		return nil, fmt.Errorf("scheme %q: use redis:// or rediss:// (for example redis://127.0.0.1:6379/0)", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host in the URL (for example redis://127.0.0.1:6379/0)")
	}
	q := u.Query()
	mode := cfg.Mode
	if mode == "" || mode == TopologyAuto {
		switch {
		case q.Has("master_name"):
			mode = TopologySentinel
		case q.Has("addr"):
			mode = TopologyCluster
		default:
			mode = TopologySingle
		}
	}
	o := &redis.UniversalOptions{}
	switch mode {
	case TopologySentinel:
		fo, err := redis.ParseFailoverURL(cfg.URL)
		if err != nil {
			return nil, redactURLError(err)
		}
		o.MasterName, o.Addrs, o.DB = fo.MasterName, fo.SentinelAddrs, fo.DB
		o.Username, o.Password, o.TLSConfig = fo.Username, fo.Password, fo.TLSConfig
		o.SentinelUsername, o.SentinelPassword = fo.SentinelUsername, fo.SentinelPassword
	case TopologyCluster:
		co, err := redis.ParseClusterURL(cfg.URL)
		if err != nil {
			return nil, redactURLError(err)
		}
		o.Addrs, o.IsClusterMode = co.Addrs, true
		o.Username, o.Password, o.TLSConfig = co.Username, co.Password, co.TLSConfig
		o.MaxRedirects = 3
	default:
		so, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, redactURLError(err)
		}
		o.Addrs, o.DB = []string{so.Addr}, so.DB
		o.Username, o.Password, o.TLSConfig = so.Username, so.Password, so.TLSConfig
	}
	common(cfg, o)
	return o, nil
}

// sentinelURL reads redis+sentinel://[user:pass@]s1:26379[,s2:26379]/master[/db]
// (and ?addr= for more sentinels).
func sentinelURL(cfg Config, u *url.URL) (*redis.UniversalOptions, error) {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if parts[0] == "" {
		return nil, errors.New("redis+sentinel URL without a master name (redis+sentinel://host:26379/mymaster)")
	}
	o := &redis.UniversalOptions{MasterName: parts[0]}
	if len(parts) > 1 {
		db, err := strconv.Atoi(parts[1])
		if err != nil {
			return nil, fmt.Errorf("redis+sentinel URL: database %q is not a number", parts[1])
		}
		o.DB = db
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h != "" {
			o.Addrs = append(o.Addrs, h)
		}
	}
	o.Addrs = append(o.Addrs, u.Query()["addr"]...)
	if u.User != nil {
		o.Password, _ = u.User.Password()
		o.Username = u.User.Username()
	}
	if strings.HasPrefix(u.Scheme, "rediss") {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	common(cfg, o)
	return o, nil
}

// common sets what every topology shares: short timeouts and no go-redis
// retries (the breaker decides what a failing Redis costs).
func common(cfg Config, o *redis.UniversalOptions) {
	if o.TLSConfig != nil && o.TLSConfig.MinVersion < tls.VersionTLS12 {
		o.TLSConfig.MinVersion = tls.VersionTLS12
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = cfg.DialTimeout, cfg.Timeout, cfg.Timeout
	// Waiting for a pooled connection counts against the same bound (the
	// go-redis default is ReadTimeout + 1 s).
	o.PoolTimeout = cfg.Timeout
	o.ContextTimeoutEnabled, o.MaxRetries, o.PoolSize = true, -1, cfg.PoolSize
	// Connections kept open and idle (redialled in the background as they
	// are taken or dropped): the direct path's autoPipelineFrom calls and
	// the autopipeline's batch find one ready, so the first burst after a
	// start or an outage does not dial inside redis.timeout.
	o.MinIdleConns = warmConns
	if cfg.PoolSize > 0 {
		o.MinIdleConns = min(warmConns, cfg.PoolSize)
	}
	// Fail fast and let the breaker decide: go-redis would otherwise retry
	// dials and commands for over a second per call.
	o.DialerRetries, o.DialerRetryTimeout = 1, 10*time.Millisecond
}

// redactURLError keeps a password in REDIS_URL out of error messages.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New(ue.Op + " REDIS_URL: " + ue.Err.Error())
	}
	if err != nil && strings.Contains(err.Error(), "@") {
		return errors.New("REDIS_URL could not be parsed")
	}
	return err
}

// Keys returns the key schema.
func (s *Redis) Keys() Keys { return s.keys }

// AddHook adds a go-redis hook to the client (instrumentation; the
// Cluster tests use one to check every script's keys). On a Cluster it sees
// each command before it is routed to a node.
func (s *Redis) AddHook(h redis.Hook) { s.rdb.AddHook(h) }

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

// FailingFor reports how long calls have been failing without a success in
// between (0 while Redis answers). The gateway's fail-closed grace period
// is measured against it.
func (s *Redis) FailingFor(now time.Time) time.Duration { return s.br.failingFor(now) }

// LastError returns the last Redis error seen ("" if none).
func (s *Redis) LastError() string {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

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
	if errors.Is(err, context.Canceled) {
		// The caller gave up (a client hung up mid-request): Redis did not
		// fail, so neither the breaker nor the failing-since clock moves.
		// A deadline (context.DeadlineExceeded) is a stall and does count.
		s.br.abandon()
		return &storeError{op: op, err: err}
	}
	msg := err.Error()
	s.lastErr.Store(&msg)
	s.br.failure()
	return &storeError{op: op, err: err}
}

// isServerReply reports errors that Redis itself returned while serving
// (the connection and the node are fine), as opposed to timeouts,
// connection failures and replies that mean "not serving now".
func isServerReply(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	notServing := redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsClusterDownError(err) ||
		redis.IsMasterDownError(err) || redis.IsTryAgainError(err) || redis.HasErrorPrefix(err, "BUSY")
	return !notServing
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
