package extproc

import (
	"errors"
	"strconv"
	"strings"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/picking"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// ErrBadPriority is an x-streamgate-priority header, from a client allowed
// to send one, that names no priority.
var ErrBadPriority = errors.New("invalid priority")

// pickPolicy is what one config generation says about waiting for a
// saturated backend: the ext_proc message budget a wait must fit in and
// whether an open gateway's clients may set their priority.
type pickPolicy struct {
	// budget is extproc.message_timeout less the headroom limits.queue
	// also keeps: the longest a request body's answer may be held.
	budget time.Duration
	// openHeader is gateway.priority_header: clients of an open gateway
	// may send contract.PriorityHeader.
	openHeader bool
}

// pickPolicyOf returns cfg's pickPolicy.
func pickPolicyOf(cfg *config.Config) pickPolicy {
	return pickPolicy{budget: cfg.ExtProc.MessageTimeout - config.SaturationWaitHeadroom, openHeader: cfg.Gateway.PriorityHeader}
}

// readPriority sets the request's priority once the tenant is known: the
// tenant's priority (standard on an open gateway), overridden by the
// client's x-streamgate-priority header only when the tenant's
// priority_header (gateway.priority_header on an open gateway) allows it.
// Otherwise the header is ignored (onRequestHeaders strips it either way).
// A disallowed header is never an error; a bad value from an allowed client
// is (ErrBadPriority).
func (p *processor) readPriority() error {
	def, allowed := "", p.pick.policy.openHeader
	if p.tenant != nil {
		def, allowed = p.tenant.Priority, p.tenant.PriorityHeader
	}
	p.pick.prio, _ = picking.ParsePriority(def)
	if !allowed || p.pick.header == "" {
		return nil
	}
	prio, ok := picking.ParsePriority(strings.ToLower(strings.TrimSpace(p.pick.header)))
	if !ok {
		return reject(ErrBadPriority, "The %s header must be critical, standard or sheddable.", contract.PriorityHeader)
	}
	p.pick.prio = prio
	return nil
}

// waitForRoom holds the request while backend b is saturated or others
// wait for it (picking.Backend.Wait), within saturation.max_wait and what
// is left of the body answer's message budget since bodyAt. It returns the
// refusal, or nil when the request may be picked for.
func (p *processor) waitForRoom(b *picking.Backend) *extprocsvcv3.ProcessingResponse {
	now := p.now()
	wait := min(b.Config().Saturation.MaxWait, p.pick.policy.budget-now.Sub(p.pick.bodyAt))
	err := b.Wait(p.ctx, p.pick.prio, wait, now)
	if err == nil {
		return nil
	}
	if p.lim != nil {
		p.lim.input = 0 // never sent: a held reservation is refunded in full
	}
	retry := max(b.Config().Saturation.MaxWait, time.Second)
	de := &ratelimit.DeniedError{Kind: err, RetryAfter: retry}
	secs := strconv.FormatInt(de.RetryAfterSeconds(), 10)
	switch {
	case errors.Is(err, picking.ErrShed):
		return p.fail(&clientError{kind: de, msg: "The model is saturated and sheddable requests are refused; retry after " + secs + "s."})
	case errors.Is(err, picking.ErrSaturated):
		return p.fail(&clientError{kind: de, msg: "The model is overloaded; retry after " + secs + "s."})
	}
	return p.fail(err) // the stream ended while the request waited: nobody to answer
}
