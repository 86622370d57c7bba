package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
)

// MemoryConfig configures the in-process store.
type MemoryConfig struct {
	// MaxEntries caps the number of live keys (buckets, counters, bans);
	// when full, expired entries go first, then arbitrary ones, bans last.
	// Memory stays bounded whatever the number of distinct clients (a
	// token's set of clients, one entry, holds at most 1,024 of them).
	MaxEntries int `yaml:"max_entries"`
	// Escalation applies to automatic bans (bans.escalation in the file).
	Escalation Escalation `yaml:"-"`
	// Replica names this instance in bans.
	Replica string `yaml:"-"`
	// Now is the clock; nil uses time.Now. Tests and replays drive it.
	Now func() time.Time `yaml:"-"`
}

// DefaultMemoryConfig caps the store at 200,000 entries (a few tens of MB).
func DefaultMemoryConfig() MemoryConfig {
	return MemoryConfig{MaxEntries: 200_000, Escalation: DefaultEscalation()}
}

// Validate reports every problem in c.
func (c MemoryConfig) Validate() error {
	if c.MaxEntries <= 0 {
		return fmt.Errorf("max_entries: %d must be > 0", c.MaxEntries)
	}
	return nil
}

const memShards = 64

// Memory is the embedded single-instance store: the same verbs and the same
// semantics as Redis (the contract tests run against both), state not shared
// between processes.
type Memory struct {
	cfg      MemoryConfig
	keys     Keys
	seed     maphash.Seed
	shards   [memShards]memShard
	perShard int

	subMu sync.Mutex
	subs  map[int]func(record.BanEvent)
	subN  int
	cidr  map[string]record.Ban
}

type memEntry struct {
	expires time.Time // zero: no expiry
	num     float64   // GCRA TAT (seconds) or counter
	hash    map[string]string
	ban     bool // an active ban: evicted only when the shard holds nothing else
}

type memShard struct {
	mu sync.Mutex
	m  map[string]*memEntry
}

// NewMemory returns an empty store.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMemoryConfig().MaxEntries
	}
	if cfg.Escalation.Factor < 1 {
		cfg.Escalation = DefaultEscalation()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Memory{cfg: cfg, keys: NewKeys("gw:"), seed: maphash.MakeSeed(), subs: map[int]func(record.BanEvent){}}
	s.perShard = max(cfg.MaxEntries/memShards, 1)
	for i := range s.shards {
		s.shards[i].m = map[string]*memEntry{}
	}
	return s
}

// Shared reports false: this state lives in one process only.
func (s *Memory) Shared() bool { return false }

// Healthy is always true.
func (s *Memory) Healthy() bool { return true }

// LastError is always "".
func (s *Memory) LastError() string { return "" }

// Ping always succeeds.
func (s *Memory) Ping(context.Context) error { return nil }

// Close does nothing.
func (s *Memory) Close() error { return nil }

// Len returns the number of live entries (for tests and metrics).
func (s *Memory) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// shard returns the shard of a client: all of a client's keys live in one
// shard, so one lock covers a whole Check, as one Lua script does in Redis.
func (s *Memory) shard(client string) *memShard {
	return &s.shards[maphash.String(s.seed, client)%memShards]
}

// get returns a live entry or nil, dropping an expired one.
func (sh *memShard) get(key string, now time.Time) *memEntry {
	e := sh.m[key]
	if e != nil && !e.expires.IsZero() && !now.Before(e.expires) {
		delete(sh.m, key)
		return nil
	}
	return e
}

// put inserts or replaces key, evicting when the shard is full: expired
// entries first, else an arbitrary one that is not a ban (found in the
// same walk), else an arbitrary ban.
func (sh *memShard) put(key string, e *memEntry, now time.Time, limit int) {
	if _, ok := sh.m[key]; !ok && len(sh.m) >= limit {
		evicted := 0
		victim, found := "", false
		for k, old := range sh.m { // map order is random: arbitrary victims
			if !old.expires.IsZero() && !now.Before(old.expires) {
				delete(sh.m, k)
				evicted++
			} else if !found && !old.ban {
				victim, found = k, true
			}
			if evicted >= 8 {
				break
			}
		}
		if evicted == 0 && !found {
			for k := range sh.m { // nothing but bans
				victim, found = k, true
				break
			}
		}
		if evicted == 0 && found {
			delete(sh.m, victim)
		}
	}
	sh.m[key] = e
}

// gcra mirrors gcraLua exactly (same float arithmetic, same TTL rule).
func gcra(e *memEntry, now float64, limit detections.Limit) (res detections.RateResult, newTAT float64, store bool) {
	period := limit.Period.Seconds()
	emission := period / float64(limit.Rate)
	increment := emission
	burstOffset := emission * float64(limit.Burst)
	tat := now
	if e != nil {
		tat = e.num
	}
	tat = math.Max(tat, now)
	newTAT = tat + increment
	allowAt := newTAT - burstOffset
	diff := now - allowAt
	remaining := diff / emission
	if remaining < 0 {
		return detections.RateResult{Limit: limit, RetryAfter: secondsDur(-diff), ResetAfter: secondsDur(tat - now)}, 0, false
	}
	return detections.RateResult{Limit: limit, Allowed: 1, Remaining: int(remaining), RetryAfter: -1, ResetAfter: secondsDur(newTAT - now)}, newTAT, newTAT-now > 0
}

const jan2017 = 1483228800

func epochSeconds(t time.Time) float64 {
	return float64(t.Unix()-jan2017) + float64(t.Nanosecond()/1000)/1e6
}

// Check mirrors checkScript: it fills the same checkReply, which both
// stores turn into the answer. As on Redis (see Redis.Check), every
// subject is checked, whoever is banned: the answer is the client's ban,
// else the first banned subject's.
func (s *Memory) Check(_ context.Context, client string, q *detections.StateQuery) (detections.Check, error) {
	now := s.cfg.Now()
	out := s.check(client, q, now)
	if len(q.Subjects) == 0 {
		return out, nil
	}
	var banned *detections.Check
	if out.Ban == nil {
		out.State.Subjects = make([]detections.SubjectState, len(q.Subjects))
	}
	for i := range q.Subjects {
		sq := &q.Subjects[i]
		r := s.check(sq.Subject, &detections.StateQuery{RateLimit: sq.RateLimit, RateKey: sq.RateKey, BanAfter: sq.BanAfter,
			InvalidWindow: sq.InvalidWindow, CountInvalid: sq.CountInvalid}, now)
		switch {
		case out.Ban != nil || banned != nil:
		case r.Ban != nil:
			banned = &r
		default:
			out.State.Subjects[i] = detections.SubjectState{Subject: sq.Subject, Rate: r.State.Rate, Refused: r.State.Refused, Invalid: r.State.Invalid}
		}
	}
	if banned != nil {
		return *banned, nil
	}
	return out, nil
}

// check is one subject's part of Check.
func (s *Memory) check(client string, q *detections.StateQuery, now time.Time) detections.Check {
	sh := s.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var c checkReply
	if b := sh.get(s.keys.Ban(client), now); b != nil {
		c.banned, c.ttlMS = true, -1
		if !b.expires.IsZero() {
			c.ttlMS = max(b.expires.Sub(now).Milliseconds(), 1)
		}
		c.reason, c.detection, c.replica = b.hash["reason"], b.hash["detection"], b.hash["replica"]
		c.count, _ = parseIntLenient(b.hash["count"])
		c.firstSeenMS, _ = parseIntLenient(b.hash["first_seen"])
		res := c.result(client, q, now)
		if !b.expires.IsZero() {
			res.Ban.Until = b.expires
		}
		return res
	}
	c.allowed, c.retryAfter = 1, -1
	if !q.RateLimit.IsZero() {
		key := s.keys.Rate(client, q.RateKey)
		e := sh.get(key, now)
		res, tat, store := gcra(e, epochSeconds(now), q.RateLimit)
		if store {
			ttl := time.Duration(math.Ceil(res.ResetAfter.Seconds())) * time.Second
			sh.put(key, &memEntry{num: tat, expires: now.Add(ttl)}, now, s.perShard)
		}
		c.allowed, c.remaining = int64(res.Allowed), int64(res.Remaining)
		c.retryAfter, c.resetAfter = durSeconds(res.RetryAfter), durSeconds(res.ResetAfter)
		if res.Allowed == 0 && q.BanAfter > 0 {
			c.refused = s.incrLocked(sh, s.keys.Refused(client, q.RateKey), q.RateLimit.Period, now)
		}
	}
	if q.InvalidWindow > 0 {
		key := s.keys.Invalid(client)
		if q.CountInvalid {
			c.invalid = s.incrLocked(sh, key, q.InvalidWindow, now)
		} else if e := sh.get(key, now); e != nil {
			c.invalid = int64(e.num)
		}
	}
	return c.result(client, q, now)
}

// durSeconds is secondsDur's inverse.
func durSeconds(d time.Duration) float64 {
	if d == -1 {
		return -1
	}
	return d.Seconds()
}

func (s *Memory) incrLocked(sh *memShard, key string, window time.Duration, now time.Time) int64 {
	e := sh.get(key, now)
	if e == nil {
		e = &memEntry{expires: now.Add(window)}
		sh.put(key, e, now, s.perShard)
	}
	e.num++
	return int64(e.num)
}

// Incr mirrors incrScript.
func (s *Memory) Incr(_ context.Context, client string, window time.Duration) (int64, error) {
	now := s.cfg.Now()
	sh := s.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return s.incrLocked(sh, s.keys.Invalid(client), window, now), nil
}

// Allow runs the GCRA limit for a logical key; it is also the rate_limit
// detection's local fallback limiter.
func (s *Memory) Allow(ctx context.Context, key string, limit detections.Limit) (detections.RateResult, error) {
	now := s.cfg.Now()
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	k := s.keys.Rate(key, "")
	res, tat, store := gcra(sh.get(k, now), epochSeconds(now), limit)
	if store {
		ttl := time.Duration(math.Ceil(res.ResetAfter.Seconds())) * time.Second
		sh.put(k, &memEntry{num: tat, expires: now.Add(ttl)}, now, s.perShard)
	}
	return res, nil
}

// Ban mirrors banScript.
func (s *Memory) Ban(_ context.Context, req record.BanRequest) (record.Ban, error) {
	if req.Duration <= 0 {
		return record.Ban{}, errors.New("ban: duration must be > 0")
	}
	now := s.cfg.Now()
	sh := s.shard(req.Client)
	sh.mu.Lock()
	replica := req.Replica
	if replica == "" {
		replica = s.cfg.Replica
	}
	banKey := s.keys.Ban(req.Client)
	if e := sh.get(banKey, now); e != nil && req.Replace {
		// As banScript: the replacing ban names its replica, like a new one.
		until := now.Add(req.Duration)
		e.hash["reason"], e.hash["detection"], e.hash["replica"] = req.Reason, req.Detection, replica
		e.hash["last_seen"], e.hash["until"] = msString(now), msString(until)
		e.expires = until
		b := banFromHash(req.Client, e.hash, 0)
		b.TTL, b.Until, b.New = req.Duration, until, true
		sh.mu.Unlock()
		s.publish(record.BanEvent{Client: req.Client, Until: until})
		return b, nil
	}
	if e := sh.get(banKey, now); e != nil {
		e.hash["last_seen"] = msString(now)
		b := banFromHash(req.Client, e.hash, 0)
		if !e.expires.IsZero() {
			b.TTL, b.Until = e.expires.Sub(now), e.expires
		}
		sh.mu.Unlock()
		return b, nil
	}
	offKey := s.keys.Offender(req.Client)
	off := sh.get(offKey, now)
	if off == nil {
		off = &memEntry{hash: map[string]string{"first_seen": msString(now)}}
		sh.put(offKey, off, now, s.perShard)
	}
	off.num++
	off.expires = now.Add(s.cfg.Escalation.Memory)
	off.hash["strikes"] = itoa(int64(off.num))
	dur := req.Duration
	if req.Escalate {
		esc := s.cfg.Escalation
		f := float64(req.Duration) * math.Pow(esc.Factor, off.num-1)
		limit := float64(max(esc.Max, req.Duration))
		dur = time.Duration(math.Min(f, limit)).Truncate(time.Millisecond)
	}
	until := now.Add(dur)
	h := map[string]string{
		"reason": req.Reason, "detection": req.Detection, "replica": replica,
		"first_seen": off.hash["first_seen"], "last_seen": msString(now),
		"count": itoa(int64(off.num)), "until": msString(until),
	}
	sh.put(banKey, &memEntry{hash: h, expires: until, ban: true}, now, s.perShard)
	sh.mu.Unlock()
	b := banFromHash(req.Client, h, 0)
	b.TTL, b.Until, b.New = dur, until, true
	s.publish(record.BanEvent{Client: req.Client, Until: until})
	return b, nil
}

// Unban removes a ban.
func (s *Memory) Unban(_ context.Context, client string, forget bool) (bool, error) {
	now := s.cfg.Now()
	sh := s.shard(client)
	sh.mu.Lock()
	existed := sh.get(s.keys.Ban(client), now) != nil
	delete(sh.m, s.keys.Ban(client))
	if forget {
		delete(sh.m, s.keys.Offender(client))
	}
	sh.mu.Unlock()
	s.publish(record.BanEvent{Client: client, Unban: true})
	return existed, nil
}

// GetBan returns client's active ban; found is false when there is none.
func (s *Memory) GetBan(_ context.Context, client string) (record.Ban, bool, error) {
	now := s.cfg.Now()
	sh := s.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.get(s.keys.Ban(client), now)
	if e == nil {
		return record.Ban{}, false, nil
	}
	b := banFromHash(client, e.hash, 0)
	b.TTL, b.Until = e.expires.Sub(now), e.expires
	return b, true, nil
}

// BanCIDR bans a range.
func (s *Memory) BanCIDR(_ context.Context, prefix netip.Prefix, dur time.Duration, reason, replica string) (record.Ban, error) {
	if dur <= 0 {
		return record.Ban{}, errors.New("ban: duration must be > 0")
	}
	p := prefix.Masked().String()
	now := s.cfg.Now()
	b := record.Ban{Client: p, CIDR: true, Reason: reason, Detection: "admin", Replica: replica,
		FirstSeen: now, LastSeen: now, Until: now.Add(dur), TTL: dur, Count: 1, New: true}
	s.subMu.Lock()
	if s.cidr == nil {
		s.cidr = map[string]record.Ban{}
	}
	s.cidr[p] = b
	s.subMu.Unlock()
	s.publish(record.BanEvent{Client: p, CIDR: true})
	return b, nil
}

// UnbanCIDR lifts a range ban.
func (s *Memory) UnbanCIDR(_ context.Context, prefix netip.Prefix) (bool, error) {
	p := prefix.Masked().String()
	s.subMu.Lock()
	_, ok := s.cidr[p]
	delete(s.cidr, p)
	s.subMu.Unlock()
	s.publish(record.BanEvent{Client: p, CIDR: true})
	return ok, nil
}

// ListCIDRBans returns the active range bans.
func (s *Memory) ListCIDRBans(context.Context) ([]record.Ban, error) {
	now := s.cfg.Now()
	s.subMu.Lock()
	defer s.subMu.Unlock()
	var out []record.Ban
	for p, b := range s.cidr {
		if !now.Before(b.Until) {
			delete(s.cidr, p)
			continue
		}
		b.TTL = b.Until.Sub(now)
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Client < out[j].Client })
	return out, nil
}

// ListBans returns up to limit active bans, longest remaining first.
func (s *Memory) ListBans(_ context.Context, limit int) ([]record.Ban, error) {
	if limit <= 0 {
		limit = 1000
	}
	now := s.cfg.Now()
	var out []record.Ban
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if len(k) < len(s.keys.prefix)+5 || k[:len(s.keys.prefix)+5] != s.keys.prefix+"ban:{" {
				continue
			}
			if !e.expires.IsZero() && !now.Before(e.expires) {
				continue
			}
			c := clientFromTagged(k)
			b := banFromHash(c, e.hash, 0)
			b.TTL, b.Until = e.expires.Sub(now), e.expires
			out = append(out, b)
		}
		sh.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Until.After(out[j].Until) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// BanIndex returns up to limit active bans, longest-lasting first.
func (s *Memory) BanIndex(ctx context.Context, limit int) ([]record.Ban, error) {
	return s.ListBans(ctx, limit)
}

// FailingFor is always 0: the memory store does not fail.
func (s *Memory) FailingFor(time.Time) time.Duration { return 0 }

// Counters returns a client's counters under the same names as Redis.
func (s *Memory) Counters(_ context.Context, client string) (map[string]string, error) {
	now := s.cfg.Now()
	sh := s.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := map[string]string{}
	if e := sh.get(s.keys.Rate(client, ""), now); e != nil {
		out[CounterRateResetAfter] = resetAfter(e.num, now)
	}
	if e := sh.get(s.keys.Refused(client, ""), now); e != nil {
		out[CounterRateRefusals] = itoa(int64(e.num))
	}
	if e := sh.get(s.keys.Invalid(client), now); e != nil {
		out[CounterInvalid] = itoa(int64(e.num))
	}
	if e := sh.get(s.keys.Offender(client), now); e != nil {
		out[CounterStrikes] = e.hash["strikes"]
	}
	return out, nil
}

// SubscribeBans delivers this process's ban events to fn until ctx ends.
func (s *Memory) SubscribeBans(ctx context.Context, fn func(record.BanEvent)) {
	s.subMu.Lock()
	id := s.subN
	s.subN++
	s.subs[id] = fn
	s.subMu.Unlock()
	fn(record.BanEvent{Reset: true})
	<-ctx.Done()
	s.subMu.Lock()
	delete(s.subs, id)
	s.subMu.Unlock()
}

func (s *Memory) publish(ev record.BanEvent) {
	s.subMu.Lock()
	fns := make([]func(record.BanEvent), 0, len(s.subs))
	for _, fn := range s.subs {
		fns = append(fns, fn)
	}
	s.subMu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

func msString(t time.Time) string { return itoa(t.UnixMilli()) }

func itoa(n int64) string {
	return toString(n)
}

// spreadCap bounds the members Spread keeps per token: one entry of
// MaxEntries must stay small. It is far above credential_shared's
// max_clients (20 by default): the count saturates here, still above it.
const spreadCap = 1024

// Spread counts the distinct members (client keys) that used token within
// window, exactly, up to spreadCap (1,024) per token: from there on it
// reports 1,024, so a max_clients of 1,024 or more never fires on the
// memory store.
func (s *Memory) Spread(_ context.Context, token, member string, window time.Duration) (int64, error) {
	now := s.cfg.Now()
	sh := s.shard(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	key := s.keys.TokenSpread(token)
	e := sh.get(key, now)
	if e == nil {
		e = &memEntry{hash: map[string]string{}, expires: now.Add(window)}
		sh.put(key, e, now, s.perShard)
	}
	if len(e.hash) < spreadCap {
		e.hash[member] = ""
	}
	return int64(len(e.hash)), nil
}
