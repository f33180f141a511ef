package extproc

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/budget"
	"github.com/streamgate/streamgate/extproc/ratelimit"
	"github.com/streamgate/streamgate/extproc/tokens"
)

// ErrBadTenant is a tenant header that is not a valid tenant name.
var ErrBadTenant = errors.New("invalid tenant")

// Limits is the throttling part of the ext_proc server: the limiter and
// how to count each model's tokens, for one config generation (Reload
// makes the next one, sharing the limiter's state). Immutable after
// NewLimits; safe for concurrent use.
type Limits struct {
	cfg      *config.Limits
	limiter  *ratelimit.Limiter
	counters map[string]*tokens.Counter
	fallback *tokens.Counter
	// capsConcurrency: some tenant or backend caps streams open at once
	// (config.Limits.CapsConcurrency), read once per config.
	capsConcurrency bool
	// lastUnreadWarn is when usageUnread last logged (unix nanos).
	lastUnreadWarn atomic.Int64
	// budgets are the spend budgets (nil: none); budgetOpts build them
	// when a reload adds the first (spend.go).
	budgets    *budget.Budgets
	budgetOpts budget.Options
}

// LimitsOption tunes NewLimits.
type LimitsOption func(*budget.Options)

// WithBudgetStore keeps spend budgets in s (default: in memory).
func WithBudgetStore(s budget.Store) LimitsOption {
	return func(o *budget.Options) { o.Store = s }
}

// WithBudgetLog sends budget warnings to log (default slog.Default()).
func WithBudgetLog(log *slog.Logger) LimitsOption {
	return func(o *budget.Options) { o.Log = log }
}

// NewLimits builds the limiter for cfg.Limits (which must be set) with
// store for its rate buckets (nil: in memory), registering its metrics
// with reg.
func NewLimits(cfg *config.Config, store ratelimit.Store, reg prometheus.Registerer, opts ...LimitsOption) (*Limits, error) {
	l, err := newCounters(cfg.Limits)
	if err != nil {
		return nil, err
	}
	if store == nil {
		store = ratelimit.NewMemoryStore(ratelimit.SystemClock{})
	}
	l.limiter = ratelimit.New(cfg.Limits, store, ratelimit.SystemClock{}, ratelimit.NewMetrics(reg))
	l.budgetOpts = budget.Options{Metrics: budget.NewMetrics(reg)}
	for _, o := range opts {
		o(&l.budgetOpts)
	}
	if l.budgetOpts.Store == nil {
		l.budgetOpts.Store = budget.NewMemoryStore(nil)
	}
	l.budgets = budget.New(cfg.Limits, l.budgetOpts)
	return l, nil
}

// Reload returns the Limits of cfg.Limits (which must be set): its
// tenants, rates, concurrency caps, queue, tokenizers and the rest, on
// the state of l's limiter (ratelimit.Limiter.Reconfigured): buckets and
// held slots carry over. Nothing changes until Server.Update publishes the
// result; requests already running keep the Limits they started with.
func (l *Limits) Reload(cfg *config.Config) (*Limits, error) {
	n, err := newCounters(cfg.Limits)
	if err != nil {
		return nil, err
	}
	n.limiter = l.limiter.Reconfigured(cfg.Limits)
	n.budgetOpts = l.budgetOpts
	if n.budgets = l.budgets.Reconfigured(cfg.Limits); n.budgets == nil {
		n.budgets = budget.New(cfg.Limits, l.budgetOpts)
	}
	return n, nil
}

// newCounters returns Limits for lc with its token counters built and no
// limiter yet.
func newCounters(lc *config.Limits) (*Limits, error) {
	l := &Limits{cfg: lc, counters: map[string]*tokens.Counter{}, capsConcurrency: lc.CapsConcurrency()}
	var err error
	if l.fallback, err = tokens.NewCounter(tokens.EncodingHeuristic, 0); err != nil {
		return nil, fmt.Errorf("cannot build the heuristic tokenizer: %w", err)
	}
	for _, tk := range lc.Tokenizers {
		c, err := tokens.NewCounter(tk.Encoding, tk.CharsPerToken)
		if err != nil {
			return nil, fmt.Errorf("cannot build tokenizer for model %s: %w", tk.Model, err)
		}
		l.counters[tk.Model] = c
	}
	return l, nil
}

// limitState is one request's part in the limiter.
type limitState struct {
	res     *ratelimit.Reservation
	headers ratelimit.Headers
	input   int64
	// counter counts a stream's output deltas when its usage is missing.
	counter *tokens.Counter
	// bud is the spend budget reservation until settled (spend.go);
	// budSeen the reservation or refusal the headers and usage event report.
	bud, budSeen *budget.Reservation
}

// needsUsage reports whether the response's usage changes a charge: a
// token bucket or a budget was reserved.
func (s *limitState) needsUsage() bool {
	return s != nil && (s.res != nil && s.res.NeedsUsage() || s.bud != nil)
}

// tenantFrom resolves the tenant from the configured header's value.
func (p *processor) tenantFrom(raw string) error {
	if raw == "" {
		p.Tenant = p.limits.cfg.DefaultTenant
		return nil
	}
	if !ratelimit.ValidTenant(raw) {
		return reject(ErrBadTenant, "The %s header must be 1 to 128 letters, digits or . _ - : @.", p.limits.cfg.TenantHeader)
	}
	p.Tenant = raw
	return nil
}

// admit estimates and reserves the request, or returns a refusal. A
// reservation that needs the response's usage makes askUsage ask for it.
func (p *processor) admit(body []byte) *extprocsvcv3.ProcessingResponse {
	if p.limits == nil {
		return nil
	}
	counter := p.limits.counters[p.route.Model]
	if counter == nil {
		counter = p.limits.fallback
	}
	est := p.estimate(body, counter, tokens.NewBudget(p.limits.cfg.MaxExactBytes))
	out := est.MaxOutput
	if out == 0 && generates(p.endpoint) {
		out = p.limits.cfg.DefaultOutputTokens
	}
	began := p.now()
	bud, err := p.reserveBudget(est.Input, out)
	if err != nil {
		p.admission(began, err)
		p.lim = &limitState{input: est.Input, counter: counter, budSeen: bud}
		return p.deniedBudget(err) // the hold is released in finish
	}
	res, h, err := p.limits.limiter.Admit(p.ctx, ratelimit.Request{
		Tenant: p.Tenant, Model: p.route.Model, Backend: p.route.Backend, Input: est.Input, Output: out, Hold: p.hold,
	})
	p.admission(began, err)
	st := &limitState{headers: h, input: est.Input, counter: counter, budSeen: bud}
	p.lim = st
	if err != nil {
		bud.Cancel()         // refused: nothing spent
		return p.denied(err) // the hold is released in finish
	}
	p.hold = nil // the reservation has it
	st.bud = bud
	if !res.Holds() && bud == nil {
		// Nothing to give back: the response passes without body processing.
		res.Finish(ratelimit.Usage{Input: est.Input, Output: out})
		return nil
	}
	st.res = res
	return nil
}

// denied answers a refused admission with the client's message; fail adds
// Retry-After and the x-ratelimit-* headers (the refusal table's rows for
// the ratelimit sentinels).
func (p *processor) denied(err error) *extprocsvcv3.ProcessingResponse {
	var de *ratelimit.DeniedError
	if !errors.As(err, &de) {
		// The ext_proc stream ended while the request waited: nobody to answer.
		return p.fail(err)
	}
	msg := "Too many concurrent requests for this tenant; retry after " + strconv.FormatInt(de.RetryAfterSeconds(), 10) + "s."
	switch {
	case errors.Is(err, ratelimit.ErrRateLimited):
		msg = fmt.Sprintf("Rate limit reached for tenant %s (%s). Please retry after %ds.", p.Tenant, de.What, de.RetryAfterSeconds())
	case errors.Is(err, ratelimit.ErrBackendBusy), errors.Is(err, ratelimit.ErrStoreUnavailable):
		msg = "The model is overloaded; retry after " + strconv.FormatInt(de.RetryAfterSeconds(), 10) + "s."
	}
	return p.fail(&clientError{kind: de, msg: msg})
}

// rateValues yields the OpenAI-style x-ratelimit-* headers and values.
func (p *processor) rateValues(yield func(name, value string)) {
	if p.lim == nil {
		return
	}
	p.budgetValues(yield)
	for _, x := range []struct {
		limit, remaining, reset string
		s                       *ratelimit.State
	}{
		{contract.RateLimitLimitRequests, contract.RateLimitRemainingRequests, contract.RateLimitResetRequests, p.lim.headers.Requests},
		{contract.RateLimitLimitTokens, contract.RateLimitRemainingTokens, contract.RateLimitResetTokens, p.lim.headers.Tokens},
	} {
		if x.s == nil {
			continue
		}
		yield(x.limit, strconv.FormatInt(x.s.Limit, 10))
		yield(x.remaining, strconv.FormatInt(x.s.Remaining, 10))
		yield(x.reset, x.s.Reset.Round(time.Millisecond).String())
	}
}

// rateHeaders renders the x-ratelimit-* headers for an immediate response.
func (p *processor) rateHeaders() []*corev3.HeaderValueOption {
	var hs []*corev3.HeaderValueOption
	p.rateValues(func(k, v string) { hs = append(hs, header(k, v)) })
	return hs
}

// releaseLimits reconciles and releases the reservation, once: with the
// usage the backend reported, else the estimated input and the output
// tokens counted so far (streams) or reserved (a successful non-streamed
// response whose usage could not be read, or a stream the meter stopped
// reading at an oversized event: see usageUnread).
func (p *processor) releaseLimits() {
	if p.lim == nil || p.lim.res == nil {
		return
	}
	used := ratelimit.Usage{Input: p.lim.input}
	var u tokens.Usage
	var ok bool
	switch {
	case p.meter.stream != nil:
		u, ok = p.meter.stream.Usage()
		used.Output = p.meter.stream.Counted()
		if p.meter.stream.Truncated() {
			// The meter stopped at an event past its bound: what it read is
			// a floor, not the response. Charge at least the reservation.
			if ok {
				used.Input, used.Output, ok = u.Input, u.Output, false
			}
			used.Output = max(used.Output, p.lim.res.Reserved().Output)
			p.usageUnread(unreadTooLarge)
		}
	case p.meter.body != nil:
		// Images from models that report no usage (DALL·E, most servers)
		// reserved no output: nothing is missing.
		if u, ok = p.meter.body.Usage(); !ok && p.responseSucceeded() && !isImages(p.endpoint) {
			// Tokens were generated but not reported: charge what was reserved.
			used.Output = p.lim.res.Reserved().Output
			p.usageUnread(unreadReason(p.meter.body.Ended()))
		}
	case p.meter.report != nil:
		r := p.meter.report
		if u, ok = r.usage, r.found; !ok && p.responseSucceeded() {
			var estimated bool
			used.Output, estimated = r.output(p.lim.res.Reserved().Output)
			reason := unreadMissing
			if estimated {
				reason = unreadEstimated
			}
			p.usageUnread(reason)
		}
	}
	if ok {
		used = ratelimit.Usage{Input: u.Input, Output: u.Output}
	}
	p.settleBudget(used, ok)
	p.lim.res.Finish(used)
	p.lim.res = nil
}
