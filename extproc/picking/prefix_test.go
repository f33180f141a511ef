package picking

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func TestHashBlocksChainsThePrefix(t *testing.T) {
	base := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1024 bytes, 4 blocks of 256
	changed := bytes.Clone(base)
	changed[600] ^= 1 // in block 2

	a := hashBlocks(nil, base, 256)
	b := hashBlocks(nil, changed, 256)
	require.Len(t, a, 4)
	require.Len(t, b, 4)
	assert.Equal(t, a[:2], b[:2], "blocks before the change name the same prefix")
	for i := 2; i < 4; i++ {
		assert.NotEqual(t, a[i], b[i], "block %d and later name a different prefix", i)
	}
	// The same block content at another position is another prefix.
	same := bytes.Repeat([]byte("x"), 512)
	h := hashBlocks(nil, same, 256)
	assert.NotEqual(t, h[0], h[1], "identical blocks after different prefixes hash differently")
}

func TestHashBlocksIgnoresPartialBlockAndBoundsCount(t *testing.T) {
	tests := map[string]struct {
		size, block, want int
	}{
		"shorter than a block":      {size: 255, block: 256, want: 0},
		"trailing partial ignored":  {size: 700, block: 256, want: 2},
		"exact blocks":              {size: 768, block: 256, want: 3},
		"capped at maxPromptBlocks": {size: (maxPromptBlocks + 10) * 16, block: 16, want: maxPromptBlocks},
		"no block size":             {size: 1000, block: 0, want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			hs := hashBlocks(nil, make([]byte, tc.size), tc.block)
			require.Len(t, hs, tc.want)
			for _, h := range hs {
				assert.NotZero(t, h, "0 marks an empty slot")
			}
		})
	}
}

func TestHashBlocksDoesNotAllocate(t *testing.T) {
	p := make([]byte, 32<<10)
	dst := make([]uint64, 0, 128)
	assert.Zero(t, testing.AllocsPerRun(100, func() { dst = hashBlocks(dst[:0], p, 256) }))
}

// sameSet returns n distinct nonzero hashes that fall in x's set of seed.
func sameSet(x *prefixIndex, seed uint64, n int) []uint64 {
	var out []uint64
	for h := uint64(1); len(out) < n; h++ {
		k := chain(seed, h) | 1
		if x.set(k) == x.set(seed) {
			out = append(out, k)
		}
	}
	return out
}

func TestPrefixIndexEvictsLeastRecentlyRecorded(t *testing.T) {
	x := newPrefixIndexCap(64)
	hs := sameSet(x, 12345, prefixWays+1)
	for _, h := range hs[:prefixWays] {
		x.record([]uint64{h})
	}
	x.record([]uint64{hs[0]})          // refresh the oldest
	x.record([]uint64{hs[prefixWays]}) // the set is full: evict the LRU, hs[1]

	assert.True(t, x.has(hs[0]), "refreshed entry survives")
	assert.False(t, x.has(hs[1]), "least recently recorded entry is evicted")
	for _, h := range hs[2:] {
		assert.True(t, x.has(h))
	}
	assert.Equal(t, prefixWays, x.len())
}

func TestPrefixIndexStaysWithinCapacity(t *testing.T) {
	tests := map[string]struct{ capacity, slots int }{
		"whole sets":     {capacity: 64, slots: 64},
		"rounded up":     {capacity: 61, slots: 64},
		"default config": {capacity: 16384, slots: 16384},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x := newPrefixIndexCap(tc.capacity)
			hs := hashBlocks(nil, bytes.Repeat([]byte("abcdefghijklmnopq"), 4*tc.capacity), 16)
			for i := 0; i < len(hs); i += 8 {
				x.record(hs[i:min(i+8, len(hs))])
			}
			assert.LessOrEqual(t, x.len(), tc.slots)
			assert.Len(t, x.keys, tc.slots, "memory is fixed at creation")
			assert.True(t, x.has(hs[len(hs)-8]), "the last recorded blocks are held")
		})
	}
}

func TestPrefixIndexMatchedStopsAtFirstMiss(t *testing.T) {
	x := newPrefixIndexCap(1024)
	hs := hashBlocks(nil, make([]byte, 10*256), 256)
	x.record(hs[:3])
	x.record(hs[4:]) // a hole at block 3, which a probe lands on

	assert.Equal(t, 3, x.matched(hs))
	assert.Equal(t, 0, x.matched(hs[3:]))

	// A hole between probes (blocks 0, 1, 3, 7 are probed, then 8 and 9)
	// is not seen: the documented approximation.
	y := newPrefixIndexCap(1024)
	y.record(hs[:2])
	y.record(hs[3:])
	assert.Equal(t, 10, y.matched(hs))
	assert.Equal(t, 0, (*prefixIndex)(nil).matched(hs), "nil index holds nothing")
	assert.Equal(t, 0, x.matched(nil), "a prompt without blocks matches nothing")
}

func TestNewPrefixIndexOffWithoutPrefixWeight(t *testing.T) {
	tests := map[string]struct {
		cfg  *config.Picking
		want bool
	}{
		"defaults":      {cfg: &config.Picking{PrefixBlocks: 16}, want: true},
		"prefix weight": {cfg: &config.Picking{PrefixBlocks: 16, Weights: &config.PickWeights{Prefix: 1}}, want: true},
		"zero weight":   {cfg: &config.Picking{PrefixBlocks: 16, Weights: &config.PickWeights{Queue: 1}}},
		"no blocks":     {cfg: &config.Picking{}},
		"nil config":    {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, newPrefixIndex(tc.cfg) != nil)
		})
	}
}

func TestPrefixIndexRecordOrderKeepsSharedPrefixNewest(t *testing.T) {
	x := newPrefixIndexCap(64)
	hs := hashBlocks(nil, make([]byte, 4*256), 256)
	x.record(hs)
	stamp := func(h uint64) uint64 {
		i := x.find(h)
		require.GreaterOrEqual(t, i, 0, "hash %x held", h)
		return x.stamps[i]
	}
	for i := 1; i < len(hs); i++ {
		assert.Greater(t, stamp(hs[i-1]), stamp(hs[i]), "block %d is newer than the block after it", i-1)
	}
}

func TestMatchPrefixes(t *testing.T) {
	cfg := testConfig()
	prompt := make([]byte, 128*256)
	for i := range prompt {
		prompt[i] = byte(i * 7)
	}
	hs := hashBlocks(nil, prompt, 256)
	s := &scratch{blocks: hs}
	for i := range 66 {
		e := NewEndpoint("x", &cfg)
		switch {
		case i < 64: // every endpoint holds a 32-block system prompt
			e.prefix.record(hs[:32])
		case i == 64: // this one the whole prompt
			e.prefix.record(hs)
		}
		s.cands = append(s.cands, cand{ep: e})
	}
	s.cands[0].ep.prefix.record(hs[:100])
	matchPrefixes(s)
	assert.InDelta(t, 100.0/128, s.cands[0].prefix, 0)
	for i := 1; i < 64; i++ {
		assert.InDelta(t, 32.0/128, s.cands[i].prefix, 0, "endpoint %d", i)
	}
	assert.InDelta(t, 1.0, s.cands[64].prefix, 0)
	assert.Zero(t, s.cands[65].prefix)
}

func TestPrefixIndexMatchedFindsFirstMiss(t *testing.T) {
	hs := hashBlocks(nil, make([]byte, 100*256), 256)
	for held := range len(hs) + 1 {
		x := newPrefixIndexCap(1024)
		x.record(hs[:held])
		if got := x.matched(hs); got != held {
			t.Fatalf("holding %d blocks: matched %d", held, got)
		}
	}
}
