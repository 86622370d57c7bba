package ipfeed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestAcceptanceConfig decodes the exact YAML the acceptance tests use,
// strictly, and runs it: name and file, everything else defaulted.
func TestAcceptanceConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(path, []byte("# test feed\n192.0.2.0/24\n2001:db8::/32\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		IP struct {
			Feeds []FeedConfig `yaml:"feeds"`
		} `yaml:"ip"`
	}
	dec := yaml.NewDecoder(strings.NewReader("ip: {feeds: [{name: f, file: " + path + "}]}\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Feeds: doc.IP.Feeds}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := DefaultFeedConfig()
	want.Name, want.File = "f", path
	if got := cfg.WithDefaults().Feeds[0]; got != want {
		t.Errorf("defaulted feed = %+v\nwant %+v", got, want)
	}
	m, err := NewManager(cfg, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"192.0.2.99": true, "2001:db8::5": true, "::ffff:192.0.2.1": true, "198.51.100.1": false} {
		hit, ok := m.Match(mustAddr(addr))
		if ok != want || (ok && (hit.Feed != "f" || hit.Mode != ModeEnforce)) {
			t.Errorf("Match(%s) = %+v, %v", addr, hit, ok)
		}
	}
}

func TestConfigYAMLFields(t *testing.T) {
	t.Parallel()
	in := `feeds:
  - name: spamhaus_drop
    url: https://feeds.example/drop_v4.json
    refresh: 12h
    mode: monitor
    format: spamhaus
    max_entries: 1000
    max_bytes: 1048576
    timeout: 10s
`
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := FeedConfig{Name: "spamhaus_drop", URL: "https://feeds.example/drop_v4.json", Refresh: 12 * time.Hour,
		Mode: ModeMonitor, Format: FormatSpamhaus, MaxEntries: 1000, MaxBytes: 1 << 20, Timeout: 10 * time.Second}
	if len(cfg.Feeds) != 1 || cfg.Feeds[0] != want {
		t.Errorf("decoded %+v", cfg.Feeds)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	dec = yaml.NewDecoder(strings.NewReader("feeds: [{name: f, file: x, refreh: 1h}]\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	cfg := Config{Feeds: []FeedConfig{
		{Name: "ok", File: "/x"},
		{Name: "", URL: "http://plain.example/list"},
		{Name: "Bad Name", File: "/x", URL: "https://both.example"},
		{Name: "ok", URL: "https://u:secret@example.com/list?key=secret", Refresh: time.Second, Mode: "off", Format: "csv"},
		{Name: "neg", URL: "ftp://example.com/list", MaxEntries: -1, MaxBytes: MaxBytesLimit + 1, Timeout: -1},
		{Name: "noscheme", URL: "example.com/list", MaxEntries: MaxEntriesLimit + 1},
		{Name: "nofile"},
	}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"feeds[1].name: required",
		"feeds[1].url: http://plain.example/list: plain http is refused",
		`feeds[2].name: "Bad Name"`,
		"feeds[2]: set exactly one of file and url",
		`feeds[3].name: "ok" already names feeds[0]`,
		"feeds[3].refresh: 1s is below the minimum 1m0s",
		`feeds[3].mode: "off" is not enforce or monitor`,
		`feeds[3].format: "csv" is not`,
		"feeds[4].url: ftp://example.com/list: scheme must be https",
		"feeds[4].max_entries: -1",
		"feeds[4].max_bytes:",
		"feeds[4].timeout: -1ns is not between 0 and the refresh",
		"feeds[5].url:",
		"feeds[5].max_entries: 5000001",
		"feeds[6]: set exactly one of file and url",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "secret") {
		t.Errorf("secret in error:\n%s", msg)
	}
	if n := strings.Count(msg, "\n") + 1; n != 15 {
		t.Errorf("%d problems:\n%s", n, msg)
	}
	if err := (Config{Feeds: []FeedConfig{{Name: "t", URL: "http://127.0.0.1/x"}}, AllowHTTP: true}).Validate(); err != nil {
		t.Errorf("AllowHTTP: %v", err)
	}
	var many Config
	for i := range MaxFeeds + 1 {
		many.Feeds = append(many.Feeds, FeedConfig{Name: "f" + string(rune('a'+i%26)) + string(rune('a'+i/26)), File: "/x"})
	}
	if err := many.Validate(); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Errorf("65 feeds: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}
