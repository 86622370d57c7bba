package payload

import (
	"bytes"
	"net/url"

	"github.com/rampartgw/rampart/detections"
)

// RuleSessionFixation is an attempt to plant a session id on a victim: a
// value that sets a cookie with a domain or an expiry from script or
// markup ("document.cookie='sid=x; domain=.example.com'", "<meta
// http-equiv=Set-Cookie ...>"), or a session id of a web framework passed
// as a query or form parameter (JSESSIONID, PHPSESSID,
// ASP.NET_SessionId, ...) by a request that no page of the site linked
// (no Referer, or one from another site).
const RuleSessionFixation = "session_fixation"

// sessionAnalyzer reads values for cookie-setting code and parameter names
// for session ids.
type sessionAnalyzer struct{}

func (sessionAnalyzer) Name() string { return "session_fixation" }

// sessionNames are the session-id names of web frameworks. The Core Rule
// Set's rule 943120 lists them and generic ones too ("sessionId",
// "session_id"), which analytics beacons use for ids of their own and are
// left out here.
var sessionNames = set("jsessionid", "jservsession", "jwsession", "aspsessionid", "asp.net_sessionid", "zend_session_id",
	"phpsessid", "phpsession", "play_session", "weblogicsession", "wlsession", "rack.session", "laravel_session",
	"next-auth.session-token", "meteor_login_token", "sails.sid", "shiny-token", "_flask_session", "_rails_session",
	"cfid", "cftoken", "cfsid", "connect.sid", "cakephp", "ci_session", "koa.sess", "koa:sess")

func (sessionAnalyzer) Analyze(in *Input) (Finding, bool) {
	f := in.Field
	if f.IsKey {
		if f.Kind != detections.FieldQuery && f.Kind != detections.FieldForm {
			return Finding{}, false
		}
		var buf [32]byte
		k := in.Decoded()
		if len(k) < 4 {
			return Finding{}, false
		}
		name, ok := lowerName(&buf, k)
		if !ok {
			return Finding{}, false
		}
		if !sessionNames[str(name)] && !(bytes.HasPrefix(name, []byte("aspsessionid")) && len(name) <= 20) {
			return Finding{}, false
		}
		if in.Request != nil && sameSiteReferer(in.Request) {
			return in.weak(Finding{Rule: RuleSessionFixation, Score: ScoreWarning})
		}
		return Finding{Rule: RuleSessionFixation, Score: ScoreCritical}, true
	}
	if in.Classes()&(clsDot|clsEq) != clsDot|clsEq && !in.Has(clsLT) || in.Binary() {
		return Finding{}, false
	}
	d := in.Folded()
	if i := index(d, ".cookie"); i >= 0 {
		rest := d[i+7:]
		if j := bytes.IndexByte(rest, ';'); j >= 0 {
			rest = rest[j+1:]
			for _, a := range [...]string{"expires", "domain", "path", "max-age"} {
				if k := index(rest, a); k >= 0 && k < 64 {
					if e := skipSpace(rest, k+len(a)); e < len(rest) && rest[e] == '=' {
						return Finding{Rule: RuleSessionFixation, Score: ScoreCritical}, true
					}
				}
			}
		}
	}
	if i := index(d, "http-equiv"); i >= 0 {
		rest := d[i+len("http-equiv"):]
		j := 0
		for j < len(rest) && j < 4 && !isLetter(rest[j]) {
			j++
		}
		if hasPrefix(rest[j:], "set-cookie") {
			return Finding{Rule: RuleSessionFixation, Score: ScoreCritical}, true
		}
	}
	return Finding{}, false
}

// sameSiteReferer reports a Referer whose host is the request's Host: the
// session id came from a link of the site itself.
func sameSiteReferer(r *detections.Request) bool {
	ref := r.Header.Get("Referer")
	if ref == "" || r.Host == "" {
		return false
	}
	u, err := url.Parse(ref)
	if err != nil {
		return false
	}
	return u.Host == r.Host
}

var _ Analyzer = sessionAnalyzer{}
