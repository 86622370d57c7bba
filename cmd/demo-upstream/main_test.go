package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDemoUpstream(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	get := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("X-Test", "yes")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	if code, m := get("GET", "/api/endpoint", ""); code != 200 || m["message"] != "API endpoint reached successfully" {
		t.Errorf("/api/endpoint: %d %v", code, m)
	}
	if code, _ := get("POST", "/api/endpoint", ""); code == 200 {
		t.Error("POST /api/endpoint answered 200")
	}
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		code, e := get(m, "/echo/x?a=1&a=2", "payload")
		if code != 200 || e["method"] != m || e["path"] != "/echo/x" || e["raw_query"] != "a=1&a=2" {
			t.Errorf("%s /echo: %d %v", m, code, e)
		}
		if m != "GET" && e["body"] != "payload" {
			t.Errorf("%s body: %v", m, e["body"])
		}
		if e["headers"].(map[string]any)["X-Test"].([]any)[0] != "yes" {
			t.Errorf("headers: %v", e["headers"])
		}
	}
	if code, m := get("GET", "/nope", ""); code != 404 || m["error"] != "Not Found" {
		t.Errorf("/nope: %d %v", code, m)
	}
	if code, _ := get("GET", "/status/401", ""); code != 401 {
		t.Errorf("/status/401: %d", code)
	}
	if code, m := get("GET", "/slow?ms=10", ""); code != 200 || m["slept_ms"] != float64(10) {
		t.Errorf("/slow: %d %v", code, m)
	}
}
