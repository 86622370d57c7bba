package payload

import "strings"

// RuleProtoPollution is a parameter or object key that reaches an object's
// prototype: "__proto__", or "constructor" followed by "prototype", in
// JSON keys, bracket or dotted parameter names ("__proto__[admin]=1",
// "constructor.prototype.isAdmin").
const RuleProtoPollution = "proto_pollution"

// protoPollutionAnalyzer reads keys only: the dangerous names are
// harmless as values.
type protoPollutionAnalyzer struct{}

func (protoPollutionAnalyzer) Name() string { return RuleProtoPollution }

func (protoPollutionAnalyzer) Analyze(in *Input) (Finding, bool) {
	// JavaScript property names are case-sensitive: "__PROTO__" is an
	// ordinary key, so the decoded value is matched as it is.
	d := in.Decoded()
	if !in.Field.IsKey {
		// A JSON document passed as a string value is parsed by the
		// application too.
		if in.Classes()&(clsUnderscore|clsBrace) == clsUnderscore|clsBrace && (contains(d, `"__proto__"`) || contains(d, `'__proto__'`)) {
			return Finding{Rule: RuleProtoPollution, Score: ScoreCritical}, true
		}
		return Finding{}, false
	}
	if !in.Has(clsUnderscore) && !contains(d, "prototype") {
		return Finding{}, false
	}
	k := d
	if contains(k, "__proto__") {
		return Finding{Rule: RuleProtoPollution, Score: ScoreCritical}, true
	}
	// The JSON walker reports nested keys one at a time; their path is in
	// the field name.
	if contains(k, "prototype") {
		if strings.Contains(in.Field.Name, "constructor") || contains(k, "constructor") {
			return Finding{Rule: RuleProtoPollution, Score: ScoreCritical}, true
		}
	}
	return Finding{}, false
}
