package picking

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamgate/streamgate/config"
)

// benchBackend returns a backend of n endpoints with fresh, varied metrics
// and default settings.
func benchBackend(n int, now time.Time) *Backend {
	cfg := config.Picking{
		Weights:          &config.PickWeights{Queue: 2, KVCache: 1, InFlight: 1, Prefix: 3, LoRA: 2},
		PrefixBlockBytes: 256, PrefixBlocks: 16384, Fallbacks: 2, StaleAfter: time.Second,
	}
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = NewEndpoint(fmt.Sprintf("10.0.0.%d:8000", i+1), &cfg)
		eps[i].Store(Metrics{
			Waiting: float64(i % 7), Running: 8, KVCache: float64(i%10) / 10,
			RunningLoRA: []string{"a", "b"}, MaxLoRA: 4,
		}, now)
	}
	return NewBackend("bench", cfg, eps)
}

// benchPrompts returns count prompts of size bytes sharing an 8 KiB system
// prefix, as chat traffic with a few long system prompts does.
func benchPrompts(count, size int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	system := make([]byte, 8<<10)
	for i := range system {
		system[i] = byte('a' + rng.IntN(26))
	}
	ps := make([][]byte, count)
	for i := range ps {
		p := append(make([]byte, 0, size), system...)
		for len(p) < size {
			p = append(p, byte('a'+rng.IntN(26)))
		}
		ps[i] = p
	}
	return ps
}

func benchmarkPick(b *testing.B, endpoints int) {
	now := time.Now()
	be := benchBackend(endpoints, now)
	prompts := benchPrompts(64, 32<<10)
	for _, p := range prompts { // warm the indexes: every prompt routed once
		r := be.Pick(Request{Prompt: p}, now)
		r.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := be.Pick(Request{Prompt: prompts[i%len(prompts)], LoRA: "a"}, now)
		r.Done()
	}
}

// BenchmarkPick64Endpoints32KiB is the budget: ≤ 20 µs per pick at
// 64 endpoints and 32 KiB prompts, prefix lookup and record included.
func BenchmarkPick64Endpoints32KiB(b *testing.B) { benchmarkPick(b, 64) }

func BenchmarkPick4Endpoints32KiB(b *testing.B) { benchmarkPick(b, 4) }

// BenchmarkPick64EndpointsAllHold32KiB is the worst case of the prefix
// walk: every endpoint holds the whole prompt, so each is walked to the end.
func BenchmarkPick64EndpointsAllHold32KiB(b *testing.B) {
	now := time.Now()
	be := benchBackend(64, now)
	p := benchPrompts(1, 32<<10)[0]
	hs := hashBlocks(nil, p, 256)
	for _, e := range be.eps {
		e.prefix.record(hs)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := be.Pick(Request{Prompt: p}, now)
		r.Done()
	}
}

func BenchmarkHashBlocks32KiB(b *testing.B) {
	p := benchPrompts(1, 32<<10)[0]
	dst := make([]uint64, 0, 256)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		dst = hashBlocks(dst[:0], p, 256)
	}
}
