package detections

import (
	"mime"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"
)

// Request is the view of one HTTP request that every detection sees. The
// gateway builds it once per request: one parse and one body read, so every
// detection and the proxy see the same bytes. The parameters, cookies and
// body fields are read by one parser, the field walk (see Walk): a second
// parser of the same bytes could read them differently, and a payload hidden
// in the difference would pass. The media type is parsed lazily once.
//
// A Request is used by one goroutine at a time (the chain is sequential and
// observers run after it), so the cache needs no locking. Detections must
// treat every field as read-only.
type Request struct {
	ID        string
	ClientIP  netip.Addr
	ClientKey string // ClientKey(ClientIP, prefix), computed once by the gateway
	Method    string
	Host      string
	Path      string // decoded path
	RawPath   string // path as received, still percent-encoded
	RawQuery  string // query as received, without '?'
	// CleanPath is the path as routes match it, normalised the way the
	// gateway routes (see RoutePath); the gateway sets it when it has
	// computed it for routing. Empty: RoutePath normalises Path itself.
	CleanPath string
	Proto     string
	// Route is the name of the route the request matched ("default": the
	// top-level upstream; "" none).
	Route  string
	Header http.Header
	// Body holds the buffered request body, nil when the request had none.
	// It is exactly the bytes that are forwarded upstream.
	Body     []byte
	Received time.Time
	// State is the shared per-client state the gateway fetched from the store
	// in one round trip before the chain ran. Nil when no detection asked for
	// state. See Querier.
	State *ClientState
	// TLS is what the connection showed of its TLS (nil for plain HTTP
	// without TLS facts from a load balancer).
	TLS *TLS
	// Credential is the request's token as an Identifier established it
	// before the chain (nil: none).
	Credential *Credential

	parsed      bool
	mediaType   string
	mediaParams map[string]string
}

// MediaType returns the lower-case media type of the body ("" when absent or
// unparsable) and its parameters.
func (r *Request) MediaType() (string, map[string]string) {
	if !r.parsed {
		r.parsed = true
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mt, ok := simpleMediaType(ct); ok {
				r.mediaType = mt
				return r.mediaType, nil
			}
			mt, params, err := mime.ParseMediaType(ct)
			if err != nil {
				// Keep what precedes ';' so a sloppy header still selects a parser.
				mt, _, _ = strings.Cut(ct, ";")
				mt = strings.ToLower(strings.TrimSpace(mt))
			}
			r.mediaType, r.mediaParams = mt, params
		}
	}
	return r.mediaType, r.mediaParams
}

// simpleMediaType returns the media type of ct without allocating when ct
// is a lower-case "type/subtype" with at most a charset parameter, the
// Content-Type of nearly every request: no parameter a caller needs is
// lost. Anything else (multipart boundaries, upper case, quoting) goes to
// mime.ParseMediaType.
func simpleMediaType(ct string) (string, bool) {
	mt, rest, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	slash := false
	for i := 0; i < len(mt); i++ {
		c := mt[i]
		switch {
		case c == '/':
			if slash || i == 0 || i == len(mt)-1 {
				return "", false
			}
			slash = true
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '+', c == '.':
		default:
			return "", false
		}
	}
	if !slash || strings.HasPrefix(mt, "multipart/") {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return mt, true
	}
	k, v, ok := strings.Cut(rest, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(k), "charset") || strings.ContainsAny(v, ";\"") {
		return "", false
	}
	return mt, true
}

// IsJSON reports whether the body is declared as JSON (application/json or
// any +json type).
func (r *Request) IsJSON() bool {
	mt, _ := r.MediaType()
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// RoutePath returns the normalised path that per-path policy (a rate
// limit's routes, like the gateway's routes) matches on, so the policy
// cannot be side-stepped by spelling the path differently: backslashes as
// slashes, ;parameters dropped from every segment, dot segments resolved,
// repeated slashes collapsed, no trailing slash ("/" is ""). It is
// CleanPath when set, else Path normalised, without allocation when Path
// is already clean.
func (r *Request) RoutePath() string {
	if r.CleanPath != "" {
		return r.CleanPath
	}
	return cleanPath(r.Path)
}

// cleanPath normalises a decoded path exactly as the gateway's routing
// does (gateway cleanPath; a gateway test keeps the two in step).
func cleanPath(p string) string {
	if strings.IndexByte(p, '\\') >= 0 {
		p = strings.ReplaceAll(p, "\\", "/")
	}
	if strings.IndexByte(p, ';') >= 0 {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			if j := strings.IndexByte(s, ';'); j >= 0 {
				segs[i] = s[:j]
			}
		}
		p = strings.Join(segs, "/")
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return strings.TrimSuffix(path.Clean(p), "/") // no allocation when already clean
}

// hasSegmentPrefix reports whether p starts with the whole segments of
// prefix (which has no trailing slash): /api/login matches /api/login and
// /api/login/x, not /api/loginx. An empty prefix matches every path.
func hasSegmentPrefix(p, prefix string) bool {
	return strings.HasPrefix(p, prefix) && (len(p) == len(prefix) || p[len(prefix)] == '/')
}

// Reset clears r for reuse from a pool.
func (r *Request) Reset() { *r = Request{} }
