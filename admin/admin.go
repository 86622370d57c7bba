package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/ipfeed"
	"github.com/rampartgw/rampart/record"
)

// Config configures the admin listener (the admin section of the file).
type Config struct {
	// Listen is the admin listener's address; "off" disables it.
	Listen string `yaml:"listen"`
	// Token is the bearer token of the admin API. Prefer
	// GATEWAY_ADMIN_TOKEN; with no token the API is disabled.
	Token string `yaml:"token"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin
	// listener (for profiling; keep the listener private).
	Pprof bool `yaml:"pprof"`
}

// DefaultConfig listens on loopback only.
func DefaultConfig() Config { return Config{Listen: "127.0.0.1:9090"} }

// Validate reports an unusable address.
func (c Config) Validate() error {
	if c.Listen == "off" || c.Listen == "" {
		return nil
	}
	if err := gateway.ValidateListenAddr(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return nil
}

// Store is what the admin API reads from the store (changes go through
// the gateway, so that they take the same steps as automatic ones).
type Store interface {
	GetBan(ctx context.Context, client string) (record.Ban, bool, error)
	ListBans(ctx context.Context, limit int) ([]record.Ban, error)
	ListCIDRBans(ctx context.Context) ([]record.Ban, error)
	Counters(ctx context.Context, client string) (map[string]string, error)
}

// EventLog answers queries on the security events.
type EventLog interface {
	Query(ctx context.Context, q record.EventQuery) ([]record.Event, error)
}

// Admin is the authenticated admin API on the admin listener.
type Admin struct {
	g      *gateway.Gateway
	health *Health
	st     Store
	events EventLog
	token  [32]byte
	hasTok bool
	log    *slog.Logger
}

// New returns the admin API. With an empty token every endpoint answers
// 403: the API is disabled, never open. health is the instance that main
// drains on shutdown, so /v1/status reports it too. events may be nil (the
// event log is off).
func New(g *gateway.Gateway, health *Health, st Store, events EventLog, token string, log *slog.Logger) *Admin {
	if health == nil {
		health = NewHealth(g)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Admin{g: g, health: health, st: st, events: events, log: log.With(slog.String("component", "admin"))}
	if token != "" {
		a.token, a.hasTok = sha256.Sum256([]byte(token)), true
	}
	return a
}

// Register adds the /v1 endpoints to mux.
func (a *Admin) Register(mux *http.ServeMux) {
	mux.Handle("GET /v1/status", a.auth(a.status))
	mux.Handle("GET /v1/bans", a.auth(a.listBans))
	mux.Handle("POST /v1/bans", a.auth(a.addBan))
	mux.Handle("DELETE /v1/bans", a.auth(a.removeBan))
	mux.Handle("GET /v1/events", a.auth(a.listEvents))
	mux.Handle("GET /v1/summary", a.auth(a.summary))
	mux.Handle("GET /v1/counters", a.auth(a.counters))
	mux.Handle("GET /v1/tls/fingerprints", a.auth(a.fingerprints))
	mux.Handle("GET /v1/upstreams", a.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"upstreams": a.g.Upstreams()})
	}))
	mux.Handle("GET /v1/feeds", a.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"feeds": viewFeeds(a.g.Feeds())})
	}))
	mux.Handle("/v1/", a.auth(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	}))
}

type apiErr struct {
	Error string `json:"error"`
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiErr{Error: msg})
}

// auth checks the bearer token in constant time (comparing digests, so the
// token's length does not leak either).
func (a *Admin) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.hasTok {
			apiError(w, http.StatusForbidden, "admin API disabled: set GATEWAY_ADMIN_TOKEN")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-admin"`)
			apiError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h(w, r)
	})
}

// banView is a ban as the API shows it.
type banView struct {
	Client     string    `json:"client"`
	CIDR       bool      `json:"cidr,omitempty"`
	Reason     string    `json:"reason"`
	Detection  string    `json:"detection"`
	Count      int64     `json:"count"`
	FirstSeen  time.Time `json:"first_seen,omitzero"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	Until      time.Time `json:"until,omitzero"`
	TTLSeconds int64     `json:"ttl_seconds"`
	Replica    string    `json:"replica,omitempty"`
}

func viewBan(b record.Ban) banView {
	return banView{Client: b.Client, CIDR: b.CIDR, Reason: b.Reason, Detection: b.Detection, Count: b.Count,
		FirstSeen: b.FirstSeen.UTC(), LastSeen: b.LastSeen.UTC(), Until: b.Until.UTC(),
		TTLSeconds: int64((b.TTL + time.Second - 1) / time.Second), Replica: b.Replica}
}

func (a *Admin) status(w http.ResponseWriter, r *http.Request) {
	rd, _ := a.health.readiness(r.Context())
	type entry struct {
		Name string `json:"name"`
		Mode string `json:"mode"`
	}
	chain := []entry{}
	for _, e := range a.g.Policy().Chain.Entries() {
		chain = append(chain, entry{e.Detection.Name(), e.Mode.String()})
	}
	c := a.g.Caches()
	writeJSON(w, http.StatusOK, map[string]any{
		"status": rd.Status, "replica": rd.Replica, "store": rd.Store, "store_ok": rd.StoreOK,
		"store_error": rd.Error, "circuit": rd.Breaker, "upstream": rd.Upstream, "chain": chain,
		"uptime":            rd.Uptime,
		"local_bans_cached": c.Bans, "local_refusals_cached": c.Refusals, "range_bans_cached": c.Ranges,
		"upstreams": a.g.Upstreams(), "feeds": viewFeeds(a.g.Feeds()),
	})
}

// feedView is one IP feed in the admin API.
type feedView struct {
	Feed        string     `json:"feed"`
	Source      string     `json:"source"`
	Mode        string     `json:"mode"`
	Version     uint64     `json:"version"`
	Local       bool       `json:"local,omitempty"`
	Entries     int        `json:"entries"`
	Ranges      int        `json:"ranges"`
	Invalid     int        `json:"invalid"`
	Dropped     int        `json:"dropped"`
	Problems    []string   `json:"problems,omitempty"`
	Loaded      *time.Time `json:"loaded,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
}

func viewFeeds(sts []ipfeed.Status) []feedView {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	out := make([]feedView, 0, len(sts))
	for _, s := range sts {
		out = append(out, feedView{Feed: s.Feed, Source: s.Source, Mode: string(s.Mode), Version: s.Version, Local: s.Local,
			Entries: s.Entries, Ranges: s.Ranges, Invalid: s.Invalid, Dropped: s.Dropped, Problems: s.Problems,
			Loaded: opt(s.Loaded), LastSuccess: opt(s.LastSuccess), LastAttempt: opt(s.LastAttempt), LastError: s.LastError})
	}
	return out
}

func (a *Admin) listBans(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if c := r.URL.Query().Get("client"); c != "" {
		t, err := a.g.ParseTarget(c)
		if err != nil {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
		client, prefix := t.Key, t.Prefix
		if t.Range {
			bans, err := a.st.ListCIDRBans(ctx)
			if err != nil {
				apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
				return
			}
			for _, b := range bans {
				if b.Client == prefix.String() {
					writeJSON(w, http.StatusOK, viewBan(b))
					return
				}
			}
			apiError(w, http.StatusNotFound, "no active ban for "+prefix.String())
			return
		}
		b, found, err := a.st.GetBan(ctx, client)
		if err != nil {
			apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
			return
		}
		if !found {
			apiError(w, http.StatusNotFound, "no active ban for "+client)
			return
		}
		writeJSON(w, http.StatusOK, viewBan(b))
		return
	}
	limit, err := intParam(r, "limit", 1000, 1, 100_000)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	bans, err := a.st.ListBans(ctx, limit)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	cidrs, err := a.st.ListCIDRBans(ctx)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	out := make([]banView, 0, len(bans)+len(cidrs))
	for _, b := range append(cidrs, bans...) {
		out = append(out, viewBan(b))
	}
	writeJSON(w, http.StatusOK, map[string]any{"bans": out, "count": len(out)})
}

type banRequest struct {
	Client   string `json:"client"`
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
}

func (a *Admin) addBan(w http.ResponseWriter, r *http.Request) {
	var req banRequest
	if err := decodeJSON(w, r, &req); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	t, err := a.g.ParseTarget(req.Client)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	dur, reason, err := gateway.CheckBan(t, req.Duration, req.Reason)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	b, err := a.g.Ban(r.Context(), t, dur, reason)
	switch {
	case errors.Is(err, gateway.ErrExempt):
		apiError(w, http.StatusConflict, t.Key+": "+err.Error())
		return
	case err != nil:
		apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, viewBan(b))
}

func (a *Admin) removeBan(w http.ResponseWriter, r *http.Request) {
	c := r.URL.Query().Get("client")
	if c == "" {
		apiError(w, http.StatusBadRequest, "missing client query parameter")
		return
	}
	t, err := a.g.ParseTarget(c)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	forget := r.URL.Query().Get("forget")
	if forget != "" && forget != "1" && forget != "true" {
		apiError(w, http.StatusBadRequest, "forget must be 1 or true")
		return
	}
	existed, err := a.g.Unban(r.Context(), t, "admin_api", forget != "")
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	if !existed {
		apiError(w, http.StatusNotFound, "no active ban for "+t.Key)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"client": t.Key, "unbanned": true})
}

func (a *Admin) eventQuery(r *http.Request) (record.EventQuery, error) {
	q := r.URL.Query()
	eq := record.EventQuery{Detection: q.Get("detection"), Type: q.Get("type")}
	if c := q.Get("client"); c != "" {
		// Events carry the client key (IPv6: its /64) and the address.
		t, err := a.g.ParseTarget(c)
		if err != nil {
			return eq, err
		}
		eq.Client = t.Key
	}
	var err error
	if eq.Limit, err = intParam(r, "limit", 100, 1, 10_000); err != nil {
		return eq, err
	}
	if s := q.Get("since"); s != "" {
		if eq.Since, err = parseSince(s); err != nil {
			return eq, err
		}
	}
	return eq, nil
}

// parseSince accepts an RFC 3339 time or a duration back from now ("15m").
func parseSince(s string) (time.Time, error) {
	if d, err := record.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q is neither an RFC 3339 time nor a duration such as 15m", s)
}

func (a *Admin) listEvents(w http.ResponseWriter, r *http.Request) {
	if a.events == nil {
		apiError(w, http.StatusNotFound, "the event log is disabled (events.enabled: false)")
		return
	}
	eq, err := a.eventQuery(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	evs, err := a.events.Query(r.Context(), eq)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "events: "+err.Error())
		return
	}
	if evs == nil {
		evs = []record.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs, "count": len(evs)})
}

type countView struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

func (a *Admin) summary(w http.ResponseWriter, r *http.Request) {
	if a.events == nil {
		apiError(w, http.StatusNotFound, "the event log is disabled (events.enabled: false)")
		return
	}
	window := time.Hour
	if s := r.URL.Query().Get("window"); s != "" {
		d, err := record.ParseDuration(s)
		if err != nil || d <= 0 {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("window %q is not a positive duration such as 1h or 7d", s))
			return
		}
		window = d
	}
	top, err := intParam(r, "top", 10, 1, 1000)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	evs, err := a.events.Query(r.Context(), record.EventQuery{Since: time.Now().Add(-window), Limit: 10_000, Scan: 200_000})
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "events: "+err.Error())
		return
	}
	clients, dets, types := map[string]int{}, map[string]int{}, map[string]int{}
	blocks := 0
	for _, e := range evs {
		types[e.Type]++
		if e.Type != record.EventRequestBlocked {
			continue
		}
		blocks++
		clients[e.Client]++
		dets[e.Detection]++
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"window": window.String(), "events": len(evs), "blocks": blocks, "by_type": types,
		"top_clients": topN(clients, top), "top_detections": topN(dets, top),
		"truncated": len(evs) == 10_000,
	})
}

func topN(m map[string]int, n int) []countView {
	out := make([]countView, 0, len(m))
	for k, v := range m {
		out = append(out, countView{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func (a *Admin) counters(w http.ResponseWriter, r *http.Request) {
	t, err := a.g.ParseTarget(r.URL.Query().Get("client"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if t.Range {
		apiError(w, http.StatusBadRequest, "counters are per client, not per range")
		return
	}
	m, err := a.st.Counters(r.Context(), t.Key)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"client": t.Key, "counters": m})
}

// fingerprints lists the TLS fingerprints this replica's listener saw most
// often (a bounded top list; fingerprints are never metric labels).
func (a *Admin) fingerprints(w http.ResponseWriter, r *http.Request) {
	top, err := intParam(r, "top", 20, 1, 256)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	fps := a.g.TopFingerprints(top)
	writeJSON(w, http.StatusOK, map[string]any{"replica": a.g.Replica(), "fingerprints": fps, "count": len(fps)})
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q must be an integer in %d..%d", name, s, lo, hi)
	}
	return n, nil
}

// decodeJSON reads one JSON object strictly (unknown fields are errors),
// at most 64 KiB.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("content type %q: send application/json", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errors.New("body larger than 64 KiB")
		}
		if errors.Is(err, io.EOF) {
			return errors.New("empty body: send a JSON object")
		}
		return fmt.Errorf("malformed JSON: %v", err)
	}
	if dec.More() {
		return errors.New("malformed JSON: trailing data after the object")
	}
	return nil
}
