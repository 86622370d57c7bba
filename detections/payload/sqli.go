package payload

import (
	"github.com/corazawaf/libinjection-go"
)

// Rule ids of the SQL injection analyser.
const (
	// RuleSQLi is libinjection's verdict: the value tokenises to a
	// fingerprint of a known injection.
	RuleSQLi = "sqli"
	// RuleSQLiFingerprint is libinjection's verdict on a value with no SQL
	// word or comment of its own (random tokens, packed analytics
	// expressions): a weak signal.
	RuleSQLiFingerprint = "sqli-fingerprint"
	// RuleSQLiFunction is a weak signal: a call of a function used almost
	// only by injections (sleep, benchmark, extractvalue, ...).
	RuleSQLiFunction = "sqli-function"
	// RuleSQLiGrammar is an injection recognised by its parts when
	// libinjection's fingerprints miss it: a string breakout, a boolean
	// clause, a statement skeleton, a stacked query, a trailing comment.
	// Critical when several parts come together, a weak signal otherwise.
	RuleSQLiGrammar = "sqli-grammar"
)

// sqliAnalyzer runs libinjection's SQL tokenizer on values that could be
// SQL: libinjection allocates on every call, so a cheap structural filter
// (a quote followed by SQL, a comment, a keyword next to SQL syntax, a
// boolean operator before an operand) keeps it off the clean majority of
// fields. Its verdict counts in full when SQL structure of the value's own
// confirms it (see sqlConfirmed); otherwise, as on random tokens, it is a
// weak signal. Values libinjection clears are scored by sqlGrammar, which
// recognises injections by their parts; one part alone ("select your
// plan", a lone keyword) scores nothing or a weak signal.
type sqliAnalyzer struct{}

func (sqliAnalyzer) Name() string { return "sqli" }

func (sqliAnalyzer) needs() uint64 { return sqlMask }

// sqlMask: an injected fragment needs a quote, a comment, an operator, a
// parenthesis or at least two tokens.
const sqlMask = clsQuote | clsDash | clsSlash | clsHash | clsSemi | clsParen | clsPipe | clsAmp | clsEq | clsAt | clsSpace | clsLT | clsGT | clsPlus | clsNewline | clsControl | clsHigh | clsComma

func (sqliAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(sqlMask) {
		return Finding{}, false
	}
	f := in.Folded()
	if len(f) < 2 || !sqlCandidate(f) {
		return Finding{}, false
	}
	if in.Binary() {
		return Finding{}, false
	}
	hit := sqli(f)
	if !hit {
		// libinjection judges the whole value as one SQL fragment; a value
		// that only reads as SQL once comments are taken out gets a second
		// look.
		if s := in.SQL(); len(s) != len(f) {
			hit = sqli(s)
		}
	}
	// In random printable data (bot sensor payloads) libinjection finds a
	// fingerprint and a stray SQL word by chance; there only the grammar,
	// which needs several parts in order, may decide.
	if hit && !in.Noisy() {
		if sqlConfirmed(f) || sqlConfirmed(in.SQL()) {
			return Finding{Rule: RuleSQLi, Score: ScoreCritical}, true
		}
		return in.weak(Finding{Rule: RuleSQLiFingerprint, Score: ScoreWarning})
	}
	fd, ok := sqlGrammar(in.SQL(), f)
	if ok && fd.Score < ScoreCritical {
		return in.weak(fd)
	}
	return fd, ok
}

// sqlConfirmed reports SQL structure found independently of libinjection:
// an SQL statement word, function call, catalogue name or boolean operator
// as a whole word, or a quote closed by a comment or a semicolon
// ("admin'--", "1';"). libinjection's tokenizer reads any punctuation as
// SQL, so random tokens and analytics expressions get fingerprints too;
// those carry none of this.
func sqlConfirmed(f []byte) bool {
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c == '\'' || c == '"' || c == '`' {
			j := i + 1
			for j < len(f) && (f[j] == ')' || f[j] == ' ') {
				j++
			}
			if j+1 < len(f) && (f[j] == '-' && f[j+1] == '-' || f[j] == '/' && f[j+1] == '*') || j < len(f) && (f[j] == '#' || f[j] == ';') {
				return true
			}
			continue
		}
		if !(isLetter(c) || c == '_' || c == '@') || (i > 0 && (isWordByte(f[i-1]) || f[i-1] == '@')) {
			continue
		}
		j := i
		for j < len(f) && (isWordByte(f[j]) || f[j] == '@') {
			j++
		}
		w := f[i:j]
		switch sqlWords[str(w)] {
		case sqlKeyword, sqlSchema:
			switch str(w) {
			case "as", "into", "offset", "order", "group", "from", "case", "limit":
				// Prose words, too: not evidence on their own.
			default:
				return true
			}
		case sqlFunction:
			if k := skipSpace(f, j); k < len(f) && f[k] == '(' {
				return true
			}
		case sqlOperator:
			switch str(w) {
			case "in", "is", "div":
			default:
				// An operator needs an operand ("or 1", "and (", "or
				// 'a'='a"), and the value SQL punctuation: "1 < 2 and 3 >
				// 2" is arithmetic prose, "1 and 1=1" is not.
				if !hasAnyByte(f, "='\"#;(-/") {
					break
				}
				k := skipSpace(f, j)
				if k < len(f) && (isDigit(f[k]) || f[k] == '\'' || f[k] == '"' || f[k] == '(' || f[k] == '@' || f[k] == '!') {
					return true
				}
				if ok, _ := comparisonAt(f, j); ok {
					return true
				}
			}
		}
		i = j - 1
	}
	return false
}

// sqli asks libinjection, ignoring the one fingerprint that is never an
// injection on its own: a bare number or word followed by a comment ("1c",
// "nc": "1---" privacy strings, tokens with "--" inside). A quote before
// the comment ("admin'--", fingerprint "sc") still counts.
func sqli(s []byte) bool {
	ok, fp := libinjection.IsSQLi(str(s))
	if !ok {
		return false
	}
	return fp != "1c" && fp != "nc"
}

// sqlClass says what an SQL word means to the filter and the weak scoring.
type sqlClass uint8

const (
	sqlKeyword  sqlClass = 1 + iota // statement words that rarely occur in prose
	sqlOperator                     // boolean operators: candidates only before a number, quote or '('
	sqlFunction                     // functions that injections call and applications hardly ever pass
	sqlSchema                       // catalogue names
)

var sqlWords = map[string]sqlClass{
	"select": sqlKeyword, "union": sqlKeyword, "insert": sqlKeyword, "update": sqlKeyword,
	"delete": sqlKeyword, "drop": sqlKeyword, "exec": sqlKeyword, "execute": sqlKeyword,
	"having": sqlKeyword, "declare": sqlKeyword, "truncate": sqlKeyword, "procedure": sqlKeyword,
	"waitfor": sqlKeyword, "shutdown": sqlKeyword, "alter": sqlKeyword, "grant": sqlKeyword,
	"into": sqlKeyword, "where": sqlKeyword, "limit": sqlKeyword, "offset": sqlKeyword,
	"order": sqlKeyword, "group": sqlKeyword, "as": sqlKeyword, "from": sqlKeyword, "case": sqlKeyword,
	"or": sqlOperator, "and": sqlOperator, "xor": sqlOperator, "not": sqlOperator, "like": sqlOperator,
	"rlike": sqlOperator, "regexp": sqlOperator, "div": sqlOperator, "is": sqlOperator, "in": sqlOperator,
	"sleep": sqlFunction, "benchmark": sqlFunction, "pg_sleep": sqlFunction, "extractvalue": sqlFunction,
	"updatexml": sqlFunction, "load_file": sqlFunction, "name_const": sqlFunction, "randomblob": sqlFunction,
	"group_concat": sqlFunction, "concat_ws": sqlFunction, "concat": sqlFunction, "char": sqlFunction,
	"chr": sqlFunction, "ascii": sqlFunction, "substring": sqlFunction, "substr": sqlFunction, "mid": sqlFunction,
	"hex": sqlFunction, "unhex": sqlFunction, "cast": sqlFunction, "convert": sqlFunction, "version": sqlFunction,
	"database": sqlFunction, "user": sqlFunction, "current_user": sqlFunction, "system_user": sqlFunction,
	"current_database": sqlFunction, "xp_cmdshell": sqlFunction, "utl_inaddr": sqlFunction,
	"dbms_pipe": sqlFunction, "dbms_lock": sqlFunction, "xml2clob": sqlFunction, "make_set": sqlFunction, "elt": sqlFunction, "iif": sqlFunction,
	"if": sqlFunction, "ifnull": sqlFunction, "isnull": sqlFunction, "nullif": sqlFunction, "md5": sqlFunction,
	"sha1": sqlFunction, "rand": sqlFunction, "now": sqlFunction, "sysdate": sqlFunction, "exp": sqlFunction,
	"floor": sqlFunction, "count": sqlFunction, "length": sqlFunction, "ord": sqlFunction, "@@version": sqlFunction,
	"information_schema": sqlSchema, "sysobjects": sqlSchema, "syscolumns": sqlSchema, "sqlite_master": sqlSchema,
	"pg_catalog": sqlSchema, "all_tables": sqlSchema, "mysql": sqlSchema, "msysobjects": sqlSchema,
	"pg_shadow": sqlSchema, "pg_user": sqlSchema, "pg_database": sqlSchema, "sysusers": sqlSchema,
	"sysibm": sqlSchema, "syscat": sqlSchema, "all_users": sqlSchema, "dba_users": sqlSchema,
	"user_tables": sqlSchema, "sysdatabases": sqlSchema,
}

// sqlCandidate is the cheap filter in front of libinjection. Every
// fingerprint libinjection knows needs a string break, a comment, an SQL
// statement word, a function call or a boolean operator next to an operand;
// prose and tokens that have none of these are cleared without calling it.
// sqlPrefix marks the first two letters of the SQL words, so most words of
// prose and tokens are ruled out without a map lookup.
var sqlPrefix = func() (t [26][27]bool) {
	for w := range sqlWords {
		if len(w) >= 2 && isLetter(w[0]) {
			t[w[0]-'a'][letterIndex(w[1])] = true
		}
	}
	return t
}()

// letterIndex maps a-z to 0-25 and anything else to 26.
func letterIndex(c byte) int {
	if 'a' <= c && c <= 'z' {
		return int(c - 'a')
	}
	return 26
}

// sqlWordClass returns the class of the lower-case word w, or 0.
func sqlWordClass(w []byte) sqlClass {
	if len(w) < 2 || w[0] < 'a' || w[0] > 'z' || !sqlPrefix[w[0]-'a'][letterIndex(w[1])] {
		if len(w) < 2 || w[0] != '@' {
			return 0
		}
	}
	return sqlWords[str(w)]
}

func sqlCandidate(f []byte) bool {
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			if quoteBreak(f, i) {
				return true
			}
		case c == '/' && i+1 < len(f) && f[i+1] == '*':
			return true
		case c == '-' && i+1 < len(f) && f[i+1] == '-':
			return true
		case (c == '|' || c == '&') && i+1 < len(f) && f[i+1] == c:
			return true
		case isLetter(c) || c == '_' || c == '@':
			if i > 0 && (isWordByte(f[i-1]) || f[i-1] == '@') {
				continue
			}
			j := i
			for j < len(f) && (isWordByte(f[j]) || f[j] == '@') {
				j++
			}
			w := f[i:j]
			switch sqlWordClass(w) {
			case sqlKeyword, sqlSchema:
				// A keyword alone is prose ("select your plan"); next to
				// SQL punctuation or a second keyword it is a statement.
				if sqlContext(f, i, j) {
					return true
				}
			case sqlFunction:
				if k := skipSpace(f, j); k < len(f) && f[k] == '(' {
					return true
				}
			case sqlOperator:
				k := skipSpace(f, j)
				if k > j && k < len(f) && (isDigit(f[k]) || f[k] == '(' || f[k] == '\'' || f[k] == '"' || f[k] == '@') {
					return true
				}
			}
			i = j - 1
		}
	}
	return false
}

// quoteBreak reports a quote at f[i] followed by SQL: a comment, an
// operator, a separator or an SQL word, after optional blanks and closing
// parentheses ("' or", "')) and", "'--", "';", "'||"). Quotes inside JSON
// or prose ("{\"a\":1}", "O'Brien") are followed by neither.
func quoteBreak(f []byte, i int) bool {
	j := i + 1
	for j < len(f) && (f[j] == ' ' || f[j] == ')' || f[j] == '+') {
		j++
	}
	if j >= len(f) {
		return i > 0 // a value ending in a quote: "admin'"
	}
	switch f[j] {
	case '-', '#', '/', ';', '|', '&', '=', '<', '>', '\'', '"', '`', '(', '%', '^', '*', ',':
		return true
	}
	if isLetter(f[j]) {
		return sqlWordClass(wordAt(f, j)) != 0
	}
	return isDigit(f[j]) && j > i+1
}

// sqlContext reports whether the keyword f[i:j] sits next to SQL syntax: a
// parenthesis, a comma, a semicolon, an operator or another SQL word.
func sqlContext(f []byte, i, j int) bool {
	k := skipSpace(f, j)
	if k < len(f) {
		switch f[k] {
		case '(', '*', ',', ';', '@', '=', '<', '>':
			return true
		}
		if isWordByte(f[k]) {
			e := k
			for e < len(f) && isWordByte(f[e]) {
				e++
			}
			if sqlWordClass(f[k:e]) != 0 || isDigit(f[k]) {
				return true
			}
		}
	}
	p := i - 1
	for p >= 0 && isSpace(f[p]) {
		p--
	}
	if p >= 0 {
		switch f[p] {
		case '(', ')', ',', ';', '=', '*':
			return true
		}
		if isDigit(f[p]) {
			return true
		}
	}
	return false
}

// sqlGrammar scores what libinjection cleared by the parts of an injected
// SQL fragment it finds in the comment-free form s: a quote that breaks out
// of a string literal, a boolean clause with a comparison ("or 1=1"), a
// statement skeleton ("union select", "select ... from"), a stacked query
// ("; drop"), calls of injection-only functions, catalogue names, server
// variables and a trailing comment. One part alone stays below the
// threshold ("select your plan", "sleep(5)"); several together are an
// injection.
func sqlGrammar(s, folded []byte) (Finding, bool) {
	score := 0
	var prev []byte
	clause, literal, skeleton, fn, catalog, stacked := false, false, false, false, false, false
	sawSelect := false
	calls := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ';':
			j := skipSpace(s, i+1)
			if w := wordAt(s, j); len(w) > 0 && sqlWords[str(w)] == sqlKeyword {
				stacked = true
			}
			continue
		case c == '@' && i+1 < len(s) && s[i+1] == '@' && i+2 < len(s) && isLetter(s[i+2]):
			catalog = true
			continue
		case c == '|' && i+1 < len(s) && s[i+1] == '|', c == '&' && i+1 < len(s) && s[i+1] == '&':
			if ok, lit := comparisonAt(s, i+2); ok {
				clause, literal = true, literal || lit
			}
			i++
			continue
		}
		if !(isLetter(c) || c == '_') || (i > 0 && isWordByte(s[i-1])) {
			continue
		}
		j := i
		for j < len(s) && isWordByte(s[j]) {
			j++
		}
		w := s[i:j]
		// schema.function( as in dbms_pipe.receive_message(.
		call := false
		if k := skipSpace(s, j); k < len(s) && s[k] == '(' {
			call = true
		} else if j < len(s) && s[j] == '.' {
			e := j + 1
			for e < len(s) && isWordByte(s[e]) {
				e++
			}
			call = e > j+1 && e < len(s) && s[e] == '('
		}
		switch sqlWords[str(w)] {
		case sqlFunction:
			if call {
				calls++
				if injectionFunction(w) {
					fn = true
				}
			}
		case sqlSchema:
			if !equalLower(w, "mysql") || (j < len(s) && s[j] == '.') {
				catalog = true
			}
		case sqlOperator:
			if equalLower(w, "or") || equalLower(w, "and") || equalLower(w, "xor") {
				if ok, lit := comparisonAt(s, j); ok {
					clause, literal = true, literal || lit
				}
			}
		case sqlKeyword:
			switch {
			case equalLower(w, "select"):
				sawSelect = true
				if prev != nil && (equalLower(prev, "union") || equalLower(prev, "all") || equalLower(prev, "distinct")) {
					skeleton = true
					score += 2
				}
				// "select @@version", "select count(": a select list
				// that is SQL, not prose ("select * from the menu" is
				// both).
				if k := skipSpace(s, j); k < len(s) && (s[k] == '@' || s[k] == '(' || isLetter(s[k]) && peek(s, k+len(wordAt(s, k))) == '(') {
					score += 2
				}
			case equalLower(w, "from"):
				if sawSelect {
					skeleton = true
				}
			case equalLower(w, "having") || equalLower(w, "where"):
				if ok, lit := comparisonAt(s, j); ok {
					clause, literal = true, literal || lit
				}
			case equalLower(w, "waitfor"):
				k := skipSpace(s, j)
				if hasPrefix(s[k:], "delay") || hasPrefix(s[k:], "time") {
					fn = true
					if k = skipSpace(s, k+len(wordAt(s, k))); k < len(s) && (s[k] == '\'' || s[k] == '"') {
						score += 2
					}
				}
			}
		}
		prev = w
		i = j - 1
	}
	if fn {
		score += 3
	}
	if skeleton {
		score += 3
	}
	if catalog {
		score += 3
	}
	if clause {
		score += 2
		if literal {
			score++
		}
	}
	if stacked {
		score += 2
	}
	if calls >= 3 {
		score += 2
	}
	if score > 0 {
		if sqlBreakout(folded) {
			score += 2
		}
		if trailingComment(folded) {
			score++
		}
	}
	switch {
	case score >= ScoreCritical:
		return Finding{Rule: RuleSQLiGrammar, Score: ScoreCritical}, true
	case score >= ScoreWarning && fn && !skeleton && !clause:
		return Finding{Rule: RuleSQLiFunction, Score: ScoreWarning}, true
	case score >= ScoreWarning:
		return Finding{Rule: RuleSQLiGrammar, Score: ScoreWarning}, true
	}
	return Finding{}, false
}

func peek(s []byte, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// comparisonAt reports "operand op operand" starting at i (numbers,
// words, quoted strings or calls compared with =, <>, !=, <, >, <=, >= or
// like), or a bare true operand ("or 1", "or true", "or 'x'") before a
// comment or the end; lit is set when both sides are literals, as in the
// tautologies of blind injection ("1=1", "'a'='a'").
func comparisonAt(s []byte, i int) (ok, lit bool) {
	i = skipSpace(s, i)
	for i < len(s) && s[i] == '(' {
		i = skipSpace(s, i+1)
	}
	j := operandEnd(s, i)
	if j == i {
		return false, false
	}
	k := skipSpace(s, j)
	switch {
	case k < len(s) && (s[k] == '=' || s[k] == '<' || s[k] == '>'):
		k++
		if k < len(s) && (s[k] == '=' || s[k] == '>') {
			k++
		}
	case k+1 < len(s) && s[k] == '!' && s[k+1] == '=':
		k += 2
	case hasPrefix(s[k:], "like ") || hasPrefix(s[k:], "rlike ") || hasPrefix(s[k:], "regexp "):
		k += len(wordAt(s, k))
	case hasPrefix(s[k:], "between ") || hasPrefix(s[k:], "is ") || hasPrefix(s[k:], "in("):
		return true, false
	default:
		bare := isDigit(s[i]) || s[i] == '\'' || s[i] == '"' || equalLower(s[i:j], "true")
		end := k == len(s) || s[k] == '-' || s[k] == '#' || s[k] == ')' || s[k] == ';' || s[k] == '/'
		return bare && j-i < 8 && end, bare
	}
	k = skipSpace(s, k)
	e := operandEnd(s, k)
	if e == k {
		return false, false
	}
	return true, isLiteral(s[i:j]) && isLiteral(s[k:e])
}

func isLiteral(o []byte) bool {
	if len(o) == 0 {
		return false
	}
	switch c := o[0]; {
	case isDigit(c), c == '\'', c == '"':
		return true
	}
	// Two one-letter words compared ("x=y") are as good as literals.
	return len(o) <= 2 && isLetter(o[0])
}

// operandEnd returns the end of the operand at i: a number, a word, a
// quoted string, a @variable or a function call.
func operandEnd(s []byte, i int) int {
	if i >= len(s) {
		return i
	}
	switch c := s[i]; {
	case c == '\'' || c == '"' || c == '`':
		for j := i + 1; j < len(s); j++ {
			if s[j] == c {
				return j + 1
			}
		}
		return len(s)
	case isWordByte(c) || c == '@':
		j := i
		for j < len(s) && (isWordByte(s[j]) || s[j] == '@' || s[j] == '.') {
			j++
		}
		if j < len(s) && s[j] == '(' {
			depth := 0
			for ; j < len(s); j++ {
				if s[j] == '(' {
					depth++
				} else if s[j] == ')' {
					depth--
					if depth == 0 {
						return j + 1
					}
				}
			}
		}
		return j
	}
	return i
}

// sqlBreakout reports a value that starts by closing a string or a
// parenthesis and continues with SQL: "' or", "1') and", "\")) union".
func sqlBreakout(f []byte) bool {
	// A value that starts inside an expression: "or 1=1", "having 1=0",
	// "as x where", ",cast(".
	if k := skipSpace(f, 0); k < len(f) {
		if f[k] == ',' {
			return true
		}
		if w := wordAt(f, k); len(w) > 0 {
			switch str(w) {
			case "or", "and", "xor", "having", "where", "as", "union", "order", "group", "limit", "procedure", "into":
				return true
			}
		}
	}
	i := 0
	for i < len(f) && (isWordByte(f[i]) || f[i] == '-' || f[i] == '.') && i < 32 {
		i++
	}
	if i >= len(f) || (f[i] != '\'' && f[i] != '"' && f[i] != '`' && f[i] != ')') {
		return false
	}
	for i < len(f) && (f[i] == '\'' || f[i] == '"' || f[i] == '`' || f[i] == ')' || f[i] == ' ') {
		i++
	}
	if i >= len(f) {
		return false
	}
	if f[i] == ';' || f[i] == '#' || f[i] == '|' || f[i] == '&' || hasPrefix(f[i:], "--") || hasPrefix(f[i:], "/*") {
		return true
	}
	w := wordAt(f, i)
	return len(w) > 0 && sqlWords[str(w)] != 0
}

// trailingComment reports a value that ends in an SQL comment opener.
func trailingComment(f []byte) bool {
	n := len(f)
	for n > 0 && f[n-1] == ' ' {
		n--
	}
	f = f[:n]
	if n == 0 {
		return false
	}
	if f[n-1] == '#' {
		return true
	}
	i := index(f, "--")
	return i >= 0 && (i+2 == n || f[i+2] == ' ' || f[i+2] == '-') || hasPrefix(f[max(0, n-2):], "/*")
}

// injectionFunction reports functions whose call is itself a strong hint:
// timing, error-based extraction and file access.
func injectionFunction(w []byte) bool {
	switch str(w) {
	case "sleep", "benchmark", "pg_sleep", "extractvalue", "updatexml", "load_file", "name_const",
		"randomblob", "xp_cmdshell", "utl_inaddr", "dbms_pipe", "dbms_lock", "make_set", "group_concat":
		return true
	}
	return false
}
