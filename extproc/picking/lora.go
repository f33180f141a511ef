package picking

import "slices"

// LoRA affinity scores. A server that already runs the adapter serves the
// request with no load cost; one that is loading it (the adapter is in its
// waiting list) will have it shortly; one with a free adapter slot must
// load it first (a disk or host-memory copy, tens to hundreds of ms, and a
// batch that mixes one more adapter); one with every slot taken must evict
// another adapter first, which also costs the requests using it.
const (
	loraRunning  = 1.0
	loraWaiting  = 0.8
	loraLoadable = 0.5
)

// loraScore is how well an endpoint with metrics m suits adapter, 0-1:
// loraRunning when m lists it running, loraWaiting when waiting,
// loraLoadable when fewer adapters run than MaxLoRA, 0 otherwise (no free
// slot, or MaxLoRA unknown). Callers skip the scorer for base-model
// requests (adapter "").
func loraScore(m *Metrics, adapter string) float64 {
	switch {
	case slices.Contains(m.RunningLoRA, adapter):
		return loraRunning
	case slices.Contains(m.WaitingLoRA, adapter):
		return loraWaiting
	case m.MaxLoRA > 0 && len(m.RunningLoRA) < m.MaxLoRA:
		return loraLoadable
	}
	return 0
}
