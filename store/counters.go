package store

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counter names returned by Counters.
const (
	CounterRateResetAfter = "rate_limit_reset_after_seconds" // until the default bucket is full again
	CounterRateRefusals   = "rate_limit_refusals"            // refusals in the current period
	CounterInvalid        = "invalid_requests"               // enumeration count in the current window
	CounterStrikes        = "ban_strikes"                    // bans within the escalation memory
)

// Counters returns a client's shared counters, for operators, under the
// names above (absent counters are left out).
func (s *Redis) Counters(ctx context.Context, client string) (map[string]string, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	tat := pipe.Get(ctx, s.keys.Rate(client, ""))
	refused := pipe.Get(ctx, s.keys.Refused(client, ""))
	invalid := pipe.Get(ctx, s.keys.Invalid(client))
	strikes := pipe.HGet(ctx, s.keys.Offender(client), "strikes")
	_, err := pipe.Exec(ctx)
	if err = s.end("counters", err); err != nil {
		return nil, err
	}
	out := map[string]string{}
	if v, err := tat.Float64(); err == nil {
		out[CounterRateResetAfter] = resetAfter(v, time.Now())
	}
	for name, c := range map[string]*redis.StringCmd{CounterRateRefusals: refused, CounterInvalid: invalid, CounterStrikes: strikes} {
		if v, err := c.Result(); err == nil {
			out[name] = v
		}
	}
	return out, nil
}

// resetAfter turns a GCRA theoretical arrival time (seconds since 2017, as
// redis_rate stores it) into seconds until the bucket is full again.
func resetAfter(tat float64, now time.Time) string {
	left := tat - epochSeconds(now)
	if left < 0 {
		left = 0
	}
	return strconv.FormatFloat(math.Round(left*10)/10, 'f', -1, 64)
}
