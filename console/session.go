package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Sessions are stateless: the cookie holds an expiry and a random id,
// authenticated with a key derived from the admin token. Changing the token
// changes the key, so every session made with the old token stops working
// at once, on every replica, with nothing to revoke. Logging out clears the
// cookie in the browser; a copied cookie stays valid until it expires or
// the token changes (sessions are not stored anywhere).

const (
	cookieName    = "rampart_console"
	cookiePath    = "/console"
	sessionFormat = 1
	// csrfField is the form field (and header) that carries the CSRF token.
	csrfField = "csrf"
)

var errSession = errors.New("console: no valid session")

// keys holds what is derived from the admin token.
type keys struct {
	tokenSum [32]byte // sha256 of the token, compared in constant time
	mac      []byte   // session MAC key
}

func deriveKeys(token string) keys {
	k := keys{tokenSum: sha256.Sum256([]byte(token))}
	m := hmac.New(sha256.New, k.tokenSum[:])
	m.Write([]byte("rampart console session key v1"))
	k.mac = m.Sum(nil)
	return k
}

// tokenOK compares a submitted token with the admin token in constant time
// (digests of equal length, so the length does not leak either). Spaces
// around it are dropped, as the admin API does (a pasted newline).
func (k keys) tokenOK(tok string) bool {
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], k.tokenSum[:]) == 1
}

// session is a verified session cookie.
type session struct {
	id      [16]byte
	expires time.Time
}

func (k keys) sign(payload []byte) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte("session"))
	m.Write(payload)
	return m.Sum(nil)
}

// newCookieValue returns a fresh session's cookie value.
func (k keys) newCookieValue(expires time.Time) (string, session) {
	var s session
	_, _ = rand.Read(s.id[:])
	s.expires = expires
	payload := make([]byte, 1+8+16)
	payload[0] = sessionFormat
	binary.BigEndian.PutUint64(payload[1:9], uint64(expires.Unix()))
	copy(payload[9:], s.id[:])
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(k.sign(payload)), s
}

// verify checks a cookie value: well-formed, authentic, not expired.
func (k keys) verify(v string, now time.Time) (session, error) {
	p, m, ok := strings.Cut(v, ".")
	if !ok || len(v) > 200 {
		return session{}, errSession
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	mac, err2 := enc.DecodeString(m)
	if err1 != nil || err2 != nil || len(payload) != 25 || payload[0] != sessionFormat {
		return session{}, errSession
	}
	if !hmac.Equal(mac, k.sign(payload)) {
		return session{}, errSession
	}
	var s session
	s.expires = time.Unix(int64(binary.BigEndian.Uint64(payload[1:9])), 0)
	copy(s.id[:], payload[9:])
	if !now.Before(s.expires) {
		return session{}, errSession
	}
	return s, nil
}

// csrf returns the session's CSRF token: a MAC of its id, so it is bound
// to the session and needs no storage.
func (k keys) csrf(s session) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte("csrf"))
	m.Write(s.id[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (k keys) csrfOK(s session, tok string) bool {
	return tok != "" && hmac.Equal([]byte(tok), []byte(k.csrf(s)))
}

// loginLimiter counts failed logins per client address in fixed windows,
// plus all failures together, so neither one address nor many can guess
// at speed. Its memory is bounded.
type loginLimiter struct {
	mu       sync.Mutex
	attempts int
	window   time.Duration
	max      int // addresses tracked
	byAddr   map[string]*failures
	global   failures
}

type failures struct {
	start  time.Time
	n      int
	logged bool
}

func newLoginLimiter(attempts int, window time.Duration) *loginLimiter {
	return &loginLimiter{attempts: attempts, window: window, max: 10_000, byAddr: map[string]*failures{}}
}

func (f *failures) roll(now time.Time, window time.Duration) {
	if now.Sub(f.start) >= window {
		f.start, f.n, f.logged = now, 0, false
	}
}

// allowed reports whether addr may try to log in now; when not, it returns
// how long until it may, and whether this is the first refusal of the
// window (to be logged).
func (l *loginLimiter) allowed(addr string, now time.Time) (ok bool, retry time.Duration, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.roll(now, l.window)
	if l.global.n >= 10*l.attempts {
		first = !l.global.logged
		l.global.logged = true
		return false, l.global.start.Add(l.window).Sub(now), first
	}
	f := l.byAddr[addr]
	if f == nil {
		return true, 0, false
	}
	f.roll(now, l.window)
	if f.n >= l.attempts {
		first = !f.logged
		f.logged = true
		return false, f.start.Add(l.window).Sub(now), first
	}
	return true, 0, false
}

// failed counts a failed login of addr.
func (l *loginLimiter) failed(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.roll(now, l.window)
	l.global.n++
	f := l.byAddr[addr]
	if f == nil {
		if len(l.byAddr) >= l.max {
			for a, old := range l.byAddr {
				if now.Sub(old.start) >= l.window {
					delete(l.byAddr, a)
				}
			}
			if len(l.byAddr) >= l.max {
				return // still full: the global count still applies
			}
		}
		f = &failures{start: now}
		l.byAddr[addr] = f
	}
	f.roll(now, l.window)
	f.n++
}

// clientAddr is the socket peer: the admin listener trusts no forwarding
// header (it is not behind the proxy's trusted load balancer).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
