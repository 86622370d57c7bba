package store

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// leaseScript takes or renews an alert group's lease: free, or already
// ours, it is (re)set to us for the lease time; held by another replica it
// stays theirs. The value is "<replica>|<claimed at, unix ms>" (server
// clock), so the others can tell when the holder last claimed.
//
// KEYS[1] lease; ARGV[1] replica, ARGV[2] lease (ms). Returns {1, now}
// when we hold it, {0, the holder's last claim} otherwise.
var leaseScript = newLua(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
if v then
  local holder, at = string.match(v, '^(.*)|(%d+)$')
  if holder and holder ~= ARGV[1] then
    return {0, tonumber(at)}
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. now, 'PX', ARGV[2])
return {1, now}
`)

// ClaimAlert reports whether replica may send group's notifications now:
// the first replica to ask holds the group's lease, renewed by each of its
// claims, and the others stand aside until it lapses (the holder stopped
// asking: it died or the group went quiet). So one replica sends each
// notification although every replica evaluates the same alerts. claimed
// is when the lease was last claimed by its holder (us, when held), on the
// store's clock: a replica standing aside compares two of them to tell
// that the holder has flushed since.
func (s *Redis) ClaimAlert(ctx context.Context, group, replica string, lease time.Duration) (held bool, claimed time.Time, err error) {
	if group == "" || replica == "" || lease <= 0 {
		return false, time.Time{}, errors.New("claim alert: group, replica and a positive lease are required")
	}
	if err := s.begin(); err != nil {
		return false, time.Time{}, err
	}
	v, err := leaseScript.Run(ctx, s.rdb, []string{s.keys.AlertLease(group)}, replica, lease.Milliseconds()).Int64Slice()
	if err = s.end("claim alert", err); err != nil {
		return false, time.Time{}, err
	}
	if len(v) != 2 {
		return false, time.Time{}, errors.New("claim alert: unexpected reply")
	}
	return v[0] == 1, time.UnixMilli(v[1]), nil
}

// ClaimAlert on the memory store implements the same lease in process.
func (s *Memory) ClaimAlert(_ context.Context, group, replica string, lease time.Duration) (held bool, claimed time.Time, err error) {
	if group == "" || replica == "" || lease <= 0 {
		return false, time.Time{}, errors.New("claim alert: group, replica and a positive lease are required")
	}
	now := s.cfg.Now()
	s.withHash(s.keys.AlertLease(group), true, 0, func(h map[string]string) {
		if v := h["replica"]; v == "" || v == replica {
			h["replica"], h["at"], held = replica, strconv.FormatInt(now.UnixMilli(), 10), true
			claimed = now
			return
		}
		ms, _ := strconv.ParseInt(h["at"], 10, 64)
		claimed = time.UnixMilli(ms)
	})
	if held {
		s.withHash(s.keys.AlertLease(group), true, lease, func(map[string]string) {})
	}
	return held, claimed, nil
}
