package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/rampartgw/rampart/config"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

func specs() []config.Spec {
	return []config.Spec{
		config.Detection("ip", detections.IPConfig{}, func(c detections.IPConfig) (detections.Detection, error) { return detections.NewIP(c) }),
		config.Detection("user_agent", detections.DefaultUserAgentConfig(), func(c detections.UserAgentConfig) (detections.Detection, error) {
			return detections.NewUserAgent(c)
		}),
		config.Detection("rate_limit", detections.DefaultRateLimitConfig(), func(c detections.RateLimitConfig) (detections.Detection, error) {
			return detections.NewRateLimit(c, nil)
		}),
		config.Detection("payload", payload.DefaultConfig(), func(c payload.Config) (detections.Detection, error) { return payload.New(c) }),
	}
}

func parse(t *testing.T, yaml string, env map[string]string) (*config.Loaded, error) {
	t.Helper()
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return config.Parse("test.yaml", []byte(yaml), getenv, specs())
}

func TestDefaults(t *testing.T) {
	l, err := parse(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Listen != ":8080" || l.Upstream != "http://127.0.0.1:5000" || l.MaxBodyBytes != 1<<20 || l.Redis.Prefix != "gw:" {
		t.Errorf("defaults: %+v", l.File)
	}
	if strings.Join(l.Chain, ",") != "ip,user_agent,rate_limit,payload" {
		t.Errorf("chain = %v", l.Chain)
	}
	_, rl, _ := l.Section("rate_limit")
	if rl.(detections.RateLimitConfig).Limit != redis_rate.PerMinute(5) {
		t.Errorf("rate limit default = %+v", rl)
	}
	chain, _, err := l.BuildChain()
	if err != nil || len(chain.Entries()) != 4 {
		t.Errorf("chain: %v %v", chain, err)
	}
}

func TestFileValues(t *testing.T) {
	l, err := parse(t, `
listen: "127.0.0.1:9000"
trusted_proxies: ["10.0.0.0/8"]
timeouts:
  upstream: 5s
chain: [payload, rate_limit]
detections:
  rate_limit:
    mode: monitor
    status: 429
    on_store_error: block
    rate: 100
    burst: 20
    period: 1s
    routes:
      - {name: login, method: POST, path: /login, rate: 5, burst: 5, period: 1m}
  payload:
    patterns: ["evil", "re:ab+c"]
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Listen != "127.0.0.1:9000" || l.Timeouts.Upstream != 5*time.Second || l.TrustedProxies[0] != "10.0.0.0/8" {
		t.Errorf("file: %+v", l.File)
	}
	st, rl, _ := l.Section("rate_limit")
	rc := rl.(detections.RateLimitConfig)
	if st.Mode != "monitor" || st.Status != 429 || st.OnStoreError != "block" || rc.Limit != (redis_rate.Limit{Rate: 100, Burst: 20, Period: time.Second}) ||
		len(rc.Routes) != 1 || rc.Routes[0].Limit.Rate != 5 || rc.BanAfter != 10 {
		t.Errorf("rate_limit section: %+v %+v", st, rc)
	}
	chain, _, err := l.BuildChain()
	if err != nil {
		t.Fatal(err)
	}
	e := chain.Entries()
	if len(e) != 2 || e[0].Detection.Name() != "payload" || e[1].Mode != detections.ModeMonitor || e[1].Status != 429 || e[1].OnStoreError != detections.StoreBlock {
		t.Errorf("entries: %+v", e)
	}
}

func TestStrictErrorsNameKeyAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "listen: x\nlisten_addr: y\n", []string{"line 2", "listen_addr"}},
		{"unknown nested key", "timeouts:\n  upstream: 1s\n  upstrem: 2s\n", []string{"line 3", "upstrem"}},
		{"unknown detection key", "detections:\n  payload:\n    patern: [a]\n", []string{"line 3", "patern"}},
		{"unknown detection", "detections:\n  geoip: {}\n", []string{"line 2", "geoip"}},
		{"bad duration", "timeouts:\n  upstream: soon\n", []string{"line 2", "soon"}},
		{"bad type", "max_body_bytes: lots\n", []string{"line 1", "lots"}},
		{"bad mode", "log:\n  level: info\ndetections:\n  rate_limit:\n    mode: enforcing\n", []string{"detections.rate_limit (line 4)", "enforcing"}},
		{"bad status", "detections:\n  ip:\n    status: 200\n", []string{"detections.ip (line 2).status", "200"}},
		{"bad on_store_error", "detections:\n  ip:\n    on_store_error: maybe\n", []string{"detections.ip (line 2)", "maybe"}},
		{"bad detection config", "detections:\n  ip:\n    allow: [not-an-ip]\n", []string{"detections.ip (line 2)", "not-an-ip"}},
		{"bad rate", "detections:\n  rate_limit:\n    rate: 0\n", []string{"detections.rate_limit (line 2)", "rate, burst and period"}},
		{"unknown chain entry", "chain: [ip, nope]\n", []string{"chain (line 1)", `"nope"`}},
		{"bad log level", "log:\n  level: loud\n", []string{"log (line 1)", "loud"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parse(t, tc.yaml, nil)
			if err == nil {
				_, _, err = l.BuildChain()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestEnvOverridesFile(t *testing.T) {
	l, err := parse(t, "listen: \":1\"\nredis:\n  url: redis://file:6379\n", map[string]string{
		"GATEWAY_LISTEN": "127.0.0.1:8081", "GATEWAY_UPSTREAM": "http://up:5000", "REDIS_URL": "redis://env:6379/2",
		"GATEWAY_TRUSTED_PROXIES": " 10.0.0.1/32 , 172.16.0.0/12,", "GATEWAY_LOG_LEVEL": "debug", "GATEWAY_ADMIN_TOKEN": "t",
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.Listen != "127.0.0.1:8081" || l.Upstream != "http://up:5000" || l.Redis.URL != "redis://env:6379/2" ||
		strings.Join(l.TrustedProxies, "|") != "10.0.0.1/32|172.16.0.0/12" || l.Log.Level != "debug" || l.Admin.Token != "t" {
		t.Errorf("env not applied: %+v", l.File)
	}
}

func TestModeOffDropsDetection(t *testing.T) {
	l, err := parse(t, "detections:\n  user_agent:\n    mode: off\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	chain, built, err := l.BuildChain()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := built["user_agent"]; ok || len(chain.Entries()) != 3 {
		t.Errorf("off detection built: %v", built)
	}
}
