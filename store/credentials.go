package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartgw/rampart/detections/jwt"
)

// The credential keys (jwt:alg, jwt:ws, tokip) are listed and built in
// keys.go with the rest of the schema.

// JWTAlgStore is the jwt.AlgStore on Redis: every replica learns an
// issuer's algorithms from the same keys.
type JWTAlgStore struct {
	s                 *Redis
	learnTTL, sightTT time.Duration
}

// JWTAlgStore returns the store of issuers' algorithm families.
func (s *Redis) JWTAlgStore(learnTTL, sightingTTL time.Duration) *JWTAlgStore {
	return &JWTAlgStore{s: s, learnTTL: learnTTL, sightTT: sightingTTL}
}

func (a *JWTAlgStore) key(k string) string { return a.s.keys.JWTAlg(k) }

// Learned implements jwt.AlgStore.
func (a *JWTAlgStore) Learned(ctx context.Context, key string) (jwt.AlgFamilies, error) {
	if err := a.s.begin(); err != nil {
		return 0, err
	}
	v, err := a.s.rdb.Get(ctx, a.key(key)).Int()
	if err = a.s.end("jwt learned", err); err != nil {
		return 0, err
	}
	return jwt.AlgFamilies(v), nil
}

// Sight implements jwt.AlgStore: a HyperLogLog of witnesses per family.
func (a *JWTAlgStore) Sight(ctx context.Context, key string, fam jwt.AlgFamily, witness string) (int, error) {
	if err := a.s.begin(); err != nil {
		return 0, err
	}
	k := a.s.keys.JWTAlgSighting(key, int(fam))
	pipe := a.s.rdb.Pipeline()
	pipe.PFAdd(ctx, k, witness)
	pipe.ExpireNX(ctx, k, a.sightTT)
	n := pipe.PFCount(ctx, k)
	_, err := pipe.Exec(ctx)
	if err = a.s.end("jwt sight", err); err != nil {
		return 0, err
	}
	return int(n.Val()), nil
}

// learnScript ORs a family into the bitmask and refreshes the TTL.
// KEYS: learnt. ARGV: family bit, ttl_ms.
var learnScript = newLua(`
local v = tonumber(redis.call("GET", KEYS[1]) or "0")
local bit = tonumber(ARGV[1])
if math.floor(v / bit) % 2 == 0 then v = v + bit end
redis.call("SET", KEYS[1], v, "PX", ARGV[2])
return v
`)

// Learn implements jwt.AlgStore.
func (a *JWTAlgStore) Learn(ctx context.Context, key string, fam jwt.AlgFamily) error {
	if err := a.s.begin(); err != nil {
		return err
	}
	err := learnScript.Run(ctx, a.s.rdb, []string{a.key(key)}, int(fam), a.learnTTL.Milliseconds()).Err()
	return a.s.end("jwt learn", err)
}

// JWTSecretCache is the jwt.SecretCache on Redis: a weak-secret verdict is
// found once for the whole fleet.
type JWTSecretCache struct{ s *Redis }

// JWTSecretCache returns the weak-secret verdict cache.
func (s *Redis) JWTSecretCache() *JWTSecretCache { return &JWTSecretCache{s: s} }

func (c *JWTSecretCache) key(k string) string { return c.s.keys.JWTSecret(k) }

// Load implements jwt.SecretCache.
func (c *JWTSecretCache) Load(ctx context.Context, key string) (jwt.SecretVerdict, bool, error) {
	if err := c.s.begin(); err != nil {
		return jwt.SecretVerdict{}, false, err
	}
	v, err := c.s.rdb.Get(ctx, c.key(key)).Result()
	if errors.Is(err, redis.Nil) {
		c.s.br.success()
		return jwt.SecretVerdict{}, false, nil
	}
	if err = c.s.end("jwt secret load", err); err != nil {
		return jwt.SecretVerdict{}, false, err
	}
	weak, id, _ := strings.Cut(v, " ")
	if weak == "claim" {
		return jwt.SecretVerdict{}, false, nil
	}
	return jwt.SecretVerdict{Weak: weak == "1", SecretID: id}, true, nil
}

// Store implements jwt.SecretCache.
func (c *JWTSecretCache) Store(ctx context.Context, key string, v jwt.SecretVerdict, ttl time.Duration) error {
	if err := c.s.begin(); err != nil {
		return err
	}
	val := "0"
	if v.Weak {
		val = "1 " + v.SecretID
	}
	return c.s.end("jwt secret store", c.s.rdb.Set(ctx, c.key(key), val, ttl).Err())
}

// Claim implements jwt.SecretCache (SET NX).
func (c *JWTSecretCache) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := c.s.begin(); err != nil {
		return false, err
	}
	ok, err := c.s.rdb.SetNX(ctx, c.key(key), "claim", ttl).Result()
	if err = c.s.end("jwt secret claim", err); err != nil {
		return false, err
	}
	return ok, nil
}

// Spread adds member (a client key) to the set of clients that used token
// (a hashed identity) within window, and returns how many distinct ones
// there are (HyperLogLog: about 1 % error, 12 KiB at most per token).
func (s *Redis) Spread(ctx context.Context, token, member string, window time.Duration) (int64, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	k := s.keys.TokenSpread(token)
	pipe := s.rdb.Pipeline()
	pipe.PFAdd(ctx, k, member)
	pipe.ExpireNX(ctx, k, window)
	n := pipe.PFCount(ctx, k)
	_, err := pipe.Exec(ctx)
	if err = s.end("spread", err); err != nil {
		return 0, err
	}
	return n.Val(), nil
}
