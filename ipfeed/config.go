package ipfeed

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Mode says what the gateway does with a hit on a feed. The package only
// carries it; the ip detection maps it onto its own enforce/monitor modes.
type Mode string

// Modes.
const (
	// ModeEnforce blocks a listed client (the default).
	ModeEnforce Mode = "enforce"
	// ModeMonitor records "would block" and lets the client through.
	ModeMonitor Mode = "monitor"
)

// Format is the syntax of a feed.
type Format string

// Formats.
const (
	// FormatAuto accepts everything below, line by line (the default).
	FormatAuto Format = "auto"
	// FormatPlain is one address, CIDR or range (a-b) per line; '#' and
	// ';' start comments; anything after the first field is ignored.
	FormatPlain Format = "plain"
	// FormatNetset is FireHOL's .netset/.ipset: '#' comments and exactly
	// one address or CIDR per line.
	FormatNetset Format = "netset"
	// FormatSpamhaus is Spamhaus DROP: "CIDR ; SBLnnn" lines with ';'
	// comments, or the JSON-lines files ({"cidr": …} objects and a final
	// {"type":"metadata"} object).
	FormatSpamhaus Format = "spamhaus"
)

// Limits and defaults.
const (
	// DefaultRefresh is how often a feed is fetched.
	DefaultRefresh = time.Hour
	// MinRefresh is the shortest refresh of a URL feed: public lists ask
	// not to be polled often (Spamhaus: at most once an hour).
	MinRefresh = time.Minute
	// MinFileRefresh is the shortest refresh of a file feed, which costs
	// only a stat when the file did not change.
	MinFileRefresh = time.Second
	// DefaultTimeout bounds one fetch, body included.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxBytes bounds a feed's size, after decompression.
	DefaultMaxBytes = 64 << 20
	// MaxBytesLimit is the largest max_bytes accepted.
	MaxBytesLimit = 1 << 30
	// MaxEntriesLimit bounds the entries kept from one feed whatever
	// max_entries says (about 40 MB of ranges in memory).
	MaxEntriesLimit = 5_000_000
	// MaxLineBytes is the longest line read; longer lines are invalid.
	MaxLineBytes = 1024
)

// Config is the feeds section of the ip detection. Operators list public
// blocklists; each is fetched every Refresh, parsed and merged into one
// matcher.
type Config struct {
	// Feeds are the blocklists, each fetched once per fleet per refresh.
	Feeds []FeedConfig `yaml:"feeds"`
	// AllowHTTP lets feeds use plain http:// URLs. It exists for tests
	// (httptest servers) and cannot be set from YAML.
	AllowHTTP bool `yaml:"-"`
}

// FeedConfig is one feed. Zero fields take the values of
// DefaultFeedConfig, so {name: f, file: PATH} is a complete feed.
type FeedConfig struct {
	// Name identifies the feed in hits, logs, metrics and store keys:
	// lower-case letters, digits, '_', '-' and '.', at most 64.
	Name string `yaml:"name"`
	// File or URL is the source; exactly one is set. URLs must be https.
	File string `yaml:"file"`
	URL  string `yaml:"url"`
	// Refresh is how often the feed is fetched (once per fleet).
	Refresh time.Duration `yaml:"refresh"`
	// Mode is enforce or monitor.
	Mode Mode `yaml:"mode"`
	// Format is auto, plain, netset or spamhaus.
	Format Format `yaml:"format"`
	// MaxEntries, when > 0, keeps the first MaxEntries valid entries and
	// reports the rest as dropped. 0 means MaxEntriesLimit.
	MaxEntries int `yaml:"max_entries"`
	// MaxBytes bounds the feed's size after decompression; a larger feed
	// is an error (the previous list stays).
	MaxBytes int64 `yaml:"max_bytes"`
	// Timeout bounds one fetch; it must be shorter than Refresh (default:
	// DefaultTimeout or half the refresh, whichever is shorter).
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns a Config with no feeds.
func DefaultConfig() Config { return Config{} }

// DefaultFeedConfig returns the values a feed's zero fields take.
func DefaultFeedConfig() FeedConfig {
	return FeedConfig{
		Refresh:    DefaultRefresh,
		Mode:       ModeEnforce,
		Format:     FormatAuto,
		MaxEntries: MaxEntriesLimit,
		MaxBytes:   DefaultMaxBytes,
		Timeout:    DefaultTimeout,
	}
}

// WithDefaults returns c with every zero field of every feed set to its
// default.
func (c Config) WithDefaults() Config {
	c.Feeds = append([]FeedConfig(nil), c.Feeds...)
	for i := range c.Feeds {
		c.Feeds[i] = c.Feeds[i].withDefaults()
	}
	return c
}

func (f FeedConfig) withDefaults() FeedConfig {
	d := DefaultFeedConfig()
	if f.Refresh == 0 {
		f.Refresh = d.Refresh
	}
	if f.Mode == "" {
		f.Mode = d.Mode
	}
	if f.Format == "" {
		f.Format = d.Format
	}
	if f.MaxEntries == 0 {
		f.MaxEntries = d.MaxEntries
	}
	if f.MaxBytes == 0 {
		f.MaxBytes = d.MaxBytes
	}
	if f.Timeout == 0 {
		// A fetch must end well within its refresh (the lease lasts at
		// most one refresh).
		f.Timeout = d.Timeout
		if f.Refresh > 0 {
			f.Timeout = min(f.Timeout, f.Refresh/2)
		}
	}
	return f
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Validate returns every problem at once, each naming its key
// (feeds[i].field), as errors.Join. Zero fields are checked as their
// defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(i int, key, format string, a ...any) {
		k := fmt.Sprintf("feeds[%d]", i)
		if key != "" {
			k += "." + key
		}
		errs = append(errs, fmt.Errorf("%s: %s", k, fmt.Sprintf(format, a...)))
	}
	if len(c.Feeds) > MaxFeeds {
		errs = append(errs, fmt.Errorf("feeds: %d feeds, at most %d", len(c.Feeds), MaxFeeds))
	}
	seen := map[string]int{}
	for i, f := range c.Feeds {
		f = f.withDefaults()
		switch {
		case f.Name == "":
			bad(i, "name", "required")
		case !nameRE.MatchString(f.Name):
			bad(i, "name", "%q: use 1-64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit", f.Name)
		default:
			if j, dup := seen[f.Name]; dup {
				bad(i, "name", "%q already names feeds[%d]", f.Name, j)
			}
			seen[f.Name] = i
		}
		switch {
		case (f.File == "") == (f.URL == ""):
			bad(i, "", "set exactly one of file and url")
		case f.URL != "":
			if err := checkURL(f.URL, c.AllowHTTP); err != nil {
				bad(i, "url", "%v", err)
			}
		}
		minRefresh := MinRefresh
		if f.File != "" {
			minRefresh = MinFileRefresh
		}
		if f.Refresh < minRefresh {
			bad(i, "refresh", "%v is below the minimum %v", f.Refresh, minRefresh)
		}
		if f.Mode != ModeEnforce && f.Mode != ModeMonitor {
			bad(i, "mode", "%q is not enforce or monitor", f.Mode)
		}
		switch f.Format {
		case FormatAuto, FormatPlain, FormatNetset, FormatSpamhaus:
		default:
			bad(i, "format", "%q is not auto, plain, netset or spamhaus", f.Format)
		}
		if f.MaxEntries < 0 || f.MaxEntries > MaxEntriesLimit {
			bad(i, "max_entries", "%d is not between 1 and %d (0: the limit)", f.MaxEntries, MaxEntriesLimit)
		}
		if f.MaxBytes < 0 || f.MaxBytes > MaxBytesLimit {
			bad(i, "max_bytes", "%d is not between 1 and %d (0: %d)", f.MaxBytes, MaxBytesLimit, DefaultMaxBytes)
		}
		if f.Timeout < 0 || (f.Refresh > 0 && f.Timeout >= f.Refresh) {
			bad(i, "timeout", "%v is not between 0 and the refresh (%v)", f.Timeout, f.Refresh)
		}
	}
	return errors.Join(errs...)
}

func checkURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return fmt.Errorf("%s: plain http is refused, use https", redactURL(u))
	default:
		return fmt.Errorf("%s: scheme must be https", redactURL(u))
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// redactURL drops the userinfo, query and fragment of a feed URL, where
// API keys live, so the result can be logged and stored.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	s := r.String()
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// source returns the feed's source for logs and status: the file path or
// the redacted URL.
func (f FeedConfig) source() string {
	if f.File != "" {
		return f.File
	}
	u, err := url.Parse(f.URL)
	if err != nil {
		return "(invalid url)"
	}
	return redactURL(u)
}

// shortErr trims an error message for storing in Meta.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
