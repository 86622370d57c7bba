package gateway_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/jwt"
	"github.com/rampartgw/rampart/store"
	"github.com/rampartgw/rampart/store/storetest"
)

const testSecret = "a-test-secret-that-is-long-enough-for-hs256!"

// hs256 signs claims with testSecret.
func hs256(t testing.TB, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	in := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

func userToken(t testing.TB, sub string) string {
	now := time.Now()
	return hs256(t, map[string]any{"iss": "https://issuer.test", "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
}

// identityEntries is a chain whose limit is per verified token subject: 3
// a minute per sub, whatever the client's IP.
func identityEntries(t testing.TB, st *storeOn) []detections.Entry {
	t.Helper()
	cfg := detections.DefaultJWTConfig()
	cfg.Providers = []jwt.ProviderConfig{{Name: "test", Issuer: "https://issuer.test",
		HMACKeys: []jwt.HMACKeyConfig{{Alg: "HS256", SecretEnv: "TEST_SECRET"}}}}
	j, err := detections.NewJWT(cfg, detections.JWTDeps{Spread: st.s, AlgStore: st.s.JWTAlgStore(time.Hour, time.Hour), SecretCache: st.s.JWTSecretCache(),
		Getenv: func(k string) (string, bool) { return testSecret, k == "TEST_SECRET" }})
	if err != nil {
		t.Fatal(err)
	}
	rl, err := detections.NewRateLimit(detections.RateLimitConfig{Limit: detections.PerMinute(3), Key: []string{"jwt:sub"}, BanAfter: 5, BanFor: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return []detections.Entry{{Detection: j}, {Detection: rl}}
}

// TestIdentityLimitAcrossReplicas: a per-sub limit is exact across three
// replicas and many client IPs; an identity ban made on one replica
// refuses the same token on another at its next request.
func TestIdentityLimitAcrossReplicas(t *testing.T) {
	mr := miniredis.RunT(t)
	var gws []*setup
	for range 3 {
		st := &storeOn{s: storetest.NewOn(t, mr.Addr())}
		gws = append(gws, replicasOf(t, st, withEntries(identityEntries(t, st)...)))
	}
	waitSubscribed(t, gws)
	alice, bob := userToken(t, "alice"), userToken(t, "bob")
	var allowed [2]atomic.Int64
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			tok, who := alice, 0
			if i%2 == 1 {
				tok, who = bob, 1
			}
			ip := fmt.Sprintf("198.51.100.%d", i+1) // a new IP every time
			resp := gws[i%3].do(t, "GET", "/echo", ip, nil, "Authorization", "Bearer "+tok)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				allowed[who].Add(1)
			}
		})
	}
	wg.Wait()
	if a, b := allowed[0].Load(), allowed[1].Load(); a != 3 || b != 3 {
		t.Errorf("allowed alice %d, bob %d over 3 replicas and 24 IPs, want exactly 3 each", a, b)
	}
	// An operator bans bob's identity on replica A...
	tg, err := gws[0].g.ParseTarget("jwt:sub=bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gws[0].g.Ban(t.Context(), tg, time.Hour, "leaked"); err != nil {
		t.Fatal(err)
	}
	if !mr.Exists("gw:ban:{" + tg.Key + "}") {
		t.Fatalf("no identity ban in Redis: %v", mr.Keys())
	}
	// ...and replica B refuses bob's token at its next request, from any IP;
	// a token without bob's identity passes.
	carol := userToken(t, "carol")
	for i, tc := range []struct {
		tok  string
		want int
	}{{bob, 403}, {carol, 200}} {
		resp := gws[1].do(t, "GET", "/echo", fmt.Sprintf("203.0.113.%d", 50+i), nil, "Authorization", "Bearer "+tc.tok)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token %d on replica B after the identity ban: %d, want %d", i, resp.StatusCode, tc.want)
		}
	}
	// An unverifiable token (wrong secret) has no identity: it is limited
	// by IP, and a forged sub cannot spend bob's or alice's bucket.
	forged := hs256(t, map[string]any{"sub": "alice"})
	forged = forged[:len(forged)-4] + "AAAA"
	resp := gws[2].do(t, "GET", "/echo", "192.0.2.200", nil, "Authorization", "Bearer "+forged)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("forged token from a fresh IP: %d", resp.StatusCode)
	}
}

// storeOn is one replica's store client.
type storeOn struct{ s *store.Redis }

// replicasOf starts one replica on st and runs its background work until
// the test ends.
func replicasOf(t *testing.T, st *storeOn, opts ...option) *setup {
	t.Helper()
	s := newSetup(t, st.s, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func waitSubscribed(t *testing.T, gws []*setup) {
	t.Helper()
	for i, s := range gws {
		eventually(t, 5*time.Second, func() bool { return len(s.logs.lines("ban_index_loaded")) > 0 }, "replica %d never subscribed", i)
	}
}
