package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestAdmissionAIMD(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdmission(16, clock.now)
	limit, _ := a.window()
	require.Equal(t, initialWindow, limit, "starts below max")
	// A window's worth of successes grows it by one.
	for range 5 {
		require.Equal(t, 1, a.acquire(context.Background(), 1))
		a.done(true, false, 0)
	}
	limit, _ = a.window()
	assert.Equal(t, 5, limit)
	// Many successes stop at max.
	for range 500 {
		a.acquire(context.Background(), 1)
		a.done(true, false, 0)
	}
	limit, _ = a.window()
	assert.Equal(t, 16, limit)
	// Overload halves it once per cooldown.
	for range 3 {
		a.acquire(context.Background(), 1)
		a.done(false, true, 0)
	}
	limit, _ = a.window()
	assert.Equal(t, 8, limit, "a burst of refusals counts once")
	clock.t = clock.t.Add(2 * time.Second)
	a.acquire(context.Background(), 1)
	a.done(false, true, 0)
	limit, _ = a.window()
	assert.Equal(t, 4, limit)
	// Never below one.
	for range 10 {
		clock.t = clock.t.Add(2 * time.Second)
		a.acquire(context.Background(), 1)
		a.done(false, true, 0)
	}
	limit, _ = a.window()
	assert.Equal(t, 1, limit)
	// Neither outcome leaves it.
	a.acquire(context.Background(), 1)
	a.done(false, false, 0)
	limit, inFlight := a.window()
	assert.Equal(t, 1, limit)
	assert.Zero(t, inFlight)
}

func TestAdmissionWaitsForRoom(t *testing.T) {
	a := newAdmission(2, time.Now)
	require.Equal(t, 2, a.acquire(context.Background(), 5), "takes what the window allows")
	got := make(chan int)
	go func() { got <- a.acquire(context.Background(), 3) }()
	select {
	case <-got:
		t.Fatal("acquired past a full window")
	case <-time.After(20 * time.Millisecond):
	}
	a.release(1)
	assert.Equal(t, 1, <-got)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Zero(t, a.acquire(ctx, 1), "a cancelled wait takes nothing")
}

func TestAdmissionBacksOffWhenRequestsQueue(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdmission(16, clock.now)
	grow := func(n int, ttfb time.Duration) {
		for range n {
			a.acquire(context.Background(), 1)
			a.done(true, false, ttfb)
		}
	}
	grow(200, 50*time.Millisecond)
	limit, _ := a.window()
	require.Equal(t, 16, limit)
	// Over twice the base plus slack: queueing; the window eases off.
	grow(60, 150*time.Millisecond)
	limit, _ = a.window()
	assert.Less(t, limit, 16)
	assert.Greater(t, limit, 8, "one per window, not halving")
	// Near the base again: it grows back.
	grow(200, 60*time.Millisecond)
	limit, _ = a.window()
	assert.Equal(t, 16, limit)
	// Two periods later a slower base is learned and no longer counts as queueing.
	clock.t = clock.t.Add(2 * basePeriod)
	grow(1, 150*time.Millisecond)
	clock.t = clock.t.Add(basePeriod)
	grow(200, 150*time.Millisecond)
	limit, _ = a.window()
	assert.Equal(t, 16, limit)
}
