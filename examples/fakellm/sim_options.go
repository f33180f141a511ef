package fakellm

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of SimOptions. They model one mid-size model on one GPU: a
// Llama-3.1-8B-class model in bf16 on one A100 40 GB (the "one GPU, one
// replica" case that endpoint picking balances). See "The simulator" in
// docs/picking.md for the derivation.
const (
	// DefaultSimMaxNumSeqs is the running batch. vLLM's own default is 256,
	// bounded in practice by the KV cache; 8 makes queueing appear under the
	// modest concurrency of a test or a benchmark.
	DefaultSimMaxNumSeqs = 8
	// DefaultSimBlockTokens is vLLM's default KV block size.
	DefaultSimBlockTokens = 16
	// DefaultSimKVBlocks is the KV cache: 8192 blocks of 16 tokens, 131k
	// tokens. An 8B Llama keeps 128 KiB of KV per token (32 layers × 8 KV
	// heads × 128 dims × 2 (K and V) × 2 bytes); 40 GB × 0.9 utilisation −
	// 16 GB weights − ~3 GB activations ≈ 17 GB ≈ 131k tokens.
	DefaultSimKVBlocks = 8192
	// DefaultSimPrefillPerToken is the prefill cost of one uncached prompt
	// token: 0.1 ms, i.e. 10k tokens/s. An 8B model needs ~16 GFLOP per
	// token; an A100's 312 TFLOP/s bf16 at a realistic ~50 % utilisation
	// gives ~10k tokens/s.
	DefaultSimPrefillPerToken = 100 * time.Microsecond
	// DefaultSimDecodeBase is the fixed part of a decode step: 10 ms.
	// Decoding is memory-bound: 16 GB of weights read per step at ~1.6 TB/s
	// effective is ~10 ms, so one stream alone gets 11.5 ms per token
	// (≈87 tokens/s).
	DefaultSimDecodeBase = 10 * time.Millisecond
	// DefaultSimDecodePerSeq is what each running request adds to a decode
	// step: 1.5 ms, its KV reads and attention at a few thousand tokens of
	// context. At 8 running requests a step takes 22 ms (45 tokens/s per
	// stream, 360 tokens/s in total), in line with measured vLLM ITLs for
	// 8B models at small batches.
	DefaultSimDecodePerSeq = 1500 * time.Microsecond
	// DefaultSimMaxLoRAs is the adapter slots. vLLM's --max-loras default
	// is 1; 2 lets a test or a benchmark see both a hit and an eviction.
	DefaultSimMaxLoRAs = 2
	// DefaultSimLoRALoad is the cost of loading an adapter into a slot:
	// 150 ms, reading a rank-16 adapter of some 50-100 MB from host memory
	// or local disk and copying it to the GPU.
	DefaultSimLoRALoad = 150 * time.Millisecond
)

// SimOptions configures a Sim. Zero values take the defaults above; speed
// and slowness 0 mean 1.
type SimOptions struct {
	// Name is reported in the x-fakellm-backend header ("fakellm" when
	// empty).
	Name string
	// Model is the base model, the model_name label of the metrics
	// (DefaultModel when empty). Requests naming any model that is not an
	// adapter are served by the base model.
	Model string
	// Tokens is the default number of output tokens (16 when 0); the
	// x-fakellm-tokens header and max_tokens override it per request.
	Tokens int

	MaxNumSeqs      int           // running slots; the rest wait in FIFO order
	KVBlocks        int           // KV cache size in blocks
	BlockTokens     int           // tokens per KV block
	PrefillPerToken time.Duration // prefill cost of one uncached prompt token
	DecodeBase      time.Duration // decode step with one running request
	DecodePerSeq    time.Duration // added to a decode step per running request
	LoRAs           []string      // known adapter names, served as models
	MaxLoRAs        int           // adapters loaded at once
	LoRALoad        time.Duration // cost of loading an adapter

	// Speed divides every simulated time (10 runs ten times faster), so
	// tests and benchmarks finish quickly with the same proportions.
	Speed float64
	// Slowness multiplies every simulated time, to make one server of a
	// fleet slower than the others.
	Slowness float64
}

// withDefaults returns o with zero fields set to their defaults.
func (o SimOptions) withDefaults() SimOptions {
	if o.Name == "" {
		o.Name = defaultName
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	setDefault(&o.Tokens, defaultTokens)
	setDefault(&o.MaxNumSeqs, DefaultSimMaxNumSeqs)
	setDefault(&o.KVBlocks, DefaultSimKVBlocks)
	setDefault(&o.BlockTokens, DefaultSimBlockTokens)
	setDefault(&o.PrefillPerToken, DefaultSimPrefillPerToken)
	setDefault(&o.DecodeBase, DefaultSimDecodeBase)
	setDefault(&o.DecodePerSeq, DefaultSimDecodePerSeq)
	setDefault(&o.MaxLoRAs, DefaultSimMaxLoRAs)
	setDefault(&o.LoRALoad, DefaultSimLoRALoad)
	setDefault(&o.Speed, 1)
	setDefault(&o.Slowness, 1)
	return o
}

// setDefault sets *v to def when it is zero.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// validate reports every invalid field at once; call it on withDefaults.
func (o SimOptions) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.Tokens < 0, "tokens %d is negative", o.Tokens)
	check(o.MaxNumSeqs < 0, "max num seqs %d is negative", o.MaxNumSeqs)
	check(o.KVBlocks < 0, "KV blocks %d is negative", o.KVBlocks)
	check(o.BlockTokens < 0, "block tokens %d is negative", o.BlockTokens)
	check(o.MaxLoRAs < 0, "max LoRAs %d is negative", o.MaxLoRAs)
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"prefill per token", o.PrefillPerToken}, {"decode base", o.DecodeBase},
		{"decode per seq", o.DecodePerSeq}, {"LoRA load", o.LoRALoad},
	} {
		check(d.d < 0, "%s %v is negative", d.name, d.d)
	}
	check(!(o.Speed > 0), "speed %v must be positive", o.Speed)
	check(!(o.Slowness > 0), "slowness %v must be positive", o.Slowness)
	seen := map[string]bool{}
	for _, name := range o.LoRAs {
		check(name == "", "LoRA adapter name is empty")
		check(seen[name], "LoRA adapter %q is listed twice", name)
		check(name == o.Model, "LoRA adapter %q has the base model's name", name)
		seen[name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot configure simulator: %w", err)
	}
	return nil
}
