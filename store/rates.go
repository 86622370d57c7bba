package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RateSample is how many requests ended one way or another in one second.
// Allowed counts requests let through to the upstream (whatever the
// upstream answered), Blocked those a detection refused, Banned those
// refused because the client is on the blocklist or known over its limit.
type RateSample struct {
	Allowed int64 `json:"allowed"`
	Blocked int64 `json:"blocked"`
	Banned  int64 `json:"banned"`
}

// IsZero reports a second with nothing to record.
func (r RateSample) IsZero() bool { return r == RateSample{} }

// RatePoint is the fleet's sample of one second.
type RatePoint struct {
	Time time.Time `json:"t"`
	RateSample
}

// Rate kinds, the field suffixes of the rate hashes.
const (
	rateAllowed = "allowed"
	rateBlocked = "blocked"
	rateBanned  = "banned"
)

// MaxRateSpan is the longest span Rates answers: the rate hashes live 16
// minutes.
const MaxRateSpan = 15 * time.Minute

// AddRates adds one replica's sample for the second at to the fleet's
// counters (one pipelined round trip; a zero sample writes nothing).
func (s *Redis) AddRates(ctx context.Context, at time.Time, r RateSample) error {
	if r.IsZero() {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	sec := at.Unix()
	key := s.keys.RateMinute(floorDiv(sec, 60))
	field := strconv.FormatInt(sec-floorDiv(sec, 60)*60, 10) + ":"
	pipe := s.rdb.Pipeline()
	for _, f := range [...]struct {
		kind string
		n    int64
	}{{rateAllowed, r.Allowed}, {rateBlocked, r.Blocked}, {rateBanned, r.Banned}} {
		if f.n != 0 {
			pipe.HIncrBy(ctx, key, field+f.kind, f.n)
		}
	}
	pipe.PExpire(ctx, key, rateTTL)
	_, err := pipe.Exec(ctx)
	return s.end("add rates", err)
}

// Rates returns one point per second in [from, to) (at most MaxRateSpan,
// the most recent part of a longer span), zeros where nothing was
// recorded.
func (s *Redis) Rates(ctx context.Context, from, to time.Time) ([]RatePoint, error) {
	first, last, err := rateSpan(from, to)
	if err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	var cmds []*redis.MapStringStringCmd
	var minutes []int64
	for m := floorDiv(first, 60); m <= floorDiv(last, 60); m++ {
		cmds = append(cmds, pipe.HGetAll(ctx, s.keys.RateMinute(m)))
		minutes = append(minutes, m)
	}
	_, err = pipe.Exec(ctx)
	if err = s.end("rates", err); err != nil {
		return nil, err
	}
	pts := newRatePoints(first, last)
	for i, c := range cmds {
		fillRates(pts, first, minutes[i], c.Val())
	}
	return pts, nil
}

// rateSpan turns [from, to) into the first and last Unix second.
func rateSpan(from, to time.Time) (first, last int64, err error) {
	first, last = from.Unix(), to.Unix()-1
	if last < first {
		return 0, 0, errors.New("rates: empty span")
	}
	if span := int64(MaxRateSpan / time.Second); last-first+1 > span {
		first = last - span + 1
	}
	return first, last, nil
}

func newRatePoints(first, last int64) []RatePoint {
	pts := make([]RatePoint, last-first+1)
	for i := range pts {
		pts[i].Time = time.Unix(first+int64(i), 0).UTC()
	}
	return pts
}

// fillRates adds a minute hash's fields to the points they fall in.
func fillRates(pts []RatePoint, first, minute int64, h map[string]string) {
	for f, v := range h {
		secStr, kind, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		sec, err := strconv.ParseInt(secStr, 10, 64)
		if err != nil {
			continue
		}
		i := minute*60 + sec - first
		if i < 0 || i >= int64(len(pts)) {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch kind {
		case rateAllowed:
			pts[i].Allowed += n
		case rateBlocked:
			pts[i].Blocked += n
		case rateBanned:
			pts[i].Banned += n
		}
	}
}

// floorDiv divides rounding towards minus infinity (times before 1970
// stay in the right bucket).
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// AddRates adds a sample to the in-process counters.
func (s *Memory) AddRates(_ context.Context, at time.Time, r RateSample) error {
	if r.IsZero() {
		return nil
	}
	sec := at.Unix()
	field := strconv.FormatInt(sec-floorDiv(sec, 60)*60, 10) + ":"
	s.withHash(s.keys.RateMinute(floorDiv(sec, 60)), true, rateTTL, func(h map[string]string) {
		for _, f := range [...]struct {
			kind string
			n    int64
		}{{rateAllowed, r.Allowed}, {rateBlocked, r.Blocked}, {rateBanned, r.Banned}} {
			if f.n != 0 {
				n, _ := strconv.ParseInt(h[field+f.kind], 10, 64)
				h[field+f.kind] = strconv.FormatInt(n+f.n, 10)
			}
		}
	})
	return nil
}

// Rates returns one point per second in [from, to).
func (s *Memory) Rates(_ context.Context, from, to time.Time) ([]RatePoint, error) {
	first, last, err := rateSpan(from, to)
	if err != nil {
		return nil, err
	}
	pts := newRatePoints(first, last)
	for m := floorDiv(first, 60); m <= floorDiv(last, 60); m++ {
		s.withHash(s.keys.RateMinute(m), false, 0, func(h map[string]string) {
			if h != nil {
				fillRates(pts, first, m, h)
			}
		})
	}
	return pts, nil
}
