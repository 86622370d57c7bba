// Command gateway runs Rampart, the inline API security gateway.
//
//	gateway -config rampart.yaml
//	gateway -check-config -config rampart.yaml
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/config"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, hup); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// sharedStore is what main needs of a store beyond the gateway's Store.
type sharedStore interface {
	gateway.Store
	gateway.AdminStore
	detections.Counter
	Close() error
}

// run is the composition root: it maps config and environment onto each
// package's config, builds the store, the detections, the chain and the
// gateway, and runs until ctx ends. reload delivers SIGHUP.
func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer, reload <-chan os.Signal) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defPath, _ := getenv("GATEWAY_CONFIG")
	path := fs.String("config", defPath, "YAML config file (env GATEWAY_CONFIG); empty: defaults and environment only")
	check := fs.Bool("check-config", false, "validate the config and exit (non-zero with the errors)")
	watch := fs.Duration("watch", 2*time.Second, "reload the config file when it changes, checking this often (0: only on SIGHUP)")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *version {
		fmt.Fprintln(stdout, versionString())
		return nil
	}

	// Stateful detections need the store before the config can be turned
	// into a chain, and the store needs the config: decode once with
	// placeholder deps to learn the store settings.
	memFallback := store.NewMemory(store.DefaultMemoryConfig())
	probe := &lateDeps{}
	cfg, err := config.Load(*path, getenv, specs(deps{counter: probe, fallback: memFallback}))
	if err != nil {
		return err
	}
	if *check {
		if _, _, err := cfg.BuildChain(); err != nil {
			return err
		}
		if _, err := gatewayConfig(cfg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: OK\n", displayPath(cfg.Path))
		return nil
	}

	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	logOut := stdout
	if cfg.Log.File != "" {
		f, err := os.OpenFile(cfg.Log.File, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("opening log file: %w", err)
		}
		defer f.Close()
		logOut = io.MultiWriter(stdout, f)
	}
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: logOut}, &slog.HandlerOptions{Level: level}))
	redis.SetLogger(redisLogger{log.With(slog.String("component", "redis"))})

	gcfg, err := gatewayConfig(cfg)
	if err != nil {
		return err
	}
	st, err := openStore(cfg, gcfg.Replica, log)
	if err != nil {
		return err
	}
	defer st.Close()
	probe.set(st)

	metrics := gateway.NewMetrics()
	var sink gateway.EventSink
	var writer gateway.EventLog
	if rs, ok := st.(*store.Redis); ok && cfg.Events.Enabled {
		writer = gateway.NewEventWriter(rs.Client(), rs.Keys().Events(), gateway.EventWriterConfig{
			MaxLen: cfg.Events.MaxLen, MaxAge: cfg.Events.MaxAge, Buffer: cfg.Events.Buffer,
			Batch: cfg.Events.Batch, FlushInterval: cfg.Events.FlushInterval,
		}, metrics, log)
		sink = writer
	} else if cfg.Events.Enabled {
		writer = gateway.NewMemoryEventLog(cfg.Events.MaxLen, metrics)
		sink = writer
	}

	pol, err := buildPolicy(cfg)
	if err != nil {
		return err
	}
	g, err := gateway.New(gcfg, pol, gateway.Options{Store: st, Logger: log, Metrics: metrics, Events: sink})
	if err != nil {
		return err
	}
	health := gateway.NewHealth(g)
	admin := gateway.NewAdmin(g, health, st, writer, cfg.Admin.Token, log)
	mux := http.NewServeMux()
	health.Register(mux)
	admin.Register(mux)
	if cfg.Admin.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	adminSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 90 * time.Second}

	ln, err := net.Listen("tcp", gcfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", gcfg.Listen, err)
	}
	var adminLn net.Listener
	if cfg.Admin.Listen != "" && cfg.Admin.Listen != "off" {
		adminLn, err = net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listening on %s (admin): %w", cfg.Admin.Listen, err)
		}
	}

	storeKind := "memory"
	if st.Shared() {
		storeKind = "redis"
	}
	log.LogAttrs(ctx, slog.LevelInfo, "gateway_started", slog.String("version", versionString()),
		slog.String("listen", ln.Addr().String()), slog.String("upstream", gcfg.Upstream),
		slog.String("admin", addrOf(adminLn)), slog.String("store", storeKind), slog.String("replica", gcfg.Replica),
		slog.Any("chain", chainNames(pol.Chain)), slog.Any("trusted_proxies", gcfg.TrustedProxies),
		slog.String("config", displayPath(cfg.Path)))
	if !st.Shared() {
		log.LogAttrs(ctx, slog.LevelWarn, "state_not_shared",
			slog.String("detail", "REDIS_URL is not set: rate limits, enumeration counters and bans live in this process only and are NOT shared with other replicas; set REDIS_URL for more than one instance"))
	}
	if cfg.Admin.Token == "" {
		log.LogAttrs(ctx, slog.LevelInfo, "admin_api_disabled", slog.String("detail", "set GATEWAY_ADMIN_TOKEN to enable the admin API (health and metrics stay available)"))
	}

	bg, cancelBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { g.Run(bg) })
	wg.Go(func() { watchStore(bg, st, metrics, log) })
	if writer != nil {
		wg.Go(func() { writer.Run(bg) })
	}
	errc := make(chan error, 2)
	go func() { errc <- g.Serve(ln) }()
	if adminLn != nil {
		go func() {
			if err := adminSrv.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin listener: %w", err)
			}
		}()
	}

	changed := make(chan struct{}, 1)
	if *path != "" && *watch > 0 {
		wg.Go(func() { watchFile(bg, *path, *watch, changed) })
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
			reloadConfig(ctx, *path, getenv, cfg, g, level, metrics, log, st, "sighup")
		case <-changed:
			reloadConfig(ctx, *path, getenv, cfg, g, level, metrics, log, st, "file_changed")
		}
	}

	log.LogAttrs(context.Background(), slog.LevelInfo, "gateway_stopping", slog.String("replica", gcfg.Replica),
		slog.Duration("shutdown_delay", cfg.Timeouts.ShutdownDelay))
	health.Drain()
	if d := cfg.Timeouts.ShutdownDelay; d > 0 && runErr == nil {
		time.Sleep(d) // still serving: in-flight and new requests, while the LB notices /readyz
	}
	sctx, cancel := context.WithTimeout(context.Background(), gcfg.ShutdownTimeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		log.LogAttrs(sctx, slog.LevelWarn, "shutdown_incomplete", slog.String("error", err.Error()))
	}
	_ = adminSrv.Shutdown(sctx)
	cancelBG()
	wg.Wait()
	if writer != nil {
		writer.Flush(sctx)
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "gateway_stopped", slog.String("replica", gcfg.Replica))
	return runErr
}

// lateDeps lets specs be built before the store exists; the store is set
// before any detection is constructed for serving.
type lateDeps struct {
	mu sync.RWMutex
	c  detections.Counter
}

func (l *lateDeps) set(c detections.Counter) { l.mu.Lock(); l.c = c; l.mu.Unlock() }

func (l *lateDeps) Incr(ctx context.Context, client string, window time.Duration) (int64, error) {
	l.mu.RLock()
	c := l.c
	l.mu.RUnlock()
	if c == nil {
		return 0, fmt.Errorf("no store yet: %w", detections.ErrStore)
	}
	return c.Incr(ctx, client, window)
}

func gatewayConfig(cfg *config.Loaded) (gateway.Config, error) {
	g := gateway.DefaultConfig()
	g.Listen, g.Upstream, g.PreserveHost = cfg.Listen, cfg.Upstream, cfg.PreserveHost
	g.TrustedProxies, g.ClientIPHeader, g.IPv6Prefix = cfg.TrustedProxies, cfg.ClientIPHeader, cfg.IPv6Prefix
	g.MaxBodyBytes, g.MaxHeaderBytes, g.Replica = cfg.MaxBodyBytes, cfg.MaxHeaderBytes, cfg.Replica
	t := cfg.Timeouts
	g.UpstreamTimeout, g.UpstreamDialTimeout, g.ReadHeaderTimeout = t.Upstream, t.UpstreamDial, t.ReadHeader
	g.ReadTimeout, g.WriteTimeout, g.IdleTimeout, g.ShutdownTimeout = t.Read, t.Write, t.Idle, t.Shutdown
	g.ObserveTimeout = t.Observe
	g.BanCacheSize, g.BanCacheMaxStale = cfg.Bans.CacheSize, cfg.Bans.CacheMaxStale
	g.BlocklistOnStoreError, _ = detections.ParseStorePolicy(cfg.Bans.OnStoreError)
	if g.Replica == "" {
		g.Replica, _ = os.Hostname()
	}
	return g, g.Validate()
}

func openStore(cfg *config.Loaded, replica string, log *slog.Logger) (sharedStore, error) {
	esc := store.Escalation{Factor: cfg.Bans.Escalation.Factor, Max: cfg.Bans.Escalation.Max, Memory: cfg.Bans.Escalation.Memory}
	if cfg.Redis.URL == "" {
		mc := store.DefaultMemoryConfig()
		mc.MaxEntries, mc.Escalation, mc.Replica = cfg.Memory.MaxEntries, esc, replica
		return store.NewMemory(mc), nil
	}
	sc := store.DefaultConfig()
	sc.URL, sc.Mode, sc.Prefix, sc.Timeout, sc.DialTimeout = cfg.Redis.URL, cfg.Redis.Mode, cfg.Redis.Prefix, cfg.Redis.Timeout, cfg.Redis.DialTimeout
	sc.PoolSize, sc.AutoPipeline = cfg.Redis.PoolSize, cfg.Redis.AutoPipeline
	sc.BreakerFailures, sc.BreakerCooldown = cfg.Redis.BreakerFailures, cfg.Redis.BreakerCooldown
	sc.Escalation, sc.Replica, sc.Logger = esc, replica, log.With(slog.String("component", "store"))
	s, err := store.NewRedis(sc)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// buildPolicy turns the config into the chain and client lists.
func buildPolicy(cfg *config.Loaded) (*gateway.Policy, error) {
	chain, built, err := cfg.BuildChain()
	if err != nil {
		return nil, err
	}
	p := &gateway.Policy{Chain: chain}
	if ip, ok := built["ip"].(*detections.IP); ok {
		p.Exempt, p.Protected = ip.Exempt, ip.Protected
	} else if _, s, ok := cfg.Section("ip"); ok {
		// The ip detection is off or not in the chain: its exempt list
		// still protects.
		if ip, err := detections.NewIP(s.(detections.IPConfig)); err == nil {
			p.Exempt, p.Protected = ip.Exempt, ip.Protected
		}
	}
	if p.Exempt == nil {
		p.Exempt = func(netip.Addr) bool { return false }
		p.Protected = p.Exempt
	}
	return p, nil
}

// reloadConfig re-reads the file; an invalid one is rejected and the running
// config stays.
func reloadConfig(ctx context.Context, path string, getenv func(string) (string, bool), old *config.Loaded, g *gateway.Gateway, level *slog.LevelVar, m *gateway.Metrics, log *slog.Logger, st sharedStore, trigger string) {
	start := time.Now()
	memFallback := store.NewMemory(store.DefaultMemoryConfig())
	next, err := config.Load(path, getenv, specs(deps{counter: st, fallback: memFallback}))
	var pol *gateway.Policy
	if err == nil {
		pol, err = buildPolicy(next)
	}
	if err == nil {
		_, err = gatewayConfig(next)
	}
	if err != nil {
		m.ObserveReload(false)
		log.LogAttrs(ctx, slog.LevelError, "config_reload_failed", slog.String("config", displayPath(path)), slog.String("trigger", trigger),
			slog.String("error", err.Error()), slog.String("detail", "the running configuration stays in force"))
		return
	}
	g.SetPolicy(pol)
	level.Set(parseLevel(next.Log.Level))
	m.ObserveReload(true)
	var restart []string
	if next.Listen != old.Listen || next.Upstream != old.Upstream || next.Redis.URL != old.Redis.URL ||
		next.Admin.Listen != old.Admin.Listen || fmt.Sprint(next.TrustedProxies) != fmt.Sprint(old.TrustedProxies) ||
		next.MaxBodyBytes != old.MaxBodyBytes {
		restart = append(restart, "listen, upstream, redis.url, admin.listen, trusted_proxies and max_body_bytes need a restart")
	}
	attrs := []slog.Attr{slog.String("config", displayPath(path)), slog.String("trigger", trigger), slog.Any("chain", chainNames(pol.Chain)), slog.Duration("took", time.Since(start))}
	if len(restart) > 0 {
		attrs = append(attrs, slog.Any("not_applied", restart))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "config_reloaded", attrs...)
}

// watchFile signals changed when the file's size or modification time
// changes. Polling costs one stat every interval and works on every file
// system (bind mounts and ConfigMaps included, where inotify is unreliable).
func watchFile(ctx context.Context, path string, every time.Duration, changed chan<- struct{}) {
	stamp := func() (time.Time, int64) {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Time{}, -1
		}
		return fi.ModTime(), fi.Size()
	}
	mt, sz := stamp()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m, s := stamp()
		if s < 0 || (m.Equal(mt) && s == sz) {
			continue
		}
		mt, sz = m, s
		select {
		case changed <- struct{}{}:
		default:
		}
	}
}

// watchStore pings the store every second: it closes the circuit as soon as
// Redis is back even without traffic, and reports transitions.
func watchStore(ctx context.Context, st sharedStore, m *gateway.Metrics, log *slog.Logger) {
	if !st.Shared() {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	up := true
	for {
		err := st.Ping(ctx)
		if ctx.Err() != nil {
			return
		}
		m.SetCircuitOpen(!st.Healthy())
		switch {
		case err != nil && up:
			up = false
			log.LogAttrs(ctx, slog.LevelWarn, "store_unavailable", slog.String("error", err.Error()),
				slog.String("detail", "failing open per on_store_error; known bans keep blocking from the local cache; retrying every second"))
		case err == nil && !up:
			up = true
			log.LogAttrs(ctx, slog.LevelInfo, "store_recovered")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func chainNames(c *detections.Chain) []string {
	var out []string
	for _, e := range c.Entries() {
		out = append(out, e.Detection.Name()+":"+e.Mode.String())
	}
	return out
}

func parseLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func displayPath(p string) string {
	if p == "" {
		return "(defaults)"
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

func addrOf(l net.Listener) string {
	if l == nil {
		return "off"
	}
	return l.Addr().String()
}

func versionString() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "rampart " + s.Value[:12]
			}
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return "rampart " + bi.Main.Version
		}
	}
	return "rampart dev"
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
