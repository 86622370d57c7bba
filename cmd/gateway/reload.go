package main

import (
	"context"
	"reflect"

	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"time"

	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

// reloader re-reads the configuration file and swaps the policy (the chain
// and the client lists). An invalid file is rejected and the running
// configuration stays.
type reloader struct {
	path   string
	getenv func(string) (string, bool)
	srv    *server
}

// reload applies the file; trigger says why (sighup, file_changed).
func (rl reloader) reload(ctx context.Context, trigger string) {
	s := rl.srv
	start := time.Now()
	old := s.cfg
	next, err := load(rl.path, rl.getenv)
	var na []string
	if err == nil {
		// What changed is reported before the settings a restart applies
		// are put back: the policy is built for the configuration that
		// runs (the file's detections, the process's listener and store).
		na = notApplied(old, next)
		keepRestartOnly(old, next)
		prev := s.g.Policy()
		var pol *gateway.Policy
		if pol, err = next.buildPolicy(s.deps(next)); err == nil {
			syncFeeds(ctx, pol, s.log)
			if err = s.g.SetPolicy(pol); err != nil {
				closePolicy(pol)
			}
		}
		if err == nil {
			// Requests that took the old policy finish with it: release
			// what its detections hold once none can still be running.
			time.AfterFunc(s.cfg.Timeouts.RequestBound(), func() { closePolicy(prev) })
		}
	}
	if err != nil {
		s.metrics.ObserveReload(false)
		if s.monitor != nil {
			hash := ""
			if next != nil {
				hash = next.hash
			}
			s.monitor.RecordReload(ctx, store.Reload{Trigger: trigger, OK: false, ConfigHash: hash, PreviousHash: s.cfg.hash, Error: err.Error()})
		}
		s.log.LogAttrs(ctx, slog.LevelError, "config_reload_failed", slog.String("config", displayPath(rl.path)),
			slog.String("trigger", trigger), slog.String("error", err.Error()),
			slog.String("detail", "the running configuration stays in force"))
		return
	}
	s.level.Set(next.Log.Level)
	s.metrics.ObserveReload(true)
	attrs := []slog.Attr{slog.String("config", displayPath(rl.path)), slog.String("trigger", trigger),
		slog.String("config_hash", next.hash), slog.String("previous_hash", old.hash),
		slog.Any("chain", chainNames(s.g.Policy().Chain)), slog.Duration("took", time.Since(start))}
	if len(na) > 0 {
		attrs = append(attrs, slog.Any("not_applied", na), slog.String("detail", "these keys changed but need a restart"))
	}
	for _, w := range next.warnings {
		attrs = append(attrs, slog.String("warning", w))
	}
	s.cfg = next
	s.cur.Store(next)
	s.log.LogAttrs(ctx, slog.LevelInfo, "config_reloaded", attrs...)
	if s.monitor != nil {
		s.monitor.RecordReload(ctx, store.Reload{Trigger: trigger, OK: true, ConfigHash: next.hash, PreviousHash: old.hash, NotApplied: na})
	}
}

// keepRestartOnly puts the sections of cur that only a restart applies
// into next, so that next is what runs once the reload is done: the
// listeners (tls with its certificates and ticket keys), the store, the
// admin listener, the log file... stay those of the running process. The
// policy's parts of the top-level section (upstream, exempt) are next's.
func keepRestartOnly(cur, next *loaded) {
	up, exempt := next.Upstream, next.Exempt
	next.File.Config = cur.File.Config
	next.Upstream, next.Exempt = up, exempt
	next.Redis, next.Admin, next.Memory, next.Alerts = cur.Redis, cur.Admin, cur.Memory, cur.Alerts
	next.Bans.BansConfig, next.Bans.Escalation = cur.Bans.BansConfig, cur.Bans.Escalation
	next.Events = cur.Events
	next.TLS = cur.TLS
	next.Log.File = cur.Log.File
}

// notApplied lists the keys that changed but only take effect at start.
func notApplied(old, next *loaded) []string {
	var out []string
	add := func(changed bool, key string) {
		if changed {
			out = append(out, key)
		}
	}
	a, b := old.File.Config, next.File.Config
	add(a.Listen != b.Listen, "listen")
	add(a.PreserveHost != b.PreserveHost, "preserve_host")
	add(!slices.Equal(a.TrustedProxies, b.TrustedProxies), "trusted_proxies")
	add(a.ClientIPHeader != b.ClientIPHeader, "client_ip_header")
	add(a.IPv6Prefix != b.IPv6Prefix, "ipv6_prefix")
	add(a.MaxBodyBytes != b.MaxBodyBytes, "max_body_bytes")
	add(a.MaxHeaderBytes != b.MaxHeaderBytes, "max_header_bytes")
	add(a.Timeouts != b.Timeouts, "timeouts")
	add(a.Replica != b.Replica, "replica")
	add(old.Redis != next.Redis, "redis")
	add(old.Admin.Config != next.Admin.Config, "admin")
	add(!reflect.DeepEqual(old.Admin.Console, next.Admin.Console), "admin.console")
	add(!reflect.DeepEqual(old.Alerts, next.Alerts), "alerts")
	add(old.Memory.MaxEntries != next.Memory.MaxEntries, "memory")
	add(old.Bans.BansConfig != next.Bans.BansConfig || old.Bans.Escalation != next.Bans.Escalation, "bans")
	add(old.Events != next.Events, "events")
	add(old.Log.File != next.Log.File, "log.file")
	add(!equalEmpty(reflect.ValueOf(old.TLS), reflect.ValueOf(next.TLS)), "tls")
	return out
}

// contentHash names a configuration's content in logs: the first 12 hex
// digits of its SHA-256 ("" without a file).
func contentHash(data []byte) string {
	if data == nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6])
}
