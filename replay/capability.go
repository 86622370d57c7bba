package replay

// Capability says what an input format can and cannot show, so the report
// can say up front which detections a replay of it cannot judge. Detection
// names are the gateway's (ip, user_agent, rate_limit, enumeration, payload,
// crs, jwt); scopes name parts of a detection rather than rule ids, which
// change more often than formats do.
type Capability struct {
	Format    Format   `json:"format"`
	Carries   []string `json:"carries"`
	Lacks     []string `json:"lacks"`
	NotJudged []Limit  `json:"not_judged"`
	Caveats   []string `json:"caveats"`
}

// Limit is one detection, or part of one, that a format cannot judge.
type Limit struct {
	Detection string `json:"detection"`
	Scope     string `json:"scope"`
	Why       string `json:"why"`
}

// CapabilityOf returns the capability notes of f (copies; safe to modify).
func CapabilityOf(f Format) Capability {
	c, ok := capabilities[f]
	if !ok {
		return Capability{Format: f, Carries: []string{}, Lacks: []string{}, NotJudged: []Limit{}, Caveats: []string{}}
	}
	c.Carries = append([]string{}, c.Carries...)
	c.Lacks = append([]string{}, c.Lacks...)
	c.NotJudged = append([]Limit{}, c.NotJudged...)
	c.Caveats = append([]string{}, c.Caveats...)
	return c
}

var capabilities = map[Format]Capability{
	FormatJSONL: {
		Format: FormatJSONL,
		Carries: []string{
			"method", "request-target as sent", "headers in order", "body",
			"client IP (client_ip, optional)", "time (time, optional)",
			"label (expect) and id", "host, proto, status (optional)",
		},
		Lacks: []string{
			"Host (the corpus never stores it)",
			"Content-Length, Transfer-Encoding, Connection (never stored)",
			"TLS and connection facts",
			"upstream responses (unless status is set)",
		},
		NotJudged: []Limit{
			{"enumeration", "counting upstream 401/403/404/405 answers", "records carry no upstream response unless status is set; only route-based counting can be judged"},
			{"ip, rate_limit, enumeration, bans", "per-client state", "without client_ip each record gets a synthetic client (client_ips policy), so per-client limits measure the policy, not the traffic"},
			{"payload", "framing checks (Content-Length, Transfer-Encoding)", "framing headers are never stored"},
		},
		Caveats: []string{
			"wafeval sends corpus records as HTTP/1.1 with Host: localhost; the replay leaves Host empty unless the record has host",
		},
	},
	FormatHAR: {
		Format: FormatHAR,
		Carries: []string{
			"method", "URL path and query as written", "HTTP version", "headers as exported",
			"cookies", "text bodies (postData.text)", "start time (ms)", "upstream status",
		},
		Lacks: []string{
			"client IP (serverIPAddress is the server's address, not the client's)",
			"binary and large bodies (exporters keep text only; Chrome omits some)",
			"Cookie, Set-Cookie and Authorization in Chrome's default sanitized export",
			"TLS facts",
			"HTTP/2-3 pseudo-headers (dropped; :authority becomes Host)",
		},
		NotJudged: []Limit{
			{"ip", "allow and deny lists", "no client address is recorded: every request has a synthetic client"},
			{"rate_limit, enumeration, bans", "per-client state", "a HAR is one browser or proxy; per-client state follows the client_ips policy (\"one\" models a single browser)"},
			{"jwt, payload", "Authorization and cookie locations", "absent when the export was sanitized (Chrome's default)"},
			{"payload, crs", "multipart uploads and binary bodies", "exporters drop them (notes har_multipart_no_text and har_body_missing count them)"},
		},
		Caveats: []string{
			"header order and case are the exporter's (HTTP/2 names are lowercase)",
			"a HAR may hold requests to many hosts; a route function can keep one host's",
		},
	},
	FormatCombined: {
		Format: FormatCombined,
		Carries: []string{
			"client IP ($remote_addr)", "time ($time_local, 1 s)", "method", "request-target",
			"protocol", "status", "Referer", "User-Agent",
			"X-Forwarded-For when a fourth quoted field holds addresses (nginx's main format)",
		},
		Lacks: []string{
			"body", "cookies",
			"every other header (Host, Content-Type, Authorization, Accept, …)",
			"TLS facts",
		},
		NotJudged: []Limit{
			{"payload, crs", "body, form, JSON, multipart and XML analysis", "no body is logged"},
			{"payload, crs", "cookie locations and header locations other than User-Agent and Referer", "not logged"},
			{"payload", "protocol checks on content type, charset, multipart, range, headers and body", "they need headers and the body; method and restricted-file checks on the path are judged"},
			{"jwt", "token checks", "no Authorization header is logged"},
			{"user_agent", "lines in the common log format", "the User-Agent is not logged at all (note log_no_user_agent)"},
		},
		Caveats: []string{
			"$time_local is written when the request ends, with 1-second resolution: requests of one second arrive at the same simulated instant, a burst to rate limits",
			"the recorded status may already be a block by whatever ran then; enumeration counts it as the upstream's answer",
			"only the path, query, User-Agent and Referer can carry a payload finding",
		},
	},
}
