package payload

// RuleShellshock is a Bash function definition at the start of a value,
// "() { :; };", which vulnerable Bash versions execute when the value is
// passed to a CGI script in an environment variable (CVE-2014-6271).
const RuleShellshock = "shellshock"

// shellshockAnalyzer looks for "()" then "{" at the start of a value,
// blanks and junk in between allowed.
type shellshockAnalyzer struct{}

func (shellshockAnalyzer) Name() string { return "shellshock" }

func (shellshockAnalyzer) needs() uint64 { return clsParen }

func (shellshockAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsParen) {
		return Finding{}, false
	}
	d := in.Decoded()
	i := 0
	for i < len(d) && (isSpace(d[i]) || d[i] == '\'' || d[i] == '"') {
		i++
	}
	if i+2 >= len(d) || d[i] != '(' {
		return Finding{}, false
	}
	j := i + 1
	for j < len(d) && j-i < 4 && (d[j] == ' ' || d[j] == '\t') {
		j++
	}
	if j >= len(d) || d[j] != ')' {
		return Finding{}, false
	}
	for k := j + 1; k < len(d) && k-j < 5; k++ {
		switch c := d[k]; {
		case c == '{':
			return Finding{Rule: RuleShellshock, Score: ScoreCritical}, true
		case isAlnum(c):
			return Finding{}, false
		}
	}
	return Finding{}, false
}
