package tokens

import (
	"hash/maphash"
	"strings"
	"sync"
)

// Bounds of an encoding's count cache.
const (
	// cacheMinLen is the shortest string cached: below it, counting
	// (~100 MB/s) costs little more than a lookup.
	cacheMinLen = 256
	// cacheShards spreads the lock over concurrent requests.
	cacheShards = 16
	// cacheShardBytes bounds the bytes of cached strings per shard (2 MiB
	// per encoding in all); a full shard is emptied and refills.
	cacheShardBytes = 128 << 10
	// cacheSeenMax bounds how many strings seen once a shard remembers
	// (by hash) before it forgets them all.
	cacheSeenMax = 4096
)

// countCache remembers the exact counts of long strings seen more than
// once: system prompts and earlier turns of a conversation come back with
// every request. A string is cached the second time it is counted (the
// first time only its 64-bit hash is noted), so a stream of one-off
// prompts costs a hash and a lookup per string and never fills the cache
// with strings that do not return. Entries are keyed by a copy of the
// string itself, so a hit returns the count of exactly that string. Safe
// for concurrent use.
type countCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu     sync.Mutex
	counts map[string]int
	bytes  int // len of every key in counts
	seen   map[uint64]struct{}
}

func newCountCache() *countCache {
	c := &countCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].counts = map[string]int{}
		c.shards[i].seen = map[uint64]struct{}{}
	}
	return c
}

// count returns e.count(s), from the cache when s was counted before.
// Strings shorter than cacheMinLen or longer than a shard's bound are
// counted straight away.
func (c *countCache) count(s string, e *encoding) int {
	if len(s) < cacheMinLen || len(s) > cacheShardBytes {
		return e.count(s)
	}
	h := maphash.String(c.seed, s)
	sh := &c.shards[h%cacheShards]
	sh.mu.Lock()
	if n, ok := sh.counts[s]; ok {
		sh.mu.Unlock()
		return n
	}
	_, again := sh.seen[h]
	if !again {
		if len(sh.seen) >= cacheSeenMax {
			clear(sh.seen)
		}
		sh.seen[h] = struct{}{}
	}
	sh.mu.Unlock()
	n := e.count(s)
	if again {
		sh.mu.Lock()
		if _, ok := sh.counts[s]; !ok {
			if sh.bytes+len(s) > cacheShardBytes {
				clear(sh.counts)
				sh.bytes = 0
			}
			// s may alias a request body: the key is a copy.
			sh.counts[strings.Clone(s)] = n
			sh.bytes += len(s)
		}
		delete(sh.seen, h)
		sh.mu.Unlock()
	}
	return n
}
