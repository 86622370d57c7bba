package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Reload is one configuration reload of one replica, for the console.
type Reload struct {
	Time         time.Time `json:"time"`
	Replica      string    `json:"replica"`
	Trigger      string    `json:"trigger"` // sighup, file_changed, start
	OK           bool      `json:"ok"`
	ConfigHash   string    `json:"config_hash,omitempty"`
	PreviousHash string    `json:"previous_hash,omitempty"`
	// Error is why a reload was refused (the running configuration
	// stayed). It carries file positions and key names, never values.
	Error string `json:"error,omitempty"`
	// NotApplied lists keys that changed but need a restart.
	NotApplied []string `json:"not_applied,omitempty"`
}

// AddReload records r at the head of the fleet's reload list, which keeps
// the last 50.
func (s *Redis) AddReload(ctx context.Context, r Reload) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("add reload: %w", err)
	}
	if err := s.begin(); err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.LPush(ctx, s.keys.Reloads(), b)
	pipe.LTrim(ctx, s.keys.Reloads(), 0, reloadsKept-1)
	pipe.PExpire(ctx, s.keys.Reloads(), reloadTTL)
	_, err = pipe.Exec(ctx)
	return s.end("add reload", err)
}

// Reloads returns up to n recent reloads, newest first.
func (s *Redis) Reloads(ctx context.Context, n int) ([]Reload, error) {
	if n <= 0 || n > reloadsKept {
		n = reloadsKept
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	v, err := s.rdb.LRange(ctx, s.keys.Reloads(), 0, int64(n-1)).Result()
	if err = s.end("reloads", err); err != nil {
		return nil, err
	}
	return decodeReloads(v), nil
}

func decodeReloads(v []string) []Reload {
	out := make([]Reload, 0, len(v))
	for _, s := range v {
		var r Reload
		if json.Unmarshal([]byte(s), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// AddReload records r in process.
func (s *Memory) AddReload(_ context.Context, r Reload) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("add reload: %w", err)
	}
	s.withHash(s.keys.Reloads(), true, reloadTTL, func(h map[string]string) {
		// Fields "0" (newest) .. "49": shift down, drop the oldest.
		for i := reloadsKept - 1; i > 0; i-- {
			if v, ok := h[itoa(int64(i-1))]; ok {
				h[itoa(int64(i))] = v
			}
		}
		h["0"] = string(b)
	})
	return nil
}

// Reloads returns up to n recent reloads, newest first.
func (s *Memory) Reloads(_ context.Context, n int) ([]Reload, error) {
	if n <= 0 || n > reloadsKept {
		n = reloadsKept
	}
	var v []string
	s.withHash(s.keys.Reloads(), false, 0, func(h map[string]string) {
		for i := 0; i < n; i++ {
			s, ok := h[itoa(int64(i))]
			if !ok {
				break
			}
			v = append(v, s)
		}
	})
	return decodeReloads(v), nil
}
