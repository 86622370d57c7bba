package ipfeed

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

// MaxRedirects is how many redirects a feed download follows.
const MaxRedirects = 5

// userAgent names us to feed operators, who ask for it.
const userAgent = "rampart-ipfeed/1"

// validators are the conditional-request values of the last download.
type validators struct{ etag, lastModified string }

// fetched is one fetch's outcome: a parsed feed, or "not modified".
type fetched struct {
	res          *ParseResult
	notModified  bool
	etag         string
	lastModified string
}

// fetcher downloads and parses feeds.
type fetcher struct {
	client    *http.Client
	allowHTTP bool
}

// newFetcher copies base (nil: a client on a clone of
// http.DefaultTransport) and gives the copy our redirect policy. Its
// Timeout is cleared: each fetch has its own deadline.
func newFetcher(base *http.Client, allowHTTP bool) *fetcher {
	var c http.Client
	if base != nil {
		c = *base
	} else {
		c.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	c.Timeout = 0
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > MaxRedirects {
			return fmt.Errorf("more than %d redirects", MaxRedirects)
		}
		if req.URL.Scheme != "https" && !(allowHTTP && req.URL.Scheme == "http") {
			return errors.New("redirect to a non-https URL refused")
		}
		return nil
	}
	return &fetcher{client: &c, allowHTTP: allowHTTP}
}

// fetch reads f from its file or URL and parses it. v, when set, makes
// the request conditional; a "not modified" answer has no res.
func (fe *fetcher) fetch(ctx context.Context, f FeedConfig, v validators) (fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, f.Timeout)
	defer cancel()
	if f.File != "" {
		return fe.fetchFile(ctx, f, v)
	}
	return fe.fetchURL(ctx, f, v)
}

func (fe *fetcher) fetchFile(ctx context.Context, f FeedConfig, v validators) (fetched, error) {
	fh, err := os.Open(f.File)
	if err != nil {
		return fetched{}, fmt.Errorf("opening feed file: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return fetched{}, fmt.Errorf("reading feed file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fetched{}, fmt.Errorf("feed file %s is not a regular file", f.File)
	}
	// The size and modification time stand in for an ETag: an unchanged
	// file is not parsed again.
	etag := fmt.Sprintf(`"file-%d-%d"`, fi.Size(), fi.ModTime().UnixNano())
	if v.etag == etag {
		return fetched{notModified: true, etag: etag}, nil
	}
	res, err := parseBody(ctx, fh, f)
	if err != nil {
		return fetched{res: res}, err
	}
	return fetched{res: res, etag: etag, lastModified: fi.ModTime().UTC().Format(http.TimeFormat)}, nil
}

func (fe *fetcher) fetchURL(ctx context.Context, f FeedConfig, v validators) (fetched, error) {
	u, err := url.Parse(f.URL)
	if err != nil {
		return fetched{}, errors.New("invalid feed url")
	}
	if u.Scheme != "https" && !(fe.allowHTTP && u.Scheme == "http") {
		return fetched{}, fmt.Errorf("%s: only https feeds are fetched", redactURL(u))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return fetched{}, errors.New("invalid feed url")
	}
	req.Header.Set("User-Agent", userAgent)
	// Asking for gzip ourselves turns off the transport's transparent
	// decompression, so the size limit applies to what we inflate too.
	req.Header.Set("Accept-Encoding", "gzip")
	if v.etag != "" {
		req.Header.Set("If-None-Match", v.etag)
	}
	if v.lastModified != "" {
		req.Header.Set("If-Modified-Since", v.lastModified)
	}
	resp, err := fe.client.Do(req)
	if err != nil {
		return fetched{}, redactErr(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && (v.etag != "" || v.lastModified != ""):
		out := fetched{notModified: true, etag: v.etag, lastModified: v.lastModified}
		if e := resp.Header.Get("ETag"); e != "" {
			out.etag = e
		}
		return out, nil
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fetched{}, fmt.Errorf("%s: unexpected status %s", redactURL(u), resp.Status)
	}
	var body io.Reader = &capReader{r: resp.Body, n: f.MaxBytes}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return fetched{}, fmt.Errorf("%s: reading gzip body: %w", redactURL(u), err)
		}
		defer zr.Close()
		body = zr
	}
	res, err := parseBody(ctx, body, f)
	if err != nil {
		return fetched{res: res}, fmt.Errorf("%s: %w", redactURL(u), redactErr(err))
	}
	return fetched{res: res, etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}, nil
}

// parseBody parses r, inflating it when it is gzip (a .gz file or a
// download served as application/gzip), and bounding it to f.MaxBytes.
// A read that outlives ctx fails.
func parseBody(ctx context.Context, r io.Reader, f FeedConfig) (*ParseResult, error) {
	br := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: &capReader{r: r, n: f.MaxBytes}}, 64<<10)
	var body io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return &ParseResult{}, fmt.Errorf("reading gzip feed: %w", err)
		}
		defer zr.Close()
		body = zr
	}
	return Parse(&capReader{r: body, n: f.MaxBytes}, ParseOptions{Format: f.Format, MaxEntries: f.MaxEntries})
}

// capReader reads at most n bytes and fails with ErrTooLarge when there
// is more: a cut-off feed must not pass for a complete one.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		var one [1]byte
		k, err := c.r.Read(one[:])
		if k > 0 {
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

// ctxReader fails reads once ctx is done; a file on a stuck network
// mount then cannot hold a refresh forever.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// redactErr strips the query and userinfo from the URL in a *url.Error,
// where feed API keys would otherwise reach logs and the store.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = redactURL(u)
		} else {
			ue.URL = "(feed url)"
		}
	}
	return err
}
