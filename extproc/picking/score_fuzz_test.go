package picking

import (
	"math"
	"testing"
	"time"

	"github.com/streamgate/streamgate/config"
)

// FuzzPick feeds arbitrary prompts, adapters and metric values (NaN, ±Inf,
// negative, huge) to Pick: it must never panic, must return a valid
// ordering, and Done must leave no request counted.
func FuzzPick(f *testing.F) {
	nan, inf := math.Float64bits(math.NaN()), math.Float64bits(math.Inf(1))
	f.Add([]byte("hello"), "", uint64(0), uint64(0), uint64(0), int64(0), uint8(0), int16(0))
	f.Add(make([]byte, 4096), "a", nan, nan, nan, int64(3), uint8(0b101), int16(2))
	f.Add([]byte(`{"messages":[{"role":"system","content":"you are"}]}`), "x", inf, inf, math.Float64bits(-1), int64(-5), uint8(0xff), int16(-1))
	f.Add(make([]byte, 300), "a", math.Float64bits(-math.MaxFloat64), math.Float64bits(1e300), math.Float64bits(math.Inf(-1)), int64(math.MaxInt32), uint8(3), int16(8))
	f.Fuzz(func(t *testing.T, prompt []byte, lora string, waitBits, kvBits, weightBits uint64, maxLoRA int64, flags uint8, fallbacks int16) {
		cfg := testConfig()
		w := *cfg.Weights
		w.Prefix = math.Float64frombits(weightBits)
		cfg.Weights = &w
		cfg.Fallbacks = int(fallbacks)
		cfg.PrefixBlockBytes = 16
		cfg.PrefixBlocks = 64
		if flags&0x40 != 0 {
			cfg.Saturation = config.PickSaturation{Queue: math.Float64frombits(waitBits), KVCache: math.Float64frombits(kvBits)}
		}
		m := Metrics{
			Waiting: math.Float64frombits(waitBits), Running: math.Float64frombits(kvBits),
			KVCache: math.Float64frombits(kvBits), MaxLoRA: int(maxLoRA),
			RunningLoRA: []string{lora}, WaitingLoRA: []string{"", lora},
		}
		specs := make([]epSpec, 1+int(flags&7))
		for i := range specs {
			if flags&(1<<(i%6)) != 0 {
				mi := m
				mi.Waiting += float64(i)
				specs[i] = epSpec{m: &mi, inFlight: i % 3}
			}
			if flags&0x80 != 0 {
				specs[i].age = time.Hour
			}
		}
		b := testBackend(t, cfg, specs, nil)
		for range 2 { // the second pick sees the first one's prefix record
			res := b.Pick(Request{Prompt: prompt, LoRA: lora}, testNow)
			validResult(t, b, res)
			res.Done()
		}
		for i, e := range b.eps {
			if got, want := e.InFlight(), int64(i%3); specs[i].m != nil && got != want {
				t.Fatalf("endpoint %d: in flight %d, want %d", i, got, want)
			}
		}
	})
}
