package payload

// The SQL grammar scorer: it recognises an injected SQL fragment by its
// parts when libinjection's fingerprints miss it (see sqliAnalyzer).

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
	sawSelect, selectList, ddl := false, false, false
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
				if injectionFunction(w) || infoFunction(w) && emptyCall(s, j) {
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
					selectList = true
				} else if w2 := wordAt(s, k); len(w2) > 0 && sqlWords[str(w2)] == sqlFunction {
					// "select current_user;": a server function as the
					// select list, the statement ended.
					if e := skipSpace(s, k+len(w2)); e == len(s) || s[e] == ';' {
						selectList = true
					}
				}
			case equalLower(w, "order") || equalLower(w, "group"):
				// "order by 3", "group by 1,2,3": the column-count probe of
				// union injections.
				if k := skipSpace(s, j); hasPrefix(s[k:], "by") && !isWordByte(peek(s, k+2)) && numberList(s, k+2) {
					score += 3
				}
			case equalLower(w, "create") || equalLower(w, "drop") || equalLower(w, "alter") || equalLower(w, "truncate") || equalLower(w, "backup"):
				k := skipSpace(s, j)
				switch str(wordAt(s, k)) {
				case "table", "database", "user", "view", "procedure", "function", "index", "trigger", "schema", "login", "role":
					if e := skipSpace(s, k+len(wordAt(s, k))); e < len(s) && (isWordByte(s[e]) || s[e] == '`' || s[e] == '"') {
						ddl = true
					}
				}
			case equalLower(w, "procedure"):
				// "procedure analyse(": MySQL's column probe.
				if k := skipSpace(s, j); hasPrefix(s[k:], "analyse") {
					score += ScoreCritical
				}
			case equalLower(w, "identified"):
				if k := skipSpace(s, j); hasPrefix(s[k:], "by ") {
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
	if ddl {
		score += 3
	}
	if (skeleton || ddl || selectList) && endsStatement(s) {
		// A whole statement, ended: "select * from pg_group;".
		score += 2
	}
	if quoteComment(folded) {
		// "admin' #", "x'--": the rest of the query commented out after
		// the string is closed, the authentication bypass.
		score += ScoreCritical
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

// numberList reports a list of numbers at s[i:] ("1", "1,2,3") ending the
// value or followed by ';', ')' or a comment.
func numberList(s []byte, i int) bool {
	i = skipSpace(s, i)
	n := 0
	for i < len(s) && isDigit(s[i]) {
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		n++
		i = skipSpace(s, i)
		if i < len(s) && s[i] == ',' {
			i = skipSpace(s, i+1)
		}
	}
	i = skipSpace(s, i)
	return n > 0 && (i == len(s) || s[i] == ';' || s[i] == ')' || s[i] == '#' || s[i] == '-' || s[i] == '/' || s[i] == '+')
}

// endsStatement reports a value that ends with ';'.
func endsStatement(s []byte) bool {
	n := len(s)
	for n > 0 && s[n-1] == ' ' {
		n--
	}
	return n > 0 && s[n-1] == ';'
}

// quoteComment reports a short word (or nothing), a closing quote and a
// comment that runs to the end: "admin'--", "x' #", "\" /*".
func quoteComment(f []byte) bool {
	i := 0
	for i < len(f) && i < 32 && (isWordByte(f[i]) || f[i] == '.' || f[i] == '@' || f[i] == '-' && peek(f, i+1) != '-') {
		i++
	}
	if i >= len(f) || f[i] != '\'' && f[i] != '"' {
		return false
	}
	i++
	for i < len(f) && (f[i] == ' ' || f[i] == ')') {
		i++
	}
	return i < len(f) && (f[i] == '#' || hasPrefix(f[i:], "--") || hasPrefix(f[i:], "/*"))
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

// maxCallOperand bounds the bytes of a function call read as an operand
// ("sleep(5)", "char(97,98)"): the compared calls of injections are short,
// and a call the bound leaves open is read as running to the end of the
// value, as an unclosed one is.
const maxCallOperand = 256

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
			for k := j; k < len(s) && k-j < maxCallOperand; k++ {
				if s[k] == '(' {
					depth++
				} else if s[k] == ')' {
					depth--
					if depth == 0 {
						return k + 1
					}
				}
			}
			return len(s)
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

// infoFunction reports the functions that reveal the server: called with
// no argument ("version()", "database()") they are a probe.
func infoFunction(w []byte) bool {
	switch str(w) {
	case "version", "database", "user", "current_user", "system_user", "session_user", "current_database":
		return true
	}
	return false
}

// emptyCall reports "()" after blanks at s[j:].
func emptyCall(s []byte, j int) bool {
	k := skipSpace(s, j)
	if k >= len(s) || s[k] != '(' {
		return false
	}
	k = skipSpace(s, k+1)
	return k < len(s) && s[k] == ')'
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
