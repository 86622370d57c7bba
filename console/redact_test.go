package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/console"
)

func TestRedactedYAML(t *testing.T) {
	type sink struct {
		Name    string            `yaml:"name"`
		URL     string            `yaml:"url"`
		Headers map[string]string `yaml:"headers"`
		Body    string            `yaml:"body"`
	}
	type file struct {
		Upstream string        `yaml:"upstream"`
		Timeout  time.Duration `yaml:"timeout"`
		Admin    struct {
			Token string `yaml:"token"`
		} `yaml:"admin"`
		Redis struct {
			URL      string `yaml:"url"`
			Password string `yaml:"password"`
		} `yaml:"redis"`
		JWT struct {
			Secrets []string `yaml:"hmac_secrets"`
			APIKey  string   `yaml:"api_key"`
			Issuer  string   `yaml:"issuer"`
		} `yaml:"jwt"`
		Alerts struct {
			Sinks []sink `yaml:"sinks"`
		} `yaml:"alerts"`
		Detections struct {
			IP struct {
				Feeds []struct {
					Name string `yaml:"name"`
					URL  string `yaml:"url"`
				} `yaml:"feeds"`
			} `yaml:"ip"`
		} `yaml:"detections"`
		Func func() `yaml:"-"`
	}
	var f file
	f.Upstream, f.Timeout = "http://api.internal:5000/v2", 1500*time.Millisecond
	f.Admin.Token = "tok-ABC"
	f.Redis.URL = "rediss://default:pw-REDIS@redis.internal:6380/1"
	f.JWT.Secrets, f.JWT.APIKey, f.JWT.Issuer = []string{"hs-ONE", "hs-TWO"}, "key-XYZ", "https://issuer.example/"
	f.Alerts.Sinks = []sink{
		{Name: "slack", URL: "https://hooks.slack.com/services/T0/B0/HOOK-SECRET", Headers: map[string]string{"Authorization": "Bearer AUTH-SECRET"}, Body: "{{ .Status }}"},
		{Name: "am", URL: "http://alertmanager:9093/"},
	}
	// Feed URLs keep their path (it is not a secret) but not their query,
	// where API keys travel, nor a password or a fragment.
	for _, u := range []string{
		"https://api.example.com/blacklist?key=SUPERSECRET",
		"https://feed:FEED-PW@lists.example.org/v1/drop.txt?fmt=plain&token=FEED-TOKEN#FEED-FRAG",
		"https://lists.example.net/plain.txt",
		"https://bad.example/%zz?key=BAD-KEY",
	} {
		f.Detections.IP.Feeds = append(f.Detections.IP.Feeds, struct {
			Name string `yaml:"name"`
			URL  string `yaml:"url"`
		}{Name: "feed", URL: u})
	}
	out, err := console.RedactedYAML(f)
	if err != nil {
		t.Fatal(err)
	}
	y := string(out)
	for _, secret := range []string{"tok-ABC", "pw-REDIS", "hs-ONE", "hs-TWO", "key-XYZ", "HOOK-SECRET", "AUTH-SECRET",
		"SUPERSECRET", "FEED-PW", "FEED-TOKEN", "FEED-FRAG", "BAD-KEY"} {
		if strings.Contains(y, secret) {
			t.Errorf("%q is shown:\n%s", secret, y)
		}
	}
	for _, want := range []string{
		"upstream: http://api.internal:5000/v2", "timeout: 1.5s", "token: '[redacted]'", "rediss://default:xxxxx@redis.internal:6380/1",
		"password: \"\"", "- '[redacted]'", "issuer: https://issuer.example/", "url: https://hooks.slack.com/[redacted]",
		"url: http://alertmanager:9093/", "Authorization: '[redacted]'", "body: '{{ .Status }}'",
		"url: https://api.example.com/blacklist?[redacted]\n", "url: https://feed:xxxxx@lists.example.org/v1/drop.txt?[redacted]#[redacted]\n",
		"url: https://lists.example.net/plain.txt\n", "url: '[redacted]'\n",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("missing %q in:\n%s", want, y)
		}
	}
	if _, err := console.RedactedYAML(map[string]any{"f": func() {}}); err == nil {
		t.Error("a func value rendered")
	}
}
