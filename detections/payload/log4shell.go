package payload

import "bytes"

// Rule ids of the Log4Shell analyzer.
const (
	// RuleLog4Shell is a Log4j JNDI lookup ("${jndi:ldap://...}") in any
	// obfuscation that Log4j itself resolves: nested lookups whose values
	// spell the name (${${lower:j}ndi:...}, ${${::-j}${::-n}di:...},
	// ${${env:X:-j}ndi:...}).
	RuleLog4Shell = "log4shell"
	// RuleLog4jLookup is a nested Log4j lookup without a JNDI name, or one
	// exfiltrating data (${env:...}, ${sys:...}) inside another: an
	// obfuscated probe.
	RuleLog4jLookup = "log4shell_lookup"
)

// maxLookupRounds bounds the resolution of nested lookups.
const maxLookupRounds = 16

// log4shellAnalyzer resolves Log4j lookups the way Log4j does, from the
// innermost out: a lookup with a ":-" default resolves to the default, case
// lookups to their argument, anything else to nothing; then it looks for a
// JNDI lookup in what is left. Unexpanded template macros ("${AD_WIDTH}",
// "${USER_ID}") are not lookups and resolve to nothing.
type log4shellAnalyzer struct{}

func (log4shellAnalyzer) Name() string { return "log4shell" }

func (log4shellAnalyzer) needs() uint64 { return clsDollar }

func (log4shellAnalyzer) Analyze(in *Input) (Finding, bool) {
	if in.Classes()&(clsDollar|clsBrace) != clsDollar|clsBrace {
		return Finding{}, false
	}
	f := in.Folded()
	i := bytes.Index(f, []byte("${"))
	if i < 0 {
		return Finding{}, false
	}
	var buf [512]byte
	s := f[i:]
	if len(s) > len(buf) {
		// A lookup and its obfuscation fit in a few hundred bytes; look at
		// each "${" region separately when the value is longer.
		return log4shellScan(f)
	}
	return log4shellResolve(append(buf[:0], s...))
}

func log4shellScan(f []byte) (Finding, bool) {
	var buf [512]byte
	for off := 0; off < len(f); {
		i := bytes.Index(f[off:], []byte("${"))
		if i < 0 {
			return Finding{}, false
		}
		i += off
		end := min(len(f), i+len(buf))
		if fd, ok := log4shellResolve(append(buf[:0], f[i:end]...)); ok {
			return fd, ok
		}
		// The window covered every lookup starting in its first half.
		off = i + len(buf)/2
	}
	return Finding{}, false
}

// log4shellResolve resolves the lookups in s in place.
func log4shellResolve(s []byte) (Finding, bool) {
	nested := false
	for round := 0; round < maxLookupRounds; round++ {
		open, close := innermostLookup(s)
		if open < 0 {
			break
		}
		body := s[open+2 : close]
		if hasPrefix(body, "jndi:") || hasPrefix(body, "jndi ") {
			return Finding{Rule: RuleLog4Shell, Score: ScoreCritical}, true
		}
		var val []byte
		name, arg, isLookup := lookupParts(body)
		switch {
		case bytes.Contains(body, []byte(":-")):
			val = body[bytes.Index(body, []byte(":-"))+2:]
			nested = nested || round > 0 || isLookup
		case isLookup && (bytes.Equal(name, []byte("lower")) || bytes.Equal(name, []byte("upper"))):
			val = arg
			nested = true
		case isLookup:
			nested = nested || round > 0
		}
		// Replace "${...}" by its value; a JNDI name may now appear.
		n := copy(s[open:], val)
		rest := copy(s[open+n:], s[close+1:])
		s = s[:open+n+rest]
		if bytes.Contains(s, []byte("${jndi:")) {
			return Finding{Rule: RuleLog4Shell, Score: ScoreCritical}, true
		}
	}
	if nested {
		return Finding{Rule: RuleLog4jLookup, Score: ScoreCritical}, true
	}
	return Finding{}, false
}

// innermostLookup returns the bounds of the first "${...}" that holds no
// other "${".
func innermostLookup(s []byte) (int, int) {
	open := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '{' {
			open = i
			i++
			continue
		}
		if s[i] == '}' && open >= 0 {
			return open, i
		}
	}
	return -1, -1
}

// log4jLookups are the lookup names of Log4j 2.
var log4jLookups = map[string]bool{
	"jndi": true, "lower": true, "upper": true, "env": true, "sys": true, "java": true, "date": true,
	"ctx": true, "main": true, "map": true, "sd": true, "bundle": true, "k8s": true, "docker": true,
	"spring": true, "log4j": true, "web": true, "jvmrunargs": true, "event": true, "marker": true,
	"base64": true, "hostname": true, "": true,
}

// lookupParts splits "name:arg" and reports whether name is a Log4j
// lookup; "::-x" has the empty name.
func lookupParts(body []byte) (name, arg []byte, ok bool) {
	i := bytes.IndexByte(body, ':')
	if i < 0 {
		return nil, nil, false
	}
	name = bytes.TrimSpace(body[:i])
	return name, body[i+1:], log4jLookups[str(name)]
}
