package extproc

import (
	"math"
	"sync"

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

// bytesPerToken learns, per backend and upstream model, the bytes a
// backend sends for a response as a line in its output tokens n, fixed +
// n·per (headers and framing included), from the responses whose usage
// Envoy read: a least-squares fit over moving averages (weight 1/8) of n,
// bytes, n² and n·bytes. A stream cut mid-way has sent the head of the
// fixed part (headers, opening events) but not its tail (finish, usage and
// closing events), and which share is which depends on the backend, so
// estimate takes half the fixed part off. Until the learnt lengths vary
// enough to tell fixed from per-token bytes, per is the ratio of the
// averages and fixed 0. Safe for concurrent use; learn and estimate
// allocate only on a key's first response.
type bytesPerToken struct {
	m sync.Map // key -> *byteFit
}

// byteFit is one key's moving averages.
type byteFit struct {
	mu               sync.Mutex
	n, bytes, nn, nb float64
}

// learnMinTokens keeps short responses, whose headers outweigh their
// tokens, from the averages.
const learnMinTokens = 8

// learnWeight is a new response's weight in the moving averages.
const learnWeight = 1.0 / 8

// learn adds one response: bytes sent for output tokens.
func (b *bytesPerToken) learn(key string, bytes uint64, output int64) {
	if b == nil || key == "" || output < learnMinTokens || bytes == 0 {
		return
	}
	v, ok := b.m.Load(key)
	if !ok {
		v, _ = b.m.LoadOrStore(key, new(byteFit))
	}
	f := v.(*byteFit)
	n, by := float64(output), float64(bytes)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.n, f.bytes, f.nn, f.nb = n, by, n*n, n*by
		return
	}
	f.n += learnWeight * (n - f.n)
	f.bytes += learnWeight * (by - f.bytes)
	f.nn += learnWeight * (n*n - f.nn)
	f.nb += learnWeight * (n*by - f.nb)
}

// line is the fitted fixed and per-token bytes; per is 0 before any
// response was learnt.
func (f *byteFit) line() (fixed, per float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return 0, 0
	}
	// The fit needs lengths spread by at least a tenth of their mean.
	if varN := f.nn - f.n*f.n; varN > f.n*f.n/100 {
		per = (f.nb - f.n*f.bytes) / varN
		fixed = f.bytes - per*f.n
		if per > 0 && fixed >= 0 {
			return fixed, per
		}
	}
	return 0, f.bytes / f.n
}

// estimate is the output tokens bytes of a cut stream stand for, rounded
// to the nearest token; false before any response of key was learnt.
func (b *bytesPerToken) estimate(key string, bytes uint64) (int64, bool) {
	if b == nil {
		return 0, false
	}
	v, ok := b.m.Load(key)
	if !ok {
		return 0, false
	}
	fixed, per := v.(*byteFit).line()
	if per <= 0 {
		return 0, false
	}
	n := math.Round((float64(bytes) - fixed/2) / per)
	return int64(min(max(n, 0), 1<<53)), true
}
