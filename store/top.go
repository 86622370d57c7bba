package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Top-offender dimensions.
const (
	TopClients    = "client"
	TopRoutes     = "route"
	TopRules      = "rule"
	TopUserAgents = "user_agent"
	TopJA4        = "ja4"
)

// topDimensions lists the dimensions in display order.
var topDimensions = [...]string{TopClients, TopRoutes, TopRules, TopUserAgents, TopJA4}

// TopDimensions returns the dimensions in display order (a copy).
func TopDimensions() []string { return append([]string(nil), topDimensions[:]...) }

// TopKeep bounds every top-offender bucket: after each write only the
// TopKeep highest members stay. Counts are therefore exact for heavy
// hitters and approximate (a lower bound) near the cut-off, and memory is
// bounded whatever the number of distinct offenders.
const TopKeep = 500

// maxTopMember caps a member's length (routes are capped at 256 already).
const maxTopMember = 256

// TopHit is n hits of one offender in one dimension at a time.
type TopHit struct {
	Time   time.Time
	Dim    string
	Member string
	N      int64
}

// TopEntry is one offender and its hits in a window.
type TopEntry struct {
	Member string `json:"member"`
	Count  int64  `json:"count"`
}

// topBuckets returns the bucket keys of a window ending at now: minute
// buckets up to an hour, hour buckets beyond (at most 25 h). The window is
// rounded up to whole buckets: the current, partial one plus enough whole
// ones before it.
func topBuckets(k Keys, dim string, window time.Duration, now time.Time) ([]string, error) {
	if window <= 0 || window > 24*time.Hour {
		return nil, fmt.Errorf("top: window %v must be in (0, 24h]", window)
	}
	if !validDim(dim) {
		return nil, fmt.Errorf("top: unknown dimension %q", dim)
	}
	var keys []string
	if window <= time.Hour {
		cur := floorDiv(now.Unix(), 60)
		n := int64((window + time.Minute - 1) / time.Minute)
		for m := cur - n; m <= cur; m++ {
			keys = append(keys, k.TopMinute(dim, m))
		}
		return keys, nil
	}
	cur := floorDiv(now.Unix(), 3600)
	n := int64((window + time.Hour - 1) / time.Hour)
	for h := cur - n; h <= cur; h++ {
		keys = append(keys, k.TopHour(dim, h))
	}
	return keys, nil
}

func validDim(dim string) bool {
	for _, d := range topDimensions {
		if d == dim {
			return true
		}
	}
	return false
}

// topAgg sums hits per bucket key and member, so a flood of one client
// costs one increment per batch.
type topAgg map[string]map[string]int64

func (a topAgg) add(key, member string, n int64) {
	m := a[key]
	if m == nil {
		m = map[string]int64{}
		a[key] = m
	}
	m[member] += n
}

func aggregateTop(k Keys, hits []TopHit) (minutes, hours topAgg) {
	minutes, hours = topAgg{}, topAgg{}
	for _, h := range hits {
		if h.Member == "" || h.N <= 0 || !validDim(h.Dim) {
			continue
		}
		m := h.Member
		if len(m) > maxTopMember {
			m = m[:maxTopMember]
		}
		sec := h.Time.Unix()
		minutes.add(k.TopMinute(h.Dim, floorDiv(sec, 60)), m, h.N)
		hours.add(k.TopHour(h.Dim, floorDiv(sec, 3600)), m, h.N)
	}
	return minutes, hours
}

// AddTop counts hits in the minute and hour buckets of their time (one
// pipelined round trip), trimming every bucket it touches to TopKeep.
func (s *Redis) AddTop(ctx context.Context, hits []TopHit) error {
	minutes, hours := aggregateTop(s.keys, hits)
	if len(minutes) == 0 {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	pipe := s.rdb.Pipeline()
	for _, tier := range []struct {
		agg topAgg
		ttl time.Duration
	}{{minutes, topMinTTL}, {hours, topHourTTL}} {
		for key, members := range tier.agg {
			for m, n := range members {
				pipe.ZIncrBy(ctx, key, float64(n), m)
			}
			pipe.ZRemRangeByRank(ctx, key, 0, -TopKeep-1)
			pipe.PExpire(ctx, key, tier.ttl)
		}
	}
	_, err := pipe.Exec(ctx)
	return s.end("add top", err)
}

// topScript sums the buckets into a scratch key, reads the n highest and
// deletes the scratch key, atomically.
//
// KEYS[1] scratch, KEYS[2..] buckets; ARGV[1] n.
var topScript = newLua(`
redis.call('ZUNIONSTORE', KEYS[1], #KEYS - 1, unpack(KEYS, 2))
local r = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
redis.call('DEL', KEYS[1])
return r
`)

// Top returns the n offenders with the most hits in dimension dim over
// the window ending now (the store's clock), most first.
func (s *Redis) Top(ctx context.Context, dim string, window time.Duration, n int) ([]TopEntry, error) {
	if n <= 0 {
		return nil, errors.New("top: n must be > 0")
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	now, err := s.rdb.Time(ctx).Result()
	if err = s.end("top", err); err != nil {
		return nil, err
	}
	buckets, err := topBuckets(s.keys, dim, window, now)
	if err != nil {
		return nil, err
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	keys := append([]string{s.keys.TopScratch(hex.EncodeToString(nonce[:]))}, buckets...)
	v, err := topScript.Run(ctx, s.rdb, keys, n).StringSlice()
	if err = s.end("top", err); err != nil {
		return nil, err
	}
	out := make([]TopEntry, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		c, _ := strconv.ParseFloat(v[i+1], 64)
		out = append(out, TopEntry{Member: v[i], Count: int64(c)})
	}
	return out, nil
}

// AddTop counts hits in process, with the same buckets and bounds.
func (s *Memory) AddTop(_ context.Context, hits []TopHit) error {
	minutes, hours := aggregateTop(s.keys, hits)
	for _, tier := range []struct {
		agg topAgg
		ttl time.Duration
	}{{minutes, topMinTTL}, {hours, topHourTTL}} {
		for key, members := range tier.agg {
			s.withHash(key, true, tier.ttl, func(h map[string]string) {
				for m, n := range members {
					c, _ := strconv.ParseInt(h[m], 10, 64)
					h[m] = strconv.FormatInt(c+n, 10)
				}
				if len(h) > TopKeep {
					for _, e := range sortTop(h)[TopKeep:] {
						delete(h, e.Member)
					}
				}
			})
		}
	}
	return nil
}

// sortTop orders a bucket most first (ties by member, as ZREVRANGE does).
func sortTop(h map[string]string) []TopEntry {
	out := make([]TopEntry, 0, len(h))
	for m, v := range h {
		c, _ := strconv.ParseInt(v, 10, 64)
		out = append(out, TopEntry{Member: m, Count: c})
	}
	sortEntries(out)
	return out
}

func sortEntries(out []TopEntry) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Member > out[j].Member
	})
}

// Top returns the n offenders with the most hits over the window.
func (s *Memory) Top(_ context.Context, dim string, window time.Duration, n int) ([]TopEntry, error) {
	if n <= 0 {
		return nil, errors.New("top: n must be > 0")
	}
	buckets, err := topBuckets(s.keys, dim, window, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	sum := map[string]int64{}
	for _, b := range buckets {
		s.withHash(b, false, 0, func(h map[string]string) {
			for m, v := range h {
				c, _ := strconv.ParseInt(v, 10, 64)
				sum[m] += c
			}
		})
	}
	out := make([]TopEntry, 0, len(sum))
	for m, c := range sum {
		out = append(out, TopEntry{Member: m, Count: c})
	}
	sortEntries(out)
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}
