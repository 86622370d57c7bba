package ipfeed

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// feedServer serves one feed the way public list hosts do: ETag and
// Last-Modified validators, 304s, optional gzip, and failure modes.
type feedServer struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	lastMod  string
	status   int  // non-zero: answer this instead of the feed
	gzip     bool // Content-Encoding: gzip when the client accepts it
	noETag   bool // send only Last-Modified
	hits     int  // GETs of the feed, 304s included
	notMod   int  // 304s sent
	lastReq  http.Header
	paths    []string
	redirect string // non-empty: answer every request with a redirect here
}

func (s *feedServer) set(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = []byte(body)
	sum := sha256.Sum256(s.body)
	s.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	s.lastMod = time.Unix(1_700_000_000+int64(len(body)), 0).UTC().Format(http.TimeFormat)
	s.status = 0
}

// touch changes the validators but not the body, as a host that
// regenerates an identical file does.
func (s *feedServer) touch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.etag += "x"
	s.lastMod = time.Unix(1_800_000_000, 0).UTC().Format(http.TimeFormat)
}

func (s *feedServer) fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

func (s *feedServer) counts() (hits, notModified int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits, s.notMod
}

func (s *feedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paths = append(s.paths, r.URL.Path)
	if s.redirect != "" {
		http.Redirect(w, r, s.redirect, http.StatusFound)
		return
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/")); err == nil && n > 0 {
		http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
		return
	}
	s.hits++
	s.lastReq = r.Header.Clone()
	if s.status != 0 {
		http.Error(w, "<html>upstream broke</html>", s.status)
		return
	}
	if !s.noETag {
		w.Header().Set("ETag", s.etag)
	}
	w.Header().Set("Last-Modified", s.lastMod)
	if inm := r.Header.Get("If-None-Match"); (inm != "" && inm == s.etag && !s.noETag) ||
		(inm == "" && r.Header.Get("If-Modified-Since") == s.lastMod) {
		s.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if s.gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(s.body)
		_ = zw.Close()
		return
	}
	_, _ = w.Write(s.body)
}

func newFeedServer(t *testing.T, body string) (*feedServer, *httptest.Server) {
	t.Helper()
	fs := &feedServer{}
	fs.set(body)
	srv := httptest.NewTLSServer(fs)
	t.Cleanup(srv.Close)
	return fs, srv
}

func urlFeed(url string) FeedConfig {
	return FeedConfig{Name: "t", URL: url}.withDefaults()
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const list = "# test\n192.0.2.0/24\n198.51.100.7\n2001:db8::/48\n"

func TestFetchConditional(t *testing.T) {
	t.Parallel()
	fs, srv := newFeedServer(t, list)
	fe := newFetcher(srv.Client(), false)
	got, err := fe.fetch(t.Context(), urlFeed(srv.URL+"/list"), validators{})
	if err != nil {
		t.Fatal(err)
	}
	if got.notModified || !got.res.Set.Contains(mustAddr("192.0.2.5")) || got.etag != fs.etag || got.lastModified != fs.lastMod {
		t.Fatalf("first fetch: %+v", got)
	}
	if ae := fs.lastReq.Get("Accept-Encoding"); ae != "gzip" || fs.lastReq.Get("User-Agent") != userAgent {
		t.Errorf("request headers %v", fs.lastReq)
	}
	got, err = fe.fetch(t.Context(), urlFeed(srv.URL+"/list"), validators{got.etag, got.lastModified})
	if err != nil || !got.notModified || got.res != nil {
		t.Fatalf("conditional fetch: %+v, %v", got, err)
	}
	if fs.lastReq.Get("If-None-Match") != fs.etag || fs.lastReq.Get("If-Modified-Since") != fs.lastMod {
		t.Errorf("validators not sent: %v", fs.lastReq)
	}
	// Last-Modified only (no ETag from the server).
	fs.mu.Lock()
	fs.noETag = true
	fs.mu.Unlock()
	got, err = fe.fetch(t.Context(), urlFeed(srv.URL+"/list"), validators{lastModified: fs.lastMod})
	if err != nil || !got.notModified || got.lastModified != fs.lastMod {
		t.Fatalf("If-Modified-Since: %+v, %v", got, err)
	}
	// Changed content is fetched in full despite old validators.
	fs.set(list + "203.0.113.9\n")
	got, err = fe.fetch(t.Context(), urlFeed(srv.URL+"/list"), validators{etag: `"old"`})
	if err != nil || got.notModified || !got.res.Set.Contains(mustAddr("203.0.113.9")) {
		t.Fatalf("changed: %+v, %v", got, err)
	}
}

func TestFetchURL(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("192.0.2.1\n", 200)
	bomb := strings.Repeat("\n", 8<<20)
	tests := []struct {
		name     string
		setup    func(fs *feedServer, srv *httptest.Server)
		path     string
		feed     func(FeedConfig) FeedConfig
		wantErr  string
		sentinel error
		want     string // an address the set must contain
	}{
		{name: "plain", path: "/list", want: "198.51.100.7"},
		{name: "gzip encoding", setup: func(fs *feedServer, _ *httptest.Server) { fs.gzip = true }, path: "/list", want: "198.51.100.7"},
		{name: "gzip body", setup: func(fs *feedServer, _ *httptest.Server) { fs.body = gz(t, []byte(list)) }, path: "/list.gz", want: "2001:db8::1"},
		{name: "three redirects", path: "/r/3", want: "192.0.2.1"},
		{name: "too many redirects", path: "/r/7", wantErr: "more than 5 redirects"},
		{name: "redirect to http refused", setup: func(fs *feedServer, _ *httptest.Server) { fs.redirect = "http://127.0.0.1:1/list" }, path: "/list", wantErr: "non-https"},
		{name: "status 500", setup: func(fs *feedServer, _ *httptest.Server) { fs.status = 500 }, path: "/list?key=secret", wantErr: "unexpected status 500"},
		{name: "status 404", setup: func(fs *feedServer, _ *httptest.Server) { fs.status = 404 }, path: "/list", wantErr: "unexpected status 404"},
		{name: "304 without validators", setup: func(fs *feedServer, _ *httptest.Server) { fs.status = 304 }, path: "/list", wantErr: "unexpected status 304"},
		{name: "html page", setup: func(fs *feedServer, _ *httptest.Server) { fs.body = []byte("<html><body>maintenance</body></html>") }, path: "/list", sentinel: ErrNoEntries},
		{name: "too large", setup: func(fs *feedServer, _ *httptest.Server) { fs.body = []byte(big) }, path: "/list", feed: func(f FeedConfig) FeedConfig { f.MaxBytes = 1000; return f }, sentinel: ErrTooLarge},
		{name: "gzip bomb", setup: func(fs *feedServer, _ *httptest.Server) { fs.gzip, fs.body = true, []byte("192.0.2.1"+bomb) }, path: "/list", feed: func(f FeedConfig) FeedConfig { f.MaxBytes = 1 << 20; return f }, sentinel: ErrTooLarge},
		{name: "gzip file bomb", setup: func(fs *feedServer, _ *httptest.Server) { fs.body = gz(t, []byte("192.0.2.1"+bomb)) }, path: "/list.gz", feed: func(f FeedConfig) FeedConfig { f.MaxBytes = 1 << 20; return f }, sentinel: ErrTooLarge},
		{name: "max entries", setup: func(fs *feedServer, _ *httptest.Server) { fs.body = []byte("192.0.2.1\n192.0.2.3\n192.0.2.5\n") }, path: "/list", feed: func(f FeedConfig) FeedConfig { f.MaxEntries = 2; return f }, want: "192.0.2.3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs, srv := newFeedServer(t, list)
			if tc.setup != nil {
				fs.mu.Lock()
				tc.setup(fs, srv)
				fs.mu.Unlock()
			}
			fc := urlFeed(srv.URL + tc.path)
			if tc.feed != nil {
				fc = tc.feed(fc)
			}
			got, err := newFetcher(srv.Client(), false).fetch(t.Context(), fc, validators{})
			switch {
			case tc.sentinel != nil:
				if !errors.Is(err, tc.sentinel) {
					t.Fatalf("err = %v, want %v", err, tc.sentinel)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want …%s", err, tc.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if !got.res.Set.Contains(mustAddr(tc.want)) {
					t.Fatalf("%s not in %v", tc.want, got.res.Set.Ranges())
				}
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("query leaked into %v", err)
			}
		})
	}
}

func TestFetchRefusesPlainHTTP(t *testing.T) {
	t.Parallel()
	fs := &feedServer{}
	fs.set(list)
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	if _, err := newFetcher(srv.Client(), false).fetch(t.Context(), urlFeed(srv.URL+"/list"), validators{}); err == nil || !strings.Contains(err.Error(), "only https") {
		t.Fatalf("http fetched: %v", err)
	}
	if hits, _ := fs.counts(); hits != 0 {
		t.Errorf("server saw %d requests", hits)
	}
	if _, err := newFetcher(srv.Client(), true).fetch(t.Context(), urlFeed(srv.URL+"/list"), validators{}); err != nil {
		t.Fatalf("AllowHTTP: %v", err)
	}
}

func TestFetchVerifiesTLS(t *testing.T) {
	t.Parallel()
	_, srv := newFeedServer(t, list)
	// A client without the test CA must refuse the server's certificate.
	if _, err := newFetcher(nil, false).fetch(t.Context(), urlFeed(srv.URL+"/list"), validators{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate accepted: %v", err)
	}
}

func TestFetchTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"no headers", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}},
		{"stalled body", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("192.0.2.1\n192.0.2.2\n"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}},
		{"short body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write([]byte("192.0.2.1\n192.0.2.2\n"))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewTLSServer(tc.handler)
			t.Cleanup(srv.Close)
			fc := urlFeed(srv.URL + "/list")
			fc.Timeout = 300 * time.Millisecond
			start := time.Now()
			got, err := newFetcher(srv.Client(), false).fetch(t.Context(), fc, validators{})
			if err == nil {
				t.Fatalf("partial feed accepted: %v", got.res.Set.Ranges())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestFetchFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain, gzPath := filepath.Join(dir, "list.txt"), filepath.Join(dir, "list.txt.gz")
	if err := os.WriteFile(plain, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gzPath, gz(t, []byte(list)), 0o600); err != nil {
		t.Fatal(err)
	}
	fe := newFetcher(nil, false)
	feed := func(p string) FeedConfig { return FeedConfig{Name: "t", File: p}.withDefaults() }
	got, err := fe.fetch(t.Context(), feed(plain), validators{})
	if err != nil || !got.res.Set.Contains(mustAddr("198.51.100.7")) || got.etag == "" {
		t.Fatalf("file: %+v, %v", got, err)
	}
	again, err := fe.fetch(t.Context(), feed(plain), validators{etag: got.etag})
	if err != nil || !again.notModified {
		t.Fatalf("unchanged file: %+v, %v", again, err)
	}
	if err := os.WriteFile(plain, []byte(list+"203.0.113.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err = fe.fetch(t.Context(), feed(plain), validators{etag: got.etag})
	if err != nil || again.notModified || !again.res.Set.Contains(mustAddr("203.0.113.1")) {
		t.Fatalf("changed file: %+v, %v", again, err)
	}
	if got, err := fe.fetch(t.Context(), feed(gzPath), validators{}); err != nil || !got.res.Set.Contains(mustAddr("2001:db8::1")) {
		t.Fatalf("gzip file: %v", err)
	}
	if _, err := fe.fetch(t.Context(), feed(dir), validators{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := fe.fetch(t.Context(), feed(filepath.Join(dir, "missing")), validators{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
