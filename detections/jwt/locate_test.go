package jwt

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestLocate(t *testing.T) {
	t.Parallel()
	const tok = "eyJhbGciOiJIUzI1NiJ9.e30.sig"
	loc := NewLocator(LocationConfig{
		BearerHeaders: []string{"authorization", "X-Forwarded-Authorization"},
		Headers:       []string{"x-access-token"},
		Cookies:       []string{"access_token", "jwt"},
		Query:         []string{"access_token", "token"},
	})
	for _, tc := range []struct {
		name   string
		header http.Header
		query  string
		want   []Candidate
	}{
		{name: "nothing", header: http.Header{"Accept": {"*/*"}}},
		{name: "bearer", header: http.Header{"Authorization": {"Bearer " + tok}},
			want: []Candidate{{SourceBearer, "Authorization", tok}}},
		{name: "scheme case and blanks", header: http.Header{"Authorization": {"  bEaReR \t" + tok + " "}},
			want: []Candidate{{SourceBearer, "Authorization", tok}}},
		{name: "no scheme", header: http.Header{"Authorization": {tok}},
			want: []Candidate{{SourceBearer, "Authorization", tok}}},
		{name: "basic ignored", header: http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}},
		{name: "bearer without token", header: http.Header{"Authorization": {"Bearer   "}}},
		{name: "second bearer header", header: http.Header{"X-Forwarded-Authorization": {"Bearer " + tok}},
			want: []Candidate{{SourceBearer, "X-Forwarded-Authorization", tok}}},
		{name: "bare header", header: http.Header{"X-Access-Token": {tok}},
			want: []Candidate{{SourceHeader, "X-Access-Token", tok}}},
		{name: "bare header with scheme", header: http.Header{"X-Access-Token": {"Bearer " + tok}},
			want: []Candidate{{SourceHeader, "X-Access-Token", tok}}},
		{name: "cookies", header: http.Header{"Cookie": {`a=1; access_token=` + tok + `;b=2`, `jwt="` + tok + `"`}},
			want: []Candidate{{SourceCookie, "access_token", tok}, {SourceCookie, "jwt", tok}}},
		{name: "cookie names are case-sensitive", header: http.Header{"Cookie": {"Access_Token=" + tok}}},
		{name: "query", query: "a=1&access_token=" + tok + ";token=x",
			want: []Candidate{{SourceQuery, "access_token", tok}, {SourceQuery, "token", "x"}}},
		{name: "encoded query name and value", query: "access%5Ftoken=" + strings.ReplaceAll(tok, ".", "%2E"),
			want: []Candidate{{SourceQuery, "access_token", tok}}},
		{name: "undecodable query value", query: "token=%zz"},
		{name: "empty query value", query: "token=&access_token"},
		{name: "everywhere", header: http.Header{"Authorization": {"Bearer a"}, "Cookie": {"jwt=b"}}, query: "token=c",
			want: []Candidate{{SourceBearer, "Authorization", "a"}, {SourceCookie, "jwt", "b"}, {SourceQuery, "token", "c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := loc.Locate(tc.header, tc.query, nil)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLocateBounded(t *testing.T) {
	t.Parallel()
	loc := NewLocator(DefaultLocationConfig())
	q := strings.Repeat("token=x&", 100)
	h := http.Header{"Cookie": {strings.Repeat("jwt=y; ", 100)}}
	if got := loc.Locate(h, q, nil); len(got) != maxCandidates {
		t.Errorf("%d candidates, want %d", len(got), maxCandidates)
	}
}

// TestLocateNoAllocs pins the common request, which carries no token, at
// zero allocations.
func TestLocateNoAllocs(t *testing.T) {
	loc := NewLocator(DefaultLocationConfig())
	h := http.Header{
		"Accept":     {"application/json"},
		"User-Agent": {"curl/8.5"},
		"Cookie":     {"session=abc; theme=dark; _ga=GA1.2.3"},
	}
	q := "page=2&sort=name&q=hello%20world"
	if n := testing.AllocsPerRun(1000, func() { _ = loc.Locate(h, q, nil) }); n != 0 {
		t.Errorf("Locate without token: %v allocs", n)
	}
	var buf [maxCandidates]Candidate
	h.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
	if n := testing.AllocsPerRun(1000, func() { _ = loc.Locate(h, q, buf[:0]) }); n != 0 {
		t.Errorf("Locate into a buffer: %v allocs", n)
	}
}
