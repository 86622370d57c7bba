package gateway

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
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rampartgw/rampart/detections"
)

// AdminStore is what the admin API needs from the store.
type AdminStore interface {
	Ban(ctx context.Context, req detections.BanRequest) (detections.Ban, error)
	Unban(ctx context.Context, client string) (bool, error)
	GetBan(ctx context.Context, client string) (detections.Ban, bool, error)
	ListBans(ctx context.Context, limit int) ([]detections.Ban, error)
	BanCIDR(ctx context.Context, prefix netip.Prefix, dur time.Duration, reason, replica string) (detections.Ban, error)
	UnbanCIDR(ctx context.Context, prefix netip.Prefix) (bool, error)
	ListCIDRBans(ctx context.Context) ([]detections.Ban, error)
	Counters(ctx context.Context, client string) (map[string]string, error)
}

// Admin is the authenticated admin API on the admin listener.
type Admin struct {
	g      *Gateway
	health *Health
	st     AdminStore
	events EventLog
	token  [32]byte
	hasTok bool
	log    *slog.Logger
}

// NewAdmin returns the admin API. With an empty token every endpoint
// answers 403: the API is disabled, never open. health is the instance
// that main drains on shutdown, so /v1/status reports it too.
func NewAdmin(g *Gateway, health *Health, st AdminStore, events EventLog, token string, log *slog.Logger) *Admin {
	if health == nil {
		health = NewHealth(g)
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

func viewBan(b detections.Ban) banView {
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
	writeJSON(w, http.StatusOK, map[string]any{
		"status": rd.Status, "replica": rd.Replica, "store": rd.Store, "store_ok": rd.StoreOK,
		"store_error": rd.Error, "circuit": rd.Breaker, "upstream": rd.Upstream, "chain": chain,
		"uptime":            rd.Uptime,
		"local_bans_cached": a.g.bans.len(), "local_refusals_cached": a.g.refusals.len(),
	})
}

// clientArg turns an operator's client into a client key, or a range.
// A single address becomes its client key (IPv6: its /64); a CIDR at
// client-key granularity is a client; a wider or narrower one is a range.
func (a *Admin) clientArg(s string) (client string, prefix netip.Prefix, isRange bool, err error) {
	p, err := detections.ParseClientKey(s)
	if err != nil {
		return "", netip.Prefix{}, false, fmt.Errorf("client %q is not an IP address or CIDR", s)
	}
	bits := a.g.cfg.IPv6Prefix
	if p.Addr().Is4() {
		bits = 32
	}
	single := p.Bits() == p.Addr().BitLen()
	if single || p.Bits() == bits {
		return detections.ClientKey(p.Addr(), a.g.cfg.IPv6Prefix), p, false, nil
	}
	return p.String(), p, true, nil
}

func (a *Admin) listBans(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if c := r.URL.Query().Get("client"); c != "" {
		client, prefix, isRange, err := a.clientArg(c)
		if err != nil {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
		if isRange {
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
	client, prefix, isRange, err := a.clientArg(req.Client)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	dur := a.g.cfg.DefaultBanDuration
	if req.Duration != "" {
		dur, err = time.ParseDuration(req.Duration)
		if err != nil || dur <= 0 {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("duration %q is not a positive Go duration such as 90s, 15m or 24h", req.Duration))
			return
		}
	}
	if dur > 365*24*time.Hour {
		apiError(w, http.StatusBadRequest, "duration is longer than a year")
		return
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "manual"
	}
	if len(reason) > 200 || !printable(reason) {
		apiError(w, http.StatusBadRequest, "reason must be printable UTF-8 text of at most 200 bytes, on one line")
		return
	}
	if prefix.Bits() == 0 {
		apiError(w, http.StatusBadRequest, "refusing to ban every address")
		return
	}
	ctx := r.Context()
	var b detections.Ban
	if isRange {
		b, err = a.st.BanCIDR(ctx, prefix, dur, reason, a.g.cfg.Replica)
	} else {
		b, err = a.st.Ban(ctx, detections.BanRequest{Client: client, Reason: reason, Detection: "admin", Duration: dur, Replica: a.g.cfg.Replica, Replace: true})
	}
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	if isRange {
		a.g.wakeCIDRSync()
	} else {
		a.g.cacheBan(client, banEntry{until: b.Until, reason: b.Reason, detection: b.Detection})
	}
	a.g.rec.banned(ctx, nil, b)
	writeJSON(w, http.StatusCreated, viewBan(b))
}

func (a *Admin) removeBan(w http.ResponseWriter, r *http.Request) {
	c := r.URL.Query().Get("client")
	if c == "" {
		apiError(w, http.StatusBadRequest, "missing client query parameter")
		return
	}
	client, prefix, isRange, err := a.clientArg(c)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	var existed bool
	if isRange {
		existed, err = a.st.UnbanCIDR(ctx, prefix)
		client = prefix.String()
	} else {
		existed, err = a.st.Unban(ctx, client)
	}
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	if isRange {
		a.g.wakeCIDRSync()
	} else {
		a.g.onBanEvent(detections.BanEvent{Client: client, Unban: true})
	}
	if !existed {
		apiError(w, http.StatusNotFound, "no active ban for "+client)
		return
	}
	a.g.rec.unbanned(ctx, client, "admin_api")
	writeJSON(w, http.StatusOK, map[string]any{"client": client, "unbanned": true})
}

func (a *Admin) eventQuery(r *http.Request) (EventQuery, error) {
	q := r.URL.Query()
	eq := EventQuery{Detection: q.Get("detection"), Type: q.Get("type")}
	var err error
	if c := q.Get("client"); c != "" {
		// Events carry the client key (IPv6: its /64) and the address.
		if eq.Client, _, _, err = a.clientArg(c); err != nil {
			return eq, err
		}
	}
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
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
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
		evs = []Event{}
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
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("window %q is not a positive duration such as 1h", s))
			return
		}
		window = d
	}
	top, err := intParam(r, "top", 10, 1, 1000)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	evs, err := a.events.Query(r.Context(), EventQuery{Since: time.Now().Add(-window), Limit: 10_000, Scan: 200_000})
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "events: "+err.Error())
		return
	}
	clients, dets, types := map[string]int{}, map[string]int{}, map[string]int{}
	blocks := 0
	for _, e := range evs {
		types[e.Type]++
		if e.Type != EventRequestBlocked {
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
	c := r.URL.Query().Get("client")
	client, _, isRange, err := a.clientArg(c)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if isRange {
		apiError(w, http.StatusBadRequest, "counters are per client, not per range")
		return
	}
	m, err := a.st.Counters(r.Context(), client)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"client": client, "counters": m})
}

// printable reports whether s is valid UTF-8 without control characters
// (C0, C1, line and paragraph separators): operator text ends up in
// terminals and logs.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
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
