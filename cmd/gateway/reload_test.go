package main

// White-box tests of reload: a server made by newServer (not running its
// loop), reloaded by calling reloader.reload.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/testutil/redistest"
)

// syncBuffer is the server's log, written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// lines returns the decoded log lines whose msg is msg.
func (b *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(b.b.String(), "\n") {
		var m map[string]any
		if l == "" || json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// reloadFixture is a server on a configuration file, and its reloader.
type reloadFixture struct {
	s    *server
	rl   reloader
	log  *syncBuffer
	path string
}

// newReloadFixture writes yaml, loads it as the gateway does and makes the
// server (listeners open, nothing running); env is the environment.
func newReloadFixture(t *testing.T, yaml string, env map[string]string, opts ...func(*server)) *reloadFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rampart.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := load(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	s, err := newServer(cfg, getenv, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return &reloadFixture{s: s, rl: reloader{path: path, getenv: getenv, srv: s}, log: log, path: path}
}

// reload rewrites the file with yaml and reloads it (SIGHUP).
func (f *reloadFixture) reload(t *testing.T, yaml string) {
	t.Helper()
	if err := os.WriteFile(f.path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f.rl.reload(t.Context(), "sighup")
	if bad := f.log.lines(t, "config_reload_failed"); len(bad) > 0 {
		t.Fatalf("reload failed: %v", bad[0]["error"])
	}
}

// writeTestPair writes a self-signed certificate and key for name.
func writeTestPair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestReloadKeepsRestartOnlySections: the restart-only sections of a
// reloaded file (here tls and log.file) are reported as not applied, in
// the log and in the console's reload history, and the running
// configuration keeps the ones in effect; SIGHUP re-reads the certificates
// actually served and says so.
func TestReloadKeepsRestartOnlySections(t *testing.T) {
	dir := t.TempDir()
	certA, keyA := writeTestPair(t, dir, "a.test")
	certB, keyB := writeTestPair(t, dir, "b.test")
	base := "listen: 127.0.0.1:0\nadmin:\n  listen: \"off\"\n"
	first := base + fmt.Sprintf("log:\n  file: %s\ntls:\n  cert_file: %s\n  key_file: %s\n  forward_fingerprint_header: X-JA4\n",
		filepath.Join(dir, "first.log"), certA, keyA)
	f := newReloadFixture(t, first, nil)
	running := f.s.cfg.TLS
	runningLog := f.s.cfg.Log.File

	f.reload(t, base+fmt.Sprintf(`log:
  level: debug
  file: %s
tls:
  certificates:
    - {cert_file: %s, key_file: %s}
    - {cert_file: %s, key_file: %s}
  forward_fingerprint_header: X-Other
  ticket_keys_kept: 5
`, filepath.Join(dir, "second.log"), certA, keyA, certB, keyB))
	f.s.reloadCertificates(t.Context())

	lines := f.log.lines(t, "config_reloaded")
	if len(lines) != 1 {
		t.Fatalf("%d config_reloaded lines", len(lines))
	}
	var logged []string
	for _, k := range lines[0]["not_applied"].([]any) {
		logged = append(logged, k.(string))
	}
	want := []string{"log.file", "tls"}
	if !reflect.DeepEqual(logged, want) {
		t.Errorf("config_reloaded not_applied = %q, want %q", logged, want)
	}
	reloads, err := f.s.store.(*store.Memory).Reloads(t.Context(), 10)
	if err != nil || len(reloads) == 0 {
		t.Fatalf("reload history: %v %v", reloads, err)
	}
	if got := reloads[0].NotApplied; !reflect.DeepEqual(got, want) {
		t.Errorf("reload history not_applied = %q, want %q", got, want)
	}
	for name, cfg := range map[string]*loaded{"cfg": f.s.cfg, "cur": f.s.cur.Load()} {
		if !reflect.DeepEqual(cfg.TLS, running) {
			t.Errorf("after the reload, %s.TLS is the file's, not the one in effect:\n got %+v\nwant %+v", name, cfg.TLS, running)
		}
		if cfg.Log.File != runningLog {
			t.Errorf("after the reload, %s.Log.File = %q, want the open %q", name, cfg.Log.File, runningLog)
		}
	}
	if f.s.level.Level() != -4 {
		t.Errorf("log.level not applied: %v", f.s.level.Level())
	}
	rl := f.log.lines(t, "tls_certificates_reloaded")
	if len(rl) != 1 {
		t.Fatalf("%d tls_certificates_reloaded lines", len(rl))
	}
	if rl[0]["pairs"] != 1.0 || fmt.Sprint(rl[0]["cert_files"]) != fmt.Sprint([]any{certA}) {
		t.Errorf("tls_certificates_reloaded reports pairs %v, files %v; the pair in effect is %s", rl[0]["pairs"], rl[0]["cert_files"], certA)
	}
}

// hs256 signs a token for issuer (the signature is not checked: no
// provider is configured, the analysis is keyless).
func hs256(t *testing.T, issuer string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	now := time.Now().Unix()
	claims, _ := json.Marshal(map[string]any{"iss": issuer, "sub": "alice", "iat": now, "exp": now + 600})
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// TestReloadAppliesJWTStateTTLs: a reload that changes
// detections.jwt.alg_confusion.learn_ttl and sighting_ttl builds the new
// policy's shared algorithm store with them at once (not one reload late):
// what the new policy learns expires by the new TTLs.
func TestReloadAppliesJWTStateTTLs(t *testing.T) {
	r := redistest.StartRedis(t, redistest.Options{})
	rdb := r.Client()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(up.Close)
	cfg := func(learn, sighting string) string {
		return fmt.Sprintf(`listen: 127.0.0.1:0
admin:
  listen: "off"
detections:
  jwt:
    alg_confusion:
      min_sightings: 1
      learn_ttl: %s
      sighting_ttl: %s
`, learn, sighting)
	}
	f := newReloadFixture(t, cfg("720h", "24h"), map[string]string{"REDIS_URL": r.URL(), "GATEWAY_UPSTREAM": up.URL})
	go func() { _ = f.s.g.Serve(f.s.ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.s.g.Shutdown(ctx)
	})
	ctx := t.Context()
	// present sends a token of issuer and returns the alg-confusion keys
	// it added to the store, with their TTLs.
	seen := map[string]bool{}
	present := func(issuer string) map[string]time.Duration {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+f.s.ln.Addr().String()+"/api", nil)
		req.Header.Set("Authorization", "Bearer "+hs256(t, issuer))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		keys, err := rdb.Keys(ctx, "*jwt:alg:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]time.Duration{}
		for _, k := range keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			ttl, err := rdb.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			out[k] = ttl
		}
		if len(out) == 0 {
			t.Fatalf("a token of %s (answer %d) learnt nothing in the store", issuer, resp.StatusCode)
		}
		return out
	}
	check := func(when string, got map[string]time.Duration, learn, sighting time.Duration) {
		t.Helper()
		for k, ttl := range got {
			want := learn
			if strings.Contains(k, ":sight:") {
				want = sighting
			}
			if ttl > want || ttl < want-time.Minute {
				t.Errorf("%s: %s expires in %v, want %v", when, k, ttl, want)
			}
		}
	}
	check("before the reload", present("https://first.example"), 720*time.Hour, 24*time.Hour)
	f.reload(t, cfg("2h", "1h"))
	check("after the reload", present("https://second.example"), 2*time.Hour, time.Hour)
}
