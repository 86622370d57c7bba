package tlsconf

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("defaults without a certificate: %v", err)
	}
	c.CertFile, c.KeyFile = "a.crt", "a.key"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TLSVersion() != tls.VersionTLS12 || c.ReloadInterval != 10*time.Second || c.TicketRotation != time.Hour {
		t.Errorf("defaults %+v", c)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	c := Config{
		CertFile:          "a.crt",
		Certificates:      []CertPair{{CertFile: "b.crt"}},
		MinVersion:        "1.4",
		ReloadInterval:    -time.Second,
		TicketRotation:    time.Second,
		TicketKeysKept:    99,
		ProxyProtocol:     "maybe",
		ProxyTrustedCIDRs: []string{"0.0.0.0/0", "nonsense", "10.0.0.1"},
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, key := range []string{"cert_file and key_file", "certificates[0]", "min_version", "reload_interval", "handshake_timeout",
		"ticket_rotation", "ticket_keys_kept", "proxy_protocol", `"0.0.0.0/0"`, `"nonsense"`} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("missing %s in:\n%v", key, err)
		}
	}
	if strings.Contains(err.Error(), "10.0.0.1") {
		t.Errorf("a bare address is a valid /32: %v", err)
	}
	c = DefaultConfig()
	c.Certificates = []CertPair{{CertFile: "a", KeyFile: "b"}}
	c.ProxyProtocol = "required"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "proxy_trusted_cidrs: required") {
		t.Errorf("proxy without CIDRs: %v", err)
	}
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	in := `
cert_file: /etc/rampart/tls.crt
key_file: /etc/rampart/tls.key
certificates:
  - {cert_file: /etc/rampart/api.crt, key_file: /etc/rampart/api.key}
min_version: "1.3"
reload_interval: 30s
ticket_rotation: 2h
proxy_protocol: optional
proxy_trusted_cidrs: [10.0.0.0/8]
`
	c := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Pairs()) != 2 || c.Pairs()[0].CertFile != "/etc/rampart/tls.crt" || c.TLSVersion() != tls.VersionTLS13 ||
		c.ReloadInterval != 30*time.Second || c.TicketRotation != 2*time.Hour || c.HandshakeTimeout != 10*time.Second {
		t.Errorf("decoded %+v", c)
	}
	o, err := c.ListenOptions(nil, nil)
	if err != nil || o.ProxyProtocol != ProxyOptional || len(o.TrustedProxies) != 1 {
		t.Errorf("options %+v %v", o, err)
	}
}
