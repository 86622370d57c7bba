package store

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/record"
)

// SubscribeBans delivers ban and unban notifications from every replica to
// fn until ctx ends. After every (re)subscription it first delivers a Reset
// event, because notifications sent while disconnected are lost.
func (s *Redis) SubscribeBans(ctx context.Context, fn func(record.BanEvent)) {
	ps := s.rdb.Subscribe(ctx, s.keys.BanChannel())
	// Receive does not return on cancellation alone; closing does.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	for ctx.Err() == nil {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// go-redis reconnects and resubscribes on the next Receive.
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.cfg.BreakerCooldown):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				fn(record.BanEvent{Reset: true})
			}
		case *redis.Message:
			if ev, ok := decodeBanEvent(m.Payload); ok {
				fn(ev)
			}
		}
	}
}

// encodeBanEvent writes "ban <client> <until_ms>" or "unban <client>"; a
// tiny format keeps redis-cli SUBSCRIBE output readable.
func encodeBanEvent(ev record.BanEvent) string {
	if ev.Unban {
		return "unban " + ev.Client
	}
	return "ban " + ev.Client + " " + strconv.FormatInt(ev.Until.UnixMilli(), 10)
}

func decodeBanEvent(s string) (record.BanEvent, bool) {
	f := strings.Fields(s)
	switch {
	case len(f) == 2 && f[0] == "unban":
		return record.BanEvent{Client: f[1], Unban: true}, true
	case len(f) == 2 && f[0] == "cidr":
		return record.BanEvent{Client: f[1], CIDR: true}, true
	case len(f) == 3 && f[0] == "ban":
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || ms <= 0 || ms > math.MaxInt64/2 {
			return record.BanEvent{}, false
		}
		return record.BanEvent{Client: f[1], Until: time.UnixMilli(ms)}, true
	}
	return record.BanEvent{}, false
}
