package detections_test

// The README's "Adding a detection" example, compiled and run: a test
// (TestREADMEExample in cmd/gateway) checks that the README shows this
// code between the markers.

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// README example begin

// AcceptConfig configures the accept detection.
type AcceptConfig struct {
	Prefix string `yaml:"prefix"` // paths checked
}

// Accept refuses API requests that send no Accept header.
type Accept struct{ cfg AcceptConfig }

// NewAccept validates cfg.
func NewAccept(cfg AcceptConfig) (*Accept, error) {
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("prefix: %q must start with /", cfg.Prefix)
	}
	return &Accept{cfg: cfg}, nil
}

// Name returns "accept": log attribute, metric label and config key.
func (d *Accept) Name() string { return "accept" }

// Inspect blocks API requests without Accept.
func (d *Accept) Inspect(_ context.Context, r *detections.Request) (detections.Verdict, error) {
	if strings.HasPrefix(r.Path, d.cfg.Prefix) && r.Header.Get("Accept") == "" {
		v := detections.Block("accept_missing") // the reason: logged and counted, never sent
		v.Location = "header:Accept"
		return v, nil // set v.BlockFor to also ban the client
	}
	return detections.Allow, nil
}

var _ detections.Detection = (*Accept)(nil)

// README example end

func Example_addingADetection() {
	accept, _ := NewAccept(AcceptConfig{Prefix: "/api/"})
	chain, _ := detections.NewChain(detections.Entry{Detection: accept, Mode: detections.ModeEnforce})
	for _, h := range []http.Header{{}, {"Accept": {"application/json"}}} {
		r := &detections.Request{Method: "GET", Path: "/api/items", Header: h}
		d := chain.Run(context.Background(), r, nil)
		fmt.Println(d.Verdict.Action == detections.ActionBlock, d.Detection, d.Verdict.Reason)
	}
	// Output:
	// true accept accept_missing
	// false
}
