package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// breaker is a circuit breaker: after `threshold` consecutive failures it
// opens for `cooldown`, during which calls fail at once (microseconds, not a
// timeout). Then one probe call is let through: success closes the circuit,
// failure reopens it.
type breaker struct {
	threshold int32
	cooldown  time.Duration
	onChange  func(open bool)

	failures  atomic.Int32
	failSince atomic.Int64 // unix nanos of the first failure of the streak; 0 when the last call succeeded
	openUntil atomic.Int64 // unix nanos; 0 when closed
	probing   atomic.Bool
	mu        sync.Mutex // serialises state changes (not the fast path)
}

func newBreaker(threshold int, cooldown time.Duration, onChange func(bool)) *breaker {
	if threshold <= 0 {
		threshold = 5
	}
	if cooldown <= 0 {
		cooldown = time.Second
	}
	return &breaker{threshold: int32(threshold), cooldown: cooldown, onChange: onChange}
}

func (b *breaker) isOpen() bool { return b.openUntil.Load() != 0 }

// allow reports whether a call may proceed.
func (b *breaker) allow() bool {
	until := b.openUntil.Load()
	if until == 0 {
		return true
	}
	if time.Now().UnixNano() < until {
		return false
	}
	// Half-open: exactly one probe at a time.
	return b.probing.CompareAndSwap(false, true)
}

// failingFor is how long calls have failed without a success in between.
func (b *breaker) failingFor(now time.Time) time.Duration {
	since := b.failSince.Load()
	if since == 0 {
		return 0
	}
	return max(time.Duration(now.UnixNano()-since), time.Nanosecond)
}

func (b *breaker) success() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	if b.failSince.Load() != 0 {
		b.failSince.Store(0)
	}
	if b.openUntil.Load() == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.Load() != 0 {
		b.openUntil.Store(0)
		b.probing.Store(false)
		if b.onChange != nil {
			b.onChange(false)
		}
	}
}

// abandon records a call that ended because its caller gave up (context
// cancelled): Redis neither succeeded nor failed, so the streak and the
// circuit stay as they are. A cancelled half-open probe gives its slot back,
// or no probe would ever run again.
func (b *breaker) abandon() {
	if b.openUntil.Load() != 0 {
		b.probing.CompareAndSwap(true, false)
	}
}

func (b *breaker) failure() {
	b.failSince.CompareAndSwap(0, time.Now().UnixNano())
	n := b.failures.Add(1)
	if b.probing.Load() {
		// The probe failed: stay open for another cooldown.
		b.openUntil.Store(time.Now().Add(b.cooldown).UnixNano())
		b.probing.Store(false)
		return
	}
	if n < b.threshold || b.openUntil.Load() != 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.Load() == 0 {
		b.openUntil.Store(time.Now().Add(b.cooldown).UnixNano())
		if b.onChange != nil {
			b.onChange(true)
		}
	}
}
