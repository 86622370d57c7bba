package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections"
)

// RuleSensitiveFile is a request for a file or folder that must not be
// served or read: in the URL path, the Core Rule Set's restricted files
// (dotfiles, tool folders such as ".git/", ".svn/" and "WEB-INF/",
// configuration, credentials, dependency manifests, AI assistant
// artifacts) and backups, dumps, keys and editor swap files by extension
// (".bak", ".sql", ".pem", "index.php~"); in a parameter whose value is a
// path (absolute, home-relative, a drive, file:), the Core Rule Set's OS
// and server files (lfi-os-files.data: "/var/log/httpd/access_log",
// "C:\xampp\apache\conf\httpd.conf", "/usr/local/etc/php.ini").
const RuleSensitiveFile = "sensitive_file"

// sensitiveFilesAnalyzer matches file names at segment boundaries of the
// canonical path (see Input.Path), so "config.php" names a file and
// "myconfig.php" or "config.phpx" do not.
type sensitiveFilesAnalyzer struct{}

func (sensitiveFilesAnalyzer) Name() string { return "sensitive_files" }

func (sensitiveFilesAnalyzer) needs() uint64 {
	return clsDot | clsTilde | clsSlash | clsBackslash | clsPercent
}

func (sensitiveFilesAnalyzer) Analyze(in *Input) (Finding, bool) {
	f := in.Field
	switch {
	case f.Kind == detections.FieldPath:
		if fd, ok := restrictedFile(in); ok {
			return fd, ok
		}
		p := in.Path()
		if _, ok := words().urlFiles.match(p); ok {
			return Finding{Rule: RuleSensitiveFile, Score: ScoreCritical}, true
		}
		for _, e := range urlFolders {
			if i := index(p, e); i > 0 && p[i-1] == '/' {
				return Finding{Rule: RuleSensitiveFile, Score: ScoreCritical}, true
			}
		}
		return Finding{}, false
	case f.IsKey || f.Kind == detections.FieldBody:
		return Finding{}, false
	case f.Kind == detections.FieldHeader && !isCustomHeader(f.Name):
		return Finding{}, false
	}
	if !in.Has(clsSlash|clsBackslash|clsDot) || in.Binary() {
		return Finding{}, false
	}
	d := bytes.TrimSpace(in.Decoded())
	d = bytes.Trim(d, `"'`)
	rooted, ok := pathValue(d)
	if !ok {
		// A value that is a dotfile's name: ".htaccess", ".bash_history".
		if len(d) > 2 && d[0] == '.' && isLetter(d[1]) && bytes.IndexByte(d, ' ') < 0 {
			if e, found := words().pathFiles.match(in.Path()); found && len(e) >= len(in.Path())-1 {
				return Finding{Rule: RuleSensitiveFile, Score: ScoreCritical}, true
			}
		}
		return Finding{}, false
	}
	if rooted && systemRoot(in.Path()) {
		return Finding{Rule: RuleSensitiveFile, Score: ScoreCritical}, true
	}
	e, found := pathFileIn(in.Path())
	if !found || !rooted && bytes.IndexByte([]byte(e), '/') < 0 && e[0] != '.' {
		// A relative path counts only with an entry of several
		// segments ("apache/logs/access.log") or a dotfile.
		return Finding{}, false
	}
	return Finding{Rule: RuleSensitiveFile, Score: ScoreCritical}, true
}

// maxPathWindow bounds the bytes of a path value matched against the
// file lists at each end: a path is short, and a longer value is read at
// its start (the directories it climbs from or roots in) and at its end
// (the file it names), so padding a path out hides neither.
const maxPathWindow = 1024

// pathFileIn matches the sensitive files in the canonical path p, in its
// first and last maxPathWindow bytes when it is longer (the last window
// from its first segment on).
func pathFileIn(p []byte) (string, bool) {
	if len(p) <= 2*maxPathWindow {
		return words().pathFiles.match(p)
	}
	if e, ok := words().pathFiles.match(p[:maxPathWindow]); ok {
		return e, ok
	}
	tail := p[len(p)-maxPathWindow:]
	i := bytes.IndexByte(tail, '/')
	if i < 0 {
		return "", false
	}
	return words().pathFiles.match(tail[i:])
}

// pathValue reports whether d, a whole value, reads as a file path, and
// whether it is rooted (absolute, home-relative, a drive, a share or a
// file: URL). URLs with another scheme, prose with blanks, and values
// without a separator are not paths.
func pathValue(d []byte) (rooted, ok bool) {
	if len(d) < 3 {
		return false, false
	}
	switch {
	case d[0] == '/' && d[1] != '/', d[0] == '\\', d[0] == '~' && (d[1] == '/' || d[1] == '\\'):
		rooted = true
	case isLetter(d[0]) && d[1] == ':' && (d[2] == '/' || d[2] == '\\'):
		rooted = true
	case hasPrefixFold(d, "file:"):
		return true, true
	case d[0] == '.' && (d[1] == '/' || d[1] == '\\' || d[1] == '.'):
		rooted = true // relative to the working directory, or climbing out of it
	}
	if !rooted {
		if bytes.Contains(d, []byte("://")) || !bytes.ContainsAny(d, "/\\") {
			return false, false
		}
	}
	// Paths with spaces exist ("C:\Program Files\"), sentences with
	// slashes too ("and/or"): a path has few blanks.
	if bytes.Count(d, []byte(" ")) > 5 {
		return false, false
	}
	return rooted, true
}

// systemDirs are the top-level directories of operating systems and
// server installs, and the second level that matters under some: an
// absolute path into one of them, as a parameter's value, asks the server
// for its own files.
var systemDirs = map[string]map[string]bool{
	"etc": nil, "proc": nil, "sys": nil, "dev": nil, "boot": nil, "root": nil, "opt": nil, "private": nil,
	"volumes": nil, "windows": nil, "winnt": nil, "system32": nil, "inetpub": nil, "xampp": nil, "wamp": nil, "appserv": nil, "documents and settings": nil,
	"$recycle.bin": nil, "system volume information": nil, "apache": nil, "apache2": nil, "nginx": nil,
	"httpd": nil, "lampp": nil, "mysql": nil, "tomcat": nil, "log": nil, "logs": nil,
	"var": set("log", "logs", "lib", "run", "spool", "adm", "mail", "www", "lock", "lp", "backups", "cache", "apache",
		"apache2", "db", "opt", "tmp", "cpanel", "mysql"),
	"usr":     set("local", "etc", "lib", "share", "ports", "pkg", "apache", "apache2"),
	"library": set("webserver", "preferences", "logs", "keychains"),
}

// systemRoot reports a canonical absolute path whose first directory is a
// system one.
func systemRoot(p []byte) bool {
	p = bytes.TrimPrefix(p, []byte("file:"))
	p = bytes.TrimLeft(p, "/")
	if len(p) >= 2 && isLetter(p[0]) && p[1] == ':' {
		p = bytes.TrimLeft(p[2:], "/")
	}
	first := p
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		first, p = p[:i], p[i+1:]
	} else {
		return false // "/etc" alone names no file
	}
	subs, ok := systemDirs[str(first)]
	if !ok || len(p) == 0 {
		return false
	}
	if subs == nil {
		return true
	}
	second := p
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		second = p[:i]
	}
	return subs[str(second)]
}

// restrictedExtensions are files a web path has no business serving:
// backups, dumps, databases, keys, swap files.
var restrictedExtensions = []string{
	".bak", ".backup", ".old", ".orig", ".save", ".swp", ".swo", ".sql", ".sqlite", ".sqlite3",
	".db", ".mdb", ".rdb", ".dump", ".pem", ".key", ".p12", ".pfx", ".jks", ".kdbx", ".env",
	".htpasswd", ".htaccess", ".ds_store", ".git", ".svn", ".log",
}

// urlFolders are folders and files no URL path serves that the Core Rule
// Set's lists do not name.
var urlFolders = []string{"meta-inf/", "docker-compose.yml", "docker-compose.yaml", "docker-compose.override.yml"}

// restrictedFile checks the last segment of the decoded path, and every
// segment for an editor backup ("/index.php~/foo" reaches it through
// path info).
func restrictedFile(in *Input) (Finding, bool) {
	p := in.Decoded()
	if t := bytes.Index(p, []byte("~/")); t > 0 {
		if s := bytes.LastIndexByte(p[:t], '/'); bytes.IndexByte(p[s+1:t], '.') > 0 {
			return Finding{Rule: RuleSensitiveFile, Score: ScoreCritical}, true
		}
	}
	if i := bytes.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	if len(p) < 2 {
		return Finding{}, false
	}
	if p[len(p)-1] == '~' && bytes.IndexByte(p, '.') > 0 {
		return Finding{Rule: RuleSensitiveFile, Score: ScoreCritical}, true
	}
	for _, ext := range restrictedExtensions {
		if len(p) > len(ext) && equalLower(p[len(p)-len(ext):], ext) || equalLower(p, ext) {
			return Finding{Rule: RuleSensitiveFile, Score: ScoreCritical}, true
		}
	}
	return Finding{}, false
}

var _ Analyzer = sensitiveFilesAnalyzer{}
