package main

import (
	"flag"
	"fmt"
	"net/http"
	"strings"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// simFlags are the flags of the model-server simulator mode (-sim vllm).
type simFlags struct {
	mode string
	opts fakellm.SimOptions
	// loras is the comma-separated adapter list.
	loras string
}

// addSimFlags registers the simulator's flags on fs, with the simulator's
// defaults (see fakellm.SimOptions and docs/picking.md "The simulator").
func addSimFlags(fs *flag.FlagSet) *simFlags {
	f := &simFlags{}
	o := &f.opts
	fs.StringVar(&f.mode, "sim", "", `model-server simulator to run instead of the plain fake: "vllm" (-ttft and -itl are then ignored)`)
	fs.StringVar(&o.Model, "sim-model", fakellm.DefaultModel, "simulator: base model name, the model_name metric label")
	fs.IntVar(&o.MaxNumSeqs, "sim-max-num-seqs", fakellm.DefaultSimMaxNumSeqs, "simulator: running slots (vLLM --max-num-seqs)")
	fs.IntVar(&o.KVBlocks, "sim-kv-blocks", fakellm.DefaultSimKVBlocks, "simulator: KV cache size in blocks")
	fs.IntVar(&o.BlockTokens, "sim-block-size", fakellm.DefaultSimBlockTokens, "simulator: tokens per KV block (vLLM --block-size)")
	fs.DurationVar(&o.PrefillPerToken, "sim-prefill-per-token", fakellm.DefaultSimPrefillPerToken, "simulator: prefill time per uncached prompt token")
	fs.DurationVar(&o.DecodeBase, "sim-decode-base", fakellm.DefaultSimDecodeBase, "simulator: fixed part of a decode step")
	fs.DurationVar(&o.DecodePerSeq, "sim-decode-per-seq", fakellm.DefaultSimDecodePerSeq, "simulator: decode step time added per running request")
	fs.StringVar(&f.loras, "sim-loras", "", "simulator: comma-separated LoRA adapter names, served as models")
	fs.IntVar(&o.MaxLoRAs, "sim-max-loras", fakellm.DefaultSimMaxLoRAs, "simulator: adapters loaded at once (vLLM --max-loras)")
	fs.DurationVar(&o.LoRALoad, "sim-lora-load", fakellm.DefaultSimLoRALoad, "simulator: time to load an adapter")
	fs.Float64Var(&o.Speed, "sim-speed", 1, "simulator: divides every simulated time (10 = ten times faster)")
	fs.Float64Var(&o.Slowness, "sim-slow", 1, "simulator: multiplies every simulated time (2 = a server twice as slow)")
	return f
}

// handler returns the simulator named by -sim, built with the given
// backend name and default output tokens, or nil when -sim is empty.
func (f *simFlags) handler(name string, tokens int) (http.Handler, error) {
	switch f.mode {
	case "":
		return nil, nil
	case "vllm":
	default:
		return nil, fmt.Errorf("cannot start simulator: unknown -sim %q (known: vllm)", f.mode)
	}
	opts := f.opts
	opts.Name, opts.Tokens = name, tokens
	if f.loras != "" {
		opts.LoRAs = strings.Split(f.loras, ",")
	}
	sim, err := fakellm.NewSim(opts)
	if err != nil {
		return nil, err
	}
	return sim, nil
}
