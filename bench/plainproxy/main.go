// Command plainproxy is the benchmark baseline: a plain httputil.ReverseProxy
// with the same transport settings as the gateway and no detections.
//
//	plainproxy -listen 127.0.0.1:8081 -upstream http://127.0.0.1:5000
//
// With -redis-rate it also makes one github.com/go-redis/redis_rate call
// per request, keyed by the client address in X-Forwarded-For (the floor
// for any gateway that keeps a shared per-client limit in Redis): a
// refused client gets 429. With -tls-cert and -tls-key it serves HTTPS, as
// a plain Go TLS reverse proxy.
package main

import (
	"crypto/tls"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:5000", "upstream base URL")
	redisURL := flag.String("redis-rate", "", "redis://host:port (a Cluster: redis://n1:port?addr=n2:port&addr=n3:port): one redis_rate Allow per request, keyed by X-Forwarded-For")
	perMinute := flag.Int("rate", 300, "with -redis-rate: requests per minute per client")
	certFile := flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM)")
	keyFile := flag.String("tls-key", "", "the certificate's private key (PEM)")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
	var h http.Handler = &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
		Transport: tr,
		ErrorLog:  log.New(discard{}, "", 0),
	}
	if *redisURL != "" {
		var rdb redis.UniversalClient
		if strings.Contains(*redisURL, "addr=") {
			// More than one node: a Redis Cluster, as the gateway reads it.
			opt, err := redis.ParseClusterURL(*redisURL)
			if err != nil {
				log.Fatal(err)
			}
			rdb = redis.NewClusterClient(opt)
		} else {
			opt, err := redis.ParseURL(*redisURL)
			if err != nil {
				log.Fatal(err)
			}
			rdb = redis.NewClient(opt)
		}
		h = limited(h, redis_rate.NewLimiter(rdb), redis_rate.PerMinute(*perMinute))
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	if *certFile != "" {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		log.Fatal(srv.ListenAndServeTLS(*certFile, *keyFile))
	}
	log.Fatal(srv.ListenAndServe())
}

// limited answers 429 to a client over limit, and passes the others on.
func limited(next http.Handler, l *redis_rate.Limiter, limit redis_rate.Limit) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ",")
		if client == "" {
			client, _, _ = net.SplitHostPort(r.RemoteAddr)
		}
		res, err := l.Allow(r.Context(), "rl:"+strings.TrimSpace(client), limit)
		if err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		if res.Allowed == 0 {
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
