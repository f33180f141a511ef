package picking

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamgate/streamgate/config"
)

// Scoring.
//
// Every scorer maps an endpoint to 0-1, higher is better, and an endpoint's
// score is the weighted mean of its scorers with the config weights (a zero
// weight leaves a scorer out):
//
//   - queue: 1 - waiting/(max waiting + 1) over the fresh endpoints. It is
//     proportional to the queue rather than min-max scaled, so 100 versus
//     101 waiting is nearly a tie (min-max would make it 1 versus 0 and let
//     a one-request difference outweigh a whole cached prefix), while 0
//     versus 1 waiting is a clear 1 versus 0.5.
//   - kv_cache: 1 - KV-cache use: a full cache preempts or queues.
//   - in_flight: 1 - in-flight/(max in-flight + 1), the same shape over
//     Streamgate's own count of unfinished requests per endpoint. It is the
//     one load signal that is never stale, and it reacts within the
//     scrape interval, which the server's queue does not.
//   - prefix: the share of the prompt's blocks, from the first, that were
//     routed to the endpoint recently (prefix.go).
//   - lora: the adapter's state on the endpoint (lora.go); left out for
//     base-model requests.
//
// An endpoint whose metrics are stale (or never scraped) has no queue,
// KV-cache or LoRA signal: its in-flight score stands in for the queue and
// KV-cache scores, halved while other endpoints have fresh metrics (an
// endpoint that stopped answering scrapes may have died, and a dead
// endpoint's in-flight count stays low as its requests fail fast), and its
// LoRA score is 0. So the weighted mean keeps one scale for every endpoint.

// staleLoadShare is the share of its in-flight score a stale endpoint gets
// for its queue and KV-cache scores while some endpoint is fresh.
const staleLoadShare = 0.5

// staleRankPenalty puts a stale endpoint behind every fresh one while any
// endpoint is fresh; scores are 0-1.
const staleRankPenalty = 2

// maxWaiting caps a scraped queue length, so garbage (+Inf, 1e300) keeps
// the queue scores finite and ordered.
const maxWaiting = 1e9

// maxWeight caps a weight, so an infinite one keeps scores finite.
const maxWeight = 1e6

// weights are a backend's scorer weights, sanitized: negative or NaN is 0,
// at most maxWeight.
type weights struct{ queue, kv, inFlight, prefix, lora float64 }

// weightsOf returns cfg's weights sanitized, config's defaults when unset.
func weightsOf(cfg *config.Picking) weights {
	w := cfg.Weights
	if w == nil {
		w = &config.DefaultPickWeights
	}
	return weights{bounded(w.Queue, maxWeight), bounded(w.KVCache, maxWeight), bounded(w.InFlight, maxWeight), bounded(w.Prefix, maxWeight), bounded(w.LoRA, maxWeight)}
}

// nonNeg is x, or 0 when x is negative or NaN.
func nonNeg(x float64) float64 {
	if x > 0 {
		return x
	}
	return 0
}

// bounded is x clamped to 0..hi, NaN as 0.
func bounded(x, hi float64) float64 { return min(nonNeg(x), hi) }

// cand is one endpoint's inputs and scores during a pick.
type cand struct {
	ep           *Endpoint
	fresh, full  bool
	waiting, kv  float64
	inFlight     int64
	prefix, lora float64 // scores 0-1
	load, score  float64 // weighted means: load scorers only, all scorers
	key          float64 // what the ordering compares: score, or load when saturated
	rank         int     // tie-break rotation position
	taken        bool    // already placed in the result
}

// gathered is what a pick learned of the backend as a whole.
type gathered struct {
	anyFresh, allFull bool
	maxWaiting        float64
	maxInFlight       int64
}

// scratch is a pick's reusable memory.
type scratch struct {
	cands  []cand
	blocks []uint64
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// pickSeq rotates tie-breaks so endpoints with equal scores and equal
// in-flight counts take turns.
var pickSeq atomic.Uint64

// Pick chooses r's endpoint at now, with up to Config().Fallbacks next-best
// endpoints after it, records r's prompt blocks on the chosen endpoint and
// counts the request on it (Result.Done ends it). It reads only the
// endpoints' stored scrapes and counters: it never blocks and never fails;
// a backend without endpoints gives an empty Result. Safe for concurrent
// use. Cost: one hash pass over the prompt (none with a zero prefix
// weight), one index lookup per endpoint plus about 2*log2(blocks) for
// each endpoint holding the prompt's first block, one record of the
// prompt's blocks, and one allocation (the result's slice).
//
// The order is by score, ties by fewer in flight, then by a per-pick
// rotation. When every endpoint is past its saturation thresholds the order
// is by load alone, least loaded first, and Result.Saturated is set; the
// request is still counted and its prompt recorded on the first endpoint,
// as a caller that queues it picks again (recording twice is harmless).
func (b *Backend) Pick(r Request, now time.Time) Result {
	if len(b.eps) == 0 {
		return Result{}
	}
	w := weightsOf(&b.cfg)
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.blocks = s.blocks[:0]
	if w.prefix > 0 {
		s.blocks = hashBlocks(s.blocks, r.Prompt, blockBytes(&b.cfg))
	}
	g := b.gather(s, r, now, w)
	matchPrefixes(s)
	scoreAll(s.cands, g, w, len(s.blocks), r.LoRA != "")
	rot := int(pickSeq.Add(1) % uint64(len(s.cands)))
	for i := range s.cands {
		c := &s.cands[i]
		c.rank = (i + len(s.cands) - rot) % len(s.cands)
		c.key = c.score
		if g.allFull {
			c.key = c.load
		}
		if g.anyFresh && !c.fresh {
			// Its scraper cannot reach it while others answer: most
			// likely down. Envoy's override-host policy does not consult
			// health, so the picker keeps it behind every fresh endpoint
			// (keys are 0-1), as a last fallback only.
			c.key -= staleRankPenalty
		}
	}
	k := min(len(s.cands), 1+max(b.cfg.Fallbacks, 0))
	res := Result{Endpoints: make([]string, k)}
	best := takeBest(s.cands)
	res.Endpoints[0] = best.ep.Addr
	for j := 1; j < k; j++ {
		res.Endpoints[j] = takeBest(s.cands).ep.Addr
	}
	res.Reason, res.Saturated = reason(s.cands, best, g, w), g.allFull
	best.ep.prefix.record(s.blocks)
	best.ep.Start()
	res.ep = best.ep
	return res
}

// blockBytes is the prefix block size of cfg, its default when unset.
func blockBytes(cfg *config.Picking) int {
	if cfg.PrefixBlockBytes > 0 {
		return cfg.PrefixBlockBytes
	}
	return 256
}

// gather fills s.cands with each endpoint's inputs at now: its fresh
// metrics (sanitized), in-flight count and LoRA score.
func (b *Backend) gather(s *scratch, r Request, now time.Time, w weights) gathered {
	if cap(s.cands) < len(b.eps) {
		s.cands = make([]cand, len(b.eps))
	}
	s.cands = s.cands[:len(b.eps)]
	sat := b.cfg.Saturation
	g := gathered{allFull: sat.Queue > 0 || sat.KVCache > 0}
	for i, e := range b.eps {
		c := cand{ep: e, inFlight: max(e.InFlight(), 0)}
		m, fresh := e.Fresh(now, b.cfg.StaleAfter)
		if fresh {
			c.fresh = true
			c.waiting, c.kv = bounded(m.Waiting, maxWaiting), bounded(m.KVCache, 1)
			c.full = isFull(sat, c.waiting, c.kv)
			if r.LoRA != "" && w.lora > 0 {
				c.lora = loraScore(&m, r.LoRA)
			}
			g.anyFresh = true
			g.maxWaiting = max(g.maxWaiting, c.waiting)
		}
		g.allFull = g.allFull && c.full
		g.maxInFlight = max(g.maxInFlight, c.inFlight)
		s.cands[i] = c
	}
	return g
}

// scoreAll sets every candidate's load and score (see Scoring): blocks is
// how many prompt blocks the prefix scorer matched against, lora whether
// the request names an adapter.
func scoreAll(cs []cand, g gathered, w weights, blocks int, lora bool) {
	loadDen := w.queue + w.kv + w.inFlight
	den := loadDen
	if blocks > 0 {
		den += w.prefix
	}
	if lora {
		den += w.lora
	}
	stale := 1.0
	if g.anyFresh {
		stale = staleLoadShare
	}
	for i := range cs {
		c := &cs[i]
		f := 1 - float64(c.inFlight)/float64(g.maxInFlight+1)
		q, kv := f*stale, f*stale
		if c.fresh {
			q, kv = 1-c.waiting/(g.maxWaiting+1), 1-c.kv
		}
		num := w.queue*q + w.kv*kv + w.inFlight*f
		c.load = mean(num, loadDen)
		if blocks > 0 {
			num += w.prefix * c.prefix
		}
		if lora {
			num += w.lora * c.lora
		}
		c.score = mean(num, den)
	}
}

// mean is num/den, 0 when every weight is 0.
func mean(num, den float64) float64 {
	if den <= 0 {
		return 0
	}
	return num / den
}

// better orders candidates: higher key, then fewer in flight, then the
// rotation.
func better(a, b *cand) bool { return ahead(a.key, b.key, a, b) }

// ahead orders a with key ka before b with key kb: the higher key, then
// fewer in flight, then the rotation.
func ahead(ka, kb float64, a, b *cand) bool {
	if ka != kb {
		return ka > kb
	}
	if a.inFlight != b.inFlight {
		return a.inFlight < b.inFlight
	}
	return a.rank < b.rank
}

// takeBest marks and returns the best candidate not yet taken; cs must
// hold one.
func takeBest(cs []cand) *cand {
	var best *cand
	for i := range cs {
		if c := &cs[i]; !c.taken && (best == nil || better(c, best)) {
			best = c
		}
	}
	best.taken = true
	return best
}

// reason names what decided the pick of best: saturation, the lack of
// fresh metrics, or, when the winner by load alone is another endpoint,
// the affinity scorer that gave best the larger edge over it.
func reason(cs []cand, best *cand, g gathered, w weights) string {
	switch {
	case g.allFull:
		return ReasonSaturated
	case !g.anyFresh:
		return ReasonInFlight
	}
	var byLoad *cand
	for i := range cs {
		c := &cs[i]
		if byLoad == nil || ahead(c.load, byLoad.load, c, byLoad) {
			byLoad = c
		}
	}
	if byLoad == best {
		return ReasonScore
	}
	dp := w.prefix * (best.prefix - byLoad.prefix)
	dl := w.lora * (best.lora - byLoad.lora)
	switch {
	case dp > 0 && dp >= dl:
		return ReasonPrefix
	case dl > 0:
		return ReasonLoRA
	}
	return ReasonScore
}
