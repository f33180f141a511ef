package extproc

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const concurrentYAML = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - {name: m, backend: a}
limits:
  default_tenant: acme
  queue: {size: 1, max_wait: 10ms}
  tenants:
    - {name: acme, concurrent_streams: 1}
`

// TestConcurrencySlotTakenAtHeaders: the tenant's concurrent_streams slot
// is taken when the headers arrive, so a tenant at its limit is refused
// before its body is buffered; the slot comes back when a request ends
// during its upload, and stays with an admitted request until it ends.
func TestConcurrencySlotTakenAtHeaders(t *testing.T) {
	first := limitedProcessor(t, concurrentYAML)
	lim := first.limits
	newP := func() *processor {
		p := limitedProcessor(t, concurrentYAML)
		p.limits = lim
		return p
	}
	chat := func(p *processor) int {
		st, _ := immediateStatus(t, p.handle(reqHeaders("POST", "/v1/chat/completions", false)))
		return st
	}
	require.Zero(t, chat(first), "the first stream gets its slot")
	second := newP()
	st, body := immediateStatus(t, second.handle(reqHeaders("POST", "/v1/chat/completions", false)))
	assert.Equal(t, http.StatusTooManyRequests, st, "refused at its headers, no body needed")
	assert.Contains(t, body["error"].(map[string]any)["message"], "concurrent")
	second.finish()

	first.finish() // the client went away during its upload
	third := newP()
	require.Zero(t, chat(third), "the slot came back")
	br := third.handle(bodyMsg(`{"model":"m","messages":[]}`))
	require.Nil(t, br.GetImmediateResponse())
	require.NotNil(t, third.lim.res, "the reservation holds the slot taken at the headers")
	assert.Nil(t, third.hold)
	assert.Equal(t, http.StatusTooManyRequests, chat(newP()), "still held after admission")

	third.finish()
	assert.Zero(t, lim.limiter.Waiting())
	assert.Zero(t, chat(newP()), "released when the admitted request ends")
}
