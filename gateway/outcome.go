package gateway

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/rampartgw/rampart/detections"
)

// result is how a request ended: the label of rampart_requests_total.
// Every request is counted exactly once, under one result, by
// exchange.finish (or, for requests net/http refuses before any handler
// runs, by the connection wrapper in conn.go).
type result uint8

// The results; resultNames are their labels.
const (
	resultProxied result = iota
	resultBlocked
	resultBanned
	resultTooLarge
	resultHeaderTooLarge
	resultBadRequest
	resultTimeout
	resultUnavailable
	resultUpstreamError
	resultAborted
	resultInternalError
	resultNoRoute
	nResults
)

var resultNames = [nResults]string{"proxied", "blocked", "banned", "too_large", "header_too_large",
	"bad_request", "timeout", "unavailable", "upstream_error", "aborted", "internal_error", "no_route"}

// String returns the metric label.
func (r result) String() string { return resultNames[r] }

// outcome is how a request ended. A stage that answers the request returns
// one instead of writing the response; the exchange's finish writes it,
// counts it and records it, once.
type outcome struct {
	// result labels rampart_requests_total.
	result result
	// status is the gateway's own answer; 0 when the upstream's response
	// was relayed (or nobody is left to answer).
	status int
	// retryAfter, when > 0, is sent as Retry-After (whole seconds, rounded
	// up).
	retryAfter time.Duration
	// header is added to the refusal (RateLimit fields).
	header http.Header
	// closeConn asks net/http to close the connection after the answer
	// (the rest of an unread body).
	closeConn bool
	// decision is the detection's block, for request_blocked events; quiet
	// marks a repeat refusal the store already made (counted as banned,
	// logged at debug only, so a flood cannot flood the event stream).
	decision *detections.Decision
	quiet    bool
	// msg and level describe refusals that are not security events
	// (request_too_large, store_unavailable, upstream_error, panic); attrs
	// are their details.
	msg   string
	level slog.Level
	attrs []slog.Attr
}

// bodies holds the canned JSON answers, built once: a block never says
// which detection fired, and other refusals say only the status text.
var bodies = func() map[int][]byte {
	m := map[int][]byte{http.StatusForbidden: []byte(`{"error":"Access Denied"}` + "\n")}
	for _, s := range []int{400, 404, 405, 408, 413, 429, 431, 500, 501, 502, 503, 504} {
		m[s] = []byte(`{"error":` + strconv.Quote(http.StatusText(s)) + "}\n")
	}
	return m
}()

// Header values shared by every refusal; net/http only reads them.
var (
	headerJSON    = []string{"application/json"}
	headerNoSniff = []string{"nosniff"}
	headerNoStore = []string{"no-store"}
	headerClose   = []string{"close"}
)

// errorBody returns the JSON answer for status.
func errorBody(status int) []byte {
	if b, ok := bodies[status]; ok {
		return b
	}
	text := http.StatusText(status)
	if text == "" {
		text = "Error"
	}
	return []byte(`{"error":` + strconv.Quote(text) + "}\n")
}

// writeError writes a JSON error answer.
func writeError(w http.ResponseWriter, status int) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["X-Content-Type-Options"] = headerNoSniff
	h["Cache-Control"] = headerNoStore
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(status))
}
