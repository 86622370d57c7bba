package console

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// redacted replaces a secret's value.
const redacted = "[redacted]"

// RedactedYAML renders v (a configuration struct with yaml tags) as YAML
// with every secret replaced by [redacted]:
//   - the values of keys that name a secret (token, secret, password,
//     passwd, credential, authorization, cookie, private, a key such as
//     api_key; the whole value when it is a map or a list);
//   - every value under a headers key (they carry credentials);
//   - the password and the query of any URL (redis://user:pass@host,
//     https://feed.example/list?key=...: API keys travel in queries);
//   - the path and query of a URL under a webhook, url or sinks key inside
//     the alerts section (Slack-style webhook URLs are bearer secrets).
//
// Empty values stay empty, so the page shows which secrets are unset.
func RedactedYAML(v any) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("rendering the configuration: %v", p)
		}
	}()
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	redactNode(&doc, nil, false)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// secretKey reports a key whose value is a secret.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"token", "secret", "password", "passwd", "credential", "authorization", "cookie", "private", "apikey", "api_key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return k == "key" || strings.HasSuffix(k, "_key") || k == "headers" || k == "pass"
}

// redactNode walks n; path is the keys above it; all redacts every scalar
// below (a secret map or list).
func redactNode(n *yaml.Node, path []string, all bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			redactNode(c, path, all)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			redactNode(v, append(path, k.Value), all || secretKey(k.Value))
		}
	case yaml.AliasNode:
		n.Alias = nil
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", redacted
	case yaml.ScalarNode:
		switch {
		case n.Value == "" || n.Tag == "!!null":
		case all:
			n.Tag, n.Value, n.Style = "!!str", redacted, 0
		default:
			n.Value = redactURL(n.Value, webhookPath(path))
		}
	}
}

// webhookPath reports a value whose URL path itself is a secret: under
// the alerts section, a url or webhook key (sinks' endpoints).
func webhookPath(path []string) bool {
	if len(path) == 0 {
		return false
	}
	last := strings.ToLower(path[len(path)-1])
	inAlerts := false
	for _, p := range path {
		if p == "alerts" || p == "sinks" {
			inAlerts = true
		}
	}
	return strings.Contains(last, "webhook") || (inAlerts && last == "url")
}

// redactURL hides a URL's password, query and fragment and, when
// pathSecret, its path too; other values are returned as they are.
func redactURL(s string, pathSecret bool) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		if strings.ContainsAny(s, "@?#") {
			return redacted // unparseable, and may hold credentials
		}
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if pathSecret && (u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "") {
		u.Path, u.RawPath, u.RawQuery, u.Fragment, u.ForceQuery = "", "", "", "", false
		return u.String() + "/" + redacted
	}
	if u.RawQuery != "" {
		u.RawQuery = redacted
	}
	frag := u.Fragment != ""
	u.Fragment, u.RawFragment = "", ""
	if frag {
		return u.String() + "#" + redacted
	}
	return u.String()
}
