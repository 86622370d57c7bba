package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Heartbeat is what a replica reports about itself every few seconds, so
// that any replica's console (and the alerts) see the whole fleet.
type Heartbeat struct {
	Replica    string    `json:"replica"`
	Version    string    `json:"version"`
	ConfigHash string    `json:"config_hash"`
	Started    time.Time `json:"started"`
	// Store is redis or memory; StoreHealthy is false while the circuit
	// breaker is open, with the last error in StoreError.
	Store        string `json:"store"`
	StoreHealthy bool   `json:"store_healthy"`
	StoreError   string `json:"store_error,omitempty"`
	// RequestRate and BlockRate are requests per second over the last
	// interval (BlockRate: blocked by a detection or refused as banned).
	RequestRate float64 `json:"request_rate"`
	BlockRate   float64 `json:"block_rate"`
	// LocalBans is the size of this replica's ban cache.
	LocalBans int `json:"local_bans"`
	// Chain lists the detections as name:mode.
	Chain []string `json:"chain,omitempty"`
	// Interval is the sender's heartbeat interval, against which missed
	// heartbeats are judged.
	Interval time.Duration `json:"interval"`

	// LastSeen is when the store received the last heartbeat (the store's
	// clock), and Age how long ago that was, as of the Fleet call. Fleet
	// sets them.
	LastSeen time.Time     `json:"-"`
	Age      time.Duration `json:"-"`
}

// Missed reports how many heartbeats the replica has missed (0 when its
// last one is recent).
func (h Heartbeat) Missed() int {
	if h.Interval <= 0 || h.Age <= h.Interval {
		return 0
	}
	return int(h.Age/h.Interval) - 1
}

// heartbeatScript records one heartbeat at the server's time and prunes
// replicas silent for longer than the retention.
//
// KEYS[1] info hash, KEYS[2] seen zset; ARGV[1] replica, ARGV[2] heartbeat
// JSON, ARGV[3] retention (ms). Returns the server time (ms).
var heartbeatScript = newLua(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[3])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - retention)
for _, r in ipairs(gone) do
  redis.call('HDEL', KEYS[1], r)
  redis.call('ZREM', KEYS[2], r)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], retention)
redis.call('PEXPIRE', KEYS[2], retention)
return now
`)

// fleetScript reads the fleet: the server time, then replica, last-seen
// (ms) and heartbeat JSON triples.
var fleetScript = newLua(`
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
local seen = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #seen, 2 do
  local info = redis.call('HGET', KEYS[1], seen[i])
  if info then
    out[#out + 1] = seen[i]
    out[#out + 1] = seen[i + 1]
    out[#out + 1] = info
  end
end
return out
`)

// Heartbeat records hb (one script: the store's clock stamps it) and drops
// replicas that have been silent for longer than retention.
func (s *Redis) Heartbeat(ctx context.Context, hb Heartbeat, retention time.Duration) error {
	if hb.Replica == "" {
		return errors.New("heartbeat: no replica name")
	}
	if retention <= 0 {
		return errors.New("heartbeat: retention must be > 0")
	}
	if err := s.begin(); err != nil {
		return err
	}
	b, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	err = heartbeatScript.Run(ctx, s.rdb, []string{s.keys.FleetInfo(), s.keys.FleetSeen()},
		hb.Replica, b, retention.Milliseconds()).Err()
	return s.end("heartbeat", err)
}

// Fleet returns every replica heard from within the retention, sorted by
// name, with LastSeen and Age from the store's clock (replica clocks may
// disagree; the store's is the one reference).
func (s *Redis) Fleet(ctx context.Context) ([]Heartbeat, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	v, err := fleetScript.Run(ctx, s.rdb, []string{s.keys.FleetInfo(), s.keys.FleetSeen()}).Slice()
	if err = s.end("fleet", err); err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, errors.New("fleet: empty reply")
	}
	now := time.UnixMilli(toInt(v[0]))
	var out []Heartbeat
	for i := 1; i+2 < len(v); i += 3 {
		var hb Heartbeat
		if err := json.Unmarshal([]byte(toString(v[i+2])), &hb); err != nil {
			continue // a newer or damaged entry: skip it, keep the rest
		}
		hb.Replica = toString(v[i])
		ms, _ := strconv.ParseFloat(toString(v[i+1]), 64)
		hb.LastSeen = time.UnixMilli(int64(ms))
		hb.Age = max(now.Sub(hb.LastSeen), 0)
		out = append(out, hb)
	}
	sortFleet(out)
	return out, nil
}

func sortFleet(hbs []Heartbeat) {
	sort.Slice(hbs, func(i, j int) bool { return hbs[i].Replica < hbs[j].Replica })
}

// Heartbeat records hb in process (one replica: the fleet is this one).
func (s *Memory) Heartbeat(_ context.Context, hb Heartbeat, retention time.Duration) error {
	if hb.Replica == "" {
		return errors.New("heartbeat: no replica name")
	}
	if retention <= 0 {
		return errors.New("heartbeat: retention must be > 0")
	}
	b, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	now := s.cfg.Now()
	s.withHash(s.keys.FleetInfo(), true, retention, func(h map[string]string) {
		for r, v := range h {
			var old memBeat
			if json.Unmarshal([]byte(v), &old) == nil && now.Sub(time.UnixMilli(old.SeenMS)) > retention {
				delete(h, r)
			}
		}
		h[hb.Replica] = string(mustJSON(memBeat{SeenMS: now.UnixMilli(), Info: b}))
	})
	return nil
}

// memBeat is a heartbeat as the memory store keeps it: with its arrival
// time (the Redis store keeps that in the seen set).
type memBeat struct {
	SeenMS int64           `json:"seen_ms"`
	Info   json.RawMessage `json:"info"`
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Fleet returns the replicas heard from within the retention.
func (s *Memory) Fleet(context.Context) ([]Heartbeat, error) {
	now := s.cfg.Now()
	var out []Heartbeat
	s.withHash(s.keys.FleetInfo(), false, 0, func(h map[string]string) {
		for r, v := range h {
			var mb memBeat
			var hb Heartbeat
			if json.Unmarshal([]byte(v), &mb) != nil || json.Unmarshal(mb.Info, &hb) != nil {
				continue
			}
			hb.Replica, hb.LastSeen = r, time.UnixMilli(mb.SeenMS)
			hb.Age = max(now.Sub(hb.LastSeen), 0)
			out = append(out, hb)
		}
	})
	sortFleet(out)
	return out, nil
}

// LeaveFleet removes replica from the fleet (a clean shutdown), so that it
// is not reported as missing.
func (s *Redis) LeaveFleet(ctx context.Context, replica string) error {
	if err := s.begin(); err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.HDel(ctx, s.keys.FleetInfo(), replica)
	pipe.ZRem(ctx, s.keys.FleetSeen(), replica)
	_, err := pipe.Exec(ctx)
	return s.end("leave fleet", err)
}

// LeaveFleet removes replica from the fleet.
func (s *Memory) LeaveFleet(_ context.Context, replica string) error {
	s.withHash(s.keys.FleetInfo(), false, 0, func(h map[string]string) {
		if h != nil {
			delete(h, replica)
		}
	})
	return nil
}
