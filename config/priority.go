package config

import "time"

// Request priorities (auth.tenants[].priority and the
// x-streamgate-priority header), as the Gateway API Inference Extension's
// criticality: while a backend with picking is saturated, critical
// requests leave its queue before standard ones and sheddable requests are
// refused at once.
const (
	PriorityCritical  = "critical"
	PriorityStandard  = "standard"
	PrioritySheddable = "sheddable"
)

// ValidPriority reports whether s names a priority ("" is the default,
// standard).
func ValidPriority(s string) bool {
	switch s {
	case "", PriorityCritical, PriorityStandard, PrioritySheddable:
		return true
	}
	return false
}

// SaturationWaitHeadroom is what a saturation wait leaves of
// extproc.message_timeout, as limits.queue.max_wait does.
const SaturationWaitHeadroom = queueMessageTimeoutHeadroom

// validateSaturationWait checks a backend's saturation queue bounds: the
// wait holds the request body's ext_proc answer, so it must end before
// Envoy's message timeout does.
func (v *validator) validateSaturationWait(p, backend string, s PickSaturation) {
	if s.MaxWaiting < 0 || s.MaxWaiting > 1<<20 {
		v.at(p+".max_waiting", "backend %q: picking.saturation.max_waiting must be 1-1048576", backend)
	}
	mt := v.cfg.ExtProc.MessageTimeout
	if s.MaxWait < time.Millisecond || s.MaxWait+SaturationWaitHeadroom > mt {
		v.at(p+".max_wait", "backend %q: picking.saturation.max_wait %s must be positive and at least %s below extproc.message_timeout (%s): Envoy fails a request whose ext_proc answer takes longer",
			backend, s.MaxWait, SaturationWaitHeadroom, mt)
	}
}

// validatePriority checks tenant t's priority at path p.
func (v *validator) validatePriority(p string, t *Tenant) {
	if !ValidPriority(t.Priority) {
		v.at(p+".priority", "tenant %q: priority %q must be %s, %s or %s", t.Name, t.Priority, PriorityCritical, PriorityStandard, PrioritySheddable)
	}
}
