package jwt

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestLocate(t *testing.T) {
	t.Parallel()
	const tok = "eyJhbGciOiJIUzI1NiJ9.e30.sig"
	const tok2 = "eyJhbGciOiJIUzI1NiJ9.e30.other"
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
		{name: "cookies", header: http.Header{"Cookie": {`a=1; access_token=` + tok + `;b=2`, `jwt="` + tok2 + `"`}},
			want: []Candidate{{SourceCookie, "access_token", tok}, {SourceCookie, "jwt", tok2}}},
		{name: "repeated value taken once", header: http.Header{"Authorization": {"Bearer " + tok}, "Cookie": {`jwt="` + tok + `"`}},
			query: "token=" + tok, want: []Candidate{{SourceBearer, "Authorization", tok}}},
		{name: "cookie names are case-sensitive", header: http.Header{"Cookie": {"Access_Token=" + tok}}},
		{name: "query", query: "a=1&access_token=" + tok + ";token=" + tok2,
			want: []Candidate{{SourceQuery, "access_token", tok}, {SourceQuery, "token", tok2}}},
		{name: "not token-like", header: http.Header{"Authorization": {"Bearer sk_live_abc"}, "Cookie": {"jwt=b"}}, query: "token=x"},
		{name: "encoded query name and value", query: "access%5Ftoken=" + strings.ReplaceAll(tok, ".", "%2E"),
			want: []Candidate{{SourceQuery, "access_token", tok}}},
		{name: "undecodable query value", query: "token=%zz"},
		{name: "empty query value", query: "token=&access_token"},
		{name: "everywhere", header: http.Header{"Authorization": {"Bearer " + tok + "a"}, "Cookie": {"jwt=" + tok + "b"}}, query: "token=" + tok + "c",
			want: []Candidate{{SourceBearer, "Authorization", tok + "a"}, {SourceCookie, "jwt", tok + "b"}, {SourceQuery, "token", tok + "c"}}},
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
	var q, c strings.Builder
	for i := range 100 {
		fmt.Fprintf(&q, "token=eyJhbGciOiJIUzI1NiJ9.e30.q%d&", i)
		fmt.Fprintf(&c, "jwt=eyJhbGciOiJIUzI1NiJ9.e30.c%d; ", i)
	}
	h := http.Header{"Cookie": {c.String()}}
	got, more := loc.locate(h, q.String(), nil)
	if len(got) != maxCandidates || !more {
		t.Errorf("%d candidates, more %v; want %d, true", len(got), more, maxCandidates)
	}
	if got := loc.Locate(h, q.String(), nil); len(got) != maxCandidates {
		t.Errorf("Locate: %d candidates", len(got))
	}
}

// TestLocateCapCountsTokensOnly: opaque values and repeats do not use up
// the cap, so decoys cannot push a token out of the analysis; only a
// distinct token beyond the cap reports that something was left out.
func TestLocateCapCountsTokensOnly(t *testing.T) {
	t.Parallel()
	loc := NewLocator(DefaultLocationConfig())
	const tok = "eyJhbGciOiJub25lIn0.e30."
	want := []Candidate{{SourceQuery, "access_token", tok}}
	for _, tc := range []struct {
		name   string
		header http.Header
		query  string
	}{
		{"junk query values", nil, strings.Repeat("token=x&", 8) + "access_token=" + tok},
		{"junk bearer headers", http.Header{"Authorization": slices.Repeat([]string{"Bearer x"}, 8)}, "access_token=" + tok},
		{"junk cookies", http.Header{"Cookie": {strings.Repeat("jwt=x; ", 50)}}, "access_token=" + tok},
		{"one token many times", nil, strings.Repeat("access_token="+tok+"&", 50)},
	} {
		got, more := loc.locate(tc.header, tc.query, nil)
		if !reflect.DeepEqual(got, want) || more {
			t.Errorf("%s: got %+v, more %v", tc.name, got, more)
		}
	}
	// Exactly the cap: nothing left out.
	var q strings.Builder
	for i := range maxCandidates {
		fmt.Fprintf(&q, "token=eyJhbGciOiJIUzI1NiJ9.e30.%d&", i)
	}
	if got, more := loc.locate(nil, q.String()+"token="+"eyJhbGciOiJIUzI1NiJ9.e30.0", nil); len(got) != maxCandidates || more {
		t.Errorf("at the cap with a repeat: %d candidates, more %v", len(got), more)
	}
	if got, more := loc.locate(nil, q.String()+"access_token="+tok, nil); len(got) != maxCandidates || !more {
		t.Errorf("over the cap: %d candidates, more %v", len(got), more)
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
