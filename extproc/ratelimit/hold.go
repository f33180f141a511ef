package ratelimit

import (
	"context"
	"sync"
)

// Hold is a tenant's own concurrency slot (its concurrent_streams), taken
// when a request's headers arrive, before its body is buffered: a tenant
// at its limit is refused before it can park bodies in Envoy. Admission
// takes the hold over (Request.Hold) and charges the rest once the body is
// known. A nil *Hold holds nothing.
type Hold struct {
	l       *Limiter
	key     string
	mu      sync.Mutex
	release func() // nil once released or taken over
}

// HoldTenant takes tenant's concurrent-streams slot, waiting in the fair
// queue like Admit. It returns nil when the tenant has no such limit, or a
// *DeniedError (ErrTenantBusy) or ctx's error. The caller must Release the
// hold or pass it to Admit.
func (l *Limiter) HoldTenant(ctx context.Context, tenant string) (*Hold, error) {
	t := l.tenant(tenant)
	if t == nil || t.ConcurrentStreams <= 0 {
		return nil, nil
	}
	slot := Slot{Key: tenantSlotKey(tenant), Limit: t.ConcurrentStreams, owner: tenant}
	release, err := l.acquire(ctx, tenant, []Slot{slot})
	if err != nil {
		if de, ok := err.(*DeniedError); ok {
			l.metrics.denied(de.Kind)
		}
		return nil, err
	}
	l.metrics.holds.Inc()
	return &Hold{l: l, key: slot.Key, release: release}, nil
}

// tenantSlotKey is the gate key of a tenant's own concurrent streams, as
// plan names it.
func tenantSlotKey(tenant string) string { return "c:{" + tenant + "}" }

// Release frees the slot unless it was released or taken over already.
// Safe on nil and for concurrent use.
func (h *Hold) Release() {
	if release := h.takeOver(); release != nil {
		release()
	}
}

// takeOver hands the slot's release to the caller, leaving the hold empty.
func (h *Hold) takeOver() func() {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	release := h.release
	if release != nil {
		h.release = nil
		h.l.metrics.holds.Dec()
	}
	return release
}

// without drops from slots the one h already holds.
func (h *Hold) without(slots []Slot) []Slot {
	if h == nil {
		return slots
	}
	kept := slots[:0:0]
	for _, s := range slots {
		if s.Key != h.key {
			kept = append(kept, s)
		}
	}
	return kept
}

// join adds h's slot to release, taking the hold over: the returned func
// frees both. It returns release itself when h holds nothing.
func (h *Hold) join(release func()) func() {
	held := h.takeOver()
	if held == nil {
		return release
	}
	return func() { release(); held() }
}
