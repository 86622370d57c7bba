package payload

import (
	"bytes"

	"github.com/corazawaf/libinjection-go"
)

// Rule ids of the SQL injection analyzer.
const (
	// RuleSQLi is libinjection's verdict: the value tokenises to a
	// fingerprint of a known injection.
	RuleSQLi = "sqli"
	// RuleSQLiFingerprint is libinjection's verdict on a value with no SQL
	// word or comment of its own (random tokens, packed analytics
	// expressions): a weak signal.
	RuleSQLiFingerprint = "sqli_fingerprint"
	// RuleSQLiFunction is a weak signal: a call of a function used almost
	// only by injections (sleep, benchmark, extractvalue, ...).
	RuleSQLiFunction = "sqli_function"
	// RuleSQLiGrammar is an injection recognised by its parts when
	// libinjection's fingerprints miss it: a string breakout, a boolean
	// clause, a statement skeleton, a stacked query, a trailing comment.
	// Critical when several parts come together, a weak signal otherwise.
	RuleSQLiGrammar = "sqli_grammar"
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
		// Unconfirmed: the grammar may still see an injection by its
		// parts ("1' order by 3--").
		if fd, ok := sqlGrammar(in.SQL(), f); ok && fd.Score >= ScoreCritical {
			return fd, ok
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
			case "as", "into", "offset", "order", "group", "from", "case", "limit", "by", "all", "distinct", "null",
				"create", "table", "backup", "identified":
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
	"by": sqlKeyword, "all": sqlKeyword, "distinct": sqlKeyword, "null": sqlKeyword, "create": sqlKeyword,
	"table": sqlKeyword, "backup": sqlKeyword, "identified": sqlKeyword, "session_user": sqlFunction,
	"pg_group": sqlSchema, "pg_roles": sqlSchema, "pg_tables": sqlSchema,
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
				// "or x=x", "and true": a comparison or a truth value.
				if k > j && (hasPrefix(f[k:], "true") || hasPrefix(f[k:], "false")) && !isWordByte(peek(f, k+4+boolToInt(f[k] == 'f'))) {
					return true
				}
				if ok, _ := comparisonAt(f, j); ok && k > j && bytes.IndexByte(f[k:min(len(f), k+16)], '=') > 0 {
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

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
