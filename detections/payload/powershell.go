package payload

import "bytes"

// PowerShell and .NET: the readings behind RuleCmdiPowerShell (cmdi.go).
// The cmdlet names are the Core Rule Set's windows-powershell-commands.data;
// a cmdlet counts only in a command position and with what a command line
// passes it, so a product named like a cmdlet ("Get-Started Kit") is prose.

// powerShellAliases are the short names of the cmdlets that download and
// run code; they count only before code ("iex(", "iwr $u", "irm -Uri").
var powerShellAliases = map[string]bool{"iex": true, "iwr": true, "irm": true}

// powerShellRisky are the cmdlets that download, run or disable
// something: with any argument at all they are an attack ("Start-Process
// calc.exe", "New-Object Net.WebClient").
var powerShellRisky = set("new-object", "start-process", "invoke-expression", "invoke-webrequest", "invoke-restmethod",
	"invoke-command", "invoke-item", "start-bitstransfer", "set-mppreference", "add-mppreference", "set-executionpolicy",
	"register-scheduledtask", "new-service", "invoke-wmimethod", "invoke-cimmethod")

// powerShellAt reports a PowerShell command at d[i:end]: a cmdlet (after
// optional blanks, quotes, '(' , '&' or '.', and a "$x =" assignment)
// followed by a parameter ("-Path"), a variable, a string, a script block,
// a parenthesised expression or a pipe, or a risky cmdlet with any
// argument. piped is set when a '|' precedes d[i]: "... | iex" runs what
// the pipeline made.
func powerShellAt(d []byte, i, end int, piped bool) bool {
	return powerShellCommand(d, powerShellLead(d, i, end), end, piped)
}

// powerShellLead returns the index after the blanks, quotes, '(', '&' and
// '.' that may lead a PowerShell command at d[i:end].
func powerShellLead(d []byte, i, end int) int {
	for i < end && (d[i] == ' ' || d[i] == '\t' || d[i] == '(' || d[i] == '"' || d[i] == '\'' || d[i] == '&' || d[i] == '.') {
		i++
	}
	return i
}

// powerShellCommand is powerShellAt after the lead.
func powerShellCommand(d []byte, i, end int, piped bool) bool {
	// "$c = New-Object ...": an assignment before the command.
	if i < end && d[i] == '$' {
		j := i + 1
		for j < end && (isWordByte(d[j]) || d[j] == ':') {
			j++
		}
		k := j
		for k < end && d[k] == ' ' {
			k++
		}
		if j > i+1 && k < end && d[k] == '=' && (k+1 >= end || d[k+1] != '=') {
			i = k + 1
			for i < end && (d[i] == ' ' || d[i] == '(' || d[i] == '[') {
				i++
			}
		}
	}
	start := i
	var buf [48]byte
	n := 0
	for i < end && (isAlnum(d[i]) || d[i] == '-') {
		if n == len(buf) {
			return false
		}
		c := d[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
		i++
	}
	name := buf[:n]
	if n < 3 || n > 0 && name[n-1] == '-' {
		return false
	}
	cmdlet := bytes.IndexByte(name, '-') > 0 && words().cmdlets[str(name)]
	if !cmdlet && !powerShellAliases[str(name)] {
		return false
	}
	if i > start && i < end && d[i] == '(' && !cmdlet {
		return true // "iex(...)"
	}
	j := i
	for j < end && (d[j] == ' ' || d[j] == '\t') {
		j++
	}
	if j == i && j < end {
		return false // "Get-Content-Type": a longer word
	}
	if j >= end {
		// "... | iex": the pipeline's text run as code.
		return piped && (str(name) == "iex" || str(name) == "invoke-expression")
	}
	if cmdlet && powerShellRisky[str(name)] {
		return true
	}
	if !cmdlet && bytes.Contains(d[j:min(end, j+16)], []byte("://")) {
		return true // "iwr http://..."
	}
	switch c := d[j]; {
	case c == '-':
		// A parameter: "-Path", "-Uri", "-Command".
		return j+1 < end && isLetter(d[j+1])
	case c == '$' || c == '(' || c == '{' || c == '|' || c == '"' || c == '\'':
		return j+1 < end && c != '|' || c == '|' && j+1 < end
	case c == '[' && cmdlet:
		return j+1 < end && isLetter(d[j+1])
	}
	return false
}

// dotnetStaticCall reports a .NET static member access at d[i] == '[':
// "[System.Convert]::FromBase64String(", "[IO.File]::ReadAllText(",
// "[Reflection.Assembly]::Load(": PowerShell reaching into the framework.
func dotnetStaticCall(d []byte, i int) bool {
	j := i + 1
	dots := 0
	for j < len(d) && j-i < 96 && (isAlnum(d[j]) || d[j] == '.' || d[j] == '_') {
		if d[j] == '.' {
			dots++
		}
		j++
	}
	if j == i+1 || j+2 >= len(d) || d[j] != ']' || d[j+1] != ':' || d[j+2] != ':' {
		return false
	}
	name := d[i+1 : j]
	if !isLetter(name[0]) {
		return false
	}
	k := j + 3
	for k < len(d) && isWordByte(d[k]) {
		k++
	}
	if k == j+3 {
		return false
	}
	// "[Convert]::FromBase64String(" needs no namespace; other names are
	// types only with one ("[System.IO.File]").
	return dots > 0 || equalLower(name, "convert") || equalLower(name, "activator") || equalLower(name, "environment")
}
