package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections"
)

// Rule ids of the NoSQL injection analyzer.
const (
	// RuleNoSQLi is a MongoDB query operator smuggled in as a parameter:
	// "password[$ne]=" in a query or form (PHP and Express parse it into
	// an object), or a "$where" / "$function" / "$expr" key carrying code.
	RuleNoSQLi = "nosqli"
)

// nosqliAnalyzer reads parameter and object-key names. Query operators in
// JSON keys are how some APIs take filters on purpose, so only those that
// run JavaScript or aggregation code count there; in query and form
// parameter names (bracket syntax) every operator counts, because those
// never hold one legitimately.
type nosqliAnalyzer struct{}

func (nosqliAnalyzer) Name() string { return "nosqli" }

func (nosqliAnalyzer) needs() uint64 { return clsDollar | clsSemi | clsPipe | clsDot }

var mongoOperators = func() map[string]string {
	m := map[string]string{}
	for _, op := range []string{"ne", "eq", "gt", "gte", "lt", "lte", "in", "nin", "regex", "exists", "not",
		"nor", "or", "and", "where", "expr", "function", "accumulator", "elemmatch", "type", "size", "all",
		"mod", "text", "jsonschema", "options", "comment"} {
		m[op] = op
	}
	return m
}()

// codeOperators evaluate JavaScript or expressions on the server.
var codeOperators = map[string]bool{"where": true, "function": true, "accumulator": true, "expr": true}

func (nosqliAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsDollar) {
		if !in.Field.IsKey && in.Has(clsSemi|clsPipe|clsDot) && mongoJS(in) {
			return Finding{Rule: RuleNoSQLi, Score: ScoreCritical}, true
		}
		return Finding{}, false
	}
	f := in.Field
	if f.IsKey {
		k := in.Decoded()
		if bytes.IndexByte(k, '$') < 0 {
			return Finding{}, false
		}
		switch f.Kind {
		case detections.FieldQuery, detections.FieldForm, detections.FieldCookie, detections.FieldMultipart:
			// name[$op] or name.$op or $op
			for i := 0; i < len(k); i++ {
				if k[i] == '$' && (i == 0 || k[i-1] == '[' || k[i-1] == '.') {
					if op := operatorAt(k, i+1); op != "" {
						return Finding{Rule: RuleNoSQLi, Score: ScoreCritical}, true
					}
				}
			}
		case detections.FieldJSON:
			if len(k) > 1 && k[0] == '$' {
				if op := operatorAt(k, 1); codeOperators[op] {
					return Finding{Rule: RuleNoSQLi, Score: ScoreCritical}, true
				} else if op != "" && jsonOperatorProbe(in) {
					return Finding{Rule: RuleNoSQLi, Score: ScoreCritical}, true
				}
			}
		}
		return Finding{}, false
	}
	// Values: a serialized operator object in a parameter that the
	// application will parse ("{"$ne": null}", "{"$gt": ""}"), an
	// operator key spliced into an object literal ("', $where: '1 == 1'",
	// "', $or: [ {}, ..."), or bracket syntax inside a value ("[$ne]=1").
	d := in.Folded()
	if len(d) < 5 || bytes.IndexByte(d, '$') < 0 {
		return Finding{}, false
	}
	if operatorKey(d) {
		return Finding{Rule: RuleNoSQLi, Score: ScoreCritical}, true
	}
	if bytes.IndexByte(d, '{') < 0 {
		return Finding{}, false
	}
	for i := 0; i+1 < len(d); i++ {
		if d[i] != '{' {
			continue
		}
		j := skipSpace(d, i+1)
		if j < len(d) && (d[j] == '"' || d[j] == '\'') {
			j++
		}
		if j < len(d) && d[j] == '$' {
			if op := operatorAt(d, j+1); op != "" {
				e := j + 1 + len(op)
				if e < len(d) && (d[e] == '"' || d[e] == '\'') {
					e++
				}
				if e = skipSpace(d, e); e < len(d) && d[e] == ':' {
					return Finding{Rule: RuleNoSQLi, Score: ScoreCritical}, true
				}
			}
		}
	}
	return Finding{}, false
}

// operatorAt returns the Mongo operator name starting at s[i], if any.
func operatorAt(s []byte, i int) string {
	j := i
	for j < len(s) && isLetter(s[j]) {
		j++
	}
	if j == i || (j < len(s) && isWordByte(s[j])) {
		return ""
	}
	var buf [16]byte
	if j-i > len(buf) {
		return ""
	}
	for k := i; k < j; k++ {
		c := s[k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[k-i] = c
	}
	return mongoOperators[string(buf[:j-i])]
}

// jsonOperatorProbe reports a comparison operator used the way an
// authentication bypass uses it: as the only key of an object nested
// under a credential-like field ("password": {"$ne": null}).
func jsonOperatorProbe(in *Input) bool {
	name := in.Field.Name
	i := len(name) - 1
	for i >= 0 && name[i] != '.' {
		i--
	}
	if i <= 0 {
		return false
	}
	parent := name[:i]
	if j := bytesLastIndexDot(parent); j >= 0 {
		parent = parent[j+1:]
	}
	switch lowerString(parent) {
	case "password", "pass", "passwd", "pwd", "username", "user", "login", "email", "token", "secret", "otp", "code", "pin":
		return true
	}
	return false
}

func bytesLastIndexDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// lowerString lower-cases short ASCII strings without allocating for the
// common already-lower case.
func lowerString(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := range b {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// operatorKey reports a Mongo operator used as an object key in text,
// quoted or not, after a separator ("', $where: ...", ", $or: [") or in
// bracket syntax ("[$ne]=1").
func operatorKey(d []byte) bool {
	for off := 0; ; {
		i := bytes.IndexByte(d[off:], '$')
		if i < 0 {
			return false
		}
		i += off
		off = i + 1
		op := operatorAt(d, i+1)
		if op == "" {
			continue
		}
		e := i + 1 + len(op)
		if i > 0 && d[i-1] == '[' && e < len(d) && d[e] == ']' {
			return true
		}
		b := i - 1
		if b >= 0 && (d[b] == '"' || d[b] == '\'') {
			b--
		}
		for b >= 0 && d[b] == ' ' {
			b--
		}
		if b >= 0 && d[b] != ',' && d[b] != '{' && d[b] != '\'' && d[b] != '"' {
			continue
		}
		if e < len(d) && (d[e] == '"' || d[e] == '\'') {
			e++
		}
		if e = skipSpace(d, e); e < len(d) && d[e] == ':' {
			return true
		}
	}
}

// mongoMethods are the collection methods of the Mongo shell.
var mongoMethods = set("find", "findone", "insert", "insertone", "update", "updateone", "remove", "deleteone",
	"deletemany", "mapreduce", "aggregate", "drop", "count", "distinct", "getcollection", "runcommand")

// mongoJS reports JavaScript aimed at a $where clause or the Mongo shell:
// a statement that returns a truth value (";return true", "';return(1)"),
// a tautology ("|| 1==1", "||'a'=='a'"), or a shell call
// ("db.users.find(", "db.getCollection(").
func mongoJS(in *Input) bool {
	d := in.Folded()
	if len(d) < 6 {
		return false
	}
	if in.Has(clsSemi) {
		for off := 0; ; {
			i := bytes.IndexByte(d[off:], ';')
			if i < 0 {
				break
			}
			i += off
			off = i + 1
			j := skipSpace(d, i+1)
			if !hasPrefix(d[j:], "return") {
				continue
			}
			k := j + 6
			for k < len(d) && (d[k] == ' ' || d[k] == '(') {
				k++
			}
			if k > j+6 && (hasPrefix(d[k:], "true") || hasPrefix(d[k:], "1") || hasPrefix(d[k:], "this")) {
				return true
			}
		}
	}
	if in.Has(clsPipe) && in.Has(clsEq) {
		for off := 0; ; {
			i := index(d[off:], "||")
			if i < 0 {
				break
			}
			i += off
			off = i + 2
			j := skipSpace(d, i+2)
			if e := operandEnd(d, j); e > j && e+2 < len(d) && d[e] == '=' && d[e+1] == '=' {
				if k := operandEnd(d, e+2+boolToInt(peek(d, e+2) == '=')); k > e+2 && isLiteral(d[j:e]) {
					return true
				}
			}
		}
	}
	if in.Has(clsDot|clsParen) && contains(d, "db.") {
		for off := 0; ; {
			i := index(d[off:], "db.")
			if i < 0 {
				return false
			}
			i += off
			off = i + 3
			if i > 0 && isWordByte(d[i-1]) {
				continue
			}
			// db.getCollection( or db.<collection>.<method>(
			j := i + 3
			w := wordAt(d, j)
			if mongoMethods[str(w)] && peek(d, j+len(w)) == '(' {
				return true
			}
			k := j + len(w)
			if len(w) > 0 && peek(d, k) == '.' {
				m := wordAt(d, k+1)
				if mongoMethods[str(m)] && peek(d, k+1+len(m)) == '(' {
					return true
				}
			}
		}
	}
	return false
}
