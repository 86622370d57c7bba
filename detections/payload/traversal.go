package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/normalize"
)

// Rule ids of the path traversal and file inclusion analyzer.
const (
	// RuleTraversal is a path that climbs out of its directory: "../"
	// segments in any spelling (URL-encoded once or more, %u, overlong
	// UTF-8, backslashes, Unicode slash and dot look-alikes, "0x2e").
	RuleTraversal = "traversal"
	// RuleTraversalFile is a path naming a file that no request has a
	// reason to name: account databases, process information, OS
	// configuration, private keys (/etc/passwd, win.ini,
	// /proc/self/environ), or a server configuration or log file reached
	// by climbing directories.
	RuleTraversalFile = "traversal_sensitive_file"
)

// traversalAnalyzer reads every value as a path after the shared
// canonicalisation (Input.Path): separators and dots in every encoding
// become '/' and '.', so "..%c0%af", "..%255c" and "%u2216.." all count as
// climbing segments. A segment of two or more dots (and nothing else but
// junk bytes that lenient decoders drop) is a climb; the targets are
// matched at segment boundaries.
type traversalAnalyzer struct{}

func (traversalAnalyzer) Name() string { return "traversal" }

func (traversalAnalyzer) needs() uint64 {
	return clsSlash | clsBackslash | clsPercent | clsDot | clsControl | clsHigh | clsX
}

func (traversalAnalyzer) Analyze(in *Input) (Finding, bool) {
	d := in.Decoded()
	if len(d) < 4 || !in.Has(clsSlash|clsBackslash|clsPercent|clsDot|clsControl|clsHigh) && !(in.Has(clsX) && hexSpelling(d)) || !pathCandidate(d) || in.Binary() {
		return Finding{}, false
	}
	// Nothing encoded, no backslash, no exotic byte: the folded form is
	// the canonical path already, and computing another copy is waste.
	var p []byte
	if in.Has(clsBackslash|clsPercent|clsControl|clsHigh) || in.Has(clsX) && (bytes.Contains(d, []byte("0x")) || bytes.Contains(d, []byte("0X"))) || in.Has(clsDot) && strippedEscape(d) {
		p = in.Path()
	} else {
		p = in.Folded()
	}
	climbs := countClimbs(p)
	tier := sensitiveTarget(p)
	score := 0
	switch {
	case climbs >= 3:
		score = ScoreCritical
	case climbs == 2:
		score = ScoreError
	case climbs == 1:
		score = ScoreWarning
	}
	if climbs > 0 && score < ScoreCritical {
		switch {
		case onlyClimbs(p):
			// "../../", "/..%c0%af": climbing and nothing else, a probe
			// for how the server decodes.
			score = ScoreCritical
		case climbs > plainClimbs(in):
			// A climb the application reads only after decoding more
			// than its own layer does ("..%252f" in a query, "%2e%2e/"
			// in JSON, "..%c0%af", "..2f"): spelled to slip past a
			// filter.
			score = min(ScoreCritical, score+2)
		}
	}
	switch {
	case tier == tierSystem:
		return Finding{Rule: RuleTraversalFile, Score: ScoreCritical}, true
	case tier == tierServer && climbs > 0:
		return Finding{Rule: RuleTraversalFile, Score: ScoreCritical}, true
	case score >= ScoreCritical:
		return Finding{Rule: RuleTraversal, Score: score}, true
	case score > 0:
		return in.weak(Finding{Rule: RuleTraversal, Score: score})
	}
	return Finding{}, false
}

// strippedEscape reports ".." followed by "2f" or "5c": an escaped
// separator whose '%' was stripped ("..2fetc2fpasswd"), which Path reads as
// a separator.
func strippedEscape(d []byte) bool {
	for off := 0; ; {
		i := bytes.Index(d[off:], []byte(".."))
		if i < 0 {
			return false
		}
		i += off
		off = i + 2
		if i+3 < len(d) && (d[i+2] == '2' && d[i+3]|0x20 == 'f' || d[i+2] == '5' && d[i+3]|0x20 == 'c') {
			return true
		}
	}
}

// onlyClimbs reports a canonical path made of climbs and separators only.
func onlyClimbs(p []byte) bool {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '/')
		seg := p
		if i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if len(seg) > 0 && !isClimb(seg) {
			return false
		}
	}
	return true
}

// plainClimbs counts the climbs of the value as the application itself
// sees it: URL-decoded once when it comes from an URL (the path, the
// query, the Referer), a form or a cookie (which scripts write with
// encodeURIComponent), as received otherwise, with '/' and '\' as the separators. Longer values
// than a climb probe count as plain.
func plainClimbs(in *Input) int {
	v := in.Field.Value
	if len(v) > 1024 {
		return 1 << 20
	}
	urlish := in.Field.URLEncoded || in.Field.Kind == detections.FieldCookie ||
		in.Field.Kind == detections.FieldHeader && in.Field.Name == "Referer"
	var buf [1024]byte
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if urlish && c == '%' && i+2 < len(v) {
			h, ok1 := normalize.Unhex(v[i+1])
			l, ok2 := normalize.Unhex(v[i+2])
			if ok1 && ok2 {
				c = h<<4 | l
				i += 2
			}
		} else if in.Field.Plus && c == '+' {
			c = ' '
		}
		if c == '\\' {
			c = '/'
		}
		buf[n] = c
		n++
	}
	return countClimbs(buf[:n])
}

// pathCandidate is the cheap filter: something that reads as a separator
// or a dot pair once decoded.
func pathCandidate(d []byte) bool {
	for i, c := range d {
		switch {
		case c == '/' || c == '\\' || c == '%' || c < 0x20 || c >= 0x80:
			return true
		case c == '.' && i+1 < len(d) && d[i+1] == '.':
			return true
		case c == '0' && i+1 < len(d) && d[i+1]|0x20 == 'x':
			return true
		}
	}
	return false
}

// countClimbs counts the segments of the canonical path p made of two or
// more dots and otherwise only bytes that are neither letters, digits nor
// spaces ("..", "...", "..;", "..\xc0", ".?."): the spellings of ".." that
// some server, decoder or filter treats as the parent directory.
func countClimbs(p []byte) int {
	n := 0
	for len(p) > 0 {
		i := bytes.IndexByte(p, '/')
		seg := p
		if i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if isClimb(seg) {
			n++
		}
	}
	return n
}

// hexSpelling reports "0x" followed by a hex digit: "0x2e0x2e0x2f" spells
// "../" for decoders that read C-style hex.
func hexSpelling(d []byte) bool {
	for _, p := range [...]string{"0x", "0X"} {
		for off := 0; ; {
			i := index(d[off:], p)
			if i < 0 {
				break
			}
			i += off
			if i+2 < len(d) && isHexDigit(d[i+2]) {
				return true
			}
			off = i + 2
		}
	}
	return false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f'
}

func isClimb(seg []byte) bool {
	if len(seg) < 2 || len(seg) > 12 {
		return false
	}
	dots := 0
	for _, c := range seg {
		switch {
		case c == '.':
			dots++
		case isAlnum(c) || c == ' ' || c == '_' || c == '-':
			return false
		}
	}
	return dots >= 2
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

type targetTier uint8

const (
	tierNone targetTier = iota
	// tierServer: configuration and log files of servers and frameworks;
	// applications name "config.php" or "error.log" for good reasons, so
	// they count only after a climb.
	tierServer
	// tierSystem: operating-system files no parameter has a reason to
	// name, with or without a climb.
	tierSystem
)

// sensitiveTargets are matched at the start of a segment of the canonical
// path and must end at a segment or name boundary. Entries ending in '/'
// match any file below that directory.
var sensitiveTargets = []struct {
	path string
	tier targetTier
}{
	// Unix accounts, system configuration and process information.
	{"etc/passwd", tierSystem}, {"etc/shadow", tierSystem}, {"etc/group", tierSystem},
	{"etc/gshadow", tierSystem}, {"etc/master.passwd", tierSystem}, {"etc/sudoers", tierSystem},
	{"etc/hosts", tierSystem}, {"etc/hostname", tierSystem}, {"etc/issue", tierSystem},
	{"etc/motd", tierSystem}, {"etc/crontab", tierSystem}, {"etc/fstab", tierSystem},
	{"etc/mtab", tierSystem}, {"etc/resolv.conf", tierSystem}, {"etc/security/", tierSystem},
	{"etc/ssh/", tierSystem}, {"etc/ssl/", tierSystem}, {"etc/profile", tierSystem},
	{"etc/environment", tierSystem}, {"etc/os-release", tierSystem}, {"etc/lsb-release", tierSystem},
	{"etc/redhat-release", tierSystem}, {"etc/debian_version", tierSystem}, {"etc/inetd.conf", tierSystem},
	{"etc/httpd/", tierSystem}, {"etc/apache", tierSystem}, {"etc/nginx/", tierSystem},
	{"etc/mysql/", tierSystem}, {"etc/php", tierSystem}, {"etc/my.cnf", tierSystem},
	{"etc/letsencrypt/", tierSystem}, {"etc/pam.d/", tierSystem}, {"etc/init.d/", tierSystem},
	{"etc/rc.d/", tierSystem}, {"etc/syslog.conf", tierSystem}, {"etc/ftpusers", tierSystem},
	{"proc/self/", tierSystem}, {"proc/version", tierSystem}, {"proc/cpuinfo", tierSystem},
	{"proc/meminfo", tierSystem}, {"proc/mounts", tierSystem}, {"proc/net/", tierSystem},
	{"proc/cmdline", tierSystem}, {"proc/sched_debug", tierSystem}, {"proc/kcore", tierSystem},
	{"sys/class/", tierSystem}, {"sys/kernel/", tierSystem}, {"dev/tcp/", tierSystem},
	{"root/.", tierSystem}, {"boot/grub/", tierSystem},
	// Private keys, shell history and credentials in home directories.
	{".ssh/", tierSystem}, {"id_rsa", tierSystem}, {"id_dsa", tierSystem}, {"id_ecdsa", tierSystem},
	{"id_ed25519", tierSystem}, {"authorized_keys", tierSystem}, {".bash_history", tierSystem},
	{".zsh_history", tierSystem}, {".mysql_history", tierSystem}, {".aws/", tierSystem},
	{".netrc", tierSystem}, {".pgpass", tierSystem}, {".git/", tierSystem}, {".svn/", tierSystem},
	{".htpasswd", tierSystem}, {".docker/config", tierSystem}, {".kube/config", tierSystem},
	// Windows.
	{"boot.ini", tierSystem}, {"win.ini", tierSystem}, {"system.ini", tierSystem},
	{"autoexec.bat", tierSystem}, {"windows/system32/", tierSystem}, {"windows/repair/", tierSystem},
	{"winnt/", tierSystem}, {"system32/drivers/etc/", tierSystem}, {"system32/config/", tierSystem},
	{"windows/win.ini", tierSystem}, {"windows/debug/", tierSystem}, {"windows/panther/", tierSystem},
	{"sysprep.inf", tierSystem}, {"sysprep.xml", tierSystem}, {"sysprep/", tierSystem}, {"unattend.xml", tierSystem},
	{"unattend.txt", tierSystem}, {"unattended.xml", tierSystem}, {"unattended.txt", tierSystem},
	{"ntuser.dat", tierSystem}, {"ntuser.ini", tierSystem}, {"minint/", tierSystem}, {"config/sam", tierServer},
	{"inetpub/", tierServer}, {"program files/", tierServer},
	// Server and framework configuration, logs, web roots.
	{"php.ini", tierServer}, {"php5.ini", tierServer}, {"httpd.conf", tierServer},
	{"apache2.conf", tierServer}, {"apache.conf", tierServer}, {"nginx.conf", tierServer},
	{"lighttpd.conf", tierServer}, {"my.cnf", tierServer}, {"my.ini", tierServer},
	{"web.config", tierServer}, {".htaccess", tierServer}, {".env", tierServer},
	{"wp-config", tierServer}, {"config.php", tierServer}, {"config.inc.php", tierServer},
	{"configuration.php", tierServer}, {"localsettings.php", tierServer}, {"settings.php", tierServer},
	{"database.yml", tierServer}, {"secrets.yml", tierServer}, {"credentials", tierServer},
	{"access_log", tierServer}, {"error_log", tierServer}, {"access.log", tierServer},
	{"error.log", tierServer}, {"var/log/", tierServer}, {"var/www/", tierServer},
	{"var/lib/", tierServer}, {"var/mail/", tierServer}, {"var/spool/", tierServer},
	{"var/run/", tierServer}, {"var/adm/", tierServer}, {"usr/local/", tierServer},
	{"usr/pkg", tierServer}, {"usr/lib/", tierServer}, {"usr/share/", tierServer},
	{"opt/", tierServer}, {"etc/", tierServer}, {"bin/", tierServer}, {"tmp/", tierServer},
	{"home/", tierServer}, {"xampp/", tierServer}, {"wamp/", tierServer}, {"logs/", tierServer},
	{"conf/", tierServer}, {"volumes/", tierServer}, {"private/etc/", tierServer},
	{"web-inf/", tierServer}, {"meta-inf/", tierServer},
}

// targetsByByte indexes sensitiveTargets by first byte.
var targetsByByte = func() (idx [256][]int) {
	for i, t := range sensitiveTargets {
		idx[t.path[0]] = append(idx[t.path[0]], i)
	}
	return idx
}()

// sensitiveTarget returns the highest tier of a target named in the
// canonical path p.
func sensitiveTarget(p []byte) targetTier {
	best := tierNone
	for i := 0; i < len(p); i++ {
		// A target starts a segment: at the start, after '/', or after a
		// drive or scheme colon ("c:windows", "file:etc").
		if i > 0 && p[i-1] != '/' && p[i-1] != ':' {
			continue
		}
		for _, k := range targetsByByte[p[i]] {
			t := &sensitiveTargets[k]
			if t.tier <= best || !hasPrefix(p[i:], t.path) {
				continue
			}
			end := i + len(t.path)
			last := t.path[len(t.path)-1]
			if last != '/' && last != '.' && end < len(p) && isAlnum(p[end]) {
				continue
			}
			best = t.tier
			if best == tierSystem {
				return best
			}
		}
	}
	return best
}
