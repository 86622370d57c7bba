package payload

import (
	"bytes"
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// RuleRFI is remote file inclusion: an URL that an include would fetch and
// run, shaped the way only inclusion exploits shape it: code served as text
// ending in '?', '#' or a NUL to cut off the extension the application
// appends ("http://evil/shell.txt?"), confusing the host with userinfo
// ("http://trusted.example@evil.example/", "http://evil#@trusted/"),
// naming a script or text file on an IP address, or a Windows share
// ("\\evil\share\x.php"). In a parameter named like an include ("file",
// "page", "include", "template", ...), any URL to code served as text
// (".txt", ".inc", ".sh") counts.
const RuleRFI = "rfi"

// rfiAnalyzer reads values that are URLs or UNC paths.
type rfiAnalyzer struct{}

func (rfiAnalyzer) Name() string { return "rfi" }

func (rfiAnalyzer) needs() uint64 { return clsColon | clsBackslash | clsSlash }

// includeParams are parameter names of file-including scripts.
var includeParams = set("file", "filename", "include", "inc", "page", "pg", "template", "tpl", "path", "doc", "document",
	"folder", "root", "dir", "module", "mod", "load", "lang", "language", "view", "layout", "style", "theme", "conf",
	"config", "show", "site", "content", "cat", "action", "prefix", "read", "req", "src", "source", "home", "main",
	"body", "nav", "menu", "pdf", "data", "base_dir", "basepath", "base_path", "mosconfig_absolute_path", "include_path",
	"phpbb_root_path", "skin", "locale", "plugin", "component", "class", "library", "lib", "script")

// includeExtensions are files an include runs or that hold code to run.
var includeExtensions = set("txt", "php", "php3", "php4", "php5", "phtml", "inc", "sh", "pl", "py", "asp", "aspx",
	"jsp", "cgi")

// codeAsText are extensions that serve code as text, which only an
// include runs.
var codeAsText = set("txt", "inc", "sh", "pl", "py", "cgi")

func (rfiAnalyzer) Analyze(in *Input) (Finding, bool) {
	f := in.Field
	if f.IsKey || f.Kind == detections.FieldPath || f.Kind == detections.FieldHeader && !isCustomHeader(f.Name) {
		return Finding{}, false
	}
	if !in.Has(clsColon|clsBackslash) || in.Binary() {
		return Finding{}, false
	}
	d := bytes.TrimSpace(in.Decoded())
	d = bytes.Trim(d, `"'`)
	// Every reading below is positional (the scheme and authority at the
	// start, the file and the cut-off markers at the end) and one pass,
	// so a value of any length is read whole: an URL padded out is the
	// same URL.
	if len(d) < 8 {
		return Finding{}, false
	}
	// A script on a Windows share: \\host\share\x.php.
	if d[0] == '\\' && d[1] == '\\' && isAlnum(d[2]) && includeFile(d) {
		return Finding{Rule: RuleRFI, Score: ScoreCritical}, true
	}
	scheme := 0
	for _, s := range [...]string{"http://", "https://", "ftp://", "ftps://", "smb://", "webdav://", "ssh2.sftp://"} {
		if hasPrefixFold(d, s) {
			scheme = len(s)
			break
		}
	}
	if scheme == 0 {
		return Finding{}, false
	}
	rest := d[scheme:]
	authEnd := bytes.IndexAny(rest, "/?#\\")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	auth := rest[:authEnd]
	// Userinfo that looks like a host: the reader sees the first, the
	// fetcher goes to the second.
	if at := bytes.LastIndexByte(auth, '@'); at > 0 {
		user := auth[:at]
		if c := bytes.IndexByte(user, ':'); c >= 0 {
			user = user[:c]
		}
		if bytes.IndexByte(user, '.') > 0 {
			return Finding{Rule: RuleRFI, Score: ScoreCritical}, true
		}
	}
	// "http://evil.example#@trusted.example/": a fragment or a backslash
	// before an '@' that some parsers read as userinfo.
	if authEnd < len(rest) && (rest[authEnd] == '#' || rest[authEnd] == '\\') {
		if at := bytes.IndexByte(rest[authEnd:], '@'); at > 0 && bytes.IndexByte(rest[authEnd:authEnd+at], '/') < 0 {
			return Finding{Rule: RuleRFI, Score: ScoreCritical}, true
		}
	}
	p := rest[authEnd:]
	// The query and fragment cut off what an include appends.
	// A '?' or '#' that ends the URL and is its only one, or a NUL.
	trailing := len(p) > 0 && (p[len(p)-1] == '?' && bytes.IndexByte(p, '?') == len(p)-1 || p[len(p)-1] == '#' && bytes.IndexByte(p, '#') == len(p)-1) ||
		bytes.IndexByte(p, 0) >= 0 || bytes.HasSuffix(p, []byte("%00"))
	file := p
	if i := bytes.IndexAny(file, "?#\x00"); i >= 0 {
		file = file[:i]
	}
	ext, text := false, false
	if i := bytes.LastIndexByte(file, '.'); i >= 0 && i > bytes.LastIndexByte(file, '/') {
		var buf [8]byte
		e := file[i+1:]
		if len(e) <= len(buf) {
			for k, c := range e {
				buf[k] = c | 0x20
			}
			ext = includeExtensions[str(buf[:len(e)])]
			text = codeAsText[str(buf[:len(e)])]
		}
	}
	host := auth
	if at := bytes.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	if c := bytes.LastIndexByte(host, ':'); c > 0 && bytes.IndexByte(host, ']') < c {
		host = host[:c]
	}
	_, _, ipHost := parseHostIP(bytes.Trim(host, "[]"))
	switch {
	case trailing && text, trailing && ext && includeParam(f.Name), ipHost && ext, text && includeParam(f.Name):
		return Finding{Rule: RuleRFI, Score: ScoreCritical}, true
	}
	return Finding{}, false
}

// includeParam reports a parameter named like an include's (the last
// part of a JSON path, case ignored).
func includeParam(name string) bool {
	if i := strings.LastIndexAny(name, ".["); i >= 0 {
		name = name[i+1:]
	}
	var buf [32]byte
	lower, ok := lowerName(&buf, []byte(name))
	return ok && includeParams[str(lower)]
}

var _ Analyzer = rfiAnalyzer{}

// includeFile reports a path whose last segment has an include extension.
func includeFile(p []byte) bool {
	i := bytes.LastIndexByte(p, '.')
	if i < 0 || i < bytes.LastIndexAny(p, "/\\") {
		return false
	}
	e := p[i+1:]
	var buf [8]byte
	if len(e) > len(buf) {
		return false
	}
	for k, c := range e {
		buf[k] = c | 0x20
	}
	return includeExtensions[str(buf[:len(e)])]
}
