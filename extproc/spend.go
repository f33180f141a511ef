package extproc

import (
	"errors"
	"math"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/budget"
	"github.com/streamgate/streamgate/extproc/ratelimit"
	"github.com/streamgate/streamgate/extproc/telemetry"
)

// Spend budgets on the request path (extproc/budget): the worst-case
// cost reserved at admission, the real cost settled when the request
// ends, the budget headers. A tenant without a budget pays two map
// lookups (budget.Budgets.Applies) and nothing else.

// reserveBudget reserves the request's worst-case cost against its
// tenant's and API key's budgets: input × input price + reserved output ×
// output price, plus n images at the requested size's price (the model's
// dearest when the size has none). It returns nil, nil when no budget
// applies.
func (p *processor) reserveBudget(input, output int64) (*budget.Reservation, error) {
	b := p.limits.budgets
	if !b.Applies(p.Tenant, p.apiKey) {
		return nil, nil
	}
	var cost float64
	if set := p.obs.set; set != nil && p.route != nil {
		pr := set.prices[p.route.Model]
		cost = float64(input)*pr.InputPerMillion + float64(output)*pr.OutputPerMillion
		if isImages(p.endpoint) && len(pr.PerImage) > 0 {
			cost += float64(max(p.info.Tokens.N, 1)) * 1e6 * worstImagePrice(pr.PerImage, p.img)
		}
	}
	return b.Reserve(p.ctx, budget.Request{Tenant: p.Tenant, Key: p.apiKey, Cost: ceilMicro(cost)})
}

// worstImagePrice is the price of one image of the request's size and
// quality, else of its size, else the dearest the model lists.
func worstImagePrice(prices map[string]float64, img imageRequest) float64 {
	if x, ok := prices[img.size+"/"+img.quality]; ok && img.quality != "" {
		return x
	}
	if x, ok := prices[img.size]; ok {
		return x
	}
	var most float64
	for _, x := range prices {
		most = max(most, x)
	}
	return most
}

// ceilMicro rounds a cost in micro-units up to a whole one, within
// [0, budget.MaxCost].
func ceilMicro(c float64) int64 {
	switch {
	case !(c > 0):
		return 0
	case c >= float64(budget.MaxCost):
		return budget.MaxCost
	}
	return int64(math.Ceil(c))
}

// deniedBudget answers a budget refusal: 429 budget_exceeded with the
// window's reset in Retry-After, or 503 when the store is down and
// fail_open is off.
func (p *processor) deniedBudget(err error) *extprocsvcv3.ProcessingResponse {
	var de *ratelimit.DeniedError
	if !errors.As(err, &de) {
		return p.fail(err)
	}
	if errors.Is(err, ratelimit.ErrStoreUnavailable) {
		return p.fail(&clientError{kind: de, msg: "The model is overloaded; retry after 1s."})
	}
	return p.fail(&clientError{kind: de, msg: "The " + de.What + " is spent; it frees room in " + de.RetryAfter.Round(time.Second).String() + "."})
}

// shouldRetry is the x-should-retry header of a refusal that a retry
// within a minute cannot cure (a spent budget resetting later), or nil.
func shouldRetry(err error, de *ratelimit.DeniedError) *corev3.HeaderValueOption {
	if de.RetryAfter <= time.Minute || !errors.Is(err, budget.ErrExceeded) {
		return nil
	}
	return header(contract.ShouldRetryHeader, "false")
}

// settleBudget settles the reservation with the request's real cost:
// the reported usage (reported), else used as releaseLimits estimated
// it, priced with the model's prices, plus the images made. A request
// refused after admission or answered with an error and no usage costs
// nothing.
func (p *processor) settleBudget(used ratelimit.Usage, reported bool) {
	if p.lim == nil || p.lim.bud == nil {
		return
	}
	r := p.lim.bud
	p.lim.bud = nil
	if p.answered {
		r.Cancel() // refused after admission (e.g. saturation): nothing spent
		return
	}
	sp := budget.Spend{Input: used.Input, Output: used.Output}
	if p.route != nil {
		sp.Model = p.route.Model
	}
	failed := p.status >= 400 && !reported
	if failed {
		sp.Input, sp.Output = 0, 0
	}
	if set := p.obs.set; set != nil && !failed {
		cost := set.prices.Cost(sp.Model, sp.Input, sp.Output) * 1e6
		if im := p.imagesMade(); im.Count > 0 {
			cost += set.prices.ImageCost(sp.Model, im.Size, im.Quality, im.Count) * 1e6
		}
		sp.Cost = int64(math.Round(cost))
	}
	r.Settle(sp)
}

// budgetValues yields the budget headers of the window with the least
// remaining, for the response (metadata) or a refusal.
func (p *processor) budgetValues(yield func(name, value string)) {
	if p.lim == nil {
		return
	}
	w, ok := p.lim.budTightest()
	if !ok {
		return
	}
	yield(contract.BudgetLimit, formatAmount(w.Limit))
	yield(contract.BudgetRemaining, formatAmount(w.Remaining()))
	yield(contract.BudgetReset, w.Reset.Round(time.Second).String())
	name := w.Window
	if w.Scope == "key" {
		name = "key " + name
	}
	yield(contract.BudgetWindow, name)
}

// budTightest is the tightest window of the reservation or refusal.
func (s *limitState) budTightest() (budget.Window, bool) {
	return s.budSeen.Tightest()
}

// budgetFields is how many fields budgetValues yields.
func (p *processor) budgetFields() int {
	if p.lim != nil && p.lim.budSeen != nil {
		return len(contract.BudgetHeaders)
	}
	return 0
}

// formatAmount renders micro-units as a decimal amount: "12.5", "0.000125".
func formatAmount(micro int64) string {
	return strconv.FormatFloat(budget.Amount(micro), 'f', -1, 64)
}

// budgetWindows are the request's budget windows for its usage event.
func (p *processor) budgetWindows() []telemetry.BudgetWindow {
	if p.lim == nil {
		return nil
	}
	ws := p.lim.budSeen.Windows()
	if len(ws) == 0 {
		return nil
	}
	out := make([]telemetry.BudgetWindow, len(ws))
	for i, w := range ws {
		out[i] = telemetry.BudgetWindow{Scope: w.Scope, Key: w.Key, Window: w.Window, Start: w.Start.UTC(), End: w.End.UTC(),
			Limit: budget.Amount(w.Limit), Spent: budget.Amount(w.Spent), Warning: w.Warned}
	}
	return out
}

// Budgets returns the serving config's spend budgets (nil: none), for the
// usage API. Safe for concurrent use.
func (s *Server) Budgets() *budget.Budgets {
	if l := s.gen.Load().limits; l != nil {
		return l.budgets
	}
	return nil
}
