package payload_test

import (
	"encoding/json"
	"net/url"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
