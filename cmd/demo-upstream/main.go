// Command demo-upstream is the "dummy server under protection": a tiny API
// to put behind the gateway in demos and tests.
//
//	GET  /api/endpoint   {"message":"API endpoint reached successfully"}
//	ANY  /echo[/...]     the method, path, query, headers and body it received
//	ANY  /status/{code}  answers with that status (enumeration demos)
//	ANY  /slow?ms=N      answers after N milliseconds (timeout demos), N <= 60000
//	     anything else   404 {"error":"Not Found"}
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5000", "address to listen on")
	name := flag.String("name", "", "instance name, sent as X-Upstream-Instance on every answer (several demo upstreams behind one gateway)")
	flag.Parse()
	instanceName = *name
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if err := run(ctx, *listen, log); err != nil {
		fmt.Fprintln(os.Stderr, "demo-upstream:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	log.Info("demo_upstream_started", slog.String("listen", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// instanceName is sent as X-Upstream-Instance (-name).
var instanceName string

// received counts the requests this instance received, by path (for
// tests of retries and balancing: GET /_demo/requests).
var received = struct {
	sync.Mutex
	total  int
	byPath map[string]int
}{byPath: map[string]int{}}

// Handler returns the demo API.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_demo/requests", func(w http.ResponseWriter, r *http.Request) {
		received.Lock()
		defer received.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"instance": instanceName, "total": received.total, "by_path": received.byPath})
	})
	// /drop reads the request (body included) and closes the connection
	// without answering: an instance dying mid-request.
	mux.HandleFunc("/drop", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 16<<20))
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("GET /api/endpoint", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"message": "API endpoint reached successfully"})
	})
	mux.HandleFunc("/echo", echoHandler)
	mux.HandleFunc("/echo/", echoHandler)
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "status must be 200..599"})
			return
		}
		writeJSON(w, code, map[string]any{"status": code})
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		ms = min(max(ms, 0), 60_000)
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"slept_ms": ms})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not Found"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_demo/requests" {
			received.Lock()
			received.total++
			if len(received.byPath) < 1000 {
				received.byPath[r.URL.Path]++
			}
			received.Unlock()
		}
		if instanceName != "" {
			w.Header().Set("X-Upstream-Instance", instanceName)
		}
		mux.ServeHTTP(w, r)
	})
}

type echoReply struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	RawQuery   string              `json:"raw_query"`
	Query      map[string][]string `json:"query"`
	Headers    map[string][]string `json:"headers"`
	Host       string              `json:"host"`
	Body       string              `json:"body"`
	BodyBase64 string              `json:"body_base64,omitempty"`
	BodyLength int                 `json:"body_length"`
	Instance   string              `json:"instance,omitempty"`
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	q := r.URL.Query()
	if q == nil {
		q = map[string][]string{}
	}
	rep := echoReply{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Query: q,
		Headers: r.Header, Host: r.Host, BodyLength: len(body), Instance: instanceName}
	if utf8.Valid(body) {
		rep.Body = string(body)
	} else {
		rep.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
