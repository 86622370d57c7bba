package store

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/record"
)

// BanCIDR bans a whole range (operator action). Range bans are few; every
// replica keeps them in memory and reloads them when notified. They live in
// one hash, so the write, the pruning of expired ranges and the key's TTL
// are one atomic script.
func (s *Redis) BanCIDR(ctx context.Context, prefix netip.Prefix, dur time.Duration, reason, replica string) (record.Ban, error) {
	if err := s.begin(); err != nil {
		return record.Ban{}, err
	}
	if dur <= 0 {
		return record.Ban{}, errors.New("ban: duration must be > 0")
	}
	p := prefix.Masked().String()
	v, err := cidrBanScript.Run(ctx, s.rdb, []string{s.keys.CIDRBansOf(p)}, p, dur.Milliseconds(), reason, replica).Int64Slice()
	if err = s.end("ban cidr", err); err != nil {
		return record.Ban{}, err
	}
	now, until := time.UnixMilli(v[0]), time.UnixMilli(v[1])
	if err := s.end("ban cidr", s.rdb.Publish(ctx, s.keys.BanChannel(), "cidr "+p).Err()); err != nil {
		return record.Ban{}, err
	}
	return record.Ban{Client: p, CIDR: true, Reason: reason, Detection: "admin", Replica: replica,
		FirstSeen: now, LastSeen: now, Until: until, TTL: dur, Count: 1, New: true}, nil
}

// UnbanCIDR lifts a range ban.
func (s *Redis) UnbanCIDR(ctx context.Context, prefix netip.Prefix) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	p := prefix.Masked().String()
	pipe := s.rdb.Pipeline()
	n := pipe.HDel(ctx, s.keys.CIDRBansOf(p), p)
	pipe.Publish(ctx, s.keys.BanChannel(), "cidr "+p)
	_, err := pipe.Exec(ctx)
	if err = s.end("unban cidr", err); err != nil {
		return false, err
	}
	return n.Val() > 0, nil
}

// ListCIDRBans returns the active range bans.
func (s *Redis) ListCIDRBans(ctx context.Context) ([]record.Ban, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	// Expiry is judged on the Redis clock that wrote it, not this host's.
	pipe := s.rdb.Pipeline()
	hcs := make([]*redis.MapStringStringCmd, s.keys.Partitions())
	for p := range hcs {
		hcs[p] = pipe.HGetAll(ctx, s.keys.CIDRBans(p))
	}
	tc := pipe.Time(ctx)
	_, err := pipe.Exec(ctx)
	if err = s.end("list cidr bans", err); err != nil {
		return nil, err
	}
	now := tc.Val()
	var out []record.Ban
	for _, hc := range hcs {
		for p, v := range hc.Val() {
			if b, ok := cidrBan(p, v, now); ok {
				out = append(out, b)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Client < out[j].Client })
	return out, nil
}

// cidrBan decodes "until_ms<TAB>created_ms<TAB>replica<TAB>reason"; expired
// entries are reported as absent.
func cidrBan(p, v string, now time.Time) (record.Ban, bool) {
	f := strings.SplitN(v, "\t", 4)
	if len(f) != 4 {
		return record.Ban{}, false
	}
	untilMS, _ := strconv.ParseInt(f[0], 10, 64)
	createdMS, _ := strconv.ParseInt(f[1], 10, 64)
	until := time.UnixMilli(untilMS)
	if !now.Before(until) {
		return record.Ban{}, false
	}
	created := time.UnixMilli(createdMS)
	return record.Ban{Client: p, CIDR: true, Detection: "admin", Until: until, TTL: until.Sub(now), Count: 1,
		Replica: f[2], Reason: f[3], FirstSeen: created, LastSeen: created}, true
}
