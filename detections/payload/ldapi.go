package payload

import "bytes"

// RuleLDAPi is LDAP filter injection: a value that closes the
// application's filter and opens another ("*)(uid=*", "admin)(|(password=*",
// "x)(&)"): a closing parenthesis, an optional operator, then an opening
// one followed by an operator or an attribute assertion; or a composite
// filter of presence tests that matches every entry ("*(|(mail=*))").
const RuleLDAPi = "ldapi"

// ldapiAnalyzer reads the filter grammar: ")" [&|!] "(" then [&|!)] or
// attr (=|~=|>=|<=).
type ldapiAnalyzer struct{}

func (ldapiAnalyzer) Name() string { return "ldapi" }

func (ldapiAnalyzer) needs() uint64 { return clsParen }

func (ldapiAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsParen) {
		return Finding{}, false
	}
	d := in.Decoded()
	if len(d) < 3 || in.Binary() {
		return Finding{}, false
	}
	for i := 0; i < len(d); i++ {
		// Jump to the next parenthesis.
		next := bytes.IndexAny(d[i:], "()")
		if next < 0 {
			break
		}
		i += next
		if d[i] == '(' && ldapComposite(d, i) {
			return Finding{Rule: RuleLDAPi, Score: ScoreCritical}, true
		}
		if d[i] != ')' {
			continue
		}
		j := skipSpace(d, i+1)
		if j < len(d) && (d[j] == '&' || d[j] == '|' || d[j] == '!') {
			j = skipSpace(d, j+1)
		}
		if j >= len(d) || d[j] != '(' {
			continue
		}
		k := skipSpace(d, j+1)
		for k < len(d) && d[k] == '(' {
			k = skipSpace(d, k+1) // ")((|userPassword=*)"
		}
		if k >= len(d) {
			continue
		}
		if d[k] == '&' || d[k] == '|' || d[k] == '!' {
			if k+1 == len(d) || d[k+1] == '(' || d[k+1] == ')' || isSpace(d[k+1]) {
				return Finding{Rule: RuleLDAPi, Score: ScoreCritical}, true
			}
			k++ // ")(|userPassword=*)": an operator, then an assertion
		}
		switch c := d[k]; {
		case isLetter(c):
			e := k
			for e < len(d) && (isAlnum(d[e]) || d[e] == '-' || d[e] == '.' || d[e] == ';') {
				e++
			}
			if e-k < 2 || e >= len(d) {
				continue
			}
			if d[e] == '=' || (e+1 < len(d) && d[e+1] == '=' && (d[e] == '~' || d[e] == '>' || d[e] == '<')) {
				return Finding{Rule: RuleLDAPi, Score: ScoreCritical}, true
			}
		}
	}
	return Finding{}, false
}

// ldapComposite reports a composite filter opened at d[i] == '(' with a
// wildcard assertion inside: "(|(mail=*))", "(&(objectClass=*)": an OR or
// AND of presence tests, which matches every entry.
func ldapComposite(d []byte, i int) bool {
	j := skipSpace(d, i+1)
	if j+1 >= len(d) || d[j] != '|' && d[j] != '&' {
		return false
	}
	j = skipSpace(d, j+1)
	if j >= len(d) || d[j] != '(' {
		return false
	}
	k := skipSpace(d, j+1)
	e := k
	for e < len(d) && (isAlnum(d[e]) || d[e] == '-' || d[e] == '.') {
		e++
	}
	return e-k >= 2 && e+1 < len(d) && d[e] == '=' && d[e+1] == '*'
}
