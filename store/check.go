package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/record"
)

// Check is the hot path: blocklist lookup, rate limit and enumeration
// counter for one request, in one round trip. The call, including waiting
// for a pooled connection or for a pipelined reply, never takes longer
// than Config.Timeout, however many requests are waiting.
//
// With q.Subjects (hashed identities), the client's script and every
// subject's go out together in one pipeline, so each of them runs
// whatever the others find: when the client, or one subject, is banned,
// every other subject that is not still takes its token and bumps its
// refused and invalid counters. The answer is then the client's ban, else
// the first banned subject's (in q.Subjects' order). The memory store
// does the same.
func (s *Redis) Check(ctx context.Context, client string, q *detections.StateQuery) (detections.Check, error) {
	if err := s.begin(); err != nil {
		return detections.Check{}, err
	}
	if len(q.Subjects) > 0 {
		return s.checkSubjects(ctx, client, q)
	}
	args := s.checkLine(client, q.RateKey, q.RateLimit, q.BanAfter, q.InvalidWindow, q.CountInvalid)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	cmd, err := runHot(s, ctx, checkScript, args, redis.NewStringCmd)
	cancel()
	if err = s.end("check", err); err != nil {
		return detections.Check{}, err
	}
	text := cmd.Val()
	var c checkReply
	if err := c.parse(text); err != nil {
		return detections.Check{}, err
	}
	return c.result(client, q, time.Now()), nil
}

// checkLine is the command line of the check script for one subject (the
// client or a hashed identity): EVALSHA, the hash, its four keys, then
// ARGV (see checkScript). Every argument but the keys is boxed already
// (argTrue/argFalse, limitArgs' cache): one slice and the keys are all it
// allocates.
func (s *Redis) checkLine(subject, bucket string, rl detections.Limit, banAfter int, window time.Duration, countInvalid bool) []any {
	keys := s.keys.check(subject, bucket)
	doRL, countRefused, ci := argFalse, argFalse, argFalse
	if !rl.IsZero() {
		doRL = argTrue
		if banAfter > 0 {
			countRefused = argTrue
		}
	}
	if countInvalid {
		ci = argTrue
	}
	la := s.limitArgs(rl, window)
	args := hotArgs(checkScript, keys[:], 7)
	return append(args, la.burst, la.rate, la.period, doRL, countRefused, la.window, ci)
}

// checkSubjects runs the check script for the client and for each other
// subject (a hashed identity) in one pipeline: one round trip on one node,
// one per node on a cluster (each subject's keys share its hash tag).
func (s *Redis) checkSubjects(ctx context.Context, client string, q *detections.StateQuery) (detections.Check, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	lines := make([][]any, 1+len(q.Subjects))
	lines[0] = s.checkLine(client, q.RateKey, q.RateLimit, q.BanAfter, q.InvalidWindow, q.CountInvalid)
	for i := range q.Subjects {
		sq := &q.Subjects[i]
		lines[i+1] = s.checkLine(sq.Subject, sq.RateKey, sq.RateLimit, sq.BanAfter, sq.InvalidWindow, sq.CountInvalid)
	}
	cmds := make([]*redis.StringCmd, len(lines))
	pipe := s.rdb.Pipeline()
	add := func(i int, line []any) {
		cmds[i] = redis.NewStringCmd(ctx, line...)
		cmds[i].SetFirstKeyPos(3)
		_ = pipe.Process(ctx, cmds[i])
	}
	for i, line := range lines {
		add(i, line)
	}
	_, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The script cache was empty (a fresh or restarted Redis). Another
		// client may have loaded the script while this pipeline ran, so
		// some calls may have run: each call that did not run is sent
		// again, with its source, and only those (a second run would
		// take a second token).
		err = nil
		pipe = s.rdb.Pipeline()
		resent := 0
		for i, c := range cmds {
			if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
				// A fresh slice: the first command still references its own.
				src := slices.Clone(lines[i])
				src[0], src[1] = "eval", checkScript.src
				add(i, src)
				resent++
			} else if c.Err() != nil && err == nil {
				err = c.Err()
			}
		}
		if err == nil && resent > 0 {
			_, err = pipe.Exec(ctx)
		}
	}
	if err = s.end("check", err); err != nil {
		return detections.Check{}, err
	}
	now := time.Now()
	var out detections.Check
	for i, cmd := range cmds {
		var c checkReply
		if err := c.parse(cmd.Val()); err != nil {
			return detections.Check{}, err
		}
		if i == 0 {
			out = c.result(client, q, now)
			if out.Ban != nil {
				return out, nil
			}
			out.State.Subjects = make([]detections.SubjectState, len(q.Subjects))
			continue
		}
		sq := &q.Subjects[i-1]
		r := c.result(sq.Subject, &detections.StateQuery{RateLimit: sq.RateLimit}, now)
		if r.Ban != nil {
			return r, nil
		}
		out.State.Subjects[i-1] = detections.SubjectState{Subject: sq.Subject, Rate: r.State.Rate, Refused: r.State.Refused, Invalid: r.State.Invalid}
	}
	return out, nil
}

// argTrue and argFalse are the scripts' flags, boxed once.
var argTrue, argFalse any = "1", "0"

// hotArgs starts the command line of a hot-path script call: EVALSHA, the
// script's hash, the key count and the keys, with room for nargs
// arguments. Built once and handed to go-redis as is, it is the only copy
// of the call's arguments (each key is boxed once, the rest are constants
// or cached, see limitArgs).
func hotArgs(sc *lua, keys []string, nargs int) []any {
	args := make([]any, 3, 3+len(keys)+nargs)
	args[0], args[1], args[2] = "evalsha", sc.hash, len(keys)
	for _, k := range keys {
		args = append(args, k)
	}
	return args
}

// runHot runs a hot-path script call (args from hotArgs): straight on a
// pooled connection at low concurrency, through the autopipeline under
// load (see autoPipelineFrom). Either way the wait ends at ctx's deadline:
// a pipelined call stuck behind a stalled batch is abandoned, not waited
// for. A server without the script gets it once with EVAL, as go-redis'
// Script.Run does. C is the reply's own type (*redis.StringCmd for the
// check, *redis.IntCmd for a counter): the reply is not boxed.
func runHot[C redis.Cmder](s *Redis, ctx context.Context, sc *lua, args []any, newCmd func(context.Context, ...any) C) (C, error) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	direct := s.ap == nil || n <= autoPipelineFrom
	cmd, err := sendHot(s, ctx, direct, args, newCmd)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A fresh slice: the first command may still be referenced.
		src := slices.Clone(args)
		src[0], src[1] = "eval", sc.src
		cmd, err = sendHot(s, ctx, direct, src, newCmd)
	}
	return cmd, err
}

func sendHot[C redis.Cmder](s *Redis, ctx context.Context, direct bool, args []any, newCmd func(context.Context, ...any) C) (C, error) {
	cmd := newCmd(ctx, args...)
	cmd.SetFirstKeyPos(3)
	if direct {
		_ = s.rdb.Process(ctx, cmd)
		return cmd, cmd.Err()
	}
	if err := s.ap.Submit(ctx, cmd).WaitContext(ctx); err != nil {
		return cmd, err
	}
	return cmd, cmd.Err()
}

func (s *Redis) limitArgs(l detections.Limit, window time.Duration) *limitArgs {
	k := limitKey{l, window}
	if v, ok := s.argCache.Load(k); ok {
		return v.(*limitArgs)
	}
	a := &limitArgs{
		burst:  strconv.Itoa(l.Burst),
		rate:   strconv.Itoa(l.Rate),
		period: strconv.FormatFloat(l.Period.Seconds(), 'f', -1, 64),
		window: strconv.FormatInt(window.Milliseconds(), 10),
	}
	s.argCache.Store(k, a) // a handful of distinct limits per process
	return a
}

// checkReply is the check script's answer, field by field, as documented
// at checkScript. The Redis store parses it from the script's reply by
// name; the memory store fills it directly; both turn it into a
// detections.Check with result, so the two stores cannot disagree on what
// an answer means.
type checkReply struct {
	banned bool
	// When banned.
	ttlMS                   int64 // -1: no expiry
	reason, detection       string
	count, firstSeenMS      int64
	replica                 string
	allowed, remaining      int64
	retryAfter, resetAfter  float64 // seconds; -1: not applicable
	refused, invalid        int64
	sawBanned, sawRateState bool
}

var errCheckReply = errors.New("check: malformed script reply")

// parse reads "name=value" lines. Unknown names are ignored (a newer
// script may add fields); a missing banned field is an error.
func (c *checkReply) parse(text string) error {
	for text != "" {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%w: %q", errCheckReply, line)
		}
		var err error
		switch name {
		case "banned":
			c.banned, c.sawBanned = value == "1", true
		case "ttl":
			c.ttlMS, err = strconv.ParseInt(value, 10, 64)
		case "reason":
			c.reason = value
		case "detection":
			c.detection = value
		case "count":
			c.count, err = parseIntLenient(value)
		case "first_seen":
			c.firstSeenMS, err = parseIntLenient(value)
		case "replica":
			c.replica = value
		case "allowed":
			c.allowed, err = strconv.ParseInt(value, 10, 64)
			c.sawRateState = true
		case "remaining":
			c.remaining, err = strconv.ParseInt(value, 10, 64)
		case "retry_after":
			c.retryAfter, err = strconv.ParseFloat(value, 64)
		case "reset_after":
			c.resetAfter, err = strconv.ParseFloat(value, 64)
		case "refused":
			c.refused, err = strconv.ParseInt(value, 10, 64)
		case "invalid":
			c.invalid, err = strconv.ParseInt(value, 10, 64)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", errCheckReply, name, err)
		}
	}
	if !c.sawBanned || (!c.banned && !c.sawRateState) {
		return errCheckReply
	}
	return nil
}

// parseIntLenient reads a hash field written by a ban (an integer, or a
// number Lua wrote with a fraction).
func parseIntLenient(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	return int64(f), err
}

// result turns the reply into the gateway's view.
func (c *checkReply) result(client string, q *detections.StateQuery, now time.Time) detections.Check {
	if c.banned {
		b := &record.Ban{
			Client: client, Reason: c.reason, Detection: c.detection, Count: c.count,
			FirstSeen: time.UnixMilli(c.firstSeenMS), Replica: c.replica,
		}
		if c.ttlMS > 0 { // -1: a ban without TTL, set by hand: permanent
			b.TTL = time.Duration(c.ttlMS) * time.Millisecond
			b.Until = now.Add(b.TTL)
		}
		return detections.Check{Ban: b}
	}
	var out detections.Check
	if !q.RateLimit.IsZero() {
		out.State.Rate = detections.RateResult{
			Limit:      q.RateLimit,
			Allowed:    int(c.allowed),
			Remaining:  int(c.remaining),
			RetryAfter: secondsDur(c.retryAfter),
			ResetAfter: secondsDur(c.resetAfter),
		}
	}
	out.State.Refused, out.State.Invalid = c.refused, c.invalid
	return out
}

// secondsDur mirrors redis_rate's conversion: -1 means "not applicable".
func secondsDur(f float64) time.Duration {
	if f == -1 {
		return -1
	}
	return time.Duration(f * float64(time.Second))
}

// Incr counts an invalid request for client in a fixed window shared by
// every replica (the enumeration counter).
func (s *Redis) Incr(ctx context.Context, client string, window time.Duration) (int64, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	args := append(hotArgs(incrScript, []string{s.keys.Invalid(client)}, 1), window.Milliseconds())
	cmd, err := runHot(s, ctx, incrScript, args, redis.NewIntCmd)
	if err = s.end("incr", err); err != nil {
		return 0, err
	}
	return cmd.Val(), nil
}

// Allow runs the shared GCRA limit for a logical key outside the hot path
// (same script, same keys as Check).
func (s *Redis) Allow(ctx context.Context, client string, limit detections.Limit) (detections.RateResult, error) {
	c, err := s.Check(ctx, client, &detections.StateQuery{RateLimit: limit})
	if err != nil {
		return detections.RateResult{}, err
	}
	if c.Ban != nil {
		return detections.RateResult{Limit: limit, RetryAfter: c.Ban.TTL, ResetAfter: c.Ban.TTL}, nil
	}
	return c.State.Rate, nil
}
