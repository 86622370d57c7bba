package payload

import "bytes"

// Rule ids of the PHP analyzer.
const (
	// RulePHPCode is PHP code in a value: a call of a function that code
	// injections call (the Core Rule Set's php-function-names-933150.data
	// and the code-execution functions) in a statement ("phpinfo();",
	// ";system('id');//", "{${phpinfo()}}"), or a superglobal read
	// ("$_GET['c']", "$_SERVER[HTTP_HOST]", php-variables.data).
	RulePHPCode = "php_code"
	// RulePHPDeserialization is a serialized PHP object
	// ('O:8:"stdClass":1:{...}'): unserialize() on it instantiates any
	// class the attacker names.
	RulePHPDeserialization = "php_deserialization"
)

// phpExecFunctions run code or commands, or reveal the configuration;
// their call needs no statement around it to count.
var phpExecFunctions = []string{
	"system", "exec", "passthru", "shell_exec", "popen", "proc_open", "pcntl_exec", "eval", "assert",
	"create_function", "phpinfo", "call_user_func", "call_user_func_array", "preg_replace", "include",
	"include_once", "require", "require_once", "file_put_contents", "fopen", "readfile", "show_source",
	"highlight_file", "unserialize", "base64_decode", "gzinflate", "str_rot13", "phpversion", "php_uname",
	"posix_getpwuid", "getenv",
}

// phpStrong are the functions whose call alone is code.
var phpStrong = set("system", "exec", "passthru", "shell_exec", "popen", "proc_open", "pcntl_exec", "eval", "assert",
	"create_function", "phpinfo", "php_uname", "phpversion", "show_source", "highlight_file", "base64_decode",
	"gzinflate", "str_rot13", "file_get_contents", "file_put_contents", "posix_getpwuid", "call_user_func_array")

// phpAnalyzer reads values as PHP. A function name counts only as a call
// ("name(", spaces and comments allowed before the parenthesis), and a call
// of an ordinary function only inside a statement: ended by ';' or "?>",
// or opened by ';', '{${', '${' or a string breakout ("'.", "\".").
// Superglobals count when read ("$_GET[", "$_POST)", "$_SERVER;").
type phpAnalyzer struct{}

func (phpAnalyzer) Name() string { return "php" }

func (phpAnalyzer) needs() uint64 { return clsParen | clsDollar | clsColon }

func (phpAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsParen|clsDollar|clsColon) || in.Binary() {
		return Finding{}, false
	}
	d := in.Decoded()
	if len(d) < 4 {
		return Finding{}, false
	}
	if in.Has(clsColon) && in.Classes()&(clsQuote|clsBrace) == clsQuote|clsBrace && phpSerialized(d) {
		return Finding{Rule: RulePHPDeserialization, Score: ScoreCritical}, true
	}
	best := 0
	if in.Has(clsDollar) {
		best = phpSuperglobal(d)
	}
	if best < ScoreCritical && in.Has(clsParen) {
		best = max(best, phpCalls(d))
		// XSLT calling PHP: <xsl:value-of select="php:function('passthru', ...)"/>.
		if best < ScoreCritical && in.Has(clsColon) && indexFold(d, "php:function(") >= 0 {
			best = ScoreCritical
		}
	}
	switch {
	case best >= ScoreCritical:
		return Finding{Rule: RulePHPCode, Score: ScoreCritical}, true
	case best > 0:
		return in.weak(Finding{Rule: RulePHPCode, Score: best})
	}
	return Finding{}, false
}

// phpSuperglobal scores a superglobal in d: critical when it is indexed or
// passed ("$_GET['x']", "($_POST)"), weak alone.
func phpSuperglobal(d []byte) int {
	best := 0
	for off := 0; off < len(d); {
		i := bytes.IndexByte(d[off:], '$')
		if i < 0 {
			break
		}
		i += off
		off = i + 1
		if i > 0 && isWordByte(d[i-1]) {
			continue
		}
		for _, v := range words().phpVariables {
			if !bytes.HasPrefix(d[i:], []byte(v)) {
				continue
			}
			j := i + len(v)
			if j < len(d) && isWordByte(d[j]) {
				continue
			}
			k := skipSpace(d, j)
			if k < len(d) && (d[k] == '[' || d[k] == ')' || d[k] == ';' || d[k] == '{') {
				return ScoreCritical
			}
			best = ScoreWarning
		}
	}
	return best
}

// phpCalls scores the calls of PHP functions in d.
func phpCalls(d []byte) int {
	best := 0
	// The starts of the last two "/*" seen, tracked in the one pass over d
	// so that a comment before a '(' is found without searching back.
	open, prevOpen := -1, -1
	for i := 0; i < len(d); i++ {
		if d[i] == '/' && i+1 < len(d) && d[i+1] == '*' {
			prevOpen, open = open, i
		}
		if d[i] != '(' {
			continue
		}
		// The name before '(' (blanks and /**/ comments between allowed).
		k := i
		for k > 0 && (d[k-1] == ' ' || d[k-1] == '\t') {
			k--
		}
		if k >= 4 && d[k-1] == '/' && d[k-2] == '*' {
			// The comment's opener: the last "/*" that ends before its
			// "*/" (in "/*/" the two share a star: the opener is the one
			// before).
			c := open
			if c > k-4 {
				c = prevOpen
			}
			if c >= 0 {
				k = c
			}
		}
		e := k
		for k > 0 && e-k <= 40 && (isWordByte(d[k-1]) || d[k-1] == '\\') {
			k--
		}
		if e-k < 3 || e-k > 40 || k > 0 && (d[k-1] == '.' && !phpConcat(d, k-1) || d[k-1] == '$' || d[k-1] == '>' || d[k-1] == ':' && k > 1 && d[k-2] == ':') {
			continue // a method, a variable function or a word inside a longer name
		}
		var buf [40]byte
		name := buf[:0]
		for _, c := range d[k:e] {
			if c == '\\' {
				continue // "\system(": the global namespace
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			name = append(name, c)
		}
		if !words().phpFunctions[str(name)] {
			// "{${sleep(5)}}", "${@print(1)}": PHP's complex variable
			// syntax evaluating a call, whatever the function.
			if phpComplexCall(d, k) {
				return ScoreCritical
			}
			continue
		}
		close := phpCallEnd(d, i)
		if close == phpUnclosed {
			continue
		}
		// A call not closed within maxPHPCall bytes (an argument padded
		// out) is a call all the same; only what follows its ')' is not
		// read then.
		switch {
		case phpStrong[str(name)] && phpArgument(d, i+1):
			return ScoreCritical
		case close == phpLongCall && phpStatementOpened(d, k):
			return ScoreCritical
		case close >= 0 && phpStatement(d, k, close):
			return ScoreCritical
		default:
			best = max(best, ScoreNotice)
		}
	}
	return best
}

// phpComplexCall reports a call at d[k:] opened by "{${" or "${@", or by
// "${" at the start of the value or after ';'.
func phpComplexCall(d []byte, k int) bool {
	j := k
	if j > 0 && d[j-1] == '@' {
		j--
		if j >= 2 && d[j-1] == '{' && d[j-2] == '$' {
			return true
		}
	}
	if j < 2 || d[j-1] != '{' || d[j-2] != '$' {
		return false
	}
	if j >= 3 && d[j-3] == '{' {
		return true
	}
	b := j - 3
	for b >= 0 && (d[b] == ' ' || d[b] == '\t') {
		b--
	}
	return b < 0 || d[b] == ';'
}

// phpConcat reports a '.' at d[i] that concatenates after a string
// breakout ("'.system(" or "\".phpinfo()").
func phpConcat(d []byte, i int) bool {
	return i > 0 && (d[i-1] == '\'' || d[i-1] == '"')
}

// phpArgument reports what may start an argument list at d[i]: a closing
// parenthesis, a quote, a variable, a digit, a letter or a backtick.
func phpArgument(d []byte, i int) bool {
	i = skipSpace(d, i)
	if i >= len(d) {
		return false
	}
	c := d[i]
	if isLetter(c) || c == '_' {
		// A nested call ("system(getenv('x'))") or a constant
		// ("exec(PHP_BINARY)"); a word in parentheses is prose.
		j := i
		for j < len(d) && (isWordByte(d[j]) || d[j] == '\\') {
			j++
		}
		return j < len(d) && d[j] == '(' || allUpper(d[i:j])
	}
	return c == ')' || c == '\'' || c == '"' || c == '$' || c == '`' || isDigit(c) || c == '@'
}

func allUpper(w []byte) bool {
	for _, c := range w {
		if 'a' <= c && c <= 'z' {
			return false
		}
	}
	return len(w) > 1
}

// maxPHPCall bounds the bytes read for the ')' that closes a call.
const maxPHPCall = 1024

// What phpCallEnd returns for a call it found no ')' for.
const (
	phpUnclosed = -1 // the value ends first
	phpLongCall = -2 // not within maxPHPCall bytes
)

// phpCallEnd returns the index of the ')' that closes the call whose '(' is
// at d[i], phpUnclosed or phpLongCall.
func phpCallEnd(d []byte, i int) int {
	depth := 0
	for j := i; j < len(d); j++ {
		if j-i >= maxPHPCall {
			return phpLongCall
		}
		switch d[j] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return phpUnclosed
}

// phpStatement reports a call d[start:close+1] that stands as a PHP
// statement: the value holds nothing else, or it is ended by ';', "?>" or
// a comment, or opened by ';', "${", '@' or a string breakout.
func phpStatement(d []byte, start, close int) bool {
	after := skipSpace(d, close+1)
	before := phpBefore(d, start)
	if before < 0 && after == len(d) {
		return true
	}
	if after < len(d) && (d[after] == ';' || hasPrefix(d[after:], "?>") || hasPrefix(d[after:], "//") || d[after] == '}' && before >= 0 && d[before] == '{') {
		return true
	}
	return phpStatementOpened(d, start)
}

// phpBefore returns the index of the byte before the call starting at
// d[start], blanks and an '@' skipped, or -1.
func phpBefore(d []byte, start int) int {
	before := start - 1
	for before >= 0 && (d[before] == ' ' || d[before] == '\t') {
		before--
	}
	if before >= 0 && d[before] == '@' {
		before--
	}
	return before
}

// phpStatementOpened reports a call at d[start:] opened as a statement:
// by ';', "${" or a string breakout.
func phpStatementOpened(d []byte, start int) bool {
	if before := phpBefore(d, start); before >= 0 {
		switch d[before] {
		case ';':
			return true
		case '{':
			return before > 0 && d[before-1] == '$'
		case '.':
			return phpConcat(d, before)
		}
	}
	return false
}

// phpSerialized reports a serialized PHP object: O:<len>:"<class>":<n>:{
// (C: for a custom serialization).
func phpSerialized(d []byte) bool {
	for off := 0; off+6 < len(d); {
		i := bytes.Index(d[off:], []byte(`:"`))
		if i < 0 {
			return false
		}
		i += off
		off = i + 2
		// Back over the length digits to "O:" or "C:".
		j := i
		for j > 0 && isDigit(d[j-1]) {
			j--
		}
		if j == i || j < 2 || d[j-1] != ':' || (d[j-2] != 'O' && d[j-2] != 'C') || j > 2 && isWordByte(d[j-3]) {
			continue
		}
		// The class name, its closing quote, ":<n>:{".
		k := i + 2
		for k < len(d) && (isWordByte(d[k]) || d[k] == '\\') {
			k++
		}
		if k == i+2 || k+3 >= len(d) || d[k] != '"' || d[k+1] != ':' {
			continue
		}
		k += 2
		m := k
		for m < len(d) && isDigit(d[m]) {
			m++
		}
		if m > k && m+1 < len(d) && d[m] == ':' && d[m+1] == '{' {
			return true
		}
	}
	return false
}

var _ Analyzer = phpAnalyzer{}
