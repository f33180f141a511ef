package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSeenCache(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := newSeenCache(3, time.Minute, clock.now)
	c.add("a", time.Time{})
	clock.t = clock.t.Add(10 * time.Second)
	c.add("b", time.Time{})
	c.add("b", time.Time{})
	assert.True(t, c.has("a"))
	assert.True(t, c.has("b"))
	assert.False(t, c.has("c"))
	assert.Equal(t, 2, c.len())
	// Bounded: the oldest goes first.
	c.add("c", time.Time{})
	c.add("d", time.Time{})
	assert.False(t, c.has("a"))
	assert.True(t, c.has("d"))
	// The window: b, c, d expire a minute after they were added.
	clock.t = clock.t.Add(61 * time.Second)
	assert.False(t, c.has("b"))
	assert.Zero(t, c.len())
	// Loaded entries older than the window are not kept.
	c.add("old", clock.t.Add(-2*time.Minute))
	assert.False(t, c.has("old"))
	c.add("recent", clock.t.Add(-30*time.Second))
	assert.True(t, c.has("recent"))
}
