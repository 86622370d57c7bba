package detections

import "testing"

// TestQueryParam: a credential's parameter name is found however it is
// spelt (case, percent escapes), the first configured name wins, and a
// query whose names have no escapes is read without allocation.
func TestQueryParam(t *testing.T) {
	names := []string{"api_key", "access_token", "password"}
	for q, want := range map[string]string{
		"api_key=abc":                  "api_key",
		"API_KEY=abc":                  "api_key",
		"api%5Fkey=abc":                "api_key",
		"api%5fkey=abc":                "api_key",
		"pass%77ord=x":                 "password",
		"q=1;access%5ftoken=t":         "access_token",
		"password=x&api%5Fkey=1":       "api_key", // the first name configured
		"api%ZZkey=1":                  "",        // malformed: compared as it is
		"api+key=1":                    "",        // "api key"
		"q=api_key&x=%5F":              "",        // values are not names
		"apikey=1&api_keys=2&_api_key": "",
	} {
		got, ok := queryParam(q, names)
		if got != want || ok != (want != "") {
			t.Errorf("queryParam(%q) = %q, %v; want %q", q, got, ok, want)
		}
	}
	q := "page=2&sort=name&filter=a%20b&api_key=x"
	if n := testing.AllocsPerRun(100, func() { _, _ = queryParam(q, names) }); n != 0 {
		t.Errorf("queryParam(%q): %v allocations, want 0", q, n)
	}
}
