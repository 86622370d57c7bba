package jwt_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/rampartgw/rampart/detections/jwt"
)

// An unsigned token in a bearer header: the keyless checks need no key and
// no background work.
func ExampleAnalyzer_AnalyzeRequest() {
	a, err := jwt.New(jwt.DefaultConfig(), jwt.Options{})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx) // weak-secret workers and JWKS refresh

	enc := base64.RawURLEncoding.EncodeToString
	exp := time.Now().Add(5 * time.Minute).Unix()
	token := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":"admin","exp":%d}`, exp)) + "."

	h := http.Header{"Authorization": {"Bearer " + token}}
	rep, err := a.AnalyzeRequest(ctx, h, "", "client-key")
	if err != nil {
		panic(err)
	}
	for _, f := range rep.Findings {
		fmt.Println(f.Rule, f.Severity, f.Action)
	}
	fmt.Println("log as", len(jwt.Identity(token)), "hex digits, never the token")
	// Output:
	// jwt_alg_none critical block
	// log as 32 hex digits, never the token
}
