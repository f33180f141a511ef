package extproc

import (
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// holdTenant takes the tenant's concurrent-streams slot as soon as the
// request headers name the tenant, before Envoy buffers the body: a tenant
// at its limit is refused (429) without parking another body in Envoy.
// admit hands the hold to the reservation; every other end of the request
// releases it in finish. It returns the refusal, or nil.
func (p *processor) holdTenant() *extprocsvcv3.ProcessingResponse {
	h, err := p.limits.limiter.HoldTenant(p.ctx, p.Tenant)
	if err != nil {
		return p.denied(err)
	}
	p.hold = h
	return nil
}
