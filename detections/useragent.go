package detections

import (
	"context"
	"fmt"
)

const userAgentName = "user_agent"

// Reasons reported by the user_agent detection.
const (
	ReasonUADenied     = "user_agent_denied"
	ReasonUANotAllowed = "user_agent_not_allowed"
	ReasonUAMissing    = "user_agent_missing"
)

// defaultUserAgentDeny is the maintained list of attack tools and scanners
// blocked by default (see DefaultUserAgentDeny). Each entry is a case-insensitive substring of the
// tool's default User-Agent. Keep it to names that no browser, library or
// monitoring agent uses.
var defaultUserAgentDeny = [...]string{
	"sqlmap", "nikto", "nmap", "masscan", "zgrab", "nuclei", "gobuster",
	"dirbuster", "dirb/", "wfuzz", "ffuf", "hydra", "acunetix", "netsparker",
	"openvas", "w3af", "skipfish", "arachni", "whatweb", "wpscan", "joomscan",
	"commix", "havij", "jaeles", "feroxbuster", "httpx - open-source", "xsstrike",
	"zmeu", "morfeus", "paros", "webinspect", "appscan", "burpcollaborator",
	"qualys", "nessus", "fimap", "grabber", "brutus", "bsqlbf", "sqlninja",
	"zap/", "owasp zap", "interactsh", "dotdotpwn", "crowdstrike-scan",
	"mozilla/5.0 sf/", "(hydra)", "libwhisker", "pangolin", "webshag",
}

// DefaultUserAgentDeny returns a copy of the built-in list of attack tools
// and scanners.
func DefaultUserAgentDeny() []string { return append([]string(nil), defaultUserAgentDeny[:]...) }

// UserAgentConfig configures the user_agent detection.
type UserAgentConfig struct {
	// Allow lists patterns of which the User-Agent must match one; ["*"]
	// (the default) allows every agent, as in the prototype.
	Allow []string `yaml:"allow"`
	// Deny lists patterns that block; it wins over Allow.
	Deny []string `yaml:"deny"`
	// UseDefaultDeny adds DefaultUserAgentDeny() to Deny.
	UseDefaultDeny bool `yaml:"use_default_deny"`
	// Empty says what to do with a missing or empty User-Agent: "allow" or
	// "block".
	Empty string `yaml:"empty"`
}

// DefaultUserAgentConfig allows every agent except known attack tools and
// lets requests without a User-Agent through (API clients often send none).
func DefaultUserAgentConfig() UserAgentConfig {
	return UserAgentConfig{Allow: []string{"*"}, UseDefaultDeny: true, Empty: "allow"}
}

// UserAgent blocks requests by User-Agent.
type UserAgent struct {
	allow, deny *PatternSet
	blockEmpty  bool
}

// NewUserAgent compiles the pattern lists.
func NewUserAgent(cfg UserAgentConfig) (*UserAgent, error) {
	allow, err := CompilePatterns(cfg.Allow)
	if err != nil {
		return nil, fmt.Errorf("allow: %w", err)
	}
	deny := cfg.Deny
	if cfg.UseDefaultDeny {
		deny = append(append([]string(nil), deny...), defaultUserAgentDeny[:]...)
	}
	denySet, err := CompilePatterns(deny)
	if err != nil {
		return nil, fmt.Errorf("deny: %w", err)
	}
	d := &UserAgent{allow: allow, deny: denySet}
	switch cfg.Empty {
	case "", "allow":
	case "block":
		d.blockEmpty = true
	default:
		return nil, fmt.Errorf("empty: %q is not allow or block", cfg.Empty)
	}
	return d, nil
}

// Name returns "user_agent".
func (d *UserAgent) Name() string { return userAgentName }

// Inspect applies the empty policy, then the deny list, then the allow list.
func (d *UserAgent) Inspect(_ context.Context, r *Request) (Verdict, error) {
	ua := r.Header.Get("User-Agent")
	if ua == "" {
		if d.blockEmpty {
			return Block(ReasonUAMissing), nil
		}
		return Allow, nil
	}
	if p, ok := d.deny.Match(ua); ok {
		v := Block(ReasonUADenied)
		v.Rule = p
		return v, nil
	}
	if d.allow.Len() > 0 {
		if _, ok := d.allow.Match(ua); !ok {
			return Block(ReasonUANotAllowed), nil
		}
	}
	return Allow, nil
}

var _ Detection = (*UserAgent)(nil)
