package extproc

import (
	"sync"
	"sync/atomic"

	"github.com/streamgate/streamgate/extproc/tokens"
)

// reportedUsage is a response's usage as Envoy's usage report gave it
// (report.go), read by limits and telemetry through the meter.
type reportedUsage struct {
	usage tokens.Usage
	found bool // Envoy read a complete usage
	model string
	// upstreamBytes is what the backend sent; for a response cut before
	// its usage, perToken turns it into an estimate of the output.
	upstreamBytes uint64
	succeeded     bool
	perToken      *bytesPerToken
	key           string
}

// output is what a response without a readable usage is charged, at most
// reserved: an estimate from the bytes the backend sent, by what earlier
// responses of the same backend and model sent per token, or, before any
// such response, the reservation. ok is false when nothing was estimated.
func (r *reportedUsage) output(reserved int64) (n int64, estimated bool) {
	if est, ok := r.perToken.estimate(r.key, r.upstreamBytes); ok {
		return min(est, reserved), true
	}
	return reserved, false
}

// bytesPerToken learns, per backend and upstream model, how many bytes a
// backend sends per output token (headers and framing included), from the
// responses whose usage Envoy read; the figure is a moving average in
// 1/1024 bytes. Safe for concurrent use.
type bytesPerToken struct {
	m sync.Map // key -> *atomic.Uint64
}

// learnMinTokens keeps short responses, whose headers outweigh their
// tokens, from the average.
const learnMinTokens = 8

// learn adds one response: bytes sent for output tokens.
func (b *bytesPerToken) learn(key string, bytes uint64, output int64) {
	if b == nil || key == "" || output < learnMinTokens || bytes == 0 {
		return
	}
	sample := bytes * 1024 / uint64(output)
	v, _ := b.m.LoadOrStore(key, new(atomic.Uint64))
	avg := v.(*atomic.Uint64)
	for {
		old := avg.Load()
		next := sample
		if old != 0 {
			next = old - old/8 + sample/8
		}
		if avg.CompareAndSwap(old, next) {
			return
		}
	}
}

// estimate is the output tokens bytes stand for, rounded up; false before
// any response of key was learnt.
func (b *bytesPerToken) estimate(key string, bytes uint64) (int64, bool) {
	if b == nil {
		return 0, false
	}
	v, ok := b.m.Load(key)
	if !ok {
		return 0, false
	}
	per := v.(*atomic.Uint64).Load()
	if per == 0 {
		return 0, false
	}
	return int64((bytes*1024 + per - 1) / per), true
}
