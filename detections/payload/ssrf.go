package payload

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// Rule ids of the server-side request forgery analyzer.
const (
	// RuleSSRF is an URL-valued parameter or body whose host is internal:
	// loopback, link-local, unspecified, private or carrier-grade NAT
	// ranges, or a local name, in any spelling (decimal, octal and hex
	// IPv4, short forms, IPv4-mapped IPv6, "user@host" and "#@" tricks,
	// wildcard-DNS names that embed an address).
	RuleSSRF = "ssrf"
	// RuleSSRFMetadata is an URL pointing to a cloud metadata service
	// (169.254.169.254, fd00:ec2::254, metadata.google.internal, ...).
	RuleSSRFMetadata = "ssrf_metadata"
	// RuleSSRFScheme is an URL with a scheme that turns a fetch into
	// something else (gopher://, dict://, file://, jar:, php://, a Unix
	// socket behind a proxy "unix:...|http://").
	RuleSSRFScheme = "ssrf_scheme"
)

// ssrfAnalyzer parses values that are URLs (an URL is the whole value, as
// in "url=", "redirect=", "callback=" parameters or JSON strings) and
// classifies their host. Hosts on the allow list (Config.SSRFAllowHosts:
// exact names, ".suffix" for subdomains, addresses or CIDR prefixes) are
// never reported. Referer and Origin are not fetched by servers, so
// headers other than X-* are not inspected here.
type ssrfAnalyzer struct {
	allowNames    []string // exact host names
	allowSuffixes []string // ".example.com"
	allowPrefixes []netip.Prefix
}

func newSSRFAnalyzer(allow []string) *ssrfAnalyzer {
	a := &ssrfAnalyzer{}
	for _, h := range allow {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case h == "":
		case strings.Contains(h, "/"):
			if p, err := netip.ParsePrefix(h); err == nil {
				a.allowPrefixes = append(a.allowPrefixes, p.Masked())
			}
		case strings.HasPrefix(h, "."):
			a.allowSuffixes = append(a.allowSuffixes, h)
		default:
			if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
				a.allowPrefixes = append(a.allowPrefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			a.allowNames = append(a.allowNames, strings.TrimSuffix(h, "."))
		}
	}
	return a
}

func (a *ssrfAnalyzer) Name() string { return "ssrf" }

func (a *ssrfAnalyzer) needs() uint64 { return clsColon | clsSlash | clsBackslash }

// fetchSchemes are schemes servers fetch; the others reach something a
// fetch should not (a Gopher or DICT socket, a file, an archive, a PHP
// wrapper).
var dangerousSchemes = map[string]bool{
	"gopher": true, "dict": true, "file": true, "jar": true, "netdoc": true, "phar": true, "expect": true,
	"php": true, "tftp": true, "ldap": true, "ldaps": true, "ssh2": true, "ogg": true, "rar": true, "zip": true,
	"glob": true, "sftp": true,
}

func (a *ssrfAnalyzer) Analyze(in *Input) (Finding, bool) {
	if in.Field.Kind == detections.FieldHeader && !isCustomHeader(in.Field.Name) {
		return Finding{}, false
	}
	if !in.Has(clsColon) && !hasPrefix(in.Decoded(), "//") {
		return Finding{}, false
	}
	d := in.Decoded()
	// What follows reads the value's scheme and authority, at its start,
	// in one pass: a value of any length is read whole, so an URL padded
	// out is the same URL.
	if len(d) < 6 {
		return Finding{}, false
	}
	v := bytes.TrimSpace(bytes.Trim(bytes.TrimSpace(d), `"'`))
	if bytes.IndexByte(v, '|') < 0 {
		// No proxy socket syntax.
	} else if i := indexFold(v, "unix:"); i >= 0 {
		if j := bytes.IndexByte(v[i:], '|'); j > 0 && bytes.Contains(v[i+j:], []byte("://")) {
			return Finding{Rule: RuleSSRFScheme, Score: ScoreCritical}, true
		}
	}
	scheme, rest, ok := splitScheme(v)
	if !ok {
		return Finding{}, false
	}
	if dangerousSchemes[scheme] {
		// "file:" with a path, "gopher://host/_..." and friends.
		if scheme != "file" || len(rest) > 1 {
			return Finding{Rule: RuleSSRFScheme, Score: ScoreCritical}, true
		}
	}
	if !hasPrefix(rest, "//") && !hasPrefix(rest, `\\`) && !hasPrefix(rest, `/\`) && !hasPrefix(rest, `\/`) {
		return Finding{}, false
	}
	rest = rest[2:]
	// Two readings of the authority: a browser's (a backslash ends it) and
	// a lenient library's (it does not). Either reaching inside counts.
	best := Finding{}
	for _, stop := range []string{"/?#\\", "/?#"} {
		end := bytes.IndexAny(rest, stop)
		if end < 0 {
			end = len(rest)
		}
		host := rest[:end]
		if at := bytes.LastIndexByte(host, '@'); at >= 0 {
			host = host[at+1:]
		}
		if fd, ok := a.classify(host); ok && fd.Score > best.Score {
			best = fd
		}
	}
	return best, best.Score > 0
}

func isCustomHeader(name string) bool {
	return len(name) > 2 && (name[0] == 'X' || name[0] == 'x') && name[1] == '-'
}

// splitScheme splits "scheme:rest", lower-casing the scheme. A value
// starting with "//" has the empty scheme.
func splitScheme(v []byte) (string, []byte, bool) {
	if hasPrefix(v, "//") || hasPrefix(v, `\\`) {
		return "", v, true
	}
	i := 0
	for i < len(v) && i < 16 && (isLetter(v[i]) || (i > 0 && (isDigit(v[i]) || v[i] == '+' || v[i] == '-' || v[i] == '.'))) {
		i++
	}
	if i == 0 || i >= len(v) || v[i] != ':' {
		return "", nil, false
	}
	var buf [16]byte
	for k := 0; k < i; k++ {
		c := v[k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[k] = c
	}
	switch str(buf[:i]) {
	case "http", "https":
		return "http", v[i+1:], true
	}
	for name := range dangerousSchemes {
		if name == str(buf[:i]) {
			return name, v[i+1:], true
		}
	}
	return "", nil, false
}

// classify reports an internal host.
func (a *ssrfAnalyzer) classify(host []byte) (Finding, bool) {
	// Strip the port and the brackets of an IPv6 literal.
	if len(host) > 0 && host[0] == '[' {
		if end := bytes.IndexByte(host, ']'); end > 0 {
			host = host[1:end]
		}
	} else if c := bytes.LastIndexByte(host, ':'); c >= 0 && bytes.IndexByte(host, ':') == c {
		host = host[:c]
	}
	host = bytes.TrimSuffix(host, []byte("."))
	if len(host) == 0 || len(host) > 253 {
		return Finding{}, false
	}
	var buf [256]byte
	n := 0
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	h := buf[:n]
	if a.allowedName(h) {
		return Finding{}, false
	}
	if ip, obfuscated, ok := parseHostIP(h); ok {
		return a.classifyIP(ip, obfuscated)
	}
	switch {
	case isName(h, "localhost"), isName(h, "localhost.localdomain"), hasSuffixStr(h, ".localhost"),
		isName(h, "ip6-localhost"), isName(h, "ip6-loopback"):
		return Finding{Rule: RuleSSRF, Score: ScoreCritical}, true
	case isName(h, "metadata.google.internal"), isName(h, "metadata"), isName(h, "metadata.goog"),
		isName(h, "instance-data"), isName(h, "instance-data.ec2.internal"), isName(h, "metadata.azure.com"),
		isName(h, "metadata.tencentyun.com"), isName(h, "metadata.platformequinix.com"):
		return Finding{Rule: RuleSSRFMetadata, Score: ScoreCritical}, true
	case hasSuffixStr(h, ".internal"), hasSuffixStr(h, ".cluster.local"), hasSuffixStr(h, ".svc"),
		isName(h, "kubernetes.default"), hasSuffixStr(h, ".local"), hasSuffixStr(h, ".localdomain"):
		return Finding{Rule: RuleSSRF, Score: ScoreError}, true
	}
	// Wildcard DNS services resolve names that embed an address
	// ("127.0.0.1.nip.io", "169-254-169-254.sslip.io") to that address;
	// others always answer loopback.
	for _, s := range []string{".nip.io", ".xip.io", ".sslip.io", ".traefik.me", ".localtest.me", ".lvh.me", ".vcap.me", ".lacolhost.com"} {
		if !hasSuffixStr(h, s) && !isName(h, s[1:]) {
			continue
		}
		switch s {
		case ".localtest.me", ".lvh.me", ".vcap.me", ".lacolhost.com":
			return Finding{Rule: RuleSSRF, Score: ScoreCritical}, true
		}
		if ip, ok := embeddedIP(h[:max(0, len(h)-len(s))]); ok {
			return a.classifyIP(ip, true)
		}
	}
	return Finding{}, false
}

func (a *ssrfAnalyzer) allowedName(h []byte) bool {
	for _, n := range a.allowNames {
		if isName(h, n) {
			return true
		}
	}
	for _, s := range a.allowSuffixes {
		if hasSuffixStr(h, s) || isName(h, s[1:]) {
			return true
		}
	}
	return false
}

// Cloud metadata services reachable from instances.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("169.254.170.2"),
	netip.MustParseAddr("169.254.169.123"), netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("192.0.0.192"), netip.MustParseAddr("fd00:ec2::254"),
}

var (
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")
	benchmark = netip.MustParsePrefix("198.18.0.0/15")
)

func (a *ssrfAnalyzer) classifyIP(ip netip.Addr, obfuscated bool) (Finding, bool) {
	ip = ip.Unmap()
	for _, p := range a.allowPrefixes {
		if p.Contains(ip) {
			return Finding{}, false
		}
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return Finding{Rule: RuleSSRFMetadata, Score: ScoreCritical}, true
		}
	}
	switch {
	case ip.IsLoopback(), ip.IsUnspecified(), ip.IsLinkLocalUnicast(), thisNet.Contains(ip):
		return Finding{Rule: RuleSSRF, Score: ScoreCritical}, true
	case ip.IsPrivate(), cgnat.Contains(ip), benchmark.Contains(ip):
		if obfuscated {
			// Nobody writes 012.0.0.1 or 167772161 for a reason of
			// their own.
			return Finding{Rule: RuleSSRF, Score: ScoreCritical}, true
		}
		return Finding{Rule: RuleSSRF, Score: ScoreError}, true
	}
	return Finding{}, false
}

// parseHostIP parses an IP literal the way inet_aton and URL libraries do:
// IPv6, dotted IPv4 with decimal, octal (leading 0) or hex (0x) parts,
// short forms ("127.1") and a single 32-bit number ("2130706433",
// "0x7f000001"). obfuscated is set for anything but a canonical dotted
// quad.
func parseHostIP(h []byte) (netip.Addr, bool, bool) {
	if bytes.IndexByte(h, ':') >= 0 {
		s := h
		if i := bytes.IndexByte(s, '%'); i >= 0 {
			s = s[:i] // zone
		}
		if len(s) > 64 {
			return netip.Addr{}, false, false
		}
		// A copy: the parser keeps its argument in its error.
		ip, err := netip.ParseAddr(string(s))
		if err != nil {
			return netip.Addr{}, false, false
		}
		return ip, ip.Is4In6(), true
	}
	var parts [4]uint64
	n := 0
	obf := false
	for len(h) > 0 {
		if n == 4 {
			return netip.Addr{}, false, false
		}
		i := bytes.IndexByte(h, '.')
		p := h
		if i >= 0 {
			p, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		v, o, ok := parseIPPart(p)
		if !ok {
			return netip.Addr{}, false, false
		}
		obf = obf || o
		parts[n] = v
		n++
	}
	if n == 0 {
		return netip.Addr{}, false, false
	}
	if n < 4 {
		obf = true
	}
	// The last part fills the remaining bytes.
	var v uint64
	for i := 0; i < n-1; i++ {
		if parts[i] > 255 {
			return netip.Addr{}, false, false
		}
		v = v<<8 | parts[i]
	}
	rem := uint(4 - (n - 1))
	if parts[n-1] >= 1<<(8*rem) {
		return netip.Addr{}, false, false
	}
	v = v<<(8*rem) | parts[n-1]
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), obf, true
}

func parseIPPart(p []byte) (uint64, bool, bool) {
	if len(p) == 0 || len(p) > 12 {
		return 0, false, false
	}
	base, obf := uint64(10), false
	switch {
	case len(p) > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p, obf = 16, p[2:], true
	case len(p) > 1 && p[0] == '0':
		base, p, obf = 8, p[1:], true
	}
	var v uint64
	for _, c := range p {
		var d uint64
		switch {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case base == 16 && 'a' <= c|0x20 && c|0x20 <= 'f':
			d = uint64(c|0x20-'a') + 10
		default:
			return 0, false, false
		}
		if d >= base {
			return 0, false, false
		}
		v = v*base + d
	}
	return v, obf, true
}

// embeddedIP finds the address in the leftmost labels of a wildcard-DNS
// name: "127.0.0.1", "app.10.0.0.1", "169-254-169-254", "app-7f000001".
func embeddedIP(h []byte) (netip.Addr, bool) {
	if ip, _, ok := parseHostIP(h); ok {
		return ip, true
	}
	// The last four dot-separated labels.
	dots, i := 0, len(h)
	for i > 0 {
		if h[i-1] == '.' {
			if dots++; dots == 4 {
				break
			}
		}
		i--
	}
	if dots >= 3 {
		if ip, _, ok := parseHostIP(h[i:]); ok {
			return ip, true
		}
	}
	// The last label, dashes for dots.
	last := h[bytes.LastIndexByte(h, '.')+1:]
	var buf [64]byte
	if len(last) > len(buf) {
		return netip.Addr{}, false
	}
	n, dashes := 0, 0
	for j := len(last) - 1; j >= 0; j-- {
		if last[j] == '-' {
			if dashes++; dashes == 4 {
				break
			}
		}
		n++
	}
	seg := buf[:0]
	for _, c := range last[len(last)-n:] {
		if c == '-' {
			c = '.'
		}
		seg = append(seg, c)
	}
	if ip, _, ok := parseHostIP(seg); ok {
		return ip, true
	}
	return netip.Addr{}, false
}

func isName(h []byte, n string) bool { return string(h) == n }

func hasSuffixStr(h []byte, s string) bool {
	return len(h) > len(s) && string(h[len(h)-len(s):]) == s
}
