package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

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
