package picking

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/streamgate/streamgate/config"
)

// Prefix affinity.
//
// A model server's prefix cache (vLLM's automatic prefix caching, SGLang's
// radix cache) keeps the KV blocks of prompts it has served, keyed by token
// blocks whose hash chains the hash of the block before, so one block hash
// names the whole prefix up to it. A request whose prompt starts with a
// cached prefix skips that part of prefill. Streamgate cannot see the cache;
// it remembers instead which prompt blocks it routed to each endpoint
// recently and prefers the endpoint that holds the longest prefix.
//
// Blocks are bytes of the prompt as the caller gives it (the raw JSON of the
// messages), not tokens: identical JSON prefixes tokenize to identical token
// prefixes, so matching byte blocks is a sound approximation of matching
// token blocks, and it costs one hash pass (about 2 µs for 32 KiB) where
// tokenizing the same 32 KiB costs about 0.3 ms, far over the picking budget
// of 20 µs. The approximation errs only at the tail: a byte block boundary
// need not fall on a token block boundary, which shifts the matched share
// by less than a block.

// maxPromptBlocks bounds the blocks hashed per prompt (1 MiB at the default
// 256-byte block); the rest of a longer prompt is ignored. It bounds the
// per-pick cost and the scratch memory of a pick.
const maxPromptBlocks = 4096

// prefixSeed keys every block hash of the process. A per-process random
// seed keeps clients from crafting colliding prompts; the index lives only
// in memory, so the hashes never need to be stable across restarts.
var prefixSeed = maphash.MakeSeed()

// hashBlocks appends to dst the chained hashes of prompt's full blocks of
// blockBytes bytes, at most maxPromptBlocks of them, and returns dst. Hash i
// names bytes [0, (i+1)*blockBytes): it mixes hash i-1 with the block's own
// maphash. A trailing partial block is not hashed (servers cache only full
// blocks). Hashes are odd, so their low 32 bits are never 0 (0 marks an
// empty slot in the index). It does not allocate when dst has the
// capacity; about 11 GB/s (AES-based maphash).
func hashBlocks(dst []uint64, prompt []byte, blockBytes int) []uint64 {
	if blockBytes <= 0 {
		return dst
	}
	n := min(len(prompt)/blockBytes, maxPromptBlocks)
	var prev uint64
	for i := range n {
		prev = chain(prev, maphash.Bytes(prefixSeed, prompt[i*blockBytes:(i+1)*blockBytes])) | 1
		dst = append(dst, prev)
	}
	return dst
}

// chain combines the hash of a prefix with the hash of the block after it:
// prev*k + block is a bijection in each argument with the other fixed (k is
// odd), so two different (prefix, block) pairs collide only when the keyed
// block hashes do, and the murmur3 finalizer spreads the sum over all 64
// bits (the index picks a set from the high bits).
func chain(prev, block uint64) uint64 {
	x := prev*0x9e3779b97f4a7c15 + block
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// prefixWays is the associativity of the index: a block hash lives in one
// set of this many slots (64 bytes of keys, a cache line).
const prefixWays = 16

// prefixIndex is an endpoint's bounded set of the prompt block hashes
// recently routed to it: a set-associative cache, as CPU caches are. Each
// hash maps to one set of prefixWays slots; recording a hash into a full
// set evicts the set's least recently recorded slot, so eviction is least
// recently used within each set of 16 (a sharded LRU of shards of 16,
// which needs no list to relink on every touch).
//
// A slot keeps the low 32 bits of a hash (the high bits chose the set), so
// a lookup of a block not recorded matches by chance with odds of 16 in
// 2^32, and 64 endpoints' keys (64 KiB each by default) fit the CPU's TLB
// reach: a pick probes up to a few hundred random slots across them.
//
// Memory is fixed at creation: 12 bytes per slot (a 4-byte key and an
// 8-byte recency stamp), PrefixBlocks rounded up to a multiple of 16 slots,
// per endpoint: 192 KiB at the default 16384 blocks, 12 MiB for 64
// endpoints (48 MiB per endpoint at the largest, 4194304 blocks). Lookups
// (has) are lock-free atomic loads; records serialize on a mutex per
// endpoint (one record per pick, on the picked endpoint only). Nothing
// allocates after creation.
type prefixIndex struct {
	keys   []atomic.Uint32 // sets of prefixWays keys, a hash's low 32 bits; 0 is empty
	sets   uint64
	mu     sync.Mutex // serializes record; guards the fields below
	stamps []uint64   // recency of each slot; higher is newer
	clock  uint64     // last stamp given
}

// newPrefixIndex returns an index holding up to cfg.PrefixBlocks block
// hashes, or nil when prefix affinity is off (a zero prefix weight or no
// blocks).
func newPrefixIndex(cfg *config.Picking) *prefixIndex {
	if cfg == nil || cfg.PrefixBlocks <= 0 || (cfg.Weights != nil && cfg.Weights.Prefix <= 0) {
		return nil
	}
	return newPrefixIndexCap(cfg.PrefixBlocks)
}

// newPrefixIndexCap returns an index of capacity blocks rounded up to a
// whole set (at least one).
func newPrefixIndexCap(capacity int) *prefixIndex {
	sets := max((capacity+prefixWays-1)/prefixWays, 1)
	return &prefixIndex{
		keys:   make([]atomic.Uint32, sets*prefixWays),
		stamps: make([]uint64, sets*prefixWays),
		sets:   uint64(sets),
	}
}

// set returns the first slot of h's set: the high 32 bits of h scaled to
// the set count (multiply-shift, so any count works without a modulo).
func (x *prefixIndex) set(h uint64) int {
	return int((((h >> 32) * x.sets) >> 32) * prefixWays)
}

// has reports whether h was recorded and not evicted since. Safe for
// concurrent use with record; does not refresh h's recency (only routing
// does: the server caches what it is sent, not what it is compared on).
func (x *prefixIndex) has(h uint64) bool {
	return x.find(h) >= 0
}

// find returns the slot holding h, or -1. It compares all the set's keys
// without an early exit: a hit lands on a random way, so an early exit
// would mispredict a branch on most lookups.
func (x *prefixIndex) find(h uint64) int {
	s, k := x.set(h), uint32(h)
	keys := (*[prefixWays]atomic.Uint32)(x.keys[s : s+prefixWays])
	found := -1
	for i := range keys {
		if keys[i].Load() == k {
			found = s + i
		}
	}
	return found
}

// matched returns how many of hs, from the first, x holds: the index of
// the first block it does not hold. Zero for a nil index.
//
// It finds that first miss by galloping (probing blocks 0, 1, 3, 7, ...
// until a miss, then bisecting), in at most 2*log2(len(hs))+2 lookups
// instead of one per matched block. That is exact when the blocks x holds
// of a prompt form a prefix, which record's order keeps so: a block is
// recorded after (so is never older than) every block that extends it, and
// eviction takes the oldest of a set. It can overshoot only when eviction
// left a hole, a block evicted from a busier set while a later block
// survives in a quieter one; then the later block still proves that the
// whole prefix up to it was routed here, and the server's own cache, which
// evicts a chain from its tail, most likely still holds it. The linear walk
// costs one lookup per matched block per endpoint: 64 endpoints sharing a
// 8 KiB system prompt are 2048 lookups (about 20 µs), the galloping about
// 800.
func (x *prefixIndex) matched(hs []uint64) int {
	if x == nil || len(hs) == 0 || !x.has(hs[0]) {
		return 0
	}
	lo, step := 0, 1 // lo is held
	for lo+step < len(hs) && x.has(hs[lo+step]) {
		lo += step
		step *= 2
	}
	hi := min(lo+step, len(hs)) // hi is the end or not held
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if x.has(hs[mid]) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// matchPrefixes sets every candidate's prefix score: the share of
// s.blocks its endpoint holds from the first block.
func matchPrefixes(s *scratch) {
	if len(s.blocks) == 0 {
		return
	}
	n := float64(len(s.blocks))
	for i := range s.cands {
		c := &s.cands[i]
		c.prefix = float64(c.ep.prefix.matched(s.blocks)) / n
	}
}

// record marks the chained block hashes hs as routed to this endpoint now,
// evicting the least recently recorded slot of each full set. The deepest
// block is recorded first and the first block last, so a prefix shared by
// many prompts is always at least as recent as the blocks that extend it
// and outlives them. Safe for concurrent use; a nil index records nothing.
func (x *prefixIndex) record(hs []uint64) {
	if x == nil || len(hs) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := len(hs) - 1; i >= 0; i-- {
		x.clock++
		x.put(hs[i], x.clock)
	}
}

// put stores h with stamp in its set, refreshing it when present and
// otherwise replacing the oldest (or an empty) slot. Caller holds x.mu.
func (x *prefixIndex) put(h, stamp uint64) {
	if i := x.find(h); i >= 0 {
		x.stamps[i] = stamp
		return
	}
	s := x.set(h)
	stamps := (*[prefixWays]uint64)(x.stamps[s : s+prefixWays])
	victim := 0
	for i := 1; i < prefixWays; i++ {
		if stamps[i] < stamps[victim] {
			victim = i
		}
	}
	x.keys[s+victim].Store(uint32(h))
	stamps[victim] = stamp
}

// len counts the held hashes (for tests and metrics; O(capacity)).
func (x *prefixIndex) len() int {
	if x == nil {
		return 0
	}
	n := 0
	for i := range x.keys {
		if x.keys[i].Load() != 0 {
			n++
		}
	}
	return n
}
