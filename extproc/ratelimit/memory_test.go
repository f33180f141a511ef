package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var perMinute = func(n int64) Rule { return Rule{Limit: n, Period: time.Minute} }

func TestGCRAAllowsTheLimitThenRefillsLinearly(t *testing.T) {
	clk := newFakeClock()
	s := NewMemoryStore(clk)
	ctx := context.Background()
	one := []Charge{{Key: "k", Rule: perMinute(60), Cost: 1}}
	for i := range 60 {
		d, err := s.Reserve(ctx, one)
		require.NoError(t, err)
		require.True(t, d.Allowed, "request %d of 60", i+1)
		assert.Equal(t, int64(59-i), d.States[0].Remaining)
		assert.Equal(t, time.Duration(i+1)*time.Second, d.States[0].Reset)
	}
	d, _ := s.Reserve(ctx, one)
	require.False(t, d.Allowed)
	assert.Equal(t, time.Second, d.RetryAfter, "one unit refills every second")
	assert.Equal(t, int64(0), d.States[0].Remaining)
	clk.Advance(999 * time.Millisecond)
	d, _ = s.Reserve(ctx, one)
	assert.False(t, d.Allowed)
	assert.Equal(t, time.Millisecond, d.RetryAfter)
	clk.Advance(time.Millisecond)
	d, _ = s.Reserve(ctx, one)
	assert.True(t, d.Allowed)
}

func TestGCRAReservesAllOrNothing(t *testing.T) {
	clk := newFakeClock()
	s := NewMemoryStore(clk)
	ctx := context.Background()
	_, _ = s.Reserve(ctx, []Charge{{Key: "tokens", Rule: perMinute(1000), Cost: 900}})
	d, err := s.Reserve(ctx, []Charge{
		{Key: "requests", Rule: perMinute(10), Cost: 1},
		{Key: "tokens", Rule: perMinute(1000), Cost: 200},
	})
	require.NoError(t, err)
	require.False(t, d.Allowed)
	assert.Equal(t, 6*time.Second, d.RetryAfter, "100 tokens over at 60 ms each")
	assert.Equal(t, int64(10), d.States[0].Remaining, "the request bucket was not charged")
	assert.Equal(t, int64(100), d.States[1].Remaining)
	d, _ = s.Reserve(ctx, []Charge{{Key: "requests", Rule: perMinute(10), Cost: 1}, {Key: "tokens", Rule: perMinute(1000), Cost: 100}})
	assert.True(t, d.Allowed)
	assert.Equal(t, int64(9), d.States[0].Remaining)
	assert.Equal(t, int64(0), d.States[1].Remaining)
}

func TestGCRAChargeLargerThanLimitNeverFits(t *testing.T) {
	s := NewMemoryStore(newFakeClock())
	d, _ := s.Reserve(context.Background(), []Charge{{Key: "k", Rule: perMinute(100), Cost: 101}})
	assert.False(t, d.Allowed)
	assert.Equal(t, int64(100), d.States[0].Remaining)
}

func TestAdjustRefundsAndCharges(t *testing.T) {
	clk := newFakeClock()
	s := NewMemoryStore(clk)
	ctx := context.Background()
	rule := perMinute(1000)
	_, _ = s.Reserve(ctx, []Charge{{Key: "k", Rule: rule, Cost: 800}})
	require.NoError(t, s.Adjust(ctx, []Charge{{Key: "k", Rule: rule, Cost: -500}}))
	d, _ := s.Reserve(ctx, []Charge{{Key: "k", Rule: rule, Cost: 0}})
	assert.Equal(t, int64(700), d.States[0].Remaining)
	// Charging past the limit puts the bucket in debt: nothing fits until it refills.
	require.NoError(t, s.Adjust(ctx, []Charge{{Key: "k", Rule: rule, Cost: 1300}}))
	d, _ = s.Reserve(ctx, []Charge{{Key: "k", Rule: rule, Cost: 1}})
	assert.False(t, d.Allowed)
	assert.Equal(t, 36*time.Second+60*time.Millisecond, d.RetryAfter, "1600 used of 1000: 600+1 tokens at 60 ms each")
	// A refund larger than what is used leaves the bucket full, not fuller.
	require.NoError(t, s.Adjust(ctx, []Charge{{Key: "k", Rule: rule, Cost: -1_000_000}}))
	d, _ = s.Reserve(ctx, []Charge{{Key: "k", Rule: rule, Cost: 1000}})
	assert.True(t, d.Allowed)
	d, _ = s.Reserve(ctx, []Charge{{Key: "k", Rule: rule, Cost: 1}})
	assert.False(t, d.Allowed)
}

func TestSweepDropsOnlyFullBuckets(t *testing.T) {
	clk := newFakeClock()
	s := NewMemoryStore(clk)
	ctx := context.Background()
	_, _ = s.Reserve(ctx, []Charge{{Key: "busy", Rule: perMinute(10), Cost: 10}})
	clk.Advance(time.Hour)
	_, _ = s.Reserve(ctx, []Charge{{Key: "busy", Rule: perMinute(10), Cost: 10}})
	for i := range sweepEvery {
		_, _ = s.Reserve(ctx, []Charge{{Key: string(rune('a'+i%26)) + time.Duration(i).String(), Rule: perMinute(10), Cost: 0}})
	}
	d, _ := s.Reserve(ctx, []Charge{{Key: "busy", Rule: perMinute(10), Cost: 1}})
	assert.False(t, d.Allowed, "the sweep must keep a bucket that is still in use")
	assert.Less(t, len(s.tats), 10)
}

// TestNoOvershootUnderConcurrency races many goroutines for one limit: the
// admitted total must equal the limit exactly.
func TestNoOvershootUnderConcurrency(t *testing.T) {
	s := NewMemoryStore(newFakeClock())
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 100 {
				d, _ := s.Reserve(context.Background(), []Charge{{Key: "k", Rule: perMinute(1000), Cost: 7}})
				if d.Allowed {
					admitted.Add(7)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(1000/7*7), admitted.Load())
}

func BenchmarkMemoryReserve(b *testing.B) {
	s := NewMemoryStore(SystemClock{})
	charges := []Charge{
		{Key: "t:req", Rule: perMinute(1 << 40), Cost: 1},
		{Key: "t:in", Rule: perMinute(1 << 40), Cost: 300},
		{Key: "t:total", Rule: perMinute(1 << 40), Cost: 556},
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = s.Reserve(context.Background(), charges)
	}
}
