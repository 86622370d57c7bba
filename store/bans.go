package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/record"
)

// Ban puts a client on the blocklist (escalating repeat offenders when
// asked), indexes it and notifies every replica, in one pipelined round trip.
// A client already banned keeps its current ban.
func (s *Redis) Ban(ctx context.Context, req record.BanRequest) (record.Ban, error) {
	if err := s.begin(); err != nil {
		return record.Ban{}, err
	}
	if req.Duration <= 0 {
		return record.Ban{}, errors.New("ban: duration must be > 0")
	}
	esc := s.cfg.Escalation
	escalate := "0"
	if req.Escalate {
		escalate = "1"
	}
	replica := req.Replica
	if replica == "" {
		replica = s.cfg.Replica
	}
	maxMS := esc.Max.Milliseconds()
	if req.Duration > esc.Max {
		maxMS = req.Duration.Milliseconds()
	}
	replace := "0"
	if req.Replace {
		replace = "1"
	}
	v, err := banScript.Run(ctx, s.rdb, []string{s.keys.Ban(req.Client), s.keys.Offender(req.Client)},
		req.Reason, req.Detection, replica, req.Duration.Milliseconds(), escalate,
		esc.Factor, maxMS, esc.Memory.Milliseconds(), replace).Slice()
	if err = s.end("ban", err); err != nil {
		return record.Ban{}, err
	}
	if len(v) < 9 {
		return record.Ban{}, fmt.Errorf("ban: unexpected reply of %d elements", len(v))
	}
	b := record.Ban{
		Client:    req.Client,
		TTL:       time.Duration(toInt(v[1])) * time.Millisecond,
		FirstSeen: time.UnixMilli(toInt(v[2])),
		Count:     toInt(v[3]),
		Until:     time.UnixMilli(toInt(v[4])),
		Reason:    toString(v[5]),
		Detection: toString(v[6]),
		Replica:   toString(v[7]),
		LastSeen:  time.UnixMilli(toInt(v[8])),
		New:       toInt(v[0]) == 1,
	}
	if b.New {
		// The ban is written: from here on a failure only costs the index
		// entry or the notification, so it is logged and counted (breaker,
		// LastError) but the ban is reported as made.
		idxKeys := []string{s.keys.BanIndexOf(req.Client)}
		pipe := s.rdb.Pipeline()
		indexScript.EvalSha(ctx, pipe, idxKeys, req.Client, b.Until.UnixMilli())
		pipe.Publish(ctx, s.keys.BanChannel(), encodeBanEvent(record.BanEvent{Client: req.Client, Until: b.Until}))
		_, err := pipe.Exec(ctx)
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			// Script.Run's EVAL fallback cannot work in a pipeline (the
			// error is only known after Exec): send the source once; EVAL
			// also caches it for the next EVALSHA.
			err = indexScript.Eval(ctx, s.rdb, idxKeys, req.Client, b.Until.UnixMilli()).Err()
		}
		if err = s.end("ban index", err); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "ban_index_failed", slog.String("client", req.Client), slog.String("error", err.Error()))
		}
	}
	return b, nil
}

// Unban removes a client's ban and notifies every replica; its escalation
// history stays unless forget is set. It reports whether a ban existed.
func (s *Redis) Unban(ctx context.Context, client string, forget bool) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	pipe := s.rdb.Pipeline()
	del := pipe.Del(ctx, s.keys.Ban(client))
	if forget {
		pipe.Del(ctx, s.keys.Offender(client))
	}
	pipe.ZRem(ctx, s.keys.BanIndexOf(client), client)
	pipe.Publish(ctx, s.keys.BanChannel(), encodeBanEvent(record.BanEvent{Client: client, Unban: true}))
	_, err := pipe.Exec(ctx)
	if err = s.end("unban", err); err != nil {
		return false, err
	}
	return del.Val() > 0, nil
}

// GetBan returns client's active ban; found is false when there is none.
func (s *Redis) GetBan(ctx context.Context, client string) (b record.Ban, found bool, err error) {
	if err := s.begin(); err != nil {
		return record.Ban{}, false, err
	}
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, s.keys.Ban(client))
	ttl := pipe.PTTL(ctx, s.keys.Ban(client))
	_, err = pipe.Exec(ctx)
	if err = s.end("get ban", err); err != nil {
		return record.Ban{}, false, err
	}
	if len(h.Val()) == 0 {
		return record.Ban{}, false, nil
	}
	return banFromHash(client, h.Val(), ttl.Val()), true, nil
}

func banFromHash(client string, h map[string]string, ttl time.Duration) record.Ban {
	ms := func(k string) time.Time {
		n, _ := strconv.ParseInt(h[k], 10, 64)
		if n == 0 {
			return time.Time{}
		}
		return time.UnixMilli(n)
	}
	count, _ := strconv.ParseInt(h["count"], 10, 64)
	b := record.Ban{
		Client: client, Reason: h["reason"], Detection: h["detection"], Replica: h["replica"],
		FirstSeen: ms("first_seen"), LastSeen: ms("last_seen"), Until: ms("until"), Count: count,
	}
	if ttl > 0 {
		b.TTL = ttl
		b.Until = time.Now().Add(ttl).Truncate(time.Millisecond)
	}
	return b
}

// ListBans returns up to limit active bans, soonest expiry last.
func (s *Redis) ListBans(ctx context.Context, limit int) ([]record.Ban, error) {
	idx, err := s.BanIndex(ctx, limit)
	if err != nil || len(idx) == 0 {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	hs := make([]*redis.MapStringStringCmd, len(idx))
	ttls := make([]*redis.DurationCmd, len(idx))
	for i, b := range idx {
		hs[i] = pipe.HGetAll(ctx, s.keys.Ban(b.Client))
		ttls[i] = pipe.PTTL(ctx, s.keys.Ban(b.Client))
	}
	_, err = pipe.Exec(ctx)
	if err = s.end("list bans", err); err != nil {
		return nil, err
	}
	out := make([]record.Ban, 0, len(idx))
	for i, b := range idx {
		if len(hs[i].Val()) == 0 {
			continue // unbanned or expired since the index was read
		}
		out = append(out, banFromHash(b.Client, hs[i].Val(), ttls[i].Val()))
	}
	return out, nil
}

// BanIndex returns up to limit active bans from the index (client and
// expiry only), longest-lasting first, merged from every partition (one
// pipeline). Replicas load it at start and after every reconnection so
// that a fresh replica knows the bans an old one does.
func (s *Redis) BanIndex(ctx context.Context, limit int) ([]record.Ban, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	now := time.Now()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, s.keys.Partitions())
	for p := range cmds {
		cmds[p] = pipe.ZRevRangeByScoreWithScores(ctx, s.keys.BanIndex(p), &redis.ZRangeBy{
			Min: strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf", Count: int64(limit),
		})
	}
	_, err := pipe.Exec(ctx)
	if err = s.end("ban index", err); err != nil {
		return nil, err
	}
	var out []record.Ban
	for _, cmd := range cmds {
		for _, z := range cmd.Val() {
			c, ok := z.Member.(string)
			if !ok {
				continue
			}
			until := time.UnixMilli(int64(z.Score))
			out = append(out, record.Ban{Client: c, Until: until, TTL: until.Sub(now)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Until.After(out[j].Until) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func toInt(v any) int64 {
	switch t := v.(type) {
	case int64:
		return t
	case string:
		n, _ := parseIntLenient(t)
		return n
	case float64:
		return int64(t)
	}
	return 0
}

func toString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case int64:
		return strconv.FormatInt(t, 10)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
