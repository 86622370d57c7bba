package corpustest

import (
	"net/http"
	"net/url"

	"github.com/rampartgw/rampart/detections"
)

// The benchmark requests shared by the payload and crs benchmarks, so the
// two compare request for request.

// CleanGET is a browser's clean GET: query string, cookies, the usual
// headers, no body.
func CleanGET() *detections.Request {
	h := http.Header{}
	h.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")
	h.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8")
	h.Set("Accept-Language", "en-US,en;q=0.9")
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Referer", "https://shop.example.com/catalog/shoes?color=black&size=42")
	h.Set("Cookie", "session=8f14e45fceea167a5a36dedd4bea2543; _ga=GA1.2.1234567890.1700000000; consent=%7B%22ads%22%3Afalse%7D; lang=en")
	h.Set("Sec-Fetch-Site", "same-origin")
	h.Set("X-Requested-With", "XMLHttpRequest")
	u, _ := url.ParseRequestURI("/api/v2/products/4711/reviews?page=2&sort=date&q=running+shoes&utm_source=newsletter")
	return &detections.Request{Method: "GET", Host: "shop.example.com", Proto: "HTTP/1.1", Header: h,
		Path: u.Path, RawPath: u.EscapedPath(), RawQuery: u.RawQuery}
}

// JSONBody1K is a realistic 1 KiB JSON body: an analytics event with URLs,
// ids, a user agent, nested objects and numbers.
const JSONBody1K = `{"events":[{"eventVersion":3,"event":{"deviceId":null,"browserId":"4035487b-f17c-47da-b417-d4b94043d7fe",` +
	`"sessionId":"ae289ead-8609-11ef-8f5f-494eb97278c8","sessionSeq":1,"pageSeq":18,"eventSeq":1140,` +
	`"clientDateTime":1728458252873,"clientTimeZone":"+0530","namespace":"consumer","name":"filterClicked",` +
	`"appVersion":"4.6.1881"},"data":{"moduleName":"search restaurants","filters":["open now","free delivery"],` +
	`"pageUrl":"https://www.example.com/search?location=Berlin&cuisine=thai","referrer":"https://www.google.com/",` +
	`"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",` +
	`"viewport":{"width":1920,"height":1080},"price":{"min":5,"max":25,"currency":"EUR"},"note":"Tom & Jerry's < $20 deals",` +
	`"cart":[{"sku":"A-1001","qty":2,"title":"Pad Thai, large"},{"sku":"B-2002","qty":1,"title":"Spring rolls (4 pcs)"}],` +
	`"coupon":"SPRING-2024","consent":{"ads":false,"analytics":true},"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc"}}]}`

// JSONPOST is an API client's JSON POST of body.
func JSONPOST(body string) *detections.Request {
	h := http.Header{}
	h.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36")
	h.Set("Accept", "application/json")
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Referer", "https://www.example.com/")
	h.Set("Cookie", "session=8f14e45fceea167a5a36dedd4bea2543; lang=en")
	return &detections.Request{Method: "POST", Host: "api.example.com", Proto: "HTTP/1.1", Header: h,
		Path: "/clickstream/events", RawPath: "/clickstream/events", RawQuery: "appVersion=4.6.1881", Body: []byte(body)}
}
