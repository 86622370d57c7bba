package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections"
)

// Rule ids of the OS command injection analyser.
const (
	// RuleCmdi is a shell command in a command position: after a command
	// separator (; | || & && newline), inside a substitution ($(...),
	// `...`), with arguments shaped like a command line, or a shell
	// evasion ($IFS, ${IFS}) that only makes sense in one.
	RuleCmdi = "cmdi"
	// RuleCodeInjection is server-side code: a PHP open tag followed by
	// code, or a call of a command-running function with a command string
	// ("system('id')", "exec(`ls`)").
	RuleCodeInjection = "cmdi-code"
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
type cmdiAnalyzer struct{}

func (cmdiAnalyzer) Name() string { return "cmdi" }

func (cmdiAnalyzer) needs() uint64 {
	return clsSemi | clsPipe | clsAmp | clsQuote | clsDollar | clsNewline | clsParen | clsLT | clsSpace
}

func (cmdiAnalyzer) Analyze(in *Input) (Finding, bool) {
	d := in.Decoded()
	if len(d) < 2 {
		return Finding{}, false
	}
	if !in.Has(clsSemi | clsPipe | clsAmp | clsQuote | clsDollar | clsNewline | clsParen | clsLT) {
		if in.Has(clsSpace) {
			return cmdStart(in, d)
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
	// How often each separator occurs, counted once: a value full of '|'
	// or ';' is a delimited record.
	var seps [3]int
	for _, c := range d {
		switch c {
		case ';':
			seps[0]++
		case '|':
			seps[1]++
		case '&':
			seps[2]++
		}
	}
	best := 0
	for i := 0; i < len(d) && best < ScoreCritical; i++ {
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
		case c == ';' || c == '|' || c == '&' || c == '\n' || c == '\r':
			ctx := base
			j := i + 1
			for j < len(d) && (d[j] == c || d[j] == '\n' || d[j] == '\r' || d[j] == '|' || d[j] == '&') {
				j++
			}
			if c == '\n' || c == '\r' || d[j-1] == '\n' || d[j-1] == '\r' {
				ctx |= ctxLine
			}
			if n := sepCount(seps, d[j-1]); n > 3 {
				ctx |= ctxDelimited
			}
			best = max(best, commandAt(d, j, len(d), ctx))
			i = j - 1
		case c == '<' && i+1 < len(d) && d[i+1] == '?':
			if phpCode(d[i:]) && (base&ctxNoisy == 0 || hasPrefixFold(d[i:], "<?php")) {
				return Finding{Rule: RuleCodeInjection, Score: ScoreCritical}, true
			}
		case c == '(':
			if execCall(d, i) {
				return Finding{Rule: RuleCodeInjection, Score: ScoreCritical}, true
			}
		}
	}
	switch {
	case best >= ScoreCritical:
		return Finding{Rule: RuleCmdi, Score: ScoreCritical}, true
	case best > 0:
		return in.weak(Finding{Rule: RuleCmdi, Score: best})
	}
	return cmdStart(in, d)
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

// cmdStart scores a value that is itself a command line with arguments
// ("ping -c 3 10.0.0.1", "cat /etc/passwd"): a weak signal, since some
// applications take commands or shell snippets as input on purpose. Paths
// are not command lines ("/ping" is a route).
func cmdStart(in *Input, d []byte) (Finding, bool) {
	if in.Field.Kind == detections.FieldPath {
		return Finding{}, false
	}
	var word [24]byte
	n, j := shellWord(d, 0, len(d), word[:])
	if n > 0 && commandKind(word[:n]) == cmdStrong && argShape(d, j, len(d)) == argShell {
		return in.weak(Finding{Rule: RuleCmdi, Score: ScoreWarning})
	}
	return Finding{}, false
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
	var word [24]byte
	n, j := shellWord(d, i, end, word[:])
	if n == 0 {
		return 0
	}
	kind := commandKind(word[:n])
	if kind == cmdNone {
		return 0
	}
	if brace {
		// Brace expansion runs "{cat,/etc/passwd}"; a "{ name }" block
		// (GraphQL, templates, JSON) does not.
		if j < end && d[j] == ',' {
			return ScoreCritical
		}
		return 0
	}
	if ctx&ctxNoisy != 0 && (kind == cmdWeak || !(j == end || d[j] == ' ' || d[j] == '\t')) {
		// In random data a separator, two letters and a symbol happen by
		// chance; there a command must be a strong one ending at a blank.
		return 0
	}
	arg := argShape(d, j, end)
	if arg == argEnd {
		switch {
		case ctx&ctxLine != 0:
			// A word alone on a line is a list item, a GraphQL field, a
			// line of prose: a command needs arguments there.
			return 0
		case j < end && start > 0 && d[j] == d[start-1] && ctx&ctxDelimited != 0:
			// "|id|" in a value full of '|': a field of a delimited
			// record, not a pipeline.
			return 0
		}
	}
	switch {
	case kind == cmdStrong && arg != argProse:
		return ScoreCritical
	case kind == cmdStrong:
		return ScoreError
	case kind == cmdWeak && arg == argShell:
		return ScoreCritical
	case kind == cmdWeak && arg == argEnd:
		return ScoreNotice
	}
	return 0
}

// shellWord reads the command word at d[i:end] into w, lower-cased, with
// the shell's quoting and expansion tricks removed (c'a't, c"a"t, c\at,
// ca$@t, ca${x}t) and a directory prefix dropped (/usr/bin/id,
// c:\windows\system32\cmd.exe). It returns the word's length and the index
// after it.
func shellWord(d []byte, i, end int, w []byte) (int, int) {
	n := 0
	for i < end {
		c := d[i]
		switch {
		case c == '\'' || c == '"' || c == '\\':
			i++
			continue
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
	// cmdWeak commands are also English words ("more", "type", "find");
	// they count only with shell-shaped arguments.
	cmdWeak
	// cmdStrong commands are not words of prose.
	cmdStrong
)

var commands = map[string]cmdClass{
	// Reconnaissance and exfiltration.
	"id": cmdStrong, "whoami": cmdStrong, "uname": cmdStrong, "ifconfig": cmdStrong, "ipconfig": cmdStrong,
	"netstat": cmdStrong, "nslookup": cmdStrong, "hostname": cmdStrong, "systeminfo": cmdStrong,
	"tasklist": cmdStrong, "taskkill": cmdStrong, "wmic": cmdStrong, "printenv": cmdStrong, "env": cmdStrong,
	"ps": cmdStrong, "lsof": cmdStrong, "uptime": cmdStrong, "dig": cmdStrong, "arp": cmdStrong,
	"traceroute": cmdStrong, "tracert": cmdStrong, "ping": cmdStrong, "sleep": cmdStrong,
	"wget": cmdStrong, "curl": cmdStrong, "nc": cmdStrong, "ncat": cmdStrong, "netcat": cmdStrong,
	"telnet": cmdStrong, "tftp": cmdStrong, "ftp": cmdStrong, "scp": cmdStrong, "ssh": cmdStrong,
	"certutil": cmdStrong, "bitsadmin": cmdStrong, "mshta": cmdStrong, "rundll32": cmdStrong,
	"regsvr32": cmdStrong, "cscript": cmdStrong, "wscript": cmdStrong, "schtasks": cmdStrong,
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
	"for": cmdWeak, "while": cmdWeak, "str": cmdWeak,
}

func commandKind(w []byte) cmdClass {
	return commands[str(w)]
}

type argKind uint8

const (
	argProse argKind = iota // a plain word follows: "; cat food"
	argEnd                  // nothing or another separator follows: "; id", "|id;"
	argShell                // a flag, path, number, variable, redirection, URL...
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
		return argShell
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

// hasPrefixFold reports whether s starts with the lower-case p, ignoring
// ASCII case.
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
