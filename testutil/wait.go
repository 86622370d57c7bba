package testutil

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// handedOut remembers the ports FreePort returned, so two callers in one
// test binary never get the same one even when the kernel would reuse it.
var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

// FreePort returns a loopback TCP port that was free a moment ago and that
// no other caller in this test binary got. Another process may still take
// it before the caller binds it: starters retry on "address in use".
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port
		}
	}
	t.Fatal("finding a free port: every port the kernel offered was handed out already")
	return 0
}

// FreeAddr returns "127.0.0.1:<FreePort>".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// permanent marks an error that ends Poll at once.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Poll and EventuallyErr stop retrying and
// report it at once (say, because the process being waited on exited).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Poll calls f every tick until it returns nil, returns an error made by
// Permanent, or timeout passes; it then returns nil or the last error. f
// is always called at least once.
func Poll(timeout, tick time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(tick)
	}
}

// Eventually polls cond every tick until it holds, and fails the test if
// it does not within timeout. The message is "timed out after <timeout>
// waiting for " + fmt.Sprintf(format, args...). Call it from the test's
// goroutine.
func Eventually(t testing.TB, timeout, tick time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	err := Poll(timeout, tick, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, fmt.Sprintf(format, args...))
	}
}

var errNotYet = errors.New("condition not met")

// EventuallyErr is Eventually for a check that explains itself: it polls
// f until it returns nil and fails the test with f's last error otherwise.
// An error wrapped by Permanent fails the test at once.
func EventuallyErr(t testing.TB, timeout, tick time.Duration, f func() error, format string, args ...any) {
	t.Helper()
	if err := Poll(timeout, tick, f); err != nil {
		t.Fatalf("waiting for %s: %v", fmt.Sprintf(format, args...), err)
	}
}

// WaitTCP waits until addr accepts a TCP connection.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	EventuallyErr(t, timeout, 20*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
		if err != nil {
			return err
		}
		return c.Close()
	}, "%s to accept connections", addr)
}

// WaitHTTP waits until a GET of url gets an answer: any answer, or, when
// statuses are given, one with one of them.
func WaitHTTP(t testing.TB, url string, timeout time.Duration, statuses ...int) {
	t.Helper()
	EventuallyErr(t, timeout, 20*time.Millisecond, func() error {
		return HTTPStatus(url, statuses...)
	}, "GET %s to answer", url)
}

// pollClient gives up on one attempt quickly; the caller retries.
var pollClient = &http.Client{Timeout: 2 * time.Second}

// HTTPStatus GETs url once and returns nil if it answered (with one of
// statuses, when given).
func HTTPStatus(url string, statuses ...int) error {
	resp, err := pollClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if len(statuses) > 0 && !slices.Contains(statuses, resp.StatusCode) {
		return fmt.Errorf("GET %s: %s, want %v", url, resp.Status, statuses)
	}
	return nil
}
