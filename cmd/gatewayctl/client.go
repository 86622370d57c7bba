package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxResponse bounds what is read from the API: a list of 100,000 bans is
// about 30 MB of JSON.
const maxResponse = 64 << 20

// apiError is a non-2xx answer from the admin API.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// call sends one request to the admin API and returns the body of a 2xx
// answer, which is checked to be JSON. Other answers become an *apiError
// carrying the API's {"error": …} message.
func (a *app) call(ctx context.Context, method, path string, q url.Values, body any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	u := a.base.JoinPath(path)
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gatewayctl")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, a.transportError(ctx, method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, a.transportError(ctx, method, u, err)
	}
	if len(data) > maxResponse {
		return nil, fmt.Errorf("%s: response larger than %d MiB", target(method, u), maxResponse>>20)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, a.statusError(resp, data)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%s: the answer is not JSON (is -url the admin listener?)", target(method, u))
	}
	return data, nil
}

// transportError says what went wrong without Go's quoting of the whole
// URL, and names a timeout as such.
func (a *app) transportError(ctx context.Context, method string, u *url.URL, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: no answer within %v (-timeout)", target(method, u), a.timeout)
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return fmt.Errorf("%s: %w", target(method, u), err)
}

// target names a request in an error message: its method and safeURL.
func target(method string, u *url.URL) string { return method + " " + safeURL(u) }

// safeURL is u for an error message: without its query, whose values can
// be secrets (an identity such as header:X-Api-Key=<key> is sent as
// ?client=...), its fragment and its password.
func safeURL(u *url.URL) string {
	v := *u
	v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = "", false, "", ""
	return v.Redacted()
}

func (a *app) statusError(resp *http.Response, data []byte) error {
	var body struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(data, &body) == nil {
		msg = clean(body.Error, 500)
	}
	if msg == "" {
		msg = fmt.Sprintf("%s: unexpected answer %s", target(resp.Request.Method, resp.Request.URL), resp.Status)
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
			// A redirect (a login page in front of the API) may carry
			// the request's own URL in its query.
			if lu, err := url.Parse(loc); err == nil {
				loc = safeURL(lu)
			} else {
				loc, _, _ = strings.Cut(loc, "?")
			}
			msg += " to " + clean(loc, 200) + " (check -url)"
		}
	}
	if resp.StatusCode == http.StatusUnauthorized && a.token == "" {
		msg += " (no token given: set " + envToken + ")"
	}
	return &apiError{status: resp.StatusCode, msg: msg}
}

// get is call for GET.
func (a *app) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	return a.call(ctx, http.MethodGet, path, q, nil)
}

// printJSON prints an API answer indented, ending with a newline. The API's
// maps are encoded with sorted keys and its structs in field order, so the
// output is stable for scripts and diffs.
func (a *app) printJSON(data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(data), "", "  "); err != nil {
		return fmt.Errorf("formatting JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := a.stdout.Write(buf.Bytes())
	return err
}

// decode reads an API answer into v; unknown fields are ignored so that a
// newer gateway does not break an older CLI.
func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding the API's answer: %w", err)
	}
	return nil
}
