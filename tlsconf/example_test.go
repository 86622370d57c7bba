package tlsconf_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/rampartgw/rampart/tlsconf"
)

// Example wires the pieces the way cmd/gateway is expected to: certificates
// reloaded by polling, ticket keys from a shared source, every handshake
// counted and refused ones logged with their fingerprint, and the Facts of
// each request read from its context.
func Example() {
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg := tlsconf.DefaultConfig()
	cfg.CertFile, cfg.KeyFile = "/etc/rampart/tls.crt", "/etc/rampart/tls.key"
	if err := cfg.Validate(); err != nil {
		log.Error("tls_config_invalid", slog.Any("error", err))
		return
	}
	certs, err := tlsconf.LoadCertificates(cfg.Pairs())
	if err != nil {
		log.Error("tls_certificates", slog.Any("error", err))
		return
	}
	go certs.Watch(ctx, cfg.ReloadInterval, func(err error) {
		log.Warn("tls_reload_failed", slog.Any("error", err))
	})

	onHandshake := func(f tlsconf.Facts, err error) {
		// rampart_tls_handshakes_total{result=f.Result, version=f.VersionLabel()}++
		if err != nil && f.HasFingerprint() {
			log.Info("tls_handshake_refused", slog.String("result", f.Result), slog.String("version", f.VersionLabel()),
				slog.String("ja4", f.Fingerprint.JA4), slog.String("weak", f.Fingerprint.Weak.String()),
				slog.String("client_ip", f.ClientAddr.Addr().String()))
		}
	}
	opts, err := cfg.ListenOptions(cfg.TLSConfig(certs), onHandshake)
	if err != nil {
		return
	}
	inner, err := net.Listen("tcp", ":8443")
	if err != nil {
		return
	}
	l, err := tlsconf.Listen(inner, opts)
	if err != nil {
		return
	}
	// One KeySource for all replicas (the gateway's is Redis-backed).
	tickets := tlsconf.NewTicketKeys(tlsconf.NewMemoryKeySource(cfg.TicketRotation, cfg.TicketKeysKept), cfg.TicketKeysKept)
	tickets.Attach(l.TLSConfig())
	if err := tickets.Refresh(ctx); err != nil {
		log.Warn("tls_ticket_keys", slog.Any("error", err))
	}
	go tickets.Run(ctx, time.Minute, func(err error) { log.Warn("tls_ticket_keys", slog.Any("error", err)) })

	srv := &http.Server{
		ConnContext:       tlsconf.ConnContext,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if f := tlsconf.FactsFrom(r.Context()); f != nil {
				_ = f.Fingerprint.JA4 // a rule field, a rate-limit key...
			}
		}),
	}
	_ = srv.Serve(l)
}
