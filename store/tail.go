package store

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/record"
)

// Tailing the event stream for the console and the alerts.
//
// A tail blocks in XREAD (or XREADGROUP) for up to tailBlock on a client of
// its own with a single connection, so a blocked read never holds one of
// the pool's connections that requests wait for, and its failures never
// count against the request path's circuit breaker. One tail per process is
// enough: the console fans its batches out to every page and to the
// alerts.

const (
	tailBlock = 2 * time.Second
	tailCount = 500
	// tailPace and groupPace are the least time between two reads that
	// returned events: under a flood a read returns at once with the few
	// events written since the last, and a tight loop of small reads costs
	// Redis and this process far more than the same events in fewer,
	// larger batches. The live page waits at most tailPace more.
	tailPace  = 100 * time.Millisecond
	groupPace = time.Second
	// tailBackoffMax bounds the wait between attempts while Redis fails.
	tailBackoffMax = 5 * time.Second
)

// blockingClient returns a client for blocking reads: the store's
// options, one connection, and a read timeout that covers the block.
func (s *Redis) blockingClient() (redis.UniversalClient, error) {
	o, err := universalOptions(s.cfg)
	if err != nil {
		return nil, err
	}
	o.PoolSize, o.MinIdleConns, o.MaxIdleConns = 1, 0, 1
	o.ReadTimeout = tailBlock + time.Second
	o.WriteTimeout = time.Second
	o.PoolTimeout = tailBlock + 2*time.Second
	return redis.NewUniversalClient(o), nil
}

// tailLoop calls read until ctx ends, backing off while it fails.
func (s *Redis) tailLoop(ctx context.Context, op string, read func(ctx context.Context) error) {
	backoff := 100 * time.Millisecond
	failing := false
	for ctx.Err() == nil {
		err := read(ctx)
		if errors.Is(err, errStarted) {
			return
		}
		if err == nil || errors.Is(err, redis.Nil) {
			if failing {
				s.log.LogAttrs(ctx, slog.LevelInfo, "events_tail_recovered", slog.String("op", op))
			}
			failing, backoff = false, 100*time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if !failing {
			s.log.LogAttrs(ctx, slog.LevelWarn, "events_tail_failed", slog.String("op", op), slog.String("error", err.Error()))
		}
		failing = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, tailBackoffMax)
	}
}

func decodeMessages(msgs []redis.XMessage) []record.Event {
	out := make([]record.Event, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, eventFromFields(m.ID, m.Values))
	}
	return out
}

// TailEvents calls fn with each batch of events that any replica appends
// to the stream after the call, in stream order (per partition), until ctx
// ends. A Redis outage pauses it; it resumes after the last event it
// delivered, so a short outage loses nothing the stream still holds.
//
// With one partition it blocks in XREAD; with several (a Cluster: their
// keys sit in different slots, and one XREAD cannot span slots) it reads
// every partition without blocking, in one pipeline, every tailPace.
func (s *Redis) TailEvents(ctx context.Context, fn func([]record.Event)) {
	c, err := s.blockingClient()
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "events_tail_failed", slog.String("error", err.Error()))
		return
	}
	defer context.AfterFunc(ctx, func() { _ = c.Close() })() // interrupts a blocked read
	defer c.Close()
	n := s.keys.Partitions()
	last := make([]string, n)
	for p := range last {
		last[p] = "$"
	}
	if n > 1 {
		// "$" cannot be used without BLOCK: start from the newest entry
		// of each partition.
		s.tailLoop(ctx, "xrevrange", func(ctx context.Context) error {
			for p := range last {
				if last[p] != "$" {
					continue
				}
				msgs, err := c.XRevRangeN(ctx, s.keys.EventsPart(p), "+", "-", 1).Result()
				if err != nil {
					return err
				}
				last[p] = "0-0"
				if len(msgs) > 0 {
					last[p] = msgs[0].ID
				}
			}
			return errStarted
		})
	}
	s.tailLoop(ctx, "xread", func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, tailBlock+2*time.Second)
		defer cancel()
		if n == 1 {
			res, err := c.XRead(rctx, &redis.XReadArgs{Streams: []string{s.keys.EventsPart(0), last[0]}, Count: tailCount, Block: tailBlock}).Result()
			if err != nil {
				return err
			}
			got := 0
			for _, st := range res {
				if len(st.Messages) > 0 {
					got += len(st.Messages)
					last[0] = st.Messages[len(st.Messages)-1].ID
					fn(decodeMessages(st.Messages))
				}
			}
			pace(ctx, got, tailPace)
			return nil
		}
		pipe := c.Pipeline()
		cmds := make([]*redis.XStreamSliceCmd, n)
		for p := range cmds {
			cmds[p] = pipe.XRead(rctx, &redis.XReadArgs{Streams: []string{s.keys.EventsPart(p), last[p]}, Count: tailCount, Block: -1})
		}
		if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		full := false
		for p, cmd := range cmds {
			for _, st := range cmd.Val() {
				if len(st.Messages) > 0 {
					last[p] = st.Messages[len(st.Messages)-1].ID
					full = full || len(st.Messages) >= tailCount
					fn(decodeMessages(st.Messages))
				}
			}
		}
		if !full {
			pace(ctx, 1, tailPace)
		}
		return nil
	})
}

// errStarted ends a tailLoop that only had to succeed once.
var errStarted = errors.New("started")

// pace waits d after a read that returned fewer than a full batch (a full
// one: more are waiting, read on at once).
func pace(ctx context.Context, n int, d time.Duration) {
	if n == 0 || n >= tailCount {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ConsumeEvents calls fn with batches of new events through the consumer
// group: across every replica consuming with the same group, each event
// is delivered to one of them only. Delivery is at most once (NOACK: a
// replica that dies loses the batch it was handling, which is acceptable
// for counters and keeps the group's pending list empty). Each partition
// has its own group; with several they are read without blocking, in one
// pipeline, every groupPace.
func (s *Redis) ConsumeEvents(ctx context.Context, group, consumer string, fn func([]record.Event)) {
	c, err := s.blockingClient()
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "events_tail_failed", slog.String("error", err.Error()))
		return
	}
	defer context.AfterFunc(ctx, func() { _ = c.Close() })()
	defer c.Close()
	n := s.keys.Partitions()
	created := make([]bool, n)
	block := tailBlock
	if n > 1 {
		block = -1
	}
	s.tailLoop(ctx, "xreadgroup", func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, tailBlock+2*time.Second)
		defer cancel()
		for p := range created {
			if !created[p] {
				err := c.XGroupCreateMkStream(rctx, s.keys.EventsPart(p), group, "$").Err()
				if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
					return err
				}
				created[p] = true
			}
		}
		pipe := c.Pipeline()
		cmds := make([]*redis.XStreamSliceCmd, n)
		for p := range cmds {
			cmds[p] = pipe.XReadGroup(rctx, &redis.XReadGroupArgs{Group: group, Consumer: consumer,
				Streams: []string{s.keys.EventsPart(p), ">"}, Count: tailCount, Block: block, NoAck: true})
		}
		_, err := pipe.Exec(rctx)
		got := 0
		for p, cmd := range cmds {
			if redis.HasErrorPrefix(cmd.Err(), "NOGROUP") {
				created[p] = false // the stream was deleted: make the group again
			}
			for _, st := range cmd.Val() {
				if len(st.Messages) > 0 {
					got += len(st.Messages)
					fn(decodeMessages(st.Messages))
				}
			}
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if n > 1 {
			got = max(got, 1) // polling: always pace
		}
		pace(ctx, got, groupPace)
		return nil
	})
	// Leave the groups' consumer lists as we found them.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	for p := range n {
		_ = s.rdb.XGroupDelConsumer(dctx, s.keys.EventsPart(p), group, consumer).Err()
	}
}

// memoryTailEvery is how often a memory tail looks for new events.
const memoryTailEvery = 200 * time.Millisecond

// memoryTailScan bounds how many events one look examines, so that the
// tail holds the ring's lock (which Emit takes on the request path) only
// briefly; under a flood faster than this per look, the tail skips events.
const memoryTailScan = 5000

// memoryTailMark is how many of the newest delivered events a memory tail
// remembers to find its place again: a run of that many identical events
// in a row, at the same nanosecond, is what it would take to fool it.
const memoryTailMark = 8

// Tail calls fn with each batch of events stored after the call, oldest
// first, until ctx ends. It polls (the ring has no notification) and finds
// the new events above the run of newest events it delivered last time.
func (l *MemoryEvents) Tail(ctx context.Context, fn func([]record.Event)) {
	mark, _ := l.Query(ctx, record.EventQuery{Limit: memoryTailMark, Scan: memoryTailMark})
	t := time.NewTicker(memoryTailEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A small look first: between two looks few events arrive, and the
		// ring's lock (which Emit takes) is held while the look copies.
		evs, _ := l.Query(ctx, record.EventQuery{Limit: 256, Scan: 256})
		n := newAbove(evs, mark)
		if n == len(evs) && len(evs) == 256 {
			evs, _ = l.Query(ctx, record.EventQuery{Limit: memoryTailScan, Scan: memoryTailScan})
			n = newAbove(evs, mark)
		}
		if n == 0 {
			continue
		}
		batch := make([]record.Event, n)
		for i := range n {
			batch[i] = evs[n-1-i]
		}
		mark = append(mark[:0:0], evs[:min(len(evs), memoryTailMark)]...)
		fn(batch)
	}
}

// newAbove returns how many of evs (newest first) are newer than mark
// (the newest events seen before, newest first): the offset of the first
// run of evs that matches mark. Not found (the ring wrapped past it):
// all of evs.
func newAbove(evs, mark []record.Event) int {
	if len(mark) == 0 {
		return len(evs)
	}
	for i := 0; i < len(evs); i++ {
		n := min(len(mark), len(evs)-i)
		match := true
		for j := 0; j < n; j++ {
			if !reflect.DeepEqual(evs[i+j], mark[j]) {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return len(evs)
}
