package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/tlsconf"
)

// ticketKeysStartTimeout bounds the first read of the session-ticket keys,
// made before the listener handshakes anyone: a store that does not answer
// delays the start by that much, and the gateway then serves with keys of
// its own (see listenTLS).
const ticketKeysStartTimeout = 2 * time.Second

// ticketKeySource is where the server's session-ticket keys come from:
// Redis, so that replicas share them (a session resumes on any of them),
// or, for one process, memory; or what a test put in s.ticketSource.
func (s *server) ticketKeySource() tlsconf.KeySource {
	if s.ticketSource != nil {
		return s.ticketSource
	}
	t := &s.cfg.TLS
	if r, ok := s.store.(*store.Redis); ok {
		return r.TicketKeys(t.TicketRotation, t.TicketKeysKept)
	}
	return tlsconf.NewMemoryKeySource(t.TicketRotation, t.TicketKeysKept)
}

// listenTLS puts TLS (or the PROXY protocol of a load balancer that
// terminates TLS) on the proxy listener, and opens the plain-HTTP one.
func (s *server) listenTLS() error {
	t := &s.cfg.TLS
	var tlsCfg *tls.Config // nil: a load balancer terminates TLS
	if t.terminates() {
		certs, err := tlsconf.LoadCertificates(t.Pairs())
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		s.certs, tlsCfg = certs, t.TLSConfig(certs)
		// The shared keys go on the config before tlsconf.Listen starts
		// handshaking (the TCP listener is open already: clients may be
		// waiting), so no ticket is sealed with crypto/tls's own random
		// key, which no other replica can read. Listen clones the config,
		// keys included; runTLS refreshes them afterwards.
		s.tickets = tlsconf.NewTicketKeys(s.ticketKeySource(), t.TicketKeysKept)
		s.tickets.Attach(tlsCfg)
		s.refreshTicketKeys()
	}
	opts, err := t.ListenOptions(tlsCfg, s.g.ObserveHandshake)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	l, err := tlsconf.Listen(s.ln, opts)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	s.ln = l
	if s.tickets != nil {
		s.tickets.Attach(l.TLSConfig())
	}
	if t.HTTPListen != "" {
		if s.httpLn, err = net.Listen("tcp", t.HTTPListen); err != nil {
			return fmt.Errorf("listening on %s (tls.http_listen): %w", t.HTTPListen, err)
		}
	}
	return nil
}

// refreshTicketKeys reads the ticket keys once, within
// ticketKeysStartTimeout. The gateway starts without Redis: on failure it
// logs and serves with crypto/tls's own keys until a refresh succeeds.
func (s *server) refreshTicketKeys() {
	timeout := ticketKeysStartTimeout
	if s.ticketStartTimeout > 0 {
		timeout = s.ticketStartTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.tickets.Refresh(ctx); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "tls_ticket_keys_unavailable", slog.String("error", err.Error()),
			slog.String("detail", "sessions resume on this replica only until the store answers"))
	}
}

// runTLS starts what TLS needs in the background: certificate polling,
// ticket-key refreshes (the first one was made by listenTLS), and the
// plain-HTTP listener.
func (s *server) runTLS(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) {
	// Read here, not in the goroutines: a reload replaces s.cfg.
	interval, mode, listen := s.cfg.TLS.ReloadInterval, s.cfg.TLS.HTTPMode, s.cfg.Listen
	if s.certs != nil && interval > 0 {
		wg.Go(func() {
			s.certs.Watch(ctx, interval, func(err error) {
				s.log.LogAttrs(ctx, slog.LevelWarn, "tls_certificates_reload_failed", slog.String("error", err.Error()),
					slog.String("detail", "the previous certificates stay in use"))
			})
		})
	}
	if s.tickets != nil {
		wg.Go(func() {
			s.tickets.Run(ctx, time.Minute, func(err error) {
				s.log.LogAttrs(ctx, slog.LevelWarn, "tls_ticket_keys_unavailable", slog.String("error", err.Error()))
			})
		})
	}
	if s.httpLn == nil {
		return
	}
	if mode == "serve" {
		go func() { errc <- s.g.Serve(s.httpLn) }()
		return
	}
	s.httpSrv = &http.Server{Handler: redirectHandler(listen), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("plain-HTTP listener: %w", err)
		}
	}()
}

// redirectHandler sends every plain-HTTP request to the same URL over
// HTTPS (308 keeps the method and the body).
func redirectHandler(tlsListen string) http.Handler {
	_, port, _ := net.SplitHostPort(tlsListen)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/\\@") {
			http.Error(w, `{"error":"Bad Request"}`, http.StatusBadRequest)
			return
		}
		if port != "" && port != "443" {
			host = net.JoinHostPort(host, port)
		}
		w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// reloadCertificates re-reads the certificate files (SIGHUP): those of the
// pairs loaded at start, whatever the file says now (tls needs a restart).
func (s *server) reloadCertificates(ctx context.Context) {
	if s.certs == nil {
		return
	}
	if err := s.certs.Reload(); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "tls_certificates_reload_failed", slog.String("error", err.Error()),
			slog.String("detail", "the previous certificates stay in use"))
		return
	}
	pairs := s.certs.Pairs()
	files := make([]string, len(pairs))
	for i, p := range pairs {
		files[i] = p.CertFile
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "tls_certificates_reloaded", slog.Int("pairs", len(pairs)), slog.Any("cert_files", files))
}
