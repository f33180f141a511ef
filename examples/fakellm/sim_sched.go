package fakellm

import (
	"container/list"
	"fmt"
	"slices"
	"time"
)

// Life stages of a simRequest.
const (
	stageWaiting = iota
	stageRunning
	stageDone
)

// simRequest is one request's life in the simulator. The fields below
// stage are written under Sim.mu; ready is closed once the request is
// admitted, after which its owner may read cached and firstToken.
type simRequest struct {
	hashes  []uint64 // full prompt blocks, chained hashes
	tokens  int      // prompt tokens
	adapter string   // LoRA adapter, "" for the base model
	anon    int      // anonymous blocks held: past the full prompt blocks, for the prompt's tail and the output so far

	stage      int
	elem       *list.Element // in Sim.waiting while waiting
	ready      chan struct{}
	held       []*kvBlock
	lora       *loraSlot
	cached     int           // prompt tokens served from the prefix cache
	arrived    time.Time     // when it joined the queue
	admitted   time.Time     // when it got a slot
	prefill    time.Duration // the compute of its uncached prompt tokens, scaled
	prefillAt  time.Time     // when that compute starts
	firstToken time.Time     // when the first output token is out
}

// loraSlot is a loaded (or loading) adapter.
type loraSlot struct {
	name    string
	refs    int       // running requests using it
	ready   time.Time // when its load completes
	lastUse uint64    // Sim.loraClock at its last admission, for LRU unload
}

// newSimRequest sizes a request of prompt bytes for adapter.
func (s *Sim) newSimRequest(prompt []byte, adapter string) *simRequest {
	b := s.opts.BlockTokens
	hashes := blockHashes(prompt, b, adapter)
	tokens := simTokens(len(prompt))
	r := &simRequest{hashes: hashes, tokens: tokens, adapter: adapter, ready: make(chan struct{})}
	r.anon = s.anonBlocks(r, 1)
	return r
}

// anonBlocks returns the anonymous blocks r needs once it has generated
// tokens: its prompt's partial block and its output, beyond the full
// prompt blocks.
func (s *Sim) anonBlocks(r *simRequest, generated int) int {
	b := s.opts.BlockTokens
	return (r.tokens+generated+b-1)/b - len(r.hashes)
}

// contextLengthMessage is the 400 answer to a prompt the whole KV cache
// could not hold, worded as vLLM's.
func (s *Sim) contextLengthMessage(r *simRequest) string {
	return fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens in the messages. Please reduce the length of the messages.",
		s.opts.KVBlocks*s.opts.BlockTokens, r.tokens)
}

// enqueue appends r to the waiting queue and admits what fits. It reports
// false, queueing nothing, for a prompt the whole KV cache could not hold
// (its output is not counted: blocks for the output are taken as it grows).
func (s *Sim) enqueue(r *simRequest) bool {
	if len(r.hashes)+r.anon > s.opts.KVBlocks {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.stage = stageWaiting
	r.arrived = time.Now()
	r.elem = s.waiting.PushBack(r)
	s.dispatch(r.arrived)
	return true
}

// release ends r wherever it is: it leaves the queue, or gives back its
// slot, blocks and adapter reference, and lets waiting requests in.
// Idempotent; safe for concurrent use.
func (s *Sim) release(r *simRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	switch r.stage {
	case stageWaiting:
		s.waiting.Remove(r.elem)
		r.elem = nil
	case stageRunning:
		if done := r.prefillAt.Add(r.prefill); s.prefillFree.Equal(done) && now.Before(done) {
			// The last prefill booked is abandoned: give back its GPU time.
			s.prefillFree = later(now, r.prefillAt)
		}
		s.kv.release(r.held, r.anon, now)
		r.held = nil
		if r.lora != nil {
			r.lora.refs--
		}
		s.running--
	default:
		return
	}
	r.stage = stageDone
	s.dispatch(now)
}

// Outcomes of tryAdmit.
const (
	admitted = iota
	blockedKV
	blockedLoRA
)

// dispatch admits waiting requests in FIFO order while slots are free. A
// request the KV cache cannot hold stops admission (first come, first
// served); one whose adapter finds no free slot is skipped, as vLLM's
// scheduler does. Called with s.mu held.
func (s *Sim) dispatch(now time.Time) {
	for e := s.waiting.Front(); e != nil && s.running < s.opts.MaxNumSeqs; {
		next := e.Next()
		r := e.Value.(*simRequest)
		switch s.tryAdmit(r, now) {
		case admitted:
			s.waiting.Remove(e)
			r.elem = nil
		case blockedKV:
			return
		}
		e = next
	}
}

// tryAdmit starts r if its blocks and adapter fit: it pins its prompt
// blocks, counts its prefix-cache hits, books its prefill and sets when its
// first token is out. Called with s.mu held.
func (s *Sim) tryAdmit(r *simRequest, now time.Time) int {
	if !s.kv.fits(r.hashes, r.anon) {
		return blockedKV
	}
	start := now
	if r.adapter != "" {
		slot := s.loadLoRA(r.adapter, now)
		if slot == nil {
			return blockedLoRA
		}
		r.lora = slot
		start = later(start, slot.ready)
	}
	b := s.opts.BlockTokens
	hit := s.kv.hits(r.hashes)
	if hit > 0 && hit*b >= r.tokens {
		hit-- // the last prompt token is always computed, as in vLLM
	}
	for _, h := range r.hashes[:hit] {
		start = later(start, s.kv.blocks[h].ready) // a block still being prefilled
	}
	// Prefill is compute-bound: one request's uncached tokens at a time
	// (the GPU is shared), so a prefill also waits for those booked before.
	start = later(start, s.prefillFree)
	computed := s.scale(time.Duration(r.tokens-hit*b) * s.opts.PrefillPerToken)
	done := start.Add(computed)
	s.prefillFree = done
	r.held = s.kv.acquire(r.hashes, r.anon, done)
	s.running++
	// The first token comes out of the step that finishes the prefill.
	r.firstToken = done.Add(s.decodeStep())
	r.cached = hit * b
	r.admitted, r.prefillAt, r.prefill = now, start, computed
	s.queries += uint64(r.tokens)
	s.hits += uint64(r.cached)
	r.stage = stageRunning
	close(r.ready)
	return admitted
}

// loadLoRA returns the slot of adapter, loading it into a free slot or in
// place of the least recently used idle adapter; nil when every slot is
// busy. Called with s.mu held.
func (s *Sim) loadLoRA(adapter string, now time.Time) *loraSlot {
	s.loraClock++
	if slot, ok := s.loras[adapter]; ok {
		slot.refs++
		slot.lastUse = s.loraClock
		return slot
	}
	if len(s.loras) >= s.opts.MaxLoRAs {
		var victim *loraSlot
		for _, slot := range s.loras {
			if slot.refs == 0 && (victim == nil || slot.lastUse < victim.lastUse) {
				victim = slot
			}
		}
		if victim == nil {
			return nil
		}
		delete(s.loras, victim.name)
	}
	slot := &loraSlot{name: adapter, refs: 1, lastUse: s.loraClock,
		ready: now.Add(s.scale(s.opts.LoRALoad))}
	s.loras[adapter] = slot
	s.loraLoads++
	return slot
}

// decodeStep returns the scaled duration of one decode step with the
// current batch. Called with s.mu held.
func (s *Sim) decodeStep() time.Duration {
	return s.scale(s.opts.DecodeBase + time.Duration(s.running)*s.opts.DecodePerSeq)
}

// nextStep takes the KV blocks r needs to hold generated tokens and
// returns the duration of the decode step that produces the next one. Safe
// for concurrent use.
//
// There is no preemption: when the cache has no block left to give, the
// request runs on over budget (the usage metric is capped at 1) and new
// requests wait until blocks free up, which is what a vLLM server under
// KV pressure looks like from outside.
func (s *Sim) nextStep(r *simRequest, generated int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.stage == stageRunning {
		if n := s.anonBlocks(r, generated) - r.anon; n > 0 {
			s.kv.grow(n)
			r.anon += n
		}
	}
	return s.decodeStep()
}

// scale applies the speed and slowness knobs to d.
func (s *Sim) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.factor)
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// SimState is a snapshot of the simulator, what /metrics reports.
type SimState struct {
	Waiting, Running int
	// KVUsage is the share of KV blocks held by running requests, 0-1.
	KVUsage float64
	// CachedBlocks is the blocks holding a reusable prompt prefix, pinned
	// or not.
	CachedBlocks int
	// RunningLoRAs and WaitingLoRAs are the adapters of running and waiting
	// requests, sorted.
	RunningLoRAs, WaitingLoRAs []string
	// LoadedLoRAs is the adapters loaded, sorted; LoRALoads counts loads.
	LoadedLoRAs []string
	LoRALoads   uint64
	// PrefixQueries and PrefixHits are prompt tokens looked up in and
	// served from the prefix cache.
	PrefixQueries, PrefixHits uint64
}

// State returns a snapshot of the simulator. Safe for concurrent use.
func (s *Sim) State() SimState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SimState{
		Waiting: s.waiting.Len(), Running: s.running,
		KVUsage:       min(float64(s.kv.used())/float64(s.kv.total), 1),
		CachedBlocks:  len(s.kv.blocks),
		LoRALoads:     s.loraLoads,
		PrefixQueries: s.queries, PrefixHits: s.hits,
	}
	for name, slot := range s.loras {
		st.LoadedLoRAs = append(st.LoadedLoRAs, name)
		if slot.refs > 0 {
			st.RunningLoRAs = append(st.RunningLoRAs, name)
		}
	}
	for e := s.waiting.Front(); e != nil; e = e.Next() {
		if a := e.Value.(*simRequest).adapter; a != "" && !slices.Contains(st.WaitingLoRAs, a) {
			st.WaitingLoRAs = append(st.WaitingLoRAs, a)
		}
	}
	slices.Sort(st.LoadedLoRAs)
	slices.Sort(st.RunningLoRAs)
	slices.Sort(st.WaitingLoRAs)
	return st
}
