package picking

import "time"

// Pick chooses r's endpoint and fallbacks at now and counts the request on
// the first (Result.Done ends it). Placeholder until the scorers land: the
// fewest in-flight requests first.
func (b *Backend) Pick(r Request, now time.Time) Result {
	if len(b.eps) == 0 {
		return Result{}
	}
	best := b.eps[0]
	for _, e := range b.eps[1:] {
		if e.InFlight() < best.InFlight() {
			best = e
		}
	}
	out := []string{best.Addr}
	for _, e := range b.eps {
		if e != best && len(out) <= b.cfg.Fallbacks {
			out = append(out, e.Addr)
		}
	}
	best.Start()
	return Result{Endpoints: out, Reason: ReasonInFlight, ep: best}
}
