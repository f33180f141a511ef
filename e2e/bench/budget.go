package bench

import (
	"fmt"
	"strconv"
)

// Check is one line of the performance budget.
type Check struct {
	What     string  `json:"what"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	// AtLeast says Measured must reach Limit; otherwise it must not pass it.
	AtLeast bool   `json:"at_least,omitempty"`
	Unit    string `json:"unit"`
	// Status is "pass", "MISS" or "not measured".
	Status string `json:"status"`
}

const (
	statusPass        = "pass"
	statusMiss        = "MISS"
	statusNotMeasured = "not measured"
)

// limitText is the limit with its direction, e.g. "≤ 0.7 ms".
func (c Check) limitText() string {
	op := "≤"
	if c.AtLeast {
		op = "≥"
	}
	return op + " " + strconv.FormatFloat(c.Limit, 'g', -1, 64) + " " + c.Unit
}

func (c Check) String() string {
	if c.Status == statusNotMeasured {
		return fmt.Sprintf("%-88s not measured (limit %s)", c.What, c.limitText())
	}
	return fmt.Sprintf("%-88s %9.3f %-5s (limit %s) %s", c.What, c.Measured, c.Unit, c.limitText(), c.Status)
}

// newCheck judges v (when ok) against limit.
func newCheck(what string, v float64, ok bool, limit float64, atLeast bool, unit string) Check {
	c := Check{What: what, Measured: v, Limit: limit, AtLeast: atLeast, Unit: unit, Status: statusNotMeasured}
	if ok {
		c.Status = statusPass
		if (atLeast && v < limit) || (!atLeast && v > limit) {
			c.Status = statusMiss
		}
	}
	return c
}

// Limits of the budget (issue 16): the policy path at close to
// pass-through cost.
const (
	policyCPULimit        = 1.25 // × (c)'s gateway CPU per stream, (d) and (f)
	itlLimitMicros        = 50   // µs added ITL p50, every Streamgate configuration
	rssPerStreamLimitKiB  = 32   // KiB streamgate RSS per open stream, every Streamgate configuration
	budgetConcurrency     = 64   // the realistic load point of the CPU, TTFT and ITL lines
	budgetRateConcurrency = 512  // the zero-delay load point of the throughput lines
)

// latencyLimits are the added TTFT p50 (ms) and streams/s ÷ (b)'s each
// configuration is held to.
var latencyLimits = []struct {
	id         string
	ttftMs     float64
	rateToBase float64
}{
	{"c", 0.5, 0.7},
	{"d", 0.7, 0.6},
	{"f", 0.7, 0.6},
}

// policyConfigs run the policy path; streamgateConfigs are every
// configuration with Streamgate on the path.
var (
	policyConfigs     = []string{"d", "f"}
	streamgateConfigs = []string{"c", "d", "e", "f", "g"}
)

// budget checks the performance budget against the results: every line
// compares figures of one run, and a line whose figures are missing (a
// configuration or load point not run) is "not measured".
func budget(results []*Result, idle []*IdleResult, promptBytes int) []Check {
	find := func(target string, p Point) *Result {
		for _, r := range results {
			if r.Target == target && r.Point == p && r.AddedMs != nil {
				return r
			}
		}
		return nil
	}
	realistic := Point{Mode: Realistic, Concurrency: budgetConcurrency, PromptBytes: promptBytes}
	zero := Point{Mode: ZeroDelay, Concurrency: budgetRateConcurrency, PromptBytes: promptBytes}
	at := fmt.Sprintf("%s prompt, c=%d realistic", sizeName(promptBytes), budgetConcurrency)
	var out []Check

	c := find("c", realistic)
	for _, id := range policyConfigs {
		r := find(id, realistic)
		ok := r != nil && c != nil && c.gatewayCPUPer1k() > 0
		var ratio float64
		if ok {
			ratio = r.gatewayCPUPer1k() / c.gatewayCPUPer1k()
		}
		out = append(out, newCheck(fmt.Sprintf("(%s) gateway CPU per stream (Envoy + streamgate) ÷ (c)'s, %s", id, at), ratio, ok, policyCPULimit, false, "×"))
	}
	for _, l := range latencyLimits {
		r := find(l.id, realistic)
		out = append(out, newCheck(fmt.Sprintf("(%s) added TTFT p50, %s", l.id, at), added(r, "ttft_p50"), r != nil, l.ttftMs, false, "ms"))
	}
	for _, l := range latencyLimits {
		r := find(l.id, zero)
		var ratio float64
		if r != nil {
			ratio = r.RatioToB["streams_per_sec"]
		}
		out = append(out, newCheck(fmt.Sprintf("(%s) streams/s ÷ (b)'s, c=%d zero-delay", l.id, budgetRateConcurrency), ratio, r != nil, l.rateToBase, true, "×"))
	}
	for _, id := range streamgateConfigs {
		r := find(id, realistic)
		out = append(out, newCheck(fmt.Sprintf("(%s) added ITL p50, c=%d realistic", id, budgetConcurrency), added(r, "itl_p50")*1000, r != nil, itlLimitMicros, false, "µs"))
	}
	for _, id := range streamgateConfigs {
		r := findIdle(idle, id)
		var v float64
		if r != nil {
			v = r.SGPerStream / 1024
		}
		out = append(out, newCheck(fmt.Sprintf("(%s) streamgate RSS per open stream", id), v, r != nil, rssPerStreamLimitKiB, false, "KiB"))
	}
	return out
}

// findIdle returns the target's open-streams result, or nil when it was not
// measured or failed.
func findIdle(idle []*IdleResult, target string) *IdleResult {
	for _, r := range idle {
		if r.Target == target && r.SGRSSBase > 0 && r.Error == "" {
			return r
		}
	}
	return nil
}

func added(r *Result, k string) float64 {
	if r == nil {
		return 0
	}
	return r.AddedMs[k]
}
