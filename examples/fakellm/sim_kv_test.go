package fakellm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBlockHashesNameTheWholePrefix(t *testing.T) {
	a := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") // 1 block of 16 tokens
	ab := append(append([]byte{}, a...), a...)
	ba := append([]byte("X"), ab[1:]...)
	assert.Len(t, blockHashes(a[:63], 16, ""), 0, "a partial block has no hash")
	assert.Equal(t, blockHashes(a, 16, ""), blockHashes(ab, 16, "")[:1], "a shared prefix shares its blocks")
	h := blockHashes(ab, 16, "")
	assert.NotEqual(t, h[0], h[1], "the same bytes after another prefix are another block")
	assert.NotEqual(t, h[1], blockHashes(ba, 16, "")[1], "a change in block 0 changes every later block")
	assert.NotEqual(t, h, blockHashes(ab, 16, "sql"), "adapters do not share blocks")
}

func TestKVCacheNeverEvictsPinnedBlocks(t *testing.T) {
	c := newKVCache(4)
	now := time.Now()
	pinned := c.acquire([]uint64{1, 2}, 0, now)
	require.True(t, c.fits([]uint64{3, 4}, 0))
	assert.False(t, c.fits([]uint64{3, 4}, 1), "only two blocks are free")
	free := c.acquire([]uint64{3, 4}, 0, now)
	c.release(free, 0, now)
	assert.True(t, c.fits([]uint64{5, 6}, 0), "free cached blocks can be evicted")
	assert.False(t, c.fits([]uint64{5, 6, 7}, 0), "pinned blocks cannot")
	c.acquire([]uint64{5, 6}, 0, now)
	assert.Equal(t, 0, c.hits([]uint64{3}), "3 and 4 were evicted")
	assert.Equal(t, 2, c.hits([]uint64{1, 2}), "pinned 1 and 2 stay")
	c.release(pinned, 0, now)
	assert.Equal(t, 2, c.used(), "5 and 6 stay pinned")
}

func TestKVCacheEvictsLeastRecentlyUsedTailFirst(t *testing.T) {
	c := newKVCache(6)
	now := time.Now()
	c.release(c.acquire([]uint64{1, 2, 3}, 0, now), 0, now) // prompt A
	c.release(c.acquire([]uint64{4, 5, 6}, 0, now), 0, now) // prompt B
	c.release(c.acquire([]uint64{1, 2, 3}, 0, now), 0, now) // A again: B is the LRU
	c.acquire([]uint64{7}, 1, now)                          // two blocks: B's tail goes first
	assert.Equal(t, 3, c.hits([]uint64{1, 2, 3}))
	assert.Equal(t, 1, c.hits([]uint64{4, 5, 6}), "B keeps its head block")
	assert.Equal(t, 2, c.used())
}

func TestKVCacheDropsBlocksWhosePrefillNeverFinished(t *testing.T) {
	c := newKVCache(4)
	now := time.Now()
	held := c.acquire([]uint64{1, 2}, 1, now.Add(time.Hour))
	c.release(held, 1, now)
	assert.Equal(t, 0, c.hits([]uint64{1}))
	assert.Equal(t, 4, c.free())
	assert.Equal(t, 0, c.used())
}

// FuzzKVCache runs random acquire/release/grow sequences and checks the
// cache's accounting: no block is lost or counted twice, pinned blocks are
// never evicted and an idle cache holds nothing.
func FuzzKVCache(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{0, 0, 0, 255, 255, 128, 7, 7, 7, 7, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := newKVCache(16)
		now := time.Now()
		type held struct {
			blocks []*kvBlock
			anon   int
		}
		var live []held
		overcommitted := false // grow may over-commit; acquire after fits may not
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], int(ops[i+1])
			switch op % 3 {
			case 0: // acquire a prompt of arg%6 blocks from prefix family arg/6%3
				hashes := make([]uint64, arg%6)
				for j := range hashes {
					hashes[j] = uint64(arg/6%3*100 + j)
				}
				anon := int(op/3) % 3
				if c.fits(hashes, anon) {
					live = append(live, held{c.acquire(hashes, anon, now), anon})
					if c.free() < 0 && !overcommitted {
						t.Fatalf("acquire over-committed a cache that fit it")
					}
				}
			case 1: // release one
				if len(live) > 0 {
					k := arg % len(live)
					c.release(live[k].blocks, live[k].anon, now)
					live = append(live[:k], live[k+1:]...)
				}
			case 2: // grow one
				if len(live) > 0 {
					k := arg % len(live)
					c.grow(1)
					live[k].anon++
					overcommitted = overcommitted || c.free() < 0
				}
			}
			pinned := 0
			for _, b := range c.blocks {
				if b.refs > 0 {
					pinned++
				}
				if (b.refs > 0) == (b.elem != nil) {
					t.Fatalf("block %d: refs %d, on LRU %v", b.hash, b.refs, b.elem != nil)
				}
			}
			for _, h := range live {
				for _, b := range h.blocks {
					if c.blocks[b.hash] != b {
						t.Fatalf("pinned block %d was evicted", b.hash)
					}
				}
			}
			if pinned != c.pinned || c.lru.Len() != len(c.blocks)-pinned {
				t.Fatalf("pinned %d counted %d, LRU %d of %d blocks", pinned, c.pinned, c.lru.Len(), len(c.blocks))
			}
		}
		for _, h := range live {
			c.release(h.blocks, h.anon, now)
		}
		if c.used() != 0 || c.anon != 0 || c.pinned != 0 {
			t.Fatalf("idle cache still holds %d blocks", c.used())
		}
	})
}

func TestKVCacheAcquireNeverEvictsABlockItReuses(t *testing.T) {
	c := newKVCache(3)
	computed := time.Now()
	c.release(c.acquire([]uint64{1}, 0, computed), 0, computed)
	c.release(c.acquire([]uint64{2}, 0, computed), 0, computed) // LRU: 1, then 2
	require.True(t, c.fits([]uint64{9, 8, 1}, 0))
	held := c.acquire([]uint64{9, 8, 1}, 0, computed.Add(time.Hour))
	assert.Equal(t, computed, held[2].ready, "block 1 is reused as computed, not evicted and recomputed")
	assert.Equal(t, 0, c.hits([]uint64{2}), "2 makes room instead")
	assert.Equal(t, 3, c.used())
}
