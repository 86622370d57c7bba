package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// TicketKeySource hands every replica the same TLS session-ticket keys, so
// a session made on one replica resumes on any other behind the load
// balancer (a tlsconf.KeySource).
//
// Time is cut into epochs of `rotation`; each epoch has one random key,
// made by whichever replica asks first (SET NX, crypto/rand), up to one
// epoch ahead, and kept for kept+3 epochs from then (so it outlives the
// kept previous epochs). A replica gets [current, next, previous...]: it encrypts
// with the current epoch's key, and already decrypts with the next one,
// so when the epoch turns no replica meets a ticket it cannot read. Keys
// are never logged.
type TicketKeySource struct {
	s        *Redis
	rotation time.Duration
	kept     int
	now      func() time.Time
}

// TicketKeys returns the source of s.
func (s *Redis) TicketKeys(rotation time.Duration, kept int) *TicketKeySource {
	return &TicketKeySource{s: s, rotation: max(rotation, time.Minute), kept: max(kept, 0), now: time.Now}
}

// TicketKeys implements tlsconf.KeySource.
func (t *TicketKeySource) TicketKeys(ctx context.Context) ([][32]byte, error) {
	if err := t.s.begin(); err != nil {
		return nil, err
	}
	epoch := t.now().UnixNano() / int64(t.rotation)
	ttl := time.Duration(t.kept+2) * t.rotation
	pipe := t.s.rdb.Pipeline()
	for _, e := range []int64{epoch, epoch + 1} {
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			return nil, fmt.Errorf("ticket key: %w", err)
		}
		pipe.SetNX(ctx, t.s.keys.TicketKey(e), k[:], ttl+t.rotation)
	}
	epochs := []int64{epoch, epoch + 1}
	for i := 1; i <= t.kept; i++ {
		epochs = append(epochs, epoch-int64(i))
	}
	names := make([]string, len(epochs))
	for i, e := range epochs {
		names[i] = t.s.keys.TicketKey(e)
	}
	get := pipe.MGet(ctx, names...)
	_, err := pipe.Exec(ctx)
	if err = t.s.end("ticket keys", err); err != nil {
		return nil, err
	}
	var out [][32]byte
	for _, v := range get.Val() {
		s, ok := v.(string)
		if !ok || len(s) != 32 {
			continue // an epoch that was never used
		}
		var k [32]byte
		copy(k[:], s)
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("ticket keys: none stored")
	}
	return out, nil
}

// TicketKey is the session-ticket key of an epoch. Every ticket key shares
// one hash tag: MGET reads them in one round trip on a cluster too.
func (k Keys) TicketKey(epoch int64) string {
	return k.prefix + "{tls}:ticket:" + strconv.FormatInt(epoch, 10)
}
