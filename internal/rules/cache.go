package rules

import (
	"sync"
	"time"
)

// LookupCache keeps lookup answers in memory for a while: entries found
// for ttl, keys without an entry for missTTL (usually shorter, so a key
// just loaded is found soon). It holds at most size answers; when full,
// expired answers go first, then everything.
type LookupCache[K comparable] struct {
	ttl, missTTL time.Duration
	size         int
	now          func() time.Time

	mu sync.Mutex
	m  map[K]cachedLookup
}

type cachedLookup struct {
	values map[string]string // nil: no entry
	until  time.Time
}

// NewLookupCache makes a cache; a ttl of zero caches nothing. now is the
// clock (time.Now when nil).
func NewLookupCache[K comparable](ttl, missTTL time.Duration, size int, now func() time.Time) *LookupCache[K] {
	if now == nil {
		now = time.Now
	}
	if missTTL > ttl {
		missTTL = ttl
	}
	return &LookupCache[K]{ttl: ttl, missTTL: missTTL, size: size, now: now, m: map[K]cachedLookup{}}
}

// Get returns the cached answer for k: the entry's values (nil when the
// key has none) and whether an unexpired answer was cached.
func (c *LookupCache[K]) Get(k K) (values map[string]string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.until) {
		return nil, false
	}
	return e.values, true
}

// Put caches the answer for k; values nil means the key has no entry.
func (c *LookupCache[K]) Put(k K, values map[string]string) {
	ttl := c.ttl
	if values == nil {
		ttl = c.missTTL
	}
	if ttl <= 0 || c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.size {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.size {
			clear(c.m)
		}
	}
	c.m[k] = cachedLookup{values: values, until: now.Add(ttl)}
}

// Len is the number of answers held, expired ones included.
func (c *LookupCache[K]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
