package payload

import (
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// RuleMethodOverride is a method override that no form or API client
// sends: the _method parameter naming a method other than PUT, PATCH,
// DELETE or POST, or sent with GET; an X-HTTP-Method-Override
// (X-HTTP-Method, X-Method-Override) header naming TRACE, CONNECT or a
// WebDAV method. Frameworks that honour
// overrides turn a request the gateway judged as one method into another.
const RuleMethodOverride = "protocol_method_override"

// overrideAnalyzer reads the fields that override a request's method.
type overrideAnalyzer struct{}

func (overrideAnalyzer) Name() string { return "method_override" }

func (overrideAnalyzer) Analyze(in *Input) (Finding, bool) {
	f := in.Field
	header := false
	switch {
	case f.IsKey:
		return Finding{}, false
	case (f.Kind == detections.FieldQuery || f.Kind == detections.FieldForm) && strings.EqualFold(f.Name, "_method"):
		if in.Request != nil && in.Request.Method == "GET" {
			// Form overrides come with POST; on a GET link one turns a
			// click into a write.
			return Finding{Rule: RuleMethodOverride, Score: ScoreCritical}, true
		}
	case f.Kind == detections.FieldHeader && (f.Name == "X-Http-Method-Override" || f.Name == "X-Http-Method" || f.Name == "X-Method-Override"):
		header = true
	default:
		return Finding{}, false
	}
	var buf [16]byte
	m := in.Decoded()
	if len(m) > len(buf) {
		return Finding{}, false
	}
	for i, c := range m {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	switch str(buf[:len(m)]) {
	case "GET", "HEAD", "OPTIONS":
		// API clients send these in the header (Google's APIs take a
		// GET with "X-HTTP-Method-Override: POST"); a form never does.
		if header {
			return Finding{}, false
		}
		return Finding{Rule: RuleMethodOverride, Score: ScoreCritical}, true
	case "TRACE", "TRACK", "CONNECT", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
		"REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "BIND", "UNBIND", "REBIND", "ACL", "MKCALENDAR", "DEBUG":
		return Finding{Rule: RuleMethodOverride, Score: ScoreCritical}, true
	}
	// PUT, PATCH, DELETE and POST are what forms override to; words that
	// are no method are ignored by the frameworks.
	return Finding{}, false
}

var _ Analyzer = overrideAnalyzer{}
