package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections"
)

// Rule ids of the OS command injection analyzer.
const (
	// RuleCmdi is a shell command in a command position: after a command
	// separator (; | || & && newline), inside a substitution ($(...),
	// `...`), with arguments shaped like a command line, a shell evasion
	// ($IFS, ${IFS}) that only makes sense in one, or a value that is a
	// whole command line of a system or admin tool ("nc -lvvp 4444 -e
	// /bin/sh", "net user x /add", "type %SYSTEMROOT%\win.ini").
	RuleCmdi = "cmdi"
	// RuleCodeInjection is server-side code: a PHP open tag followed by
	// code, or a call of a command-running function with a command string
	// ("system('id')", "exec(`ls`)").
	RuleCodeInjection = "cmdi_code"
	// RuleCmdiPowerShell is PowerShell: a cmdlet in a command position
	// with a parameter, a variable, a pipeline or an argument
	// ("Get-ChildItem -Path C:\", "; Invoke-WebRequest $u"), a .NET static
	// call ("[System.Net.WebClient]::new()"), or powershell started with
	// its evasion flags (-enc, -nop, -w hidden).
	RuleCmdiPowerShell = "cmdi_powershell"
)

// cmdiAnalyzer reads values as shell input. A separator alone is prose
// ("Tom & Jerry", "hello; time he came"), a command word alone is a word
// ("cat", "more"); only a known command in a command position, with an
// argument shaped like a command line (a flag, a path, a number, a
// variable, a redirection, an URL) or at the end of the value, counts. The
// command word is read the way a shell reads it, so quoting and expansion
// tricks (c'a't, c\at, ca$@t, /usr/bin/id, cmd.exe) do not hide it. Three
// readings keep data from looking like commands: a word alone on a line
// needs arguments (lists, GraphQL fields), "|id|" in a value full of '|' is
// a field of a delimited record, and in random printable data a command
// must end at a blank.
//
// The command names are the curated lists below (commands that are not
// English words, and those that are) plus every program of the Core Rule
// Set's unix-shell.data, which count only with an argument shaped like a
// command line's (a flag, a path, a variable), never with a number or a
// word. A value that is itself a command line (no separator at all) counts
// when its arguments are those of a command line and hardly any are words.
type cmdiAnalyzer struct{}

func (cmdiAnalyzer) Name() string { return "cmdi" }

func (cmdiAnalyzer) needs() uint64 {
	return clsSemi | clsPipe | clsAmp | clsQuote | clsDollar | clsNewline | clsParen | clsLT | clsSpace | clsBackslash | clsBracket
}

func (cmdiAnalyzer) Analyze(in *Input) (Finding, bool) {
	d := in.Decoded()
	if len(d) < 2 {
		return Finding{}, false
	}
	if !in.Has(clsSemi | clsPipe | clsAmp | clsQuote | clsDollar | clsNewline | clsParen | clsLT | clsBackslash | clsBracket) {
		if in.Has(clsSpace) {
			return cmdLine(in, d)
		}
		return Finding{}, false
	}
	if in.Binary() {
		return Finding{}, false
	}
	fd, ok := cmdScan(in, d, 0)
	if ok && fd.Score >= ScoreCritical && in.Noisy() {
		// In random data commands appear by chance: look again with the
		// stricter reading.
		return cmdScan(in, d, ctxNoisy)
	}
	return fd, ok
}

// cmdScan reads d as shell input.
func cmdScan(in *Input, d []byte, base cmdContext) (Finding, bool) {
	// How often each separator occurs, counted on the first separator: a
	// value full of '|' or ';' is a delimited record.
	var seps [3]int
	counted := false
	best := 0
	ps := false
	// The PowerShell lead ("(", "&", quotes) after a separator may run
	// over the separators that follow ("(&(&(&..."): from inside a lead
	// already read, the command after it is the same, and is read once
	// (per piping), so the work stays linear.
	leadEnd := -1
	var leadRead [2]bool
	if (d[0] == '\'' || d[0] == '"') && base&ctxNoisy == 0 {
		// "' whoami": a value that closes the quoted argument it is
		// pasted into and runs a command after it.
		var buf [24]byte
		if commandKind(wordAfterBlanks(d, 1, &buf)) == cmdStrong {
			best = commandAt(d, 1, len(d), base)
		}
	}
	for i := 0; i < len(d) && best < ScoreCritical; i++ {
		for i < len(d) && !cmdMarks[d[i]] {
			i++
		}
		if i >= len(d) {
			break
		}
		c := d[i]
		switch {
		case c == '$':
			best = max(best, dollar(d, i, base))
		case c == '`':
			// `cmd ...`: a substitution when a command starts it.
			if end := bytes.IndexByte(d[i+1:], '`'); end > 0 {
				if s := commandAt(d, i+1, i+1+end, base); s > 0 {
					best = max(best, ScoreCritical)
				}
			}
		case c == ';' || c == '|' || c == '&' || c == '\n' || c == '\r' || c == '\\' && escapedBreak(d, i):
			ctx := base
			j := i + 1
			if c == '\\' {
				j++
			}
			for j < len(d) {
				if d[j] == c || d[j] == '\n' || d[j] == '\r' || d[j] == '|' || d[j] == '&' {
					j++
				} else if escapedBreak(d, j) {
					j += 2
				} else {
					break
				}
			}
			lineBreak := c == '\n' || c == '\r' || c == '\\' || d[j-1] == '\n' || d[j-1] == '\r' || d[j-1] == 'n' || d[j-1] == 'r'
			// A value that starts with a line break is not a list: the
			// break is there to end the command line it is pasted into.
			if lineBreak && !startsValue(d, i) {
				ctx |= ctxLine
			}
			if !counted {
				counted = true
				seps = [3]int{bytes.Count(d, []byte(";")), bytes.Count(d, []byte("|")), bytes.Count(d, []byte("&"))}
			}
			if n := sepCount(seps, d[j-1]); n > 3 {
				ctx |= ctxDelimited
			}
			best = max(best, commandAt(d, j, len(d), ctx))
			if best < ScoreCritical && base&ctxNoisy == 0 {
				if j >= leadEnd {
					leadEnd, leadRead = powerShellLead(d, j, len(d)), [2]bool{}
				}
				piped := d[j-1] == '|'
				if r := &leadRead[boolToInt(piped)]; !*r {
					*r = true
					if powerShellCommand(d, leadEnd, len(d), piped) {
						ps = true
						best = ScoreCritical
					}
				}
			}
			i = j - 1
		case c == '<' && i+1 < len(d) && d[i+1] == '?':
			if phpCode(d[i:]) && (base&ctxNoisy == 0 || hasPrefixFold(d[i:], "<?php")) {
				return Finding{Rule: RuleCodeInjection, Score: ScoreCritical}, true
			}
		case c == '(':
			if execCall(d, i) {
				return Finding{Rule: RuleCodeInjection, Score: ScoreCritical}, true
			}
		case c == '[' && base&ctxNoisy == 0:
			if dotnetStaticCall(d, i) {
				return Finding{Rule: RuleCmdiPowerShell, Score: ScoreCritical}, true
			}
		}
	}
	switch {
	case ps:
		return Finding{Rule: RuleCmdiPowerShell, Score: ScoreCritical}, true
	case best >= ScoreCritical:
		return Finding{Rule: RuleCmdi, Score: ScoreCritical}, true
	case best > 0:
		return in.weak(Finding{Rule: RuleCmdi, Score: best})
	}
	return cmdLine(in, d)
}

// wordAfterBlanks returns the word at d[i:] after blanks, lower-cased
// into buf (nil when longer than buf).
func wordAfterBlanks(d []byte, i int, buf *[24]byte) []byte {
	i = skipSpace(d, i)
	j := i
	for j < len(d) && isWordByte(d[j]) {
		j++
	}
	if j == i || j-i > len(buf) {
		return nil
	}
	w := buf[:0]
	for _, c := range d[i:j] {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		w = append(w, c)
	}
	return w
}

// windowsLoop reports cmd's "for /f ...", "for /l ...": a loop over a
// command's output or a range, written only in batch files.
func windowsLoop(w, first []byte) bool {
	if str(w) != "for" || len(first) != 2 || first[0] != '/' {
		return false
	}
	switch first[1] | 0x20 {
	case 'f', 'l', 'd', 'r':
		return true
	}
	return false
}

// wordAfterBlanksRaw returns the blank-separated token at d[i:] after
// blanks, as it is, up to 8 bytes (enough for a switch).
func wordAfterBlanksRaw(d []byte, i int) []byte {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t') {
		i++
	}
	j := i
	for j < len(d) && j-i < 8 && d[j] != ' ' && d[j] != '\t' {
		j++
	}
	return d[i:j]
}

// globCommand reports a command spelled by shell wildcards,
// "/???/??t /???/p??s??": a path whose names are letters, '?' and '*',
// with a wildcard in them, then an argument.
func globCommand(d []byte, i, end int) bool {
	if i >= end || d[i] != '/' {
		return false
	}
	j, wild, letters := i, false, 0
	for j < end && j-i < 64 && d[j] != ' ' && d[j] != '\t' {
		switch c := d[j]; {
		case c == '?' || c == '*':
			wild = true
		case isLetter(c):
			letters++
		case c != '/':
			return false
		}
		j++
	}
	return wild && j < end && j-i >= 4 && j-i-letters >= 3
}

// cmdMarks are the bytes cmdScan acts on.
var cmdMarks = func() (t [256]bool) {
	for _, c := range []byte("$`;|&\n\r\\<([") {
		t[c] = true
	}
	return t
}()

// escapedBreak reports a "\n" or "\r" escape at d[i]: a line break as a
// language's string literal spells it, which the application it is passed
// to may turn into one.
func escapedBreak(d []byte, i int) bool {
	return i+1 < len(d) && d[i] == '\\' && (d[i+1] == 'n' || d[i+1] == 'r')
}

// startsValue reports whether only blanks and quotes precede d[i].
func startsValue(d []byte, i int) bool {
	for k := 0; k < i; k++ {
		if d[k] != ' ' && d[k] != '\t' && d[k] != '\'' && d[k] != '"' {
			return false
		}
	}
	return true
}

func sepCount(seps [3]int, c byte) int {
	switch c {
	case ';':
		return seps[0]
	case '|':
		return seps[1]
	case '&':
		return seps[2]
	}
	return 0
}

// maxCommandLine bounds the bytes of a value read as a whole command line:
// its first line, up to this long. The command and the arguments that
// decide (commandArgs reads 16) are at its start, so a command line padded
// out past the bound is still read as one.
const maxCommandLine = 512

// cmdLine scores a value that is itself a command line, with no separator
// before it ("nc -lvvp 4444 -e /bin/sh", "dir C:\\Users", "net user x /add",
// "ls -l /etc/"): the first word is a command, and what follows it is
// shaped like its arguments (flags, paths, variables, addresses), with at
// most two plain words among them. Such a line is an injection unless the
// application takes command lines on purpose (a documentation field, a
// shell in the browser): exclude the field there. The URL path is a route,
// not a command line ("/ping/status").
func cmdLine(in *Input, d []byte) (Finding, bool) {
	if in.Field.Kind == detections.FieldPath || in.Field.IsKey {
		return Finding{}, false
	}
	if in.Has(clsNewline) {
		if end := bytes.IndexAny(d, "\r\n"); end >= 0 {
			d = d[:end] // the first line
		}
	}
	d = d[:min(len(d), maxCommandLine)]
	i := 0
	for i < len(d) && (d[i] == ' ' || d[i] == '\t') {
		i++
	}
	if powerShellAt(d, i, len(d), false) {
		return Finding{Rule: RuleCmdiPowerShell, Score: ScoreCritical}, true
	}
	var word [24]byte
	n, j := shellWord(d, i, len(d), word[:])
	if n == 0 || j < len(d) && d[j] != ' ' && d[j] != '\t' {
		return Finding{}, false
	}
	w := word[:n]
	kind := commandKind(w)
	if kind == cmdNone {
		return Finding{}, false
	}
	a := commandArgs(d, j)
	score := 0
	switch {
	case subcommand(w, a.first) && (kind == cmdStrong && a.prose <= 5 || a.strong > 0 || a.prose+a.numbers <= 1):
		// "netsh firewall set opmode disable", "net user x y /add",
		// "net view"; not "net user growth 2024".
		score = ScoreCritical
	case windowsLoop(w, a.first):
		score = ScoreCritical
	case a.prose > 1 && a.prose > a.strong:
		// A command word with a flag and more words of prose ("node
		// --version says v20") is a sentence about the command.
		if a.strong > 0 {
			score = ScoreNotice
		}
	case lookupCommand(w) && commandKind(a.first) != cmdNone:
		// "which nc", "whereis python": asking where a command is.
		score = ScoreCritical
	case kind == cmdStrong && a.strong+a.quoted > 0:
		// A strong command with a flag, a path or a string ("uname -a",
		// "ls -l /etc/", "echo 'x'").
		score = ScoreCritical
	case kind == cmdWeak && (a.strong > a.flags || a.strong > 1), kind == cmdVocab && a.strong > 1 && a.strong > a.flags:
		// A weak command with more than a flag ("find / -name x",
		// "type %SYSTEMROOT%\\win.ini"); one of the Core Rule Set's list
		// with a flag and a path at least ("tail -f /var/log/x").
		score = ScoreCritical
	case a.strong > 0:
		score = ScoreWarning
	case kind == cmdStrong && a.numbers > 0 && a.prose == 0 && timingCommand(w):
		// "sleep 5", "timeout 10": a timing probe.
		score = ScoreCritical
	}
	switch {
	case score >= ScoreCritical:
		return Finding{Rule: RuleCmdi, Score: ScoreCritical}, true
	case score > 0:
		return in.weak(Finding{Rule: RuleCmdi, Score: score})
	}
	return Finding{}, false
}

// cmdArgs tallies the arguments of a command line by shape.
type cmdArgs struct {
	strong  int    // flags, paths, variables, redirections, URLs, addresses
	flags   int    // of which flags
	quoted  int    // quoted strings
	numbers int    // bare numbers
	prose   int    // plain words
	first   []byte // the first argument, lower-cased when a word
	buf     [24]byte
}

// firstArgument returns commandArgs(d, i).first, reading only the first
// argument: the command position after every separator asks for it, and
// reading the other fifteen there would cost as much per separator.
func firstArgument(d []byte, i int, buf *[24]byte) []byte {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t') {
		i++
	}
	if i >= len(d) || d[i] == '"' || d[i] == '\'' {
		return nil
	}
	k := 0
	for ; i < len(d) && k < len(buf) && d[i] != ' ' && d[i] != '\t'; i++ {
		c := d[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[k] = c
		k++
	}
	return buf[:k]
}

// commandArgs reads the blank-separated arguments after d[i:], at most 16.
func commandArgs(d []byte, i int) cmdArgs {
	var a cmdArgs
	for n := 0; n < 16; n++ {
		for i < len(d) && (d[i] == ' ' || d[i] == '\t') {
			i++
		}
		if i >= len(d) {
			break
		}
		start := i
		if d[i] == '"' || d[i] == '\'' {
			q := d[i]
			end := bytes.IndexByte(d[i+1:], q)
			if end < 0 {
				i = len(d)
			} else {
				i += end + 2
			}
			a.quoted++ // "-e 'print 1'", "reg add \"HKLM\\...\""
			continue
		}
		for i < len(d) && i-start < 256 && d[i] != ' ' && d[i] != '\t' {
			i++
		}
		tok := d[start:i]
		if n == 0 {
			k := 0
			for _, c := range tok {
				if k == len(a.buf) {
					break
				}
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				a.buf[k] = c
				k++
			}
			a.first = a.buf[:k]
		}
		switch argToken(tok) {
		case tokFlag:
			a.strong++
			a.flags++
		case tokStrong:
			a.strong++
		case tokNumber:
			a.numbers++
		default:
			a.prose++
		}
	}
	return a
}

type tokKind uint8

const (
	tokWord tokKind = iota
	tokFlag
	tokStrong
	tokNumber
)

// argToken classifies one argument of a command line.
func argToken(t []byte) tokKind {
	c := t[0]
	switch {
	case c == '-' && len(t) > 1 && (isAlnum(t[1]) || t[1] == '-' && len(t) > 2 && isLetter(t[2])):
		if isDigit(t[1]) && allDigits(t[1:]) {
			return tokNumber // "-1"
		}
		return tokFlag
	case len(t) == 1 && (c == '/' || c == '\\'):
		return tokFlag // the root ("find / -name x"), or punctuation in prose
	case len(t) == 1 && (c == '|' || c == '&' || c == '*' || c == '-' || c == '+'):
		return tokWord
	case c == '/' && len(t) > 1 && len(t) <= 12 && isLetter(t[1]) && bytes.IndexByte(t[1:], '/') < 0 && bytes.IndexByte(t, '.') < 0:
		// A Windows switch ("/ADD", "/all", "/c") or a directory under
		// the root ("/etc", "/tmp"): either way a command line's.
		return tokFlag
	case c == '/' || c == '\\' || c == '~' || c == '$' || c == '%' || c == '>' || c == '<' || c == '*' || c == '|' || c == '&':
		return tokStrong
	case c == '.' && len(t) > 1 && (t[1] == '/' || t[1] == '.' || t[1] == '\\'):
		return tokStrong
	case len(t) >= 2 && isLetter(c) && t[1] == ':' && (len(t) == 2 || t[2] == '\\' || t[2] == '/'):
		return tokStrong // "C:", "C:\\Users"
	case bytes.Contains(t, []byte("://")):
		return tokStrong
	case bytes.IndexByte(t, '@') > 0 && bytes.IndexByte(t, '.') > 0 && !bytes.Contains(t, []byte("@.")):
		return tokStrong // user@host
	case bytes.Count(t, []byte(".")) == 3 && dottedQuad(t):
		return tokStrong
	case allDigits(t):
		return tokNumber
	case bytes.IndexByte(t, '/') > 0 || bytes.IndexByte(t, '\\') > 0 || bytes.IndexByte(t, '=') > 0:
		return tokStrong // "a/b", "dir\\x", "if=/dev/zero"
	}
	return tokWord
}

// dottedQuad reports an IPv4 address, optionally with a port.
func dottedQuad(t []byte) bool {
	if i := bytes.IndexByte(t, ':'); i > 0 {
		t = t[:i]
	}
	parts := 0
	for _, p := range bytes.Split(t, []byte(".")) {
		if len(p) == 0 || len(p) > 3 || !allDigits(p) {
			return false
		}
		parts++
	}
	return parts == 4
}

// subcommands are the first arguments that make a Windows administration
// command's command line, when the command name alone is also a word
// ("net", "sc") or its arguments are words ("netsh firewall set opmode
// disable").
var subcommands = map[string]map[string]bool{
	"net": set("user", "users", "localgroup", "group", "view", "share", "use", "session", "accounts", "config",
		"start", "stop", "file", "time"),
	"netsh":     set("firewall", "advfirewall", "interface", "wlan", "winhttp", "http", "portproxy", "trace", "lan"),
	"reg":       set("add", "query", "delete", "save", "export", "import", "load", "unload", "copy", "restore"),
	"sc":        set("query", "queryex", "create", "config", "start", "stop", "delete", "qc", "failure", "sdshow"),
	"wmic":      set("process", "os", "useraccount", "group", "service", "qfe", "shadowcopy", "computersystem", "startup", "/node"),
	"schtasks":  set("/create", "/run", "/query", "/delete", "/change"),
	"vssadmin":  set("list", "delete", "create", "resize"),
	"bcdedit":   set("/set", "/enum", "/delete"),
	"wevtutil":  set("cl", "el", "qe", "clear-log"),
	"icacls":    set("/grant", "/reset", "/save", "/restore"),
	"cmd":       set("/c", "/k", "/q", "/r"),
	"systemctl": set("start", "stop", "restart", "enable", "disable", "status", "mask", "daemon-reload"),
	"service":   set("start", "stop", "restart", "status"),
	"docker":    set("run", "exec", "ps", "images", "cp"),
	"kubectl":   set("exec", "get", "apply", "delete", "run", "cp"),
}

func set(ws ...string) map[string]bool {
	m := map[string]bool{}
	for _, w := range ws {
		m[w] = true
	}
	return m
}

// subcommand reports "net user", "reg add" and the like.
func subcommand(cmd, first []byte) bool {
	subs, ok := subcommands[str(cmd)]
	return ok && len(first) > 0 && subs[str(first)]
}

// lookupCommand reports the commands that ask where another is.
func lookupCommand(w []byte) bool {
	switch str(w) {
	case "which", "whereis", "where", "type", "command", "hash":
		return true
	}
	return false
}

// timingCommand reports the commands that take a bare number of seconds.
func timingCommand(w []byte) bool {
	switch str(w) {
	case "sleep", "timeout", "ping":
		return true
	}
	return false
}

// dollar scores the shell expansion starting at d[i] == '$': $(cmd),
// $((1+2)), ${IFS} and $IFS.
func dollar(d []byte, i int, ctx cmdContext) int {
	if i+1 >= len(d) {
		return 0
	}
	switch d[i+1] {
	case '(':
		if i+2 < len(d) && d[i+2] == '(' {
			// Arithmetic expansion: "$((79+92))" proves a shell evaluates
			// the input.
			j := i + 3
			for j < len(d) && (isDigit(d[j]) || d[j] == '+' || d[j] == '-' || d[j] == '*' || d[j] == '/' || d[j] == ' ' || d[j] == '%') {
				j++
			}
			if j > i+3 && j+1 < len(d) && d[j] == ')' && d[j+1] == ')' {
				return ScoreError
			}
			return 0
		}
		if commandAt(d, i+2, len(d), ctx) > 0 {
			return ScoreCritical
		}
	case '{':
		if hasPrefixFold(d[i+2:], "ifs") {
			return ScoreCritical
		}
	default:
		if hasPrefixFold(d[i+1:], "ifs") {
			return ScoreCritical
		}
		// "$env:COMPUTERNAME": PowerShell's environment drive.
		if hasPrefixFold(d[i+1:], "env:") && i+5 < len(d) && isLetter(d[i+5]) {
			return ScoreCritical
		}
	}
	return 0
}

// commandAt scores the command that starts at d[i:end] (after optional
// blanks, quotes, redirections and a "(" or "{" group opener): critical for
// a known command followed by an argument shaped like a command line or by
// nothing, a weaker score for a prose-like argument, zero otherwise.
func commandAt(d []byte, i, end int, ctx cmdContext) int {
	start := i
	for i < end && (d[i] == ' ' || d[i] == '\t' || d[i] == '(' || d[i] == '!' || d[i] == '"' || d[i] == '\'') {
		i++
	}
	brace := i < end && d[i] == '{'
	if brace {
		i++
	}
	if globCommand(d, i, end) && ctx&ctxNoisy == 0 {
		return ScoreCritical
	}
	var word [24]byte
	n, j := shellWord(d, i, end, word[:])
	if n == 0 {
		return 0
	}
	kind := commandKind(word[:n])
	if kind == cmdNone {
		return 0
	}
	if ctx&ctxNoisy == 0 && str(word[:n]) == "for" && windowsLoop(word[:n], wordAfterBlanksRaw(d[:end], j)) {
		return ScoreCritical
	}
	if brace {
		// Brace expansion runs "{cat,/etc/passwd}"; a "{ name }" block
		// (GraphQL, templates, JSON) does not.
		if j < end && d[j] == ',' {
			return ScoreCritical
		}
		return 0
	}
	if ctx&ctxNoisy != 0 && (kind != cmdStrong || !(j == end || d[j] == ' ' || d[j] == '\t')) {
		// In random data a separator, two letters and a symbol happen by
		// chance; there a command must be a strong one ending at a blank.
		return 0
	}
	arg := argShape(d, j, end)
	// A command named by its path ("/usr/bin/id") is never a list item.
	pathed := bytes.IndexByte(d[i:j], '/') >= 0 || bytes.IndexByte(d[i:j], '\\') >= 0
	if arg == argEnd {
		switch {
		case ctx&ctxLine != 0 && !pathed:
			// A word alone on a line is a list item, a GraphQL field, a
			// line of prose: a command needs arguments there.
			return 0
		case j < end && start > 0 && d[j] == d[start-1] && ctx&ctxDelimited != 0:
			// "|id|" in a value full of '|': a field of a delimited
			// record, not a pipeline.
			return 0
		}
	}
	if arg == argProse && kind != cmdNone && ctx&ctxNoisy == 0 {
		// "; net user x", "| netsh firewall set", "&& which nc".
		var buf [24]byte
		first := firstArgument(d[:end], j, &buf)
		if subcommand(word[:n], first) || lookupCommand(word[:n]) && commandKind(first) != cmdNone {
			return ScoreCritical
		}
	}
	switch {
	case kind == cmdStrong && arg != argProse:
		return ScoreCritical
	case kind == cmdStrong:
		return ScoreError
	case kind == cmdWeak && (arg == argShell || arg == argNumber):
		return ScoreCritical
	case kind == cmdVocab && arg == argShell:
		return ScoreCritical
	case (kind == cmdWeak || kind == cmdStrong) && arg == argEnd:
		return ScoreNotice
	}
	return 0
}

// shellWord reads the command word at d[i:end] into w, lower-cased, with
// the shell's quoting and expansion tricks removed (c'a't, c"a"t, c\at,
// ca$@t, ca${x}t) and a directory prefix dropped (/usr/bin/id,
// c:\windows\system32\cmd.exe). It returns the word's length and the index
// after it. A "\n" escape ends the word.
func shellWord(d []byte, i, end int, w []byte) (int, int) {
	n := 0
	for i < end {
		c := d[i]
		switch {
		case c == '\\' && escapedBreak(d[:end], i) && n > 0:
			return n, i
		case c == '\'' || c == '"' || c == '\\' || c == '^':
			// Quotes and escapes, and cmd's caret ("c^m^d"), which the
			// shell drops.
			i++
			continue
		case c == '%' && n == 0:
			// A variable naming the command: "%COMSPEC% /c dir".
			k := i + 1
			for k < end && k-i < 16 && isWordByte(d[k]) {
				k++
			}
			if k < end && d[k] == '%' && k > i+1 {
				for _, v := range d[i+1 : k] {
					if n < len(w) {
						w[n] = v | 0x20
						n++
					}
				}
				i = k + 1
				return n, i
			}
		case c == '$' && i+1 < end && (d[i+1] == '@' || d[i+1] == '*'):
			i += 2
			continue
		case c == '$' && i+1 < end && d[i+1] == '{' && i+2 < end && d[i+2] == '}':
			i += 3
			continue
		case c == '/' || (c == ':' && n == 1):
			// A directory: keep only what follows.
			n = 0
			i++
			continue
		case isLetter(c) || isDigit(c) || c == '_' || c == '-' || c == '.':
			if n == len(w) {
				return 0, i
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			w[n] = c
			n++
			i++
			continue
		}
		break
	}
	// "cmd.exe" and "powershell.exe" are the commands themselves.
	if n > 4 && string(w[n-4:n]) == ".exe" {
		n -= 4
	}
	return n, i
}

// cmdContext says how a command position was reached.
type cmdContext uint8

const (
	ctxLine      cmdContext = 1 << iota // after a newline
	ctxNoisy                            // the value is random printable data
	ctxDelimited                        // the separator also delimits the value's fields
)

type cmdClass uint8

const (
	cmdNone cmdClass = iota
	// cmdVocab commands come from the Core Rule Set's list of Unix
	// programs; many are English words too ("look", "split", "watch"),
	// so they count only with a flag, a path or a variable after them.
	cmdVocab
	// cmdWeak commands are also English words ("more", "type", "find");
	// they count only with shell-shaped arguments.
	cmdWeak
	// cmdStrong commands are not words of prose.
	cmdStrong
)

// commands are the curated command names; the vocabulary adds the Core
// Rule Set's Unix programs to them (see vocabulary.commands).
var commands = map[string]cmdClass{
	// Reconnaissance and exfiltration.
	"id": cmdStrong, "whoami": cmdStrong, "uname": cmdStrong, "ifconfig": cmdStrong, "ipconfig": cmdStrong,
	"netstat": cmdStrong, "nslookup": cmdStrong, "hostname": cmdStrong, "systeminfo": cmdStrong,
	"tasklist": cmdStrong, "taskkill": cmdStrong, "wmic": cmdStrong, "printenv": cmdStrong, "env": cmdStrong,
	"ps": cmdStrong, "lsof": cmdStrong, "uptime": cmdStrong, "dig": cmdStrong, "arp": cmdStrong,
	"traceroute": cmdStrong, "tracert": cmdStrong, "ping": cmdStrong, "sleep": cmdStrong, "pwd": cmdStrong,
	"wget": cmdStrong, "curl": cmdStrong, "nc": cmdStrong, "ncat": cmdStrong, "netcat": cmdStrong,
	"telnet": cmdStrong, "tftp": cmdStrong, "ftp": cmdStrong, "scp": cmdStrong, "ssh": cmdStrong,
	"certutil": cmdStrong, "bitsadmin": cmdStrong, "mshta": cmdStrong, "rundll32": cmdStrong,
	"regsvr32": cmdStrong, "cscript": cmdStrong, "wscript": cmdStrong, "schtasks": cmdStrong,
	"netsh": cmdStrong, "nmap": cmdStrong, "socat": cmdStrong, "getent": cmdStrong, "ipconfig.exe": cmdStrong,
	"vssadmin": cmdStrong, "bcdedit": cmdStrong, "wevtutil": cmdStrong, "whoami.exe": cmdStrong,
	"comspec": cmdStrong,
	// Interpreters.
	"sh": cmdStrong, "bash": cmdStrong, "zsh": cmdStrong, "ksh": cmdStrong, "dash": cmdStrong,
	"csh": cmdStrong, "tcsh": cmdStrong, "busybox": cmdStrong, "cmd": cmdStrong, "powershell": cmdStrong,
	"pwsh": cmdStrong, "python": cmdStrong, "python2": cmdStrong, "python3": cmdStrong, "perl": cmdStrong,
	"ruby": cmdStrong, "php": cmdStrong, "lua": cmdStrong, "node": cmdStrong, "nodejs": cmdStrong,
	// File and process manipulation.
	"cat": cmdStrong, "tac": cmdStrong, "ls": cmdStrong, "dir": cmdStrong, "rm": cmdStrong,
	"chmod": cmdStrong, "chown": cmdStrong, "mkfifo": cmdStrong, "mknod": cmdStrong, "xxd": cmdStrong,
	"base64": cmdStrong, "nohup": cmdStrong, "sudo": cmdStrong, "crontab": cmdStrong, "killall": cmdStrong,
	"pkill": cmdStrong, "useradd": cmdStrong, "passwd": cmdStrong, "echo": cmdStrong, "printf": cmdStrong,
	"eval": cmdStrong, "exec": cmdStrong, "awk": cmdStrong, "gawk": cmdStrong, "sed": cmdStrong,
	"xargs": cmdStrong, "wc": cmdStrong, "tr": cmdStrong, "grep": cmdStrong, "egrep": cmdStrong,
	"findstr": cmdStrong, "dd": cmdStrong, "tar": cmdStrong, "gzip": cmdStrong, "unzip": cmdStrong,
	"chattr": cmdStrong, "setsid": cmdStrong, "timeout": cmdStrong, "iptables": cmdStrong,
	"systemctl": cmdStrong, "reg": cmdStrong, "icacls": cmdStrong, "net": cmdWeak,
	// Words of prose too.
	"more": cmdWeak, "type": cmdWeak, "find": cmdWeak, "sort": cmdWeak, "head": cmdWeak, "tail": cmdWeak,
	"cut": cmdWeak, "touch": cmdWeak, "kill": cmdWeak, "set": cmdWeak, "start": cmdWeak, "copy": cmdWeak,
	"del": cmdWeak, "file": cmdWeak, "date": cmdWeak, "time": cmdWeak, "who": cmdWeak,
	"last": cmdWeak, "host": cmdWeak, "source": cmdWeak, "expr": cmdWeak, "test": cmdWeak, "ln": cmdWeak,
	"cp": cmdWeak, "mv": cmdWeak, "mkdir": cmdWeak, "which": cmdWeak, "ver": cmdWeak, "sc": cmdWeak,
	"uniq": cmdWeak, "strings": cmdWeak, "service": cmdWeak, "export": cmdWeak, "if": cmdWeak,
	"for": cmdWeak, "while": cmdWeak, "str": cmdWeak, "whereis": cmdWeak, "where": cmdWeak,
	"command": cmdWeak, "docker": cmdWeak, "kubectl": cmdWeak,
}

// commandKind returns the class of the lower-case command word w.
func commandKind(w []byte) cmdClass {
	if len(w) == 0 {
		return cmdNone
	}
	return words().commands[str(w)]
}

type argKind uint8

const (
	argProse  argKind = iota // a plain word follows: "; cat food"
	argEnd                   // nothing or another separator follows: "; id", "|id;"
	argShell                 // a flag, path, variable, redirection, URL...
	argNumber                // a number: "; sleep 5", "| head 10"
)

// argShape classifies what follows a command word.
func argShape(d []byte, i, end int) argKind {
	// Blanks, and the $IFS tricks that stand for them.
	for i < end {
		switch {
		case d[i] == ' ' || d[i] == '\t' || d[i] == '+':
			i++
			continue
		case d[i] == '$' && hasPrefixFold(d[i+1:], "ifs"):
			return argShell
		case d[i] == '$' && hasPrefixFold(d[i+1:], "{ifs}"):
			return argShell
		case d[i] == '<' && i+1 < end && d[i+1] == '<':
			return argShell
		}
		break
	}
	if i >= end {
		return argEnd
	}
	switch c := d[i]; {
	case c == ';' || c == '|' || c == '&' || c == '\n' || c == '\r' || c == '`' || c == ')' || c == '#' || c == '}':
		return argEnd
	case c == '\\' && escapedBreak(d[:end], i):
		return argEnd
	case c == '\'' || c == '"':
		// A quoted argument, or the quote that closes the injection
		// ("';id'"): look at what it holds.
		for i < end && (d[i] == '\'' || d[i] == '"') {
			i++
		}
		if i >= end {
			return argEnd
		}
		return argShape(d, i, end)
	case c == '-':
		// A flag: "-c", "--help"; a lone dash is punctuation.
		if i+1 < end && (isAlnum(d[i+1]) || d[i+1] == '-') {
			return argShell
		}
	case c == '/' || c == '\\' || c == '~' || c == '$' || c == '>' || c == '<' || c == '%' || c == '*':
		return argShell
	case c == '.':
		if i+1 < end && (d[i+1] == '/' || d[i+1] == '.' || d[i+1] == ' ') {
			return argShell
		}
	case isDigit(c):
		return argNumber
	case isLetter(c):
		// A drive ("c:\") or an URL ("http://").
		j := i
		for j < end && isLetter(d[j]) {
			j++
		}
		if j < end && d[j] == ':' && (j-i == 1 || (j+2 < end && d[j+1] == '/' && d[j+2] == '/')) {
			return argShell
		}
	}
	return argProse
}

func hasPrefixFold(s []byte, p string) bool {
	return len(s) >= len(p) && equalLower(s[:len(p)], p)
}

// phpCode reports a PHP open tag followed by code: "<?php system(...)",
// "<?= `id` ?>", "<? echo $x". XML declarations ("<?xml") and bare "<?="
// followed by prose are not code.
func phpCode(s []byte) bool {
	if hasPrefixFold(s, "<?php") {
		return len(s) == 5 || !isWordByte(s[5])
	}
	i := 2
	if len(s) > 2 && s[2] == '=' {
		i = 3
	}
	i = skipSpace(s, i)
	if i >= len(s) {
		return false
	}
	if s[i] == '$' || s[i] == '`' {
		return i+1 < len(s) && (isLetter(s[i+1]) || s[i+1] == '_')
	}
	w := wordAt(s, i)
	if len(w) == 0 || equalLower(w, "xml") {
		return false
	}
	j := skipSpace(s, i+len(w))
	if j < len(s) && s[j] == '(' {
		return true
	}
	// "<? echo 'x'", "<? print $y": a language construct and an operand.
	return (equalLower(w, "echo") || equalLower(w, "print") || equalLower(w, "include") || equalLower(w, "require")) &&
		j > i+len(w) && j < len(s) && (s[j] == '$' || s[j] == '\'' || s[j] == '"' || s[j] == '(')
}

// execFunctions run their string argument as a command or as code.
var execFunctions = map[string]bool{
	"system": true, "exec": true, "passthru": true, "shell_exec": true, "popen": true, "proc_open": true,
	"pcntl_exec": true, "eval": true, "assert": true, "spawn": true, "execsync": true, "spawnsync": true,
	"os.system": true, "subprocess.call": true, "subprocess.popen": true, "runtime.exec": true,
	"getruntime().exec": true,
}

// execCall reports a call of an exec function at the '(' at d[i] whose
// argument starts with a quoted command or a backtick substitution:
// "system('id')", "exec(\"ls -la\")", "passthru(`whoami`)".
func execCall(d []byte, i int) bool {
	k := i
	for k > 0 && (isWordByte(d[k-1]) || d[k-1] == '.') {
		k--
	}
	if k == i || k > 0 && d[k-1] == '$' {
		return false
	}
	var name [24]byte
	if i-k > len(name) {
		return false
	}
	for j := k; j < i; j++ {
		c := d[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		name[j-k] = c
	}
	if !execFunctions[string(name[:i-k])] {
		return false
	}
	j := skipSpace(d, i+1)
	if j >= len(d) || (d[j] != '\'' && d[j] != '"' && d[j] != '`') {
		return false
	}
	return commandAt(d, j+1, len(d), 0) > 0
}
