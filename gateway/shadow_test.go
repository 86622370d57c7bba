package gateway_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/gateway"
	"github.com/rampartgw/rampart/store"
)

// slowBlock blocks every request, slowly.
type slowBlock struct{ d time.Duration }

func (slowBlock) Name() string { return "slow" }
func (s slowBlock) Inspect(ctx context.Context, _ *detections.Request) (detections.Verdict, error) {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
	}
	return detections.Block("slow_block"), nil
}

// TestShadowIsBoundedAndOffThePath: a slow candidate never delays an
// answer or changes one; what its full queue cannot take is counted as
// dropped, the rest as newly blocked.
func TestShadowIsBoundedAndOffThePath(t *testing.T) {
	chain, err := detections.NewChain(detections.Entry{Detection: slowBlock{d: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	sh := gateway.NewShadow(&gateway.Policy{Chain: chain}, store.NewMemory(store.DefaultMemoryConfig()),
		gateway.ShadowOptions{Queue: 2, Workers: 1, Timeout: time.Second})
	s := newSetup(t, nil, withEntries(), withShadow(sh))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go s.g.Run(ctx)
	time.Sleep(50 * time.Millisecond) // the workers started
	const n = 40
	for i := range n {
		if got := s.status(t, "GET", "/echo", "192.0.2.1"); got != 200 {
			t.Fatalf("request %d: %d (the shadow must not change an answer)", i, got)
		}
	}
	m := s.g.Metrics()
	value := func(det, outcome string) float64 {
		var mm dto.Metric
		_ = m.ShadowDecisions().WithLabelValues(det, outcome).Write(&mm)
		return mm.GetCounter().GetValue()
	}
	dropped := func() float64 { return value("none", gateway.ShadowDropped) }
	blocked := func() float64 { return value("slow", gateway.ShadowNewlyBlocked) }
	eventually(t, 5*time.Second, func() bool { return dropped()+blocked() == n }, "every request judged or dropped")
	if dropped() == 0 || blocked() == 0 {
		t.Errorf("dropped %v, newly blocked %v of %d: want both (a queue of 2 behind a 20ms judge)", dropped(), blocked(), n)
	}
}

// TestShadowRoutesLikeLive: the candidate judges a request with the chain
// live routing would pick: the first route that matches, and the top-level
// chain when that route has none, not a later route that has one.
func TestShadowRoutesLikeLive(t *testing.T) {
	top, err := detections.NewChain()
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := detections.NewChain(detections.Entry{Detection: slowBlock{}})
	if err != nil {
		t.Fatal(err)
	}
	cand := &gateway.Policy{Chain: top, Routes: []gateway.Route{
		{RouteConfig: gateway.RouteConfig{Name: "api", PathPrefix: "/echo/api"}},
		{RouteConfig: gateway.RouteConfig{Name: "rest"}, Chain: blocks},
	}}
	sh := gateway.NewShadow(cand, store.NewMemory(store.DefaultMemoryConfig()), gateway.ShadowOptions{Queue: 16, Workers: 1, Timeout: time.Second})
	s := newSetup(t, nil, withEntries(), withShadow(sh))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go s.g.Run(ctx)
	m := s.g.Metrics()
	value := func(det, outcome string) float64 {
		var mm dto.Metric
		_ = m.ShadowDecisions().WithLabelValues(det, outcome).Write(&mm)
		return mm.GetCounter().GetValue()
	}
	judged := func() float64 {
		return value("slow", gateway.ShadowNewlyBlocked) + value("none", gateway.ShadowSameAllow) + value("none", gateway.ShadowDropped)
	}
	for _, p := range []string{"/echo/api/items", "/echo/x/../api/./items", "/echo/other"} {
		if got := s.status(t, "GET", p, "192.0.2.1"); got != 200 {
			t.Fatalf("%s: %d", p, got)
		}
	}
	eventually(t, 5*time.Second, func() bool { return judged() == 3 }, "every request judged")
	if got := value("slow", gateway.ShadowNewlyBlocked); got != 1 {
		t.Errorf("newly blocked %v, want 1 (only /echo/other is on the blocking route)", got)
	}
}
