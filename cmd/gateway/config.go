package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/rampartgw/rampart/admin"
	"github.com/rampartgw/rampart/alert"
	"github.com/rampartgw/rampart/config"
	"github.com/rampartgw/rampart/console"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/tlsconf"
)

// File is the YAML file: each package's own config struct, with its own
// yaml tags, put together. A setting is declared once, in its package; this
// file only says where each struct sits.
type File struct {
	gateway.Config `yaml:",inline"`
	// Chain is the order in which detections run; a detection not listed
	// does not run.
	Chain []string `yaml:"chain"`
	// Log is where and how much the gateway logs (JSON lines).
	Log LogConfig `yaml:"log"`
	// Admin is the admin listener: health, metrics, the admin API and the
	// console.
	Admin AdminSection `yaml:"admin"`
	// Redis is the shared store (single node, Sentinel or Cluster); without
	// a URL the gateway runs on an embedded in-memory store.
	Redis store.Config `yaml:"redis"`
	// Memory is the embedded store used without Redis.
	Memory store.MemoryConfig `yaml:"memory"`
	// Bans is the blocklist: the local cache, the outage policy, operator
	// bans and escalation.
	Bans BansSection `yaml:"bans"`
	// Events are the security events (blocks, bans, failures) written to
	// the Redis stream (or a ring in memory) for the admin API and console.
	Events store.EventsConfig `yaml:"events"`
	// TLS terminates TLS on listen (or reads TLS facts from a load
	// balancer) for the tls detection and fingerprints.
	TLS TLSSection `yaml:"tls"`
	// Detections are the detections' settings; chain says which run.
	Detections Detections `yaml:"detections"`
	// Routes send requests to their own upstreams with their own policy;
	// the first match wins (see RouteSection).
	Routes []RouteSection `yaml:"routes"`
	// IP is another spelling of detections.ip (ip: {feeds: [...]}),
	// decoded over it.
	IP config.Raw `yaml:"ip"`
	// Alerts sends notifications (webhook, Slack, Alertmanager).
	Alerts alert.Config `yaml:"alerts"`
	// Shadow judges live traffic by a candidate configuration too.
	Shadow ShadowSection `yaml:"shadow"`
}

// ShadowSection is the shadow section: a candidate configuration file
// whose detections judge a copy of every request after it is answered,
// counted in rampart_shadow_decisions_total and, where they differ,
// recorded as shadow_diff events. It never changes an answer.
type ShadowSection struct {
	// File is the candidate configuration ("": no shadow). Only its
	// detections, chain, routes' detection overrides and exempt list are
	// used; its state (limits, bans) lives in this process.
	File string `yaml:"file"`
	// Sample is the share of requests judged (0 < sample <= 1).
	Sample float64 `yaml:"sample"`
	// Queue bounds the requests waiting; a full queue drops (counted).
	Queue int `yaml:"queue"`
	// Workers judge in parallel.
	Workers int `yaml:"workers"`
	// Timeout bounds one judgement.
	Timeout time.Duration `yaml:"timeout"`
}

func defaultShadowSection() ShadowSection {
	return ShadowSection{Sample: 1, Queue: 1024, Workers: 1, Timeout: time.Second}
}

// Validate checks the bounds (the file is checked by loading it).
func (s ShadowSection) Validate() error {
	var errs []error
	if s.Sample <= 0 || s.Sample > 1 {
		errs = append(errs, fmt.Errorf("sample: %v must be within (0, 1]", s.Sample))
	}
	if s.Queue < 1 || s.Queue > 1_000_000 {
		errs = append(errs, fmt.Errorf("queue: %d must be within 1..1000000", s.Queue))
	}
	if s.Workers < 1 || s.Workers > 64 {
		errs = append(errs, fmt.Errorf("workers: %d must be within 1..64", s.Workers))
	}
	if s.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: %v must be > 0", s.Timeout))
	}
	return errors.Join(errs...)
}

// AdminSection is the admin section: the listener and API (package admin)
// and the console it serves.
type AdminSection struct {
	admin.Config `yaml:",inline"`
	// Console is the web console served under /console (needs the admin
	// token).
	Console console.Config `yaml:"console"`
}

// TLSSection is the tls section: the listener's settings (tlsconf) and the
// gateway's (fingerprint forwarding, facts from a load balancer's headers),
// plus an optional plain-HTTP listener. Left at its defaults, the gateway
// speaks plain HTTP on listen, as without the section.
type TLSSection struct {
	tlsconf.Config     `yaml:",inline"`
	gateway.TLSOptions `yaml:",inline"`
	// HTTPListen, with TLS on, also listens for plain HTTP there.
	HTTPListen string `yaml:"http_listen"`
	// HTTPMode is what that listener does: redirect (308 to https://) or
	// serve (the same gateway, in plain HTTP).
	HTTPMode string `yaml:"http_mode"`
}

// terminates reports whether this process terminates TLS on listen.
func (t *TLSSection) terminates() bool { return len(t.Pairs()) > 0 }

// inUse reports whether the section says anything: certificates, or the
// PROXY protocol of a load balancer that terminates TLS, or any other key.
func (t *TLSSection) inUse() bool {
	def := defaultTLSSection()
	return !equalEmpty(reflect.ValueOf(t.Config), reflect.ValueOf(def.Config)) || t.HTTPListen != "" || t.HTTPMode != def.HTTPMode
}

func defaultTLSSection() TLSSection {
	return TLSSection{Config: tlsconf.DefaultConfig(), HTTPMode: "redirect"}
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug (also logs allowed requests), info, warn or error.
	Level slog.Level `yaml:"level"`
	// File, when set, also appends the JSON log there (the prototype used
	// /tmp/app.log).
	File string `yaml:"file"`
}

// BansSection is the bans section: the gateway's ban cache settings and
// the store's escalation of repeat offenders.
type BansSection struct {
	gateway.BansConfig `yaml:",inline"`
	// Escalation lengthens the automatic bans of repeat offenders.
	Escalation store.Escalation `yaml:"escalation"`
	// IdentityKeys are identities (besides the IP) whose bans every
	// request is checked against, e.g. [[jwt:sub], [header:X-Api-Key]];
	// identities that key a rate limit or an enumeration counter are
	// checked anyway.
	IdentityKeys [][]string `yaml:"identity_keys"`
}

// defaultFile returns the file as if empty: each package's own defaults.
func defaultFile() *File {
	f := &File{
		Config: gateway.DefaultConfig(),
		Log:    LogConfig{Level: slog.LevelInfo},
		Admin:  AdminSection{Config: admin.DefaultConfig(), Console: console.DefaultConfig()},
		Alerts: alert.DefaultConfig(),
		Shadow: defaultShadowSection(),
		Redis:  store.DefaultConfig(),
		Memory: store.DefaultMemoryConfig(),
		Bans:   BansSection{BansConfig: gateway.DefaultBansConfig(), Escalation: store.DefaultEscalation()},
		Events: store.DefaultEventsConfig(),
		TLS:    defaultTLSSection(),
	}
	f.Detections = defaultDetections()
	for _, s := range f.Detections.specs(deps{}) {
		if !s.optional {
			f.Chain = append(f.Chain, s.name)
		}
	}
	// Decoded through their sections; copies live where they are used.
	f.Memory.Escalation, f.Redis.Escalation = store.Escalation{}, store.Escalation{}
	f.Config.Bans = gateway.BansConfig{}
	return f
}

// envVar is one environment override of a key.
type envVar struct {
	Name, Key, Meaning string
}

// envVars are the environment variables that override the file; each names
// the key it sets (README "Environment variables" lists the same).
var envVars = [...]envVar{
	{"GATEWAY_LISTEN", "listen", "proxy listen address"},
	{"GATEWAY_UPSTREAM", "upstream", "upstream base URL"},
	{"GATEWAY_TRUSTED_PROXIES", "trusted_proxies", "comma-separated CIDRs whose forwarding headers are trusted"},
	{"GATEWAY_EXEMPT", "exempt", "comma-separated addresses or CIDRs never blocked or banned"},
	{"GATEWAY_LOG_LEVEL", "log.level", "debug, info, warn or error"},
	{"GATEWAY_LOG_FILE", "log.file", "also write JSON logs to this file"},
	{"GATEWAY_ADMIN_LISTEN", "admin.listen", "admin listener (metrics, health, admin API)"},
	{"GATEWAY_ADMIN_TOKEN", "admin.token", "bearer token of the admin API"},
	{"GATEWAY_PPROF", "admin.pprof", "true: serve /debug/pprof/ on the admin listener"},
	{"GATEWAY_REPLICA", "replica", "this instance's name in logs, bans and events"},
	{"REDIS_URL", "redis.url", "shared store; empty: embedded in-memory store"},
	{"GATEWAY_REDIS_PREFIX", "redis.prefix", "key prefix"},
	{"GATEWAY_BANS_SNAPSHOT_FILE", "bans.snapshot_file", "file where this replica keeps the bans it knows"},
	{"GATEWAY_TLS_CERT_FILE", "tls.cert_file", "TLS certificate (PEM); with GATEWAY_TLS_KEY_FILE, listen speaks HTTPS"},
	{"GATEWAY_TLS_KEY_FILE", "tls.key_file", "TLS private key (PEM)"},
	{"GATEWAY_TLS_PROXY_PROTOCOL", "tls.proxy_protocol", "off, optional or required: PROXY protocol from a TCP load balancer"},
	{"GATEWAY_TLS_PROXY_TRUSTED_CIDRS", "tls.proxy_trusted_cidrs", "comma-separated CIDRs allowed to send the PROXY protocol"},
}

// loaded is a decoded, validated file.
type loaded struct {
	*File
	path string
	doc  *config.Document
	hash string // sha256 of the file's bytes, first 12 hex digits ("" without a file)
	// warnings are problems that do not stop the gateway (deprecated keys).
	warnings []string
	// data and name are the file as read, for decoding routes' overrides
	// over fresh copies of the top-level sections.
	data []byte
	name string
}

// load reads path (empty: defaults only), applies the environment and
// checks everything that would fail at start: every error at once, each
// with its key and line.
func load(path string, getenv func(string) (string, bool)) (*loaded, error) {
	var data []byte
	name := "config"
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		name = path
	}
	f := defaultFile()
	doc, err := config.Decode(name, data, f)
	l := &loaded{File: f, path: path, doc: doc, hash: contentHash(data), data: data, name: name}
	errs := []error{err}
	if err == nil && !f.IP.IsZero() {
		errs = append(errs, doc.DecodeAt(f.IP, &f.Detections.IP, "ip"))
	}
	if getenv != nil {
		for _, e := range envVars {
			if v, ok := getenv(e.Name); ok {
				if err := config.Set(f, e.Key, v); err != nil {
					errs = append(errs, fmt.Errorf("environment %s: %w", e.Name, err))
				}
			}
		}
	}
	errs = append(errs, l.validate())
	return l, config.Join(errs...)
}

// validate checks every section with its package's own Validate, the
// chain, and builds every detection with its real constructor (on a
// throw-away store), so a check catches what would fail at start.
func (l *loaded) validate() error {
	d, f := l.doc, l.File
	errs := []error{
		d.Annotate("", f.Config.Validate()),
		d.Annotate("bans", f.Bans.BansConfig.Validate()),
		d.Annotate("bans.escalation", f.Bans.Escalation.Validate()),
		d.Annotate("redis", f.Redis.Validate()),
		d.Annotate("memory", f.Memory.Validate()),
		d.Annotate("events", f.Events.Validate()),
		d.Annotate("admin", f.Admin.Validate()),
		d.Annotate("admin.console", f.Admin.Console.Validate()),
		d.Annotate("alerts", f.Alerts.Validate()),
		d.Annotate("shadow", f.Shadow.Validate()),
	}
	if f.Admin.Listen != "off" && f.Admin.Listen != "" && f.Admin.Listen == f.Listen {
		errs = append(errs, d.Annotate("admin.listen", fmt.Errorf("admin.listen: %q is also listen: the proxy and the admin listener need their own ports", f.Listen)))
	}
	if f.Log.File != "" {
		if fi, err := os.Stat(filepath.Dir(f.Log.File)); err != nil || !fi.IsDir() {
			errs = append(errs, d.Annotate("log.file", fmt.Errorf("log.file: directory of %q does not exist", f.Log.File)))
		}
	}
	if f.Bans.SnapshotFile != "" {
		if fi, err := os.Stat(filepath.Dir(f.Bans.SnapshotFile)); err != nil || !fi.IsDir() {
			errs = append(errs, d.Annotate("bans.snapshot_file", fmt.Errorf("bans.snapshot_file: directory of %q does not exist", f.Bans.SnapshotFile)))
		}
	}
	if f.TLS.inUse() {
		errs = append(errs, d.Annotate("tls", f.TLS.Config.Validate()))
		switch f.TLS.HTTPMode {
		case "redirect", "serve":
		default:
			errs = append(errs, d.Annotate("tls.http_mode", fmt.Errorf("tls.http_mode: %q is not redirect or serve", f.TLS.HTTPMode)))
		}
		if f.TLS.HTTPListen != "" {
			if err := gateway.ValidateListenAddr(f.TLS.HTTPListen); err != nil {
				errs = append(errs, d.Annotate("tls.http_listen", fmt.Errorf("tls.http_listen: %w", err)))
			} else if f.TLS.HTTPListen == f.Listen {
				errs = append(errs, d.Annotate("tls.http_listen", fmt.Errorf("tls.http_listen: %q is also listen", f.Listen)))
			}
		}
		if f.TLS.terminates() {
			if _, err := tlsconf.LoadCertificates(f.TLS.Pairs()); err != nil {
				errs = append(errs, d.Annotate("tls", fmt.Errorf("tls: %w", err)))
			}
		}
	}
	if len(f.Detections.IP.Exempt) > 0 {
		l.warnings = append(l.warnings, "detections.ip.exempt is deprecated: it is gateway policy now, write it as the top-level exempt list")
	}
	pol, err := l.buildPolicy(checkDeps())
	closePolicy(pol)
	errs = append(errs, err)
	return config.Join(errs...)
}

// checkDeps are the dependencies detections are built with for a
// configuration check: a store that does no I/O.
func checkDeps() deps {
	m := store.NewMemory(store.DefaultMemoryConfig())
	return deps{counter: m, fallback: m, jwt: detections.JWTDeps{Spread: m, Getenv: func(string) (string, bool) { return "", false }}}
}

// buildPolicy builds the chain in the configured order, the routes with
// their own chains, and the client lists: what a reload swaps.
func (l *loaded) buildPolicy(dp deps) (*gateway.Policy, error) {
	d, f := l.doc, l.File
	chain, errs := l.buildChain(&f.Detections, f.Chain, dp, "")
	exempt, err := detections.ParseIPSet(append(append([]string(nil), f.Exempt...), f.Detections.IP.Exempt...))
	if err != nil {
		errs = append(errs, d.Annotate("exempt", fmt.Errorf("exempt: %w", err)))
	}
	routes, rerrs := l.buildRoutes(dp)
	errs = append(errs, rerrs...)
	banKeys, kerrs := l.banKeys()
	errs = append(errs, kerrs...)
	if err := errors.Join(errs...); err != nil {
		closeChain(chain)
		for _, r := range routes {
			closeChain(r.Chain)
		}
		return nil, config.Join(errs...)
	}
	up := f.Upstream
	pol := &gateway.Policy{Chain: chain, Exempt: exempt, Routes: routes, Upstream: &up, BanKeys: banKeys}
	// The allow list protects from bans even when the ip detection is off
	// (and then was not built; when it is, its section's errors are
	// reported already).
	if allow, err := detections.ParseIPSet(f.Detections.IP.Config.Allow); err == nil && allow.Len() > 0 {
		pol.AllowListed = allow.Contains
	}
	if f.Shadow.File != "" {
		sp, err := l.buildShadow(dp)
		if err != nil {
			closePolicy(pol)
			return nil, err
		}
		pol.Shadow = sp
	}
	return pol, nil
}

// banKeys parses bans.identity_keys: the identities, other than the IP
// alone, whose bans every request is checked against.
func (l *loaded) banKeys() ([]detections.KeySpec, []error) {
	var keys []detections.KeySpec
	var errs []error
	for i, k := range l.Bans.IdentityKeys {
		spec, err := detections.ParseKeySpec(k)
		if err != nil {
			// One error per bad part, each naming its key
			// (bans.identity_keys[i][j]).
			parts := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				parts = j.Unwrap()
			}
			for _, e := range parts {
				errs = append(errs, l.doc.Annotate("bans", fmt.Errorf("bans.identity_keys[%d]%w", i, e)))
			}
			continue
		}
		if !spec.IsIP() {
			keys = append(keys, spec)
		}
	}
	return keys, errs
}

// buildChain builds the chain names lists from dets, every section with
// its real constructor (in the chain or not: a check catches a broken
// section before a reload adds it to the chain); at is the key prefix of
// the sections ("" for the top level, "routes[2]." for a route's own).
func (l *loaded) buildChain(dets *Detections, names []string, dp deps, at string) (*detections.Chain, []error) {
	d := l.doc
	specs := dets.specs(dp)
	byName := map[string]spec{}
	for _, s := range specs {
		byName[s.name] = s
	}
	var errs []error
	var entries []detections.Entry
	seen := map[string]bool{}
	for i, name := range names {
		key := fmt.Sprintf("%schain[%d]", at, i)
		_, ok := byName[name]
		switch {
		case !ok:
			errs = append(errs, d.Annotate(key, fmt.Errorf("%s: unknown detection %q (known: %s)", key, name, specNames(specs))))
			continue
		case seen[name]:
			errs = append(errs, d.Annotate(key, fmt.Errorf("%s: %q listed twice", key, name)))
			continue
		}
		seen[name] = true
	}
	var built []detections.Detection
	for _, s := range specs {
		section := at + "detections." + s.name
		if err := s.settings.Validate(); err != nil {
			errs = append(errs, d.Annotate(section, err))
		}
		if s.settings.Mode == detections.ModeOff {
			continue
		}
		if s.optional && !seen[s.name] {
			if err := s.check(); err != nil {
				errs = append(errs, d.Annotate(section, err))
			}
			continue
		}
		det, err := s.build()
		if err != nil {
			errs = append(errs, d.Annotate(section, err))
			continue
		}
		built = append(built, det)
		byName[s.name] = spec{name: s.name, settings: s.settings, built: det}
	}
	for _, name := range names {
		if s, ok := byName[name]; ok && s.built != nil && seen[name] {
			entries = append(entries, s.settings.Entry(s.built))
		}
	}
	if len(errs) > 0 {
		closeDetections(built)
		return nil, errs
	}
	chain, err := detections.NewChain(entries...)
	if err != nil {
		closeDetections(built)
		return nil, []error{d.Annotate(strings.TrimSuffix(at, ".")+"chain", err)}
	}
	// Sections built but not in the chain are not kept.
	var unused []detections.Detection
	for _, det := range built {
		if !slices.ContainsFunc(entries, func(e detections.Entry) bool { return e.Detection == det }) {
			unused = append(unused, det)
		}
	}
	closeDetections(unused)
	return chain, nil
}

func specNames(specs []spec) string {
	s := ""
	for i, sp := range specs {
		if i > 0 {
			s += ", "
		}
		s += sp.name
	}
	return s
}

// storeConfigs returns the store settings with the values that live in
// other sections filled in.
func (l *loaded) storeConfigs(log *slog.Logger) (store.Config, store.MemoryConfig) {
	rc, mc := l.Redis, l.Memory
	rc.Escalation, mc.Escalation = l.Bans.Escalation, l.Bans.Escalation
	rc.Replica, mc.Replica = l.replica(), l.replica()
	rc.Logger = log.With(slog.String("component", "store"))
	return rc, mc
}

// gatewayConfig returns the gateway's settings with its bans section.
func (l *loaded) gatewayConfig() gateway.Config {
	g := l.Config
	g.Bans = l.Bans.BansConfig
	g.TLS = l.TLS.TLSOptions
	g.Replica = l.replica()
	return g
}

func (l *loaded) replica() string {
	if l.Replica != "" {
		return l.Replica
	}
	h, _ := os.Hostname()
	return h
}

// equalEmpty is reflect.DeepEqual with nil and empty slices and maps
// equal: a file that writes `deny: []` means the default, nil.
func equalEmpty(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !equalEmpty(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !equalEmpty(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if !b.MapIndex(k).IsValid() || !equalEmpty(a.MapIndex(k), b.MapIndex(k)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalEmpty(a.Elem(), b.Elem())
	case reflect.Func:
		return a.IsNil() && b.IsNil()
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
