package ratelimit

import (
	"time"

	"github.com/streamgate/streamgate/config"
)

// planService lists the charges and slots of a service request: the
// tenant's limits on that service (requests and request bytes per minute,
// concurrent requests), never its model limits. Keys carry the tenant in
// braces, as plan's do.
func (l *Limiter) planService(req Request, t *config.TenantLimits) ([]Charge, []kind, []Slot) {
	var charges []Charge
	var kinds []kind
	var slots []Slot
	if t == nil {
		return nil, nil, nil
	}
	for _, s := range t.Services {
		if s.Name != req.Service {
			continue
		}
		prefix := "{" + req.Tenant + "}:s:" + s.Name
		if s.RequestsPerMinute > 0 {
			charges = append(charges, Charge{Key: prefix + ":rpm", Rule: Rule{Limit: s.RequestsPerMinute, Period: time.Minute}, Cost: 1})
			kinds = append(kinds, kindRequests)
		}
		if s.RequestBytesPerMinute > 0 {
			charges = append(charges, Charge{Key: prefix + ":bpm", Rule: Rule{Limit: s.RequestBytesPerMinute, Period: time.Minute}, Cost: max(req.Bytes, 0)})
			kinds = append(kinds, kindBytes)
		}
		if s.ConcurrentRequests > 0 {
			slots = append(slots, Slot{Key: "c:" + prefix, Limit: s.ConcurrentRequests, owner: req.Tenant, service: s.Name})
		}
	}
	return charges, kinds, slots
}

// serviceSlotLimit is the tenant's cap on concurrent requests to service.
func serviceSlotLimit(t *config.TenantLimits, service string) int {
	for _, s := range t.Services {
		if s.Name == service {
			return s.ConcurrentRequests
		}
	}
	return 0
}
