// Package console is the operator's web console on the admin listener:
// live security events from every replica, active bans with ban and unban,
// top offenders, the fleet's health and the running configuration. It is
// server-rendered (html/template, embedded with embed.FS), so everything
// but the live parts works with JavaScript off; the live parts are a
// Server-Sent Events stream and a little plain JavaScript written here. No
// asset comes from anywhere but the admin listener.
//
// Security: a login with the admin token (compared in constant time, failed
// attempts rate-limited and logged) makes a session cookie (HttpOnly,
// SameSite=Strict, Secure over TLS) authenticated with a key derived from
// the token; every state-changing request is a POST carrying a CSRF token
// bound to the session; pages are served with a strict Content-Security-
// Policy (no inline script, nothing from elsewhere). No token or secret is
// ever rendered. Without an admin token the console is off.
//
// The console reads the shared store and the event stream, and changes bans
// through the gateway's exported methods, like the admin API: it adds
// nothing to the request path.
package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/record"
	"github.com/rampartgw/rampart/store"
)

// Store is what the console reads: bans, and what the monitor writes.
// *store.Redis and *store.Memory satisfy it.
type Store interface {
	ListBans(ctx context.Context, limit int) ([]record.Ban, error)
	ListCIDRBans(ctx context.Context) ([]record.Ban, error)
	MonitorStore
}

// EventLog answers queries on the security events (the initial content of
// the Live page).
type EventLog interface {
	Query(ctx context.Context, q record.EventQuery) ([]record.Event, error)
}

// Options are the console's collaborators.
type Options struct {
	Gateway *gateway.Gateway
	// Token is the admin token; empty: the console is off.
	Token string
	Store Store
	// Events is the event log; nil when events are off.
	Events EventLog
	// Monitor feeds the live page (its Run must be running).
	Monitor *Monitor
	Config  Config
	// Running returns the running configuration, rendered as YAML with
	// secrets redacted on the Config page; nil shows nothing.
	Running func() any
	Logger  *slog.Logger
	// Now is the clock (tests); nil uses time.Now.
	Now func() time.Time
}

// Console serves /console.
type Console struct {
	g       *gateway.Gateway
	st      Store
	events  EventLog
	mon     *Monitor
	cfg     Config
	running func() any
	log     *slog.Logger
	now     func() time.Time
	enabled bool
	why     string // why the console is off
	keys    keys
	logins  *loginLimiter
	pages   map[string]*template.Template
	static  http.Handler
	streams chan struct{} // semaphore of live streams
}

// New returns the console. It is off (every page answers 403 with the
// reason) when the token is empty or the configuration disables it.
func New(opts Options) (*Console, error) {
	if opts.Gateway == nil || opts.Store == nil || opts.Monitor == nil {
		return nil, errors.New("console: the gateway, the store and the monitor are required")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if isNil(opts.Events) {
		opts.Events = nil
	}
	c := &Console{g: opts.Gateway, st: opts.Store, events: opts.Events, mon: opts.Monitor, cfg: opts.Config,
		running: opts.Running, log: opts.Logger.With(slog.String("component", "console")), now: opts.Now,
		streams: make(chan struct{}, opts.Config.MaxStreams)}
	switch {
	case opts.Token == "":
		c.why = "The console is off because no admin token is configured: set GATEWAY_ADMIN_TOKEN (admin.token) and restart."
	case !opts.Config.Enabled:
		c.why = "The console is off in the configuration (admin.console.enabled: false)."
	default:
		c.enabled = true
		c.keys = deriveKeys(opts.Token)
	}
	c.logins = newLoginLimiter(opts.Config.LoginAttempts, opts.Config.LoginWindow)
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(assets, "static")
	c.static = http.StripPrefix("/console/static/", http.FileServer(http.FS(sub)))
	return c, nil
}

// Enabled reports whether the console serves pages.
func (c *Console) Enabled() bool { return c.enabled }

// Register adds /console to mux.
func (c *Console) Register(mux *http.ServeMux) {
	if !c.enabled {
		off := c.secure(http.HandlerFunc(c.off))
		mux.Handle("/console", off)
		mux.Handle("/console/", off)
		return
	}
	mux.Handle("GET /console/static/", c.secure(c.staticHandler()))
	mux.Handle("GET /console", c.secure(http.RedirectHandler("/console/live", http.StatusSeeOther)))
	mux.Handle("GET /console/{$}", c.secure(http.RedirectHandler("/console/live", http.StatusSeeOther)))
	mux.Handle("GET /console/login", c.secure(http.HandlerFunc(c.loginPage)))
	mux.Handle("POST /console/login", c.secure(http.HandlerFunc(c.login)))
	mux.Handle("POST /console/logout", c.secure(c.post(c.logout)))
	mux.Handle("GET /console/live", c.secure(c.page(c.live)))
	mux.Handle("GET /console/live/stream", c.secure(c.api(c.stream)))
	mux.Handle("GET /console/live/rates", c.secure(c.api(c.rates)))
	mux.Handle("GET /console/bans", c.secure(c.page(c.bans)))
	mux.Handle("POST /console/bans", c.secure(c.post(c.ban)))
	mux.Handle("POST /console/bans/unban", c.secure(c.post(c.unban)))
	mux.Handle("GET /console/top", c.secure(c.page(c.top)))
	mux.Handle("GET /console/fleet", c.secure(c.page(c.fleet)))
	mux.Handle("GET /console/config", c.secure(c.page(c.config)))
	mux.Handle("/console/", c.secure(c.page(func(w http.ResponseWriter, r *http.Request, s session) {
		c.render(w, r, http.StatusNotFound, "error", s, map[string]any{"Title": "Not found", "Message": "There is no such page in the console."})
	})))
}

// csp allows nothing but this listener: no inline script or style, no
// frames, no form posts elsewhere.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// secure sets the headers every console response carries.
func (c *Console) secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/console/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

func (c *Console) staticHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "private, max-age=300")
		c.static.ServeHTTP(w, r)
	})
}

func (c *Console) off(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusForbidden, "disabled", session{}, map[string]any{"Title": "Console off", "Message": c.why})
}

// sessionOf returns the request's verified session.
func (c *Console) sessionOf(r *http.Request) (session, error) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, errSession
	}
	return c.keys.verify(ck.Value, c.now())
}

// page wraps a page handler: without a session, the browser goes to the
// login page and comes back afterwards.
func (c *Console) page(h func(http.ResponseWriter, *http.Request, session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.sessionOf(r)
		if err != nil {
			http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	})
}

// api wraps an endpoint that scripts call: no redirect, 401.
func (c *Console) api(h func(http.ResponseWriter, *http.Request, session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.sessionOf(r)
		if err != nil {
			http.Error(w, "not logged in to the console", http.StatusUnauthorized)
			return
		}
		h(w, r, s)
	})
}

// post wraps a state-changing form: a session, a same-origin request (when
// the browser says where it comes from) and the session's CSRF token.
func (c *Console) post(h func(http.ResponseWriter, *http.Request, session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.sessionOf(r)
		if err != nil {
			c.render(w, r, http.StatusUnauthorized, "error", session{}, map[string]any{"Title": "Not logged in",
				"Message": "Your session has ended: log in again and repeat the action."})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			c.render(w, r, http.StatusBadRequest, "error", s, map[string]any{"Title": "Bad request", "Message": "The form could not be read."})
			return
		}
		if !sameOrigin(r) || !c.keys.csrfOK(s, r.PostForm.Get(csrfField)) {
			c.log.LogAttrs(r.Context(), slog.LevelWarn, "console_csrf_refused", slog.String("client_ip", clientAddr(r)),
				slog.String("path", r.URL.Path))
			c.render(w, r, http.StatusForbidden, "error", s, map[string]any{"Title": "Refused",
				"Message": "This form is stale or did not come from the console (CSRF check failed): reload the page and try again."})
			return
		}
		h(w, r, s)
	})
}

// sameOrigin checks Origin (or, without it, Sec-Fetch-Site) when the
// browser sends them; their absence is left to the CSRF token.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin" || s == "none"
	}
	return true
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	CSRF    string
	Replica string
	Now     time.Time
	Data    any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, s session, data any) {
	t := c.pages[name]
	v := view{Nav: name, Replica: c.g.Replica(), Now: c.now().UTC(), Data: data}
	if m, ok := data.(map[string]any); ok {
		if title, ok := m["Title"].(string); ok {
			v.Title = title
		}
	}
	if s != (session{}) {
		v.CSRF = c.keys.csrf(s)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console_render_failed", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprint(w, b.String())
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := c.sessionOf(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", session{}, map[string]any{"Title": "Log in", "Next": safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") ||
		strings.HasPrefix(next, "/console/login") {
		return "/console/live"
	}
	return next
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	addr := clientAddr(r)
	now := c.now()
	if ok, retry, first := c.logins.allowed(addr, now); !ok {
		if first {
			c.log.LogAttrs(ctx, slog.LevelWarn, "console_login_throttled", slog.String("client_ip", addr),
				slog.Duration("retry_after", retry.Round(time.Second)))
		}
		w.Header().Set("Retry-After", fmt.Sprint(int(retry.Seconds())+1))
		c.render(w, r, http.StatusTooManyRequests, "login", session{}, map[string]any{"Title": "Log in",
			"Error": "Too many failed logins: wait a minute and try again.", "Next": "/console/live"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	_ = r.ParseForm()
	next := safeNext(r.PostForm.Get("next"))
	if !c.keys.tokenOK(r.PostForm.Get("token")) || !sameOrigin(r) {
		c.logins.failed(addr, now)
		c.log.LogAttrs(ctx, slog.LevelWarn, "console_login_failed", slog.String("client_ip", addr),
			slog.Int("token_length", len(r.PostForm.Get("token"))))
		c.render(w, r, http.StatusUnauthorized, "login", session{}, map[string]any{"Title": "Log in",
			"Error": "That is not the admin token.", "Next": next})
		return
	}
	value, _ := c.keys.newCookieValue(now.Add(c.cfg.SessionTTL))
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: cookiePath, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.cfg.SecureCookie,
		MaxAge: int(c.cfg.SessionTTL.Seconds()), Expires: now.Add(c.cfg.SessionTTL)})
	c.log.LogAttrs(ctx, slog.LevelInfo, "console_login", slog.String("client_ip", addr))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ session) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: cookiePath, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.cfg.SecureCookie, MaxAge: -1})
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console_logout", slog.String("client_ip", clientAddr(r)))
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// storeErr is the message a page shows when the store cannot answer.
func storeErr(err error) string {
	if errors.Is(err, store.ErrUnavailable) {
		return "The shared store is unavailable (circuit open): this part of the page is empty until Redis answers again."
	}
	return "The store did not answer: " + err.Error()
}
