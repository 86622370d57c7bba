// Package config decodes the gateway's YAML file and GATEWAY_* environment
// overrides, strictly: an unknown key or a bad value is an error naming the
// key and its line. It is the one place where file and environment meet;
// each package owns its own config struct.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

// File is the top level of the YAML file, minus the detections section,
// whose shape comes from the registered detections.
type File struct {
	Listen         string   `yaml:"listen"`
	Upstream       string   `yaml:"upstream"`
	PreserveHost   bool     `yaml:"preserve_host"`
	TrustedProxies []string `yaml:"trusted_proxies"`
	ClientIPHeader string   `yaml:"client_ip_header"`
	IPv6Prefix     int      `yaml:"ipv6_prefix"`
	MaxBodyBytes   int64    `yaml:"max_body_bytes"`
	MaxHeaderBytes int      `yaml:"max_header_bytes"`
	Replica        string   `yaml:"replica"`
	// Chain is the order in which detections run; a detection not listed
	// does not run.
	Chain    []string `yaml:"chain"`
	Timeouts Timeouts `yaml:"timeouts"`
	Log      Log      `yaml:"log"`
	Admin    Admin    `yaml:"admin"`
	Redis    Redis    `yaml:"redis"`
	Memory   Memory   `yaml:"memory"`
	Bans     Bans     `yaml:"bans"`
	Events   Events   `yaml:"events"`
}

// Timeouts groups every timeout.
type Timeouts struct {
	Upstream     time.Duration `yaml:"upstream"`
	UpstreamDial time.Duration `yaml:"upstream_dial"`
	ReadHeader   time.Duration `yaml:"read_header"`
	Read         time.Duration `yaml:"read"`
	Write        time.Duration `yaml:"write"`
	Idle         time.Duration `yaml:"idle"`
	Shutdown     time.Duration `yaml:"shutdown"`
	// ShutdownDelay keeps serving after /readyz turns 503 on SIGTERM, so a
	// load balancer that polls readiness stops sending traffic first.
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
	Observe       time.Duration `yaml:"observe"`
}

// Log configures logging.
type Log struct {
	Level string `yaml:"level"`
	// File, when set, also writes the JSON log there (the prototype used
	// /tmp/app.log).
	File string `yaml:"file"`
}

// Admin configures the admin listener.
type Admin struct {
	Listen string `yaml:"listen"`
	// Token is the bearer token of the admin API. Prefer
	// GATEWAY_ADMIN_TOKEN; with no token the API is disabled.
	Token string `yaml:"token"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin
	// listener (for profiling; keep the listener private).
	Pprof bool `yaml:"pprof"`
}

// Redis configures the shared store. With no URL the embedded in-memory
// store is used (single instance).
type Redis struct {
	URL             string        `yaml:"url"`
	Mode            string        `yaml:"mode"`
	Prefix          string        `yaml:"prefix"`
	Timeout         time.Duration `yaml:"timeout"`
	DialTimeout     time.Duration `yaml:"dial_timeout"`
	PoolSize        int           `yaml:"pool_size"`
	AutoPipeline    bool          `yaml:"auto_pipeline"`
	BreakerFailures int           `yaml:"breaker_failures"`
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
}

// Memory configures the embedded store.
type Memory struct {
	MaxEntries int `yaml:"max_entries"`
}

// Bans configures the blocklist.
type Bans struct {
	CacheSize     int           `yaml:"cache_size"`
	CacheMaxStale time.Duration `yaml:"cache_max_stale"`
	OnStoreError  string        `yaml:"on_store_error"`
	Escalation    Escalation    `yaml:"escalation"`
}

// Escalation of repeat offenders' bans.
type Escalation struct {
	Factor float64       `yaml:"factor"`
	Max    time.Duration `yaml:"max"`
	Memory time.Duration `yaml:"memory"`
}

// Events configures the security-event stream in Redis.
type Events struct {
	Enabled       bool          `yaml:"enabled"`
	MaxLen        int64         `yaml:"max_len"`
	MaxAge        time.Duration `yaml:"max_age"`
	Buffer        int           `yaml:"buffer"`
	Batch         int           `yaml:"batch"`
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// Settings are the per-detection settings every detection has.
type Settings struct {
	Mode         string `yaml:"mode"`
	Status       int    `yaml:"status"`
	OnStoreError string `yaml:"on_store_error"`
}

// Defaults returns the file as if empty: each package's own defaults,
// so a default lives in one place.
func Defaults() File {
	g, st, mem, ev := gateway.DefaultConfig(), store.DefaultConfig(), store.DefaultMemoryConfig(), gateway.DefaultEventWriterConfig()
	return File{
		Listen:         g.Listen,
		Upstream:       g.Upstream,
		ClientIPHeader: g.ClientIPHeader,
		IPv6Prefix:     g.IPv6Prefix,
		MaxBodyBytes:   g.MaxBodyBytes,
		MaxHeaderBytes: g.MaxHeaderBytes,
		Timeouts: Timeouts{
			Upstream: g.UpstreamTimeout, UpstreamDial: g.UpstreamDialTimeout, ReadHeader: g.ReadHeaderTimeout,
			Read: g.ReadTimeout, Write: g.WriteTimeout, Idle: g.IdleTimeout, Shutdown: g.ShutdownTimeout, Observe: g.ObserveTimeout,
		},
		Log:   Log{Level: "info"},
		Admin: Admin{Listen: "127.0.0.1:9090"},
		Redis: Redis{Mode: st.Mode, Prefix: st.Prefix, Timeout: st.Timeout, DialTimeout: st.DialTimeout,
			AutoPipeline: st.AutoPipeline, BreakerFailures: st.BreakerFailures, BreakerCooldown: st.BreakerCooldown},
		Memory: Memory{MaxEntries: mem.MaxEntries},
		Bans: Bans{CacheSize: g.BanCacheSize, CacheMaxStale: g.BanCacheMaxStale, OnStoreError: g.BlocklistOnStoreError.String(),
			Escalation: Escalation{Factor: st.Escalation.Factor, Max: st.Escalation.Max, Memory: st.Escalation.Memory}},
		Events: Events{Enabled: true, MaxLen: ev.MaxLen, MaxAge: ev.MaxAge, Buffer: ev.Buffer, Batch: ev.Batch, FlushInterval: ev.FlushInterval},
	}
}

// Spec registers one detection's config section: its name (the YAML key
// under detections: and the chain entry), its default config and its
// constructor. cmd/gateway lists the specs; that list is the only place that
// knows every detection.
type Spec struct {
	Name  string
	typ   reflect.Type
	def   func() reflect.Value
	build func(v reflect.Value) (detections.Detection, Settings, error)
}

// section is one detection's YAML mapping: the common settings and the
// detection's own keys side by side.
type section[C any] struct {
	Settings `yaml:",inline"`
	Config   C `yaml:",inline"`
}

// Detection makes a Spec for a detection configured by C.
func Detection[C any](name string, def C, build func(C) (detections.Detection, error)) Spec {
	return Spec{
		Name: name,
		typ:  reflect.TypeOf(section[C]{}),
		def: func() reflect.Value {
			return reflect.ValueOf(section[C]{Settings: Settings{Mode: "enforce"}, Config: def})
		},
		build: func(v reflect.Value) (detections.Detection, Settings, error) {
			s := v.Interface().(section[C])
			if s.Mode == "off" {
				return nil, s.Settings, nil
			}
			d, err := build(s.Config)
			return d, s.Settings, err
		},
	}
}

// Loaded is a decoded and validated configuration.
type Loaded struct {
	File
	// Path is the file it came from ("" for defaults only).
	Path string
	// sections holds each detection's decoded section, by name.
	sections map[string]reflect.Value
	lines    map[string]int
	specs    []Spec
}

// Load reads path (empty: defaults only), applies environment overrides
// and decodes strictly against the registered detections.
func Load(path string, getenv func(string) (string, bool), specs []Spec) (*Loaded, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
	}
	return Parse(path, data, getenv, specs)
}

// Parse is Load on bytes.
func Parse(path string, data []byte, getenv func(string) (string, bool), specs []Spec) (*Loaded, error) {
	detFields := make([]reflect.StructField, 0, len(specs))
	for i, s := range specs {
		detFields = append(detFields, reflect.StructField{
			Name: fmt.Sprintf("D%d", i), Type: s.typ, Tag: reflect.StructTag(`yaml:"` + s.Name + `"`),
		})
	}
	detType := reflect.StructOf(detFields)
	topType := reflect.StructOf([]reflect.StructField{
		{Name: "File", Type: reflect.TypeOf(File{}), Tag: `yaml:",inline"`},
		{Name: "Detections", Type: detType, Tag: `yaml:"detections"`},
	})
	top := reflect.New(topType).Elem()
	def := Defaults()
	for _, s := range specs {
		def.Chain = append(def.Chain, s.Name)
	}
	top.Field(0).Set(reflect.ValueOf(def))
	for i, s := range specs {
		top.Field(1).Field(i).Set(s.def())
	}
	where := path
	if where == "" {
		where = "config"
	}
	lines := map[string]int{}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(top.Addr().Interface()); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err == nil {
			collectLines(&root, lines)
		}
	}
	l := &Loaded{File: top.Field(0).Interface().(File), Path: path, sections: map[string]reflect.Value{}, lines: lines, specs: specs}
	for i, s := range specs {
		l.sections[s.Name] = top.Field(1).Field(i)
	}
	if err := l.applyEnv(getenv); err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return l, nil
}

// collectLines records the line of every "detections.<name>" key and of
// the top-level keys, so semantic errors can name a line too.
func collectLines(root *yaml.Node, lines map[string]int) {
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		lines[k.Value] = k.Line
		if v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				lines[k.Value+"."+v.Content[j].Value] = v.Content[j].Line
			}
		}
	}
}

// at formats "key (line N)" when the key's line is known.
func (l *Loaded) at(key string) string {
	if n, ok := l.lines[key]; ok {
		return fmt.Sprintf("%s (line %d)", key, n)
	}
	return key
}

// Env lists the environment variables that override the file.
var Env = []struct{ Name, Key, Meaning string }{
	{"GATEWAY_LISTEN", "listen", "proxy listen address"},
	{"GATEWAY_UPSTREAM", "upstream", "upstream base URL"},
	{"GATEWAY_TRUSTED_PROXIES", "trusted_proxies", "comma-separated CIDRs whose forwarding headers are trusted"},
	{"GATEWAY_LOG_LEVEL", "log.level", "debug, info, warn or error"},
	{"GATEWAY_LOG_FILE", "log.file", "also write JSON logs to this file"},
	{"GATEWAY_ADMIN_LISTEN", "admin.listen", "admin listener (metrics, health, admin API)"},
	{"GATEWAY_ADMIN_TOKEN", "admin.token", "bearer token of the admin API"},
	{"GATEWAY_REPLICA", "replica", "this instance's name in logs, bans and events"},
	{"REDIS_URL", "redis.url", "shared store; empty: embedded in-memory store"},
	{"GATEWAY_REDIS_PREFIX", "redis.prefix", "key prefix"},
	{"GATEWAY_PPROF", "admin.pprof", "true: serve /debug/pprof/ on the admin listener"},
}

func (l *Loaded) applyEnv(getenv func(string) (string, bool)) error {
	if getenv == nil {
		return nil
	}
	set := map[string]func(string){
		"GATEWAY_LISTEN":   func(v string) { l.Listen = v },
		"GATEWAY_UPSTREAM": func(v string) { l.Upstream = v },
		"GATEWAY_TRUSTED_PROXIES": func(v string) {
			l.TrustedProxies = nil
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					l.TrustedProxies = append(l.TrustedProxies, p)
				}
			}
		},
		"GATEWAY_LOG_LEVEL":    func(v string) { l.Log.Level = v },
		"GATEWAY_LOG_FILE":     func(v string) { l.Log.File = v },
		"GATEWAY_ADMIN_LISTEN": func(v string) { l.Admin.Listen = v },
		"GATEWAY_ADMIN_TOKEN":  func(v string) { l.Admin.Token = v },
		"GATEWAY_REPLICA":      func(v string) { l.Replica = v },
		"REDIS_URL":            func(v string) { l.Redis.URL = v },
		"GATEWAY_REDIS_PREFIX": func(v string) { l.Redis.Prefix = v },
		"GATEWAY_PPROF":        func(v string) { l.Admin.Pprof = v == "true" || v == "1" },
	}
	for _, e := range Env {
		if v, ok := getenv(e.Name); ok {
			set[e.Name](strings.TrimSpace(v))
		}
	}
	return nil
}

func (l *Loaded) validate() error {
	var errs []error
	switch l.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("%s: %q is not debug, info, warn or error", l.at("log"), l.Log.Level))
	}
	if _, err := detections.ParseStorePolicy(l.Bans.OnStoreError); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", l.at("bans.on_store_error"), err))
	}
	known := map[string]bool{}
	for _, s := range l.specs {
		known[s.Name] = true
	}
	seen := map[string]bool{}
	for _, n := range l.Chain {
		if !known[n] {
			errs = append(errs, fmt.Errorf("%s: unknown detection %q", l.at("chain"), n))
		}
		if seen[n] {
			errs = append(errs, fmt.Errorf("%s: %q listed twice", l.at("chain"), n))
		}
		seen[n] = true
	}
	for _, s := range l.specs {
		st := l.sections[s.Name].Field(0).Interface().(Settings)
		if _, err := detections.ParseMode(st.Mode); err != nil {
			errs = append(errs, fmt.Errorf("%s.mode: %w", l.at("detections."+s.Name), err))
		}
		if _, err := detections.ParseStorePolicy(st.OnStoreError); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.at("detections."+s.Name), err))
		}
		if st.Status != 0 && (st.Status < 400 || st.Status > 599) {
			errs = append(errs, fmt.Errorf("%s.status: %d is not a 4xx or 5xx", l.at("detections."+s.Name), st.Status))
		}
	}
	return errors.Join(errs...)
}

// BuildChain constructs the detections in chain order. Errors name the
// detection's section and line.
func (l *Loaded) BuildChain() (*detections.Chain, map[string]detections.Detection, error) {
	byName := map[string]Spec{}
	for _, s := range l.specs {
		byName[s.Name] = s
	}
	var entries []detections.Entry
	built := map[string]detections.Detection{}
	var errs []error
	for _, name := range l.Chain {
		s := byName[name]
		d, st, err := s.build(l.sections[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.at("detections."+name), err))
			continue
		}
		if d == nil {
			continue // mode: off
		}
		mode, _ := detections.ParseMode(st.Mode)
		pol, _ := detections.ParseStorePolicy(st.OnStoreError)
		entries = append(entries, detections.Entry{Detection: d, Mode: mode, Status: st.Status, OnStoreError: pol})
		built[name] = d
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	c, err := detections.NewChain(entries...)
	if err != nil {
		return nil, nil, err
	}
	return c, built, nil
}

// Section returns the decoded config of a detection (for tests and tools).
func (l *Loaded) Section(name string) (Settings, any, bool) {
	v, ok := l.sections[name]
	if !ok {
		return Settings{}, nil, false
	}
	return v.Field(0).Interface().(Settings), v.Field(1).Interface(), true
}
