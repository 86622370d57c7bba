package payload

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"

	"github.com/rampartgw/rampart/detections"
)

// DefaultCleanCache is the default size of the clean-value cache (entries;
// 8 bytes each: 512 KiB per payload detection).
const DefaultCleanCache = 1 << 16

// maxCleanCache bounds the setting (128 MiB of entries).
const maxCleanCache = 1 << 24

// cleanCache remembers header and cookie values that no analyzer found
// anything in, so that the values every request repeats (a browser's
// User-Agent, its cookies, an API client's headers) are analysed once per
// value, not once per request.
//
// What a header or cookie field scores is a function of its kind, whether
// it is a name or a value, its name and its value, and of the detection's
// configuration alone: no analyzer reads the request around such a field
// (the method, the referer, the body: those matter for query, form and
// body fields only, which are never cached), and the analyzers keep no
// state between fields. The cache belongs to one Detection (one
// configuration): a reload builds a new one, empty. Only values no
// analyzer returned a finding for are stored (a finding silenced by an
// exclusion or below the threshold is still a finding), so what is cached
// is "nothing to see here" under every route and mode.
//
// An entry is the field's 64-bit hash under a random per-process seed: a
// client cannot aim a value at a cached hash it cannot compute. The table
// is direct-mapped and lock-free: a new value overwrites whatever shared
// its slot, so a flood of distinct values costs the flooder's own
// requests their full analysis and evicts, never adds, work.
type cleanCache struct {
	seed  maphash.Seed
	slots []atomic.Uint64
	mask  uint64
}

// newCleanCache returns a cache of at least n entries (a power of two), or
// nil when n <= 0 (off).
func newCleanCache(n int) *cleanCache {
	if n <= 0 {
		return nil
	}
	size := uint64(1) << bits.Len64(uint64(n-1))
	return &cleanCache{seed: maphash.MakeSeed(), slots: make([]atomic.Uint64, size), mask: size - 1}
}

// cacheable reports the fields whose score depends on the field alone.
func cacheable(f *detections.Field) bool {
	return f.Kind == detections.FieldHeader || f.Kind == detections.FieldCookie
}

// key hashes what a cacheable field's score depends on. It is never 0 (an
// empty slot).
func (c *cleanCache) key(f *detections.Field) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	var head [10]byte
	head[0] = byte(f.Kind)
	for i, b := range [...]bool{f.IsKey, f.URLEncoded, f.Plus} {
		if b {
			head[1] |= 1 << i
		}
	}
	n := uint64(len(f.Name))
	for i := 2; i < 10; i++ {
		head[i] = byte(n)
		n >>= 8
	}
	_, _ = h.Write(head[:])
	_, _ = h.WriteString(f.Name)
	_, _ = h.WriteString(f.Value)
	return h.Sum64() | 1
}

func (c *cleanCache) has(k uint64) bool { return c.slots[k&c.mask].Load() == k }

func (c *cleanCache) add(k uint64) { c.slots[k&c.mask].Store(k) }
