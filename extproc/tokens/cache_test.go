package tokens

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cacheText is a string of about n bytes, different for every i.
func cacheText(i, n int) string {
	s := fmt.Sprintf("Request %d: the gateway counts the prompt before it admits it. ", i)
	return strings.Repeat(s, n/len(s)+1)[:n]
}

// TestCountCacheGivesTheExactCount: a cached count is the count of the
// string asked about, on the first sighting, the second (when it is
// cached) and later ones, for strings around the size bounds and after
// the shard has been emptied to make room.
func TestCountCacheGivesTheExactCount(t *testing.T) {
	for _, name := range exactEncodings {
		e := mustEncoding(t, name)
		c := newCountCache()
		for _, n := range []int{cacheMinLen - 1, cacheMinLen, 1 << 10, 8 << 10, cacheShardBytes, cacheShardBytes + 1} {
			for i := range 3 {
				s := cacheText(i, n)
				want := e.count(s)
				for round := range 3 {
					require.Equal(t, want, c.count(s, e), "%s: %d bytes, string %d, round %d", name, n, i, round)
				}
			}
		}
		// Far more text than a shard holds: every count stays exact.
		for i := range 2 * cacheShards * cacheShardBytes / (8 << 10) {
			s := cacheText(i, 8<<10)
			want := e.count(s)
			require.Equal(t, want, c.count(s, e))
			require.Equal(t, want, c.count(s, e))
		}
	}
}

// TestCountCacheKeysAreCopies: a string counted in place (a view of a
// request body) is cached under a copy, so the cache never pins a body
// nor sees its key change when the body's memory is reused.
func TestCountCacheKeysAreCopies(t *testing.T) {
	e := mustEncoding(t, EncodingO200k)
	c := newCountCache()
	buf := []byte(cacheText(1, 1<<10))
	view := unsafe.String(&buf[0], len(buf))
	want := e.count(view)
	c.count(view, e)
	c.count(view, e) // cached now
	cached := 0
	for i := range c.shards {
		for k, n := range c.shards[i].counts {
			cached++
			assert.NotSame(t, &buf[0], unsafe.StringData(k), "the key is a copy")
			assert.Equal(t, want, n)
		}
	}
	require.Equal(t, 1, cached)
	copy(buf, strings.Repeat("日本語のテキスト", len(buf)))
	assert.Equal(t, want, c.count(cacheText(1, 1<<10), e), "the cached text is intact")
	assert.Equal(t, e.count(view), c.count(view, e))
}

// TestCountCacheBounds: strings seen once are not stored, and the stored
// text of a shard never exceeds its bound.
func TestCountCacheBounds(t *testing.T) {
	e := mustEncoding(t, EncodingO200k)
	c := newCountCache()
	for i := range 1000 {
		c.count(cacheText(i, 1<<10), e)
	}
	for i := range c.shards {
		assert.Empty(t, c.shards[i].counts, "one-off strings are not cached")
		assert.LessOrEqual(t, len(c.shards[i].seen), cacheSeenMax)
	}
	for i := range 1000 {
		c.count(cacheText(i, 1<<10), e)
	}
	stored := 0
	for i := range c.shards {
		sh := &c.shards[i]
		bytes := 0
		for k := range sh.counts {
			bytes += len(k)
		}
		assert.Equal(t, bytes, sh.bytes)
		assert.LessOrEqual(t, sh.bytes, cacheShardBytes)
		stored += len(sh.counts)
	}
	assert.Positive(t, stored, "strings seen twice are cached")
}

// TestCountCacheConcurrent: concurrent counts of shared and distinct
// strings agree with the encoding (run with -race).
func TestCountCacheConcurrent(t *testing.T) {
	e := mustEncoding(t, EncodingO200k)
	c := newCountCache()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				s := cacheText(i%20+g*(i%2), 512)
				if got, want := c.count(s, e), e.count(s); got != want {
					t.Errorf("count = %d, want %d", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestCounterSpendsBudgetOnCachedCounts: a cached string spends the
// request's exact budget as an uncached one does, so a count never depends
// on what other requests sent.
func TestCounterSpendsBudgetOnCachedCounts(t *testing.T) {
	c, err := NewCounter(EncodingO200k, 0)
	require.NoError(t, err)
	s := cacheText(7, 1<<10)
	exact := c.enc.count(s)
	for range 3 {
		b := NewBudget(len(s) + 10)
		assert.Equal(t, exact, c.Count(s, b))
		assert.Equal(t, c.heuristic(len(s)), c.Count(s, b), "the budget is spent: the second count is the heuristic")
	}
}
