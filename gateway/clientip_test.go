package gateway

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections"
)

var clientIPCases = []struct {
	name    string
	trusted []string
	header  string
	remote  string
	xff     []string
	want    string
	trust   bool
}{
	{"no trust: peer", nil, "", "203.0.113.1:5555", []string{"1.1.1.1"}, "203.0.113.1", false},
	{"untrusted peer: header ignored", []string{"10.0.0.0/8"}, "", "203.0.113.1:5555", []string{"1.1.1.1"}, "203.0.113.1", false},
	{"trusted peer, one hop", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", []string{"198.51.100.7"}, "198.51.100.7", true},
	{"right-most untrusted wins", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", []string{"6.6.6.6, 198.51.100.7, 10.1.1.1"}, "198.51.100.7", true},
	{"multiple header lines", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", []string{"6.6.6.6", "198.51.100.8, 10.2.2.2"}, "198.51.100.8", true},
	{"all trusted: left-most", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9", true},
	{"no header from trusted peer", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", nil, "10.0.0.5", true},
	{"garbage stops the walk", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", []string{"1.2.3.4, garbage, 10.1.1.1"}, "10.1.1.1", true},
	{"ports and brackets", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", []string{"[2001:db8::5]:443"}, "2001:db8::5", true},
	{"v4 with port", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", []string{"198.51.100.9:1234"}, "198.51.100.9", true},
	{"v4-mapped peer", []string{"10.0.0.0/8"}, "", "[::ffff:10.0.0.5]:1", []string{"::ffff:198.51.100.10"}, "198.51.100.10", true},
	{"v6 peer trusted", []string{"fd00::/8"}, "", "[fd00::1]:80", []string{"2001:db8::1"}, "2001:db8::1", true},
	{"empty items skipped", []string{"10.0.0.0/8"}, "", "10.0.0.5:1", []string{" , 198.51.100.11 ,, "}, "198.51.100.11", true},
	{"single-valued header", []string{"10.0.0.0/8"}, "CF-Connecting-IP", "10.0.0.5:1", []string{"198.51.100.12"}, "198.51.100.12", true},
	{"bad remote addr", nil, "", "not-an-addr", nil, "invalid IP", false},
}

func TestClientIP(t *testing.T) {
	for _, tc := range clientIPCases {
		t.Run(tc.name, func(t *testing.T) {
			trusted, err := detections.ParseIPSet(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			h := tc.header
			if h == "" {
				h = "X-Forwarded-For"
			}
			r := newClientIPResolver(trusted, h)
			req := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for _, v := range tc.xff {
				req.Header.Add(h, v)
			}
			got, trust := r.resolve(req)
			if got.String() != tc.want || trust != tc.trust {
				t.Errorf("resolve = %s, %v; want %s, %v", got, trust, tc.want, tc.trust)
			}
		})
	}
}

func FuzzClientIP(f *testing.F) {
	for _, tc := range clientIPCases {
		f.Add(tc.remote, strings.Join(tc.xff, "\n"))
	}
	trusted, _ := detections.ParseIPSet([]string{"10.0.0.0/8", "127.0.0.1/32", "fd00::/8"})
	r := newClientIPResolver(trusted, "X-Forwarded-For")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		req := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		for _, line := range strings.Split(xff, "\n") {
			req.Header.Add("X-Forwarded-For", line)
		}
		got, fromProxy := r.resolve(req)
		peer := peerAddr(remote)
		if !fromProxy && got != peer {
			t.Fatalf("untrusted peer %q resolved to %s", remote, got)
		}
		// The answer is either the peer or an address written in the header.
		if got.IsValid() && got != peer && !strings.Contains(xff, strings.TrimPrefix(got.String(), "::ffff:")) {
			if a, err := netip.ParseAddr(got.String()); err != nil || !headerHas(xff, a) {
				t.Fatalf("resolved %s appears neither as peer nor in %q", got, xff)
			}
		}
		_ = detections.ClientKey(got, 64)
	})
}

// headerHas reports whether some item of the header parses to a.
func headerHas(xff string, a netip.Addr) bool {
	for _, item := range strings.FieldsFunc(xff, func(r rune) bool { return r == ',' || r == '\n' }) {
		if b, ok := parseForwardedAddr(item); ok && b == a {
			return true
		}
	}
	return false
}

func BenchmarkClientIP(b *testing.B) {
	trusted, _ := detections.ParseIPSet([]string{"10.0.0.0/8", "127.0.0.1/32"})
	r := newClientIPResolver(trusted, "X-Forwarded-For")
	req := &http.Request{RemoteAddr: "127.0.0.1:40000", Header: http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.7, 10.1.1.1"}}}
	b.ReportAllocs()
	for b.Loop() {
		ip, _ := r.resolve(req)
		_ = detections.ClientKey(ip, 64)
	}
}
