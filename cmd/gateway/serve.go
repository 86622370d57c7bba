package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/admin"
	"github.com/rampartgw/rampart/alert"
	"github.com/rampartgw/rampart/console"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/ipfeed"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/tlsconf"
)

// sharedStore is what main needs of a store: the gateway's, the admin
// API's, the detections' counter, and Close.
type sharedStore interface {
	gateway.Store
	admin.Store
	console.Store
	alert.Claimer
	alert.FleetReader
	detections.Counter
	Close() error
}

// eventLog is the security-event log: written by the gateway, read by the
// admin API.
type eventLog interface {
	Emit(record.Event)
	Run(ctx context.Context)
	Flush(ctx context.Context)
	Query(ctx context.Context, q record.EventQuery) ([]record.Event, error)
}

// server is one running gateway process: its listeners, the store, the
// gateway, the admin listener and their background work.
type server struct {
	cfg *loaded
	// ticketSource and ticketStartTimeout replace the session-ticket key
	// source and the first read's bound (tests; zero: see ticketKeySource).
	ticketSource       tlsconf.KeySource
	ticketStartTimeout time.Duration
	getenv             func(string) (string, bool)
	log                *slog.Logger
	level              *slog.LevelVar
	logFile            *os.File
	store              sharedStore
	fallback           detections.Limiter
	metrics            *gateway.Metrics
	events             eventLog // nil: events off
	g                  *gateway.Gateway
	health             *admin.Health
	adminSrv           *http.Server
	ln                 net.Listener
	adminLn            net.Listener
	// With TLS: the certificates, the shared ticket keys, and the optional
	// plain-HTTP listener.
	certs   *tlsconf.Certificates
	tickets *tlsconf.TicketKeys
	httpLn  net.Listener
	httpSrv *http.Server
	// feedLease and feedStore share the ip feeds between this process's
	// policies without Redis.
	feedLease ipfeed.Lease
	feedStore ipfeed.SetStore
	// cur is the running configuration for the console's goroutines
	// (cfg is the run loop's own); monitor and alerter are the console's
	// background half and the alerts.
	cur atomic.Pointer[loaded]
	// shadowStore is the shadow policy's state, kept across reloads.
	shadowStore *store.Memory
	monitor     *console.Monitor
	alerter     *alert.Alerter
	// alertSub is the alerter's feed of events (with alerts enabled).
	alertSub *console.Subscription
}

// newServer builds everything from the configuration and opens the
// listeners; nothing runs yet.
func newServer(cfg *loaded, getenv func(string) (string, bool), stdout io.Writer, with ...func(*server)) (*server, error) {
	s := &server{cfg: cfg, getenv: getenv, level: new(slog.LevelVar)}
	for _, o := range with {
		o(s)
	}
	s.level.Set(cfg.Log.Level)
	logOut := stdout
	if cfg.Log.File != "" {
		f, err := os.OpenFile(cfg.Log.File, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, fmt.Errorf("opening log file: %w", err)
		}
		s.logFile, logOut = f, io.MultiWriter(stdout, f)
	}
	s.log = slog.New(slog.NewJSONHandler(&lockedWriter{w: logOut}, &slog.HandlerOptions{Level: s.level}))
	redis.SetLogger(redisLogger{s.log.With(slog.String("component", "redis"))})
	for _, w := range cfg.warnings {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "config_warning", slog.String("detail", w))
	}

	rc, mc := cfg.storeConfigs(s.log)
	s.metrics = gateway.NewMetrics()
	// The per-replica fallback limiter is memory, whatever the store.
	s.fallback = store.NewMemory(store.DefaultMemoryConfig())
	s.shadowStore = store.NewMemory(store.DefaultMemoryConfig())
	if rc.URL == "" {
		m := store.NewMemory(mc)
		s.store = m
		if cfg.Events.Enabled {
			s.events = store.NewMemoryEvents(cfg.Events.MaxLen, s.metrics)
		}
	} else {
		r, err := store.NewRedis(rc)
		if err != nil {
			s.close()
			return nil, err
		}
		s.store = r
		if cfg.Events.Enabled {
			s.events = r.Events(cfg.Events, s.metrics, s.log)
		}
	}
	if _, ok := s.store.(*store.Redis); !ok {
		// One process: its policies share one in-memory feed store, so a
		// reload does not fetch the feeds again.
		s.feedLease, s.feedStore = ipfeed.NewMemoryLease(nil), ipfeed.NewMemoryStore()
	}
	pol, err := cfg.buildPolicy(s.deps(cfg))
	if err != nil {
		s.close()
		return nil, err
	}
	syncFeeds(context.Background(), pol, s.log)
	opts := gateway.Options{Store: s.store, Logger: s.log, Metrics: s.metrics}
	if s.events != nil {
		opts.Events = s.events
	}
	g, err := gateway.New(cfg.gatewayConfig(), pol, opts)
	if err != nil {
		s.close()
		return nil, err
	}
	s.g, s.health = g, admin.NewHealth(g)
	s.cur.Store(cfg)
	mux := http.NewServeMux()
	s.health.Register(mux)
	var events admin.EventLog
	var monEvents any
	if s.events != nil {
		events, monEvents = s.events, s.events
	}
	admin.New(g, s.health, s.store, events, cfg.Admin.Token, s.log).Register(mux)
	if s.monitor, err = console.NewMonitor(console.MonitorOptions{Gateway: g, Store: s.store, Events: monEvents,
		Version: versionString(), ConfigHash: func() string { return s.cur.Load().hash }, Config: cfg.Admin.Console, Logger: s.log}); err != nil {
		s.close()
		return nil, err
	}
	con, err := console.New(console.Options{Gateway: g, Token: cfg.Admin.Token, Store: s.store, Events: events,
		Monitor: s.monitor, Config: cfg.Admin.Console, Running: func() any { return s.cur.Load().File }, Logger: s.log})
	if err != nil {
		s.close()
		return nil, err
	}
	con.Register(mux)
	if cfg.Alerts.Enabled {
		// The alerter counts the batches its feed drops (it fell behind).
		s.alertSub = s.monitor.Subscribe(1024)
		if s.alerter, err = alert.New(alert.Options{Config: cfg.Alerts, Replica: g.Replica(), Claimer: s.store, Fleet: s.store,
			Health: s.store, Registerer: s.metrics.Registry, Logger: s.log, Dropped: s.alertSub.Dropped}); err != nil {
			s.close()
			return nil, err
		}
	}
	if cfg.Admin.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s.adminSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 90 * time.Second}

	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		s.close()
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	if cfg.TLS.inUse() {
		if err := s.listenTLS(); err != nil {
			s.close()
			return nil, err
		}
	}
	if cfg.Admin.Listen != "" && cfg.Admin.Listen != "off" {
		if s.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			s.close()
			return nil, fmt.Errorf("listening on %s (admin.listen): %w", cfg.Admin.Listen, err)
		}
	}
	return s, nil
}

// deps are what the detections of cfg get when they are built: the store
// and the fallback limiter (the same for every reload), with the settings
// of cfg, the configuration the policy is built for (at a reload, the new
// one, its restart-only sections already those of the running process).
func (s *server) deps(cfg *loaded) deps {
	d := deps{counter: s.store, fallback: s.fallback, shadow: s.shadowStore}
	d.jwt = detections.JWTDeps{Spread: s.store.(detections.Spreader), Getenv: s.getenv, TLS: cfg.TLS.terminates(),
		Logger: s.log.With(slog.String("component", "jwt"))}
	d.ip = detections.IPDeps{Replica: cfg.replica(), Logger: s.log.With(slog.String("component", "ipfeed")), Lease: s.feedLease, Store: s.feedStore}
	if r, ok := s.store.(*store.Redis); ok {
		ac := cfg.Detections.JWT.Config.AlgConfusion
		d.jwt.AlgStore, d.jwt.SecretCache = r.JWTAlgStore(ac.LearnTTL, ac.SightingTTL), r.JWTSecretCache()
		d.ip.Lease, d.ip.Store = r.FeedLease(cfg.replica()), r.FeedStore()
	}
	return d
}

// close releases what newServer opened.
func (s *server) close() {
	if s.alertSub != nil {
		s.alertSub.Close()
	}
	for _, l := range []net.Listener{s.ln, s.adminLn, s.httpLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
}

// run serves until ctx ends, reloading the policy on SIGHUP and when the
// file changes, then shuts down gracefully.
func (s *server) run(ctx context.Context, rl reloader, reload <-chan os.Signal, watch time.Duration) error {
	s.logStart(ctx)
	bg, cancelBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.g.Run(bg) })
	wg.Go(func() { watchStore(bg, s.store, s.metrics, s.log) })
	if s.events != nil {
		wg.Go(func() { s.events.Run(bg) })
	}
	wg.Go(func() { s.monitor.Run(bg) })
	if s.alerter != nil {
		wg.Go(func() { s.alerter.Run(bg, s.alertSub.C()); s.alertSub.Close() })
	}
	s.monitor.RecordReload(ctx, store.Reload{Trigger: "start", OK: true, ConfigHash: s.cfg.hash})
	errc := make(chan error, 3)
	go func() { errc <- s.g.Serve(s.ln) }()
	s.runTLS(bg, &wg, errc)
	if s.adminLn != nil {
		go func() {
			if err := s.adminSrv.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin listener: %w", err)
			}
		}()
	}
	changed := make(chan struct{}, 1)
	if rl.path != "" && watch > 0 {
		wg.Go(func() { watchFile(bg, rl.path, watch, changed) })
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-reload:
			rl.reload(ctx, "sighup")
			s.reloadCertificates(ctx)
		case <-changed:
			rl.reload(ctx, "file_changed")
		}
	}

	cfg := s.cfg
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "gateway_stopping", slog.String("replica", s.g.Replica()),
		slog.Duration("shutdown_delay", cfg.Timeouts.ShutdownDelay))
	s.health.Drain()
	if d := cfg.Timeouts.ShutdownDelay; d > 0 && runErr == nil {
		time.Sleep(d) // still serving: in-flight and new requests, while the LB notices /readyz
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
	defer cancel()
	if err := s.g.Shutdown(sctx); err != nil {
		s.log.LogAttrs(sctx, slog.LevelWarn, "shutdown_incomplete", slog.String("error", err.Error()))
	}
	_ = s.adminSrv.Shutdown(sctx)
	if s.httpSrv != nil {
		_ = s.httpSrv.Shutdown(sctx)
	}
	cancelBG()
	wg.Wait()
	if s.events != nil {
		s.events.Flush(sctx)
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "gateway_stopped", slog.String("replica", s.g.Replica()))
	return runErr
}

func (s *server) logStart(ctx context.Context) {
	cfg := s.cfg
	kind := "memory"
	if s.store.Shared() {
		kind = "redis"
	}
	adminAddr := "off"
	if s.adminLn != nil {
		adminAddr = s.adminLn.Addr().String()
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "gateway_started", slog.String("version", versionString()),
		slog.String("listen", s.ln.Addr().String()), slog.String("upstream", s.g.Upstream()),
		slog.String("admin", adminAddr), slog.String("store", kind), slog.String("replica", s.g.Replica()),
		slog.Any("chain", chainNames(s.g.Policy().Chain)), slog.Any("trusted_proxies", cfg.TrustedProxies),
		slog.String("config", displayPath(cfg.path)), slog.String("config_hash", cfg.hash))
	if !s.store.Shared() {
		s.log.LogAttrs(ctx, slog.LevelWarn, "state_not_shared",
			slog.String("detail", "REDIS_URL is not set: rate limits, enumeration counters and bans live in this process only and are NOT shared with other replicas; set REDIS_URL for more than one instance"))
	}
	if cfg.Admin.Token == "" {
		s.log.LogAttrs(ctx, slog.LevelInfo, "admin_api_disabled", slog.String("detail", "set GATEWAY_ADMIN_TOKEN to enable the admin API (health and metrics stay available)"))
	}
}

func chainNames(c *detections.Chain) []string {
	var out []string
	for _, e := range c.Entries() {
		out = append(out, e.Detection.Name()+":"+e.Mode.String())
	}
	return out
}

// lockedWriter serialises writes to a writer shared by handlers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// redisLogger sends go-redis's internal messages to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.log.LogAttrs(ctx, slog.LevelDebug, "redis_client", slog.String("message", fmt.Sprintf(format, v...)))
}
