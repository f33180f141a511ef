package fakellm

import (
	"container/list"
	"encoding/binary"
	"hash/fnv"
	"time"
)

// bytesPerToken is the simulator's token estimate: one token per 4 bytes
// of prompt text, the usual rule of thumb for English text with BPE
// tokenizers. The simulator needs token positions, not only a count, to cut
// a prompt into KV blocks; cutting the bytes at fixed offsets gives blocks
// that are identical exactly when the prompt prefixes are, which is what a
// prefix cache keys on.
const bytesPerToken = 4

// simTokens returns the simulated token count of a prompt of n bytes: n/4,
// at least 1.
func simTokens(n int) int {
	return max(n/bytesPerToken, 1)
}

// blockHashes returns the hash of every full block of blockTokens tokens of
// prompt, each hash chained over the hash of the block before it (so a
// block's hash names the whole prefix up to its end, as vLLM's block hashes
// do), seeded by the adapter name (vLLM keys blocks by LoRA too).
func blockHashes(prompt []byte, blockTokens int, adapter string) []uint64 {
	blockBytes := blockTokens * bytesPerToken
	n := len(prompt) / blockBytes
	if n == 0 {
		return nil
	}
	hashes := make([]uint64, n)
	h := fnv.New64a()
	h.Write([]byte(adapter))
	prev := h.Sum64()
	var seed [8]byte
	for i := range n {
		h.Reset()
		binary.LittleEndian.PutUint64(seed[:], prev)
		h.Write(seed[:])
		h.Write(prompt[i*blockBytes : (i+1)*blockBytes])
		prev = h.Sum64()
		hashes[i] = prev
	}
	return hashes
}

// kvBlock is one cached (hashed) block of the KV cache.
type kvBlock struct {
	hash  uint64
	refs  int           // running requests holding it; pinned while > 0
	ready time.Time     // when its owner's prefill computes it
	elem  *list.Element // its place in kvCache.lru while refs == 0
}

// kvCache is the simulated paged KV cache with prefix caching: total
// blocks, of which some are cached prompt blocks named by their prefix hash
// (pinned while a running request holds them, otherwise free but reusable
// and evicted least recently used first) and some are anonymous blocks
// held by running requests (the partial last prompt block and the output).
// It is guarded by Sim.mu.
type kvCache struct {
	total  int
	blocks map[uint64]*kvBlock
	lru    *list.List // of *kvBlock with refs == 0, least recently used first
	pinned int        // cached blocks with refs > 0
	anon   int        // anonymous blocks held by running requests
}

// newKVCache returns an empty cache of total blocks.
func newKVCache(total int) *kvCache {
	return &kvCache{total: total, blocks: map[uint64]*kvBlock{}, lru: list.New()}
}

// used returns the blocks held by running requests, the numerator of
// vllm:kv_cache_usage_perc (free cached blocks do not count, as in vLLM).
func (c *kvCache) used() int { return c.pinned + c.anon }

// free returns the blocks holding nothing (negative when over-committed).
func (c *kvCache) free() int { return c.total - len(c.blocks) - c.anon }

// hits returns how many leading hashes are cached. It does not touch the
// LRU order.
func (c *kvCache) hits(hashes []uint64) int {
	for i, h := range hashes {
		if _, ok := c.blocks[h]; !ok {
			return i
		}
	}
	return len(hashes)
}

// fits reports whether hashes and anon more anonymous blocks can be held
// at once: the missing blocks plus anon must fit in the free blocks and the
// free cached blocks that the request itself does not reuse.
func (c *kvCache) fits(hashes []uint64, anon int) bool {
	need, reused := anon, 0
	for _, h := range hashes {
		b, ok := c.blocks[h]
		switch {
		case !ok:
			need++
		case b.refs == 0:
			reused++
		}
	}
	return need <= c.free()+c.lru.Len()-reused
}

// acquire pins hashes (inserting the missing ones, ready at ready, and
// evicting free cached blocks as needed) and anon anonymous blocks, and
// returns the pinned blocks in order. The caller checked fits first.
func (c *kvCache) acquire(hashes []uint64, anon int, ready time.Time) []*kvBlock {
	held := make([]*kvBlock, len(hashes))
	// Pin the cached blocks first, so evicting for the missing ones cannot
	// take a block this request is about to reuse.
	for i, h := range hashes {
		if b, ok := c.blocks[h]; ok {
			c.pin(b)
			held[i] = b
		}
	}
	for i, h := range hashes {
		if held[i] == nil {
			c.makeRoom(1)
			b := &kvBlock{hash: h, ready: ready}
			c.blocks[h] = b
			c.pin(b)
			held[i] = b
		}
	}
	c.makeRoom(anon)
	c.anon += anon
	return held
}

// pin adds a reference to b, taking it off the LRU list.
func (c *kvCache) pin(b *kvBlock) {
	if b.refs == 0 {
		if b.elem != nil {
			c.lru.Remove(b.elem)
			b.elem = nil
		}
		c.pinned++
	}
	b.refs++
}

// makeRoom evicts free cached blocks, least recently used first, until n
// blocks are free. Pinned blocks are never on the LRU list, so never
// evicted.
func (c *kvCache) makeRoom(n int) {
	for c.free() < n {
		front := c.lru.Front()
		if front == nil {
			return // the caller checked fits; nothing left to evict
		}
		b := c.lru.Remove(front).(*kvBlock)
		b.elem = nil
		delete(c.blocks, b.hash)
	}
}

// grow takes n more anonymous blocks, evicting free cached blocks as
// needed; past the last one it over-commits (used may exceed total).
func (c *kvCache) grow(n int) {
	c.makeRoom(n)
	c.anon += n
}

// release unpins held and frees anon anonymous blocks. Blocks no longer
// referenced join the LRU list, the last block of the prompt first, so a
// prompt's tail is evicted before its head (vLLM frees blocks in reverse
// order for the same reason); a block whose prefill had not finished by
// now holds nothing worth reusing and is freed at once.
func (c *kvCache) release(held []*kvBlock, anon int, now time.Time) {
	for i := len(held) - 1; i >= 0; i-- {
		b := held[i]
		b.refs--
		if b.refs > 0 {
			continue
		}
		c.pinned--
		if now.Before(b.ready) {
			delete(c.blocks, b.hash)
			continue
		}
		b.elem = c.lru.PushBack(b)
	}
	c.anon -= anon
}
