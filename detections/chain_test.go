package detections_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// fake is a detection with a scripted outcome.
type fake struct {
	name    string
	verdict detections.Verdict
	err     error
	panics  bool
	calls   int
	mu      sync.Mutex
}

func (f *fake) Name() string { return f.name }

func (f *fake) Inspect(context.Context, *detections.Request) (detections.Verdict, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.panics {
		panic("boom in " + f.name)
	}
	return f.verdict, f.err
}

type recorded struct {
	failed []string
	would  []string
	stacks int
}

func (r *recorded) DetectionFailed(_ context.Context, _ *detections.Request, name string, err error, stack []byte) {
	r.failed = append(r.failed, name+": "+err.Error())
	if stack != nil {
		r.stacks++
	}
}

func (r *recorded) WouldBlock(_ context.Context, _ *detections.Request, name string, v detections.Verdict) {
	r.would = append(r.would, name+":"+v.Reason)
}

func req() *detections.Request {
	return &detections.Request{ClientIP: netip.MustParseAddr("192.0.2.1"), Method: "GET", Path: "/"}
}

func TestChainFirstEnforcedBlockWins(t *testing.T) {
	t.Parallel()
	a := &fake{name: "a"}
	b := &fake{name: "b", verdict: detections.Block("b_says_no")}
	c := &fake{name: "c", verdict: detections.Block("c_says_no")}
	chain, err := detections.NewChain(detections.Entry{Detection: a}, detections.Entry{Detection: b, Status: 429}, detections.Entry{Detection: c})
	if err != nil {
		t.Fatal(err)
	}
	d := chain.Run(t.Context(), req(), &recorded{})
	if d.Detection != "b" || d.Verdict.Reason != "b_says_no" || d.Status != 429 {
		t.Errorf("decision = %+v", d)
	}
	if c.calls != 0 {
		t.Error("detection after the block ran")
	}
}

func TestChainIsolatesErrorsAndPanics(t *testing.T) {
	t.Parallel()
	failing := &fake{name: "failing", err: errors.New("cannot decide")}
	panicking := &fake{name: "panicking", panics: true}
	after := &fake{name: "after", verdict: detections.Block("after_blocks")}
	chain, err := detections.NewChain(detections.Entry{Detection: failing}, detections.Entry{Detection: panicking}, detections.Entry{Detection: after})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorded{}
	d := chain.Run(t.Context(), req(), rec)
	if d.Detection != "after" {
		t.Fatalf("the rest of the chain did not run: %+v", d)
	}
	if len(rec.failed) != 2 || !strings.HasPrefix(rec.failed[0], "failing:") || !strings.Contains(rec.failed[1], "panic: boom in panicking") {
		t.Errorf("failures = %v", rec.failed)
	}
	if rec.stacks != 1 {
		t.Errorf("stacks = %d, want 1 (the panic)", rec.stacks)
	}
}

func TestChainErrorDoesNotBlockByDefault(t *testing.T) {
	t.Parallel()
	failing := &fake{name: "failing", verdict: detections.Block("ignored"), err: fmt.Errorf("redis: %w", detections.ErrStore)}
	chain, _ := detections.NewChain(detections.Entry{Detection: failing})
	if d := chain.Run(t.Context(), req(), nil); d.Verdict.Action != detections.ActionAllow {
		t.Errorf("a failing detection blocked: %+v", d)
	}
}

func TestChainOnStoreErrorBlock(t *testing.T) {
	t.Parallel()
	storeDown := &fake{name: "rate_limit", err: fmt.Errorf("checking: %w", detections.ErrStore)}
	bug := &fake{name: "buggy", err: errors.New("not a store error")}
	chain, _ := detections.NewChain(
		detections.Entry{Detection: bug, OnStoreError: detections.StoreBlock},
		detections.Entry{Detection: storeDown, OnStoreError: detections.StoreBlock},
	)
	d := chain.Run(t.Context(), req(), &recorded{})
	if d.Status != 503 || d.Detection != "rate_limit" || d.Verdict.Reason != "store_unavailable" {
		t.Errorf("decision = %+v, want 503 from rate_limit", d)
	}
}

func TestChainMonitorMode(t *testing.T) {
	t.Parallel()
	m := &fake{name: "watcher", verdict: detections.Block("suspicious")}
	self := &fake{name: "self_monitor", verdict: detections.Verdict{Action: detections.ActionMonitor, Reason: "rule_in_monitor"}}
	chain, _ := detections.NewChain(detections.Entry{Detection: m, Mode: detections.ModeMonitor}, detections.Entry{Detection: self})
	rec := &recorded{}
	d := chain.Run(t.Context(), req(), rec)
	if d.Verdict.Action != detections.ActionAllow {
		t.Errorf("monitor mode blocked: %+v", d)
	}
	if strings.Join(rec.would, ",") != "watcher:suspicious,self_monitor:rule_in_monitor" {
		t.Errorf("would-block = %v", rec.would)
	}
}

func TestChainOffIsDropped(t *testing.T) {
	t.Parallel()
	off := &fake{name: "off", verdict: detections.Block("x")}
	chain, _ := detections.NewChain(detections.Entry{Detection: off, Mode: detections.ModeOff})
	chain.Run(t.Context(), req(), nil)
	if off.calls != 0 || len(chain.Entries()) != 0 {
		t.Error("an off detection ran")
	}
}

func TestNewChainRejects(t *testing.T) {
	t.Parallel()
	a := &fake{name: "a"}
	_, err := detections.NewChain(detections.Entry{Detection: a}, detections.Entry{Detection: a}, detections.Entry{Detection: &fake{name: "b"}, Status: 200})
	if err == nil || !strings.Contains(err.Error(), "listed twice") || !strings.Contains(err.Error(), "status 200") {
		t.Errorf("err = %v", err)
	}
}

// observerFake blocks on a given upstream status.
type observerFake struct{ fake }

func (o *observerFake) ObserveResponse(_ context.Context, _ *detections.Request, resp detections.Response) (detections.Verdict, error) {
	if resp.Status == 404 {
		v := detections.Block("too_many_404")
		v.BlockFor = 1
		return v, nil
	}
	return detections.Allow, nil
}

func TestChainObserve(t *testing.T) {
	t.Parallel()
	o := &observerFake{fake{name: "obs"}}
	chain, _ := detections.NewChain(detections.Entry{Detection: &fake{name: "plain"}}, detections.Entry{Detection: o})
	if !chain.HasObservers() {
		t.Fatal("observer not registered")
	}
	if d := chain.Observe(t.Context(), req(), detections.Response{Status: 200}, nil); d.Verdict.Action != detections.ActionAllow {
		t.Errorf("200 blocked: %+v", d)
	}
	if d := chain.Observe(t.Context(), req(), detections.Response{Status: 404}, nil); d.Detection != "obs" || d.Verdict.BlockFor != 1 {
		t.Errorf("404 decision = %+v", d)
	}
}

// BenchmarkChain runs the stateless detections (ip, user_agent, payload with
// the prototype's pattern list) over a clean bodiless request: uncached
// with the payload detection's clean-value cache off (every value
// analysed), cached with it on (the request's User-Agent and Accept seen
// before, as on a client's second request).
func BenchmarkChain(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"uncached", 0}, {"cached", payload.DefaultCleanCache}} {
		b.Run(bc.name, func(b *testing.B) {
			ip, _ := detections.NewIP(detections.IPConfig{Allow: []string{"127.0.0.1", "192.168.0.1", "10.0.0.0/8"}, Deny: []string{"203.0.113.0/24"}})
			ua, _ := detections.NewUserAgent(detections.DefaultUserAgentConfig())
			pcfg := payload.DefaultConfig()
			pcfg.Patterns = []string{"malicious"}
			pcfg.CleanCache = bc.cache
			pl, err := payload.New(pcfg)
			if err != nil {
				b.Fatal(err)
			}
			chain, err := detections.NewChain(detections.Entry{Detection: ip}, detections.Entry{Detection: ua}, detections.Entry{Detection: pl})
			if err != nil {
				b.Fatal(err)
			}
			r := req()
			r.ClientIP = netip.MustParseAddr("10.1.2.3")
			r.RawPath, r.Path, r.RawQuery = "/api/v1/orders", "/api/v1/orders", "page=2&sort=desc"
			r.Header = map[string][]string{"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}, "Accept": {"*/*"}}
			b.ReportAllocs()
			for b.Loop() {
				if d := chain.Run(context.Background(), r, nil); d.Verdict.Action != detections.ActionAllow {
					b.Fatal("blocked")
				}
			}
		})
	}
}
