package payload

// RuleLDAPi is LDAP filter injection: a value that closes the
// application's filter and opens another ("*)(uid=*", "admin)(|(password=*",
// "x)(&)"): a closing parenthesis, an optional operator, then an opening
// one followed by an operator or an attribute assertion.
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
		if k >= len(d) {
			continue
		}
		switch c := d[k]; {
		case c == '&' || c == '|' || c == '!':
			if k+1 == len(d) || d[k+1] == '(' || d[k+1] == ')' || isSpace(d[k+1]) {
				return Finding{Rule: RuleLDAPi, Score: ScoreCritical}, true
			}
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
