package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/ipfeed"
)

// IP blocklist feeds (ipfeed.Lease and ipfeed.SetStore on Redis):
//
//	<prefix>feed:{<name>}        hash    version, meta (JSON), set (binary
//	                                     encoding of the parsed list);
//	                                     TTL feedTTL, renewed on every write
//	<prefix>feed:{<name>}:lease  string  the replica fetching the feed now;
//	                                     PX = the lease
//
// One hash tag per feed: the scripts touch one slot.

// feedTTL keeps a feed that left every replica's config from staying
// forever; every refresh renews it.
const feedTTL = 30 * 24 * time.Hour

func (k Keys) feed(name string) string      { return k.prefix + "feed:{" + name + "}" }
func (k Keys) feedLease(name string) string { return k.prefix + "feed:{" + name + "}:lease" }

// FeedLease returns the fleet's feed lease (ipfeed.Lease).
func (s *Redis) FeedLease(replica string) *FeedLease { return &FeedLease{s: s, replica: replica} }

// FeedLease is ipfeed.Lease on Redis: SET NX PX.
type FeedLease struct {
	s       *Redis
	replica string
}

// TryAcquire implements ipfeed.Lease.
func (l *FeedLease) TryAcquire(ctx context.Context, feed string, ttl time.Duration) (bool, error) {
	if err := l.s.begin(); err != nil {
		return false, err
	}
	ok, err := l.s.rdb.SetNX(ctx, l.s.keys.feedLease(feed), l.replica, ttl).Result()
	if err = l.s.end("feed lease", err); err != nil {
		return false, err
	}
	return ok, nil
}

// FeedStore returns the fleet's store of parsed feeds (ipfeed.SetStore).
func (s *Redis) FeedStore() *FeedStore { return &FeedStore{s: s} }

// FeedStore is ipfeed.SetStore on Redis, one hash per feed.
type FeedStore struct{ s *Redis }

// feedPutScript stores a newer version. KEYS: feed. ARGV: version, meta,
// set, ttl_ms. Returns 1, or 0 when the stored version is not older.
var feedPutScript = newLua(`
local v = tonumber(redis.call("HGET", KEYS[1], "version") or "0")
if tonumber(ARGV[1]) <= v then return 0 end
redis.call("HSET", KEYS[1], "version", ARGV[1], "meta", ARGV[2], "set", ARGV[3])
redis.call("PEXPIRE", KEYS[1], ARGV[4])
return 1
`)

// feedMetaScript replaces the meta of the stored version. KEYS: feed.
// ARGV: version, meta, ttl_ms. Returns 1, or 0 when the version differs.
var feedMetaScript = newLua(`
local v = tonumber(redis.call("HGET", KEYS[1], "version") or "0")
if tonumber(ARGV[1]) ~= v then return 0 end
redis.call("HSET", KEYS[1], "meta", ARGV[2])
if v == 0 then redis.call("HSET", KEYS[1], "version", "0") end
redis.call("PEXPIRE", KEYS[1], ARGV[3])
return 1
`)

// Put implements ipfeed.SetStore.
func (f *FeedStore) Put(ctx context.Context, feed string, set []byte, meta ipfeed.Meta) error {
	return f.write(ctx, feedPutScript, feed, meta, set)
}

// PutMeta implements ipfeed.SetStore.
func (f *FeedStore) PutMeta(ctx context.Context, feed string, meta ipfeed.Meta) error {
	return f.write(ctx, feedMetaScript, feed, meta, nil)
}

func (f *FeedStore) write(ctx context.Context, sc *lua, feed string, meta ipfeed.Meta, set []byte) error {
	m, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	if err := f.s.begin(); err != nil {
		return err
	}
	args := []any{meta.Version, m}
	if set != nil {
		args = append(args, set)
	}
	args = append(args, feedTTL.Milliseconds())
	n, err := sc.Run(ctx, f.s.rdb, []string{f.s.keys.feed(feed)}, args...).Int()
	if err = f.s.end("feed write", err); err != nil {
		return err
	}
	if n == 0 {
		return ipfeed.ErrConflict
	}
	return nil
}

// Meta implements ipfeed.SetStore.
func (f *FeedStore) Meta(ctx context.Context, feed string) (ipfeed.Meta, error) {
	if err := f.s.begin(); err != nil {
		return ipfeed.Meta{}, err
	}
	v, err := f.s.rdb.HGet(ctx, f.s.keys.feed(feed), "meta").Result()
	if errors.Is(err, redis.Nil) {
		f.s.br.success()
		return ipfeed.Meta{}, ipfeed.ErrNotFound
	}
	if err = f.s.end("feed meta", err); err != nil {
		return ipfeed.Meta{}, err
	}
	return decodeFeedMeta(v)
}

// Get implements ipfeed.SetStore.
func (f *FeedStore) Get(ctx context.Context, feed string) ([]byte, ipfeed.Meta, error) {
	if err := f.s.begin(); err != nil {
		return nil, ipfeed.Meta{}, err
	}
	vs, err := f.s.rdb.HMGet(ctx, f.s.keys.feed(feed), "set", "meta").Result()
	if err = f.s.end("feed get", err); err != nil {
		return nil, ipfeed.Meta{}, err
	}
	set, _ := vs[0].(string)
	meta, _ := vs[1].(string)
	if set == "" || meta == "" {
		return nil, ipfeed.Meta{}, ipfeed.ErrNotFound
	}
	m, err := decodeFeedMeta(meta)
	return []byte(set), m, err
}

func decodeFeedMeta(v string) (ipfeed.Meta, error) {
	var m ipfeed.Meta
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return ipfeed.Meta{}, fmt.Errorf("feed meta: %w", err)
	}
	return m, nil
}
