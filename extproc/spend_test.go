package extproc

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/budget"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// budgetYAML gives acme a day budget of 0.01: a request reserving 1000
// output tokens at 20 per million (0.02) never fits, 100 (0.002) does.
const budgetYAML = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - {name: m, backend: a}
telemetry:
  prices:
    m: {input_per_million: 10, output_per_million: 20}
limits:
  default_tenant: acme
  tenants:
    - name: acme
      budgets: [{window: day, amount: 0.01}]
`

func budgetProcessor(t *testing.T, yaml string) *processor {
	t.Helper()
	p := limitedProcessor(t, yaml)
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	require.NoError(t, err)
	p.obs.set = NewTelemetry(cfg)
	return p
}

func TestBudgetRefusalIsProtocolCorrect(t *testing.T) {
	for _, tc := range []struct {
		path, body, errType string
	}{
		{"/v1/chat/completions", `{"model":"m","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`, "insufficient_quota"},
		{"/v1/messages", `{"model":"m","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`, "rate_limit_error"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			p := budgetProcessor(t, budgetYAML)
			p.handle(reqHeaders("POST", tc.path, false))
			r := p.handle(bodyMsg(tc.body))
			status, body := immediateStatus(t, r)
			require.Equal(t, 429, status)
			hs := map[string]string{}
			for _, h := range r.GetImmediateResponse().GetHeaders().GetSetHeaders() {
				hs[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
			}
			assert.NotEmpty(t, hs["retry-after"])
			assert.Equal(t, "false", hs[contract.ShouldRetryHeader], "a day budget does not come back within a minute")
			assert.Equal(t, "0.01", hs[contract.BudgetLimit])
			assert.Equal(t, "0.01", hs[contract.BudgetRemaining])
			assert.Equal(t, "day", hs[contract.BudgetWindow])
			e := body["error"].(map[string]any)
			assert.Equal(t, tc.errType, e["type"])
			assert.Contains(t, e["message"], "day budget of tenant acme is spent")
			if tc.path == "/v1/chat/completions" {
				assert.Equal(t, "budget_exceeded", e["code"])
			} else {
				assert.Equal(t, "error", body["type"])
			}
			assert.Equal(t, "budget_exceeded", p.obs.decision)
		})
	}
}

// TestBudgetSettlesFromUsage: a request reserves its worst case, the
// response headers report what is left after it, and the usage the
// backend reports replaces the reservation.
func TestBudgetSettlesFromUsage(t *testing.T) {
	p := budgetProcessor(t, budgetYAML)
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	br := p.handle(bodyMsg(`{"model":"m","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
	require.Nil(t, br.GetImmediateResponse())
	md := br.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.Equal(t, "0.01", md[contract.BudgetLimit].GetStringValue())
	reserved := p.lim.bud.Reserved()
	assert.Greater(t, reserved, int64(2000), "100 output tokens at 20/M and the prompt")
	assert.Equal(t, formatAmount(10000-reserved), md[contract.BudgetRemaining].GetStringValue())
	i := strings.Index(usageStream, `data: {"model":"private","choices":[]`)
	p.handle(withStatus(respBody(usageStream[:i], false), 200))
	p.handle(respBody(usageStream[i:], true))
	assert.Nil(t, p.lim.bud, "settled at the end of the stream")
	u, err := p.limits.budgets.Usage(context.Background(), "acme")
	require.NoError(t, err)
	// 11 input tokens at 10/M + 5 output at 20/M = 0.00021.
	assert.InDelta(t, 0.00021, u.Windows[0].Spent, 1e-12)
	require.Len(t, u.Windows[0].Models, 1)
	assert.Equal(t, int64(11), u.Windows[0].Models[0].InputTokens)
	ws := p.budgetWindows()
	require.Len(t, ws, 1)
	assert.Equal(t, "day", ws[0].Window)
}

// TestBudgetRefundedWhenTheBackendFails: a failed response without usage
// costs nothing.
func TestBudgetRefundedWhenTheBackendFails(t *testing.T) {
	p := budgetProcessor(t, budgetYAML)
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	p.handle(bodyMsg(`{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
	p.handle(withStatus(respBody(`{"error":{"message":"overloaded"}}`, true), 503))
	p.finish()
	u, err := p.limits.budgets.Usage(context.Background(), "acme")
	require.NoError(t, err)
	assert.Zero(t, u.Windows[0].Spent)
}

// TestNoBudgetNoHeaders: a tenant without a budget gets no budget
// headers and holds nothing.
func TestNoBudgetNoHeaders(t *testing.T) {
	p := budgetProcessor(t, strings.Replace(budgetYAML, "default_tenant: acme", "default_tenant: other", 1))
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	br := p.handle(bodyMsg(`{"model":"m","max_tokens":100,"messages":[]}`))
	md := br.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.NotContains(t, md, contract.BudgetLimit)
	assert.True(t, p.done(br))
}

// TestBudgetsReloadKeepSpend: a reload keeps what was spent (the store
// carries over), a changed amount applies at once, a reload may add the
// first budget or remove them all.
func TestBudgetsReloadKeepSpend(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(budgetYAML))
	require.NoError(t, err)
	lim, err := NewLimits(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	ctx := context.Background()
	r, err := lim.budgets.Reserve(ctx, budget.Request{Tenant: "acme", Cost: budget.Micro(0.008)})
	require.NoError(t, err)
	r.Settle(budget.Spend{Model: "m", Cost: budget.Micro(0.008)})

	raised, err := config.Parse("t.yaml", []byte(strings.Replace(budgetYAML, "amount: 0.01", "amount: 0.02", 1)))
	require.NoError(t, err)
	next, err := lim.Reload(raised)
	require.NoError(t, err)
	u, err := next.budgets.Usage(ctx, "acme")
	require.NoError(t, err)
	assert.InDelta(t, 0.008, u.Windows[0].Spent, 1e-12, "spend carries over")
	assert.InDelta(t, 0.012, u.Windows[0].Remaining, 1e-12, "the new amount applies")

	none, err := config.Parse("t.yaml", []byte(limitedYAML))
	require.NoError(t, err)
	off, err := next.Reload(none)
	require.NoError(t, err)
	assert.Nil(t, off.budgets)
	on, err := off.Reload(raised)
	require.NoError(t, err)
	require.NotNil(t, on.budgets, "a reload may add budgets")
	u, err = on.budgets.Usage(ctx, "acme")
	require.NoError(t, err)
	assert.InDelta(t, 0.008, u.Windows[0].Spent, 1e-12, "on the same store")
}

// TestBudgetReservesImagesAtTheirPrice: an image request reserves n
// images at its size's price.
func TestBudgetReservesImagesAtTheirPrice(t *testing.T) {
	yaml := strings.Replace(budgetYAML, "m: {input_per_million: 10, output_per_million: 20}",
		`m: {per_image: {"1024x1024": 0.04, "1024x1024/hd": 0.08}}`, 1)
	yaml = strings.Replace(yaml, "amount: 0.01", "amount: 1", 1)
	yaml = strings.Replace(yaml, "- {name: m, backend: a}", "- {name: m, backend: a, endpoints: [/v1/images/generations]}", 1)
	p := budgetProcessor(t, yaml)
	p.handle(reqHeaders("POST", "/v1/images/generations", false))
	br := p.handle(bodyMsg(`{"model":"m","prompt":"a cat","n":3,"size":"1024x1024","quality":"hd"}`))
	require.Nil(t, br.GetImmediateResponse())
	require.NotNil(t, p.lim.bud)
	assert.Equal(t, budget.Micro(0.24), p.lim.bud.Reserved(), "3 images at 0.08")
}

// TestKeyBudgetCountsByTheVerifiedKey: a named API key's budget applies
// to requests presenting that key, on top of its tenant's.
func TestKeyBudgetCountsByTheVerifiedKey(t *testing.T) {
	yaml := budgetYAML + `      api_keys: [{name: ci, budgets: [{window: 1h, amount: 0.001}]}]
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys:
        - {name: ci, hash: "` + auth.HashKey("sk-ci") + `"}
        - {name: web, hash: "` + auth.HashKey("sk-web") + `"}
`
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	require.NoError(t, err)
	for key, want := range map[string]int{"sk-ci": 429, "sk-web": 0} {
		p := budgetProcessor(t, yaml)
		a, err := auth.New(t.Context(), cfg, auth.Options{})
		require.NoError(t, err)
		p.auth = a
		p.handle(reqHeaders("POST", "/v1/chat/completions", false, "authorization", "Bearer "+key))
		r := p.handle(bodyMsg(`{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
		status, body := immediateStatus(t, r)
		assert.Equal(t, want, status, key)
		if want == 429 {
			assert.Contains(t, body["error"].(map[string]any)["message"], "budget of API key ci is spent")
		} else {
			assert.Len(t, p.lim.bud.Windows(), 1, "the web key has no budget: the tenant's day only")
		}
	}
}

// TestBudgetRefundedWhenTheRateLimitRefuses: a request the rate limiter
// refuses after its budget reservation gets the reservation back.
func TestBudgetRefundedWhenTheRateLimitRefuses(t *testing.T) {
	yaml := strings.Replace(budgetYAML, "    - name: acme\n", "    - name: acme\n      requests_per_minute: 1\n", 1)
	var reserved int64
	var first *processor
	for i, want := range []int{0, 429} {
		p := budgetProcessor(t, yaml)
		if i == 1 {
			p.limits = first.limits
		}
		p.handle(reqHeaders("POST", "/v1/chat/completions", false))
		r := p.handle(bodyMsg(`{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
		status, body := immediateStatus(t, r)
		require.Equal(t, want, status)
		if i == 0 {
			first, reserved = p, p.lim.bud.Reserved()
			continue
		}
		assert.Equal(t, "rate_limit_exceeded", body["error"].(map[string]any)["code"])
		p.finish()
	}
	u, err := first.limits.budgets.Usage(context.Background(), "acme")
	require.NoError(t, err)
	assert.InDelta(t, budget.Amount(reserved), u.Windows[0].Spent, 1e-12, "only the first request's reservation is held")
}

// TestBudgetEmbeddingsReserveTheirInput: embeddings generate nothing, so
// only the input is reserved.
func TestBudgetEmbeddingsReserveTheirInput(t *testing.T) {
	yaml := strings.Replace(budgetYAML, "- {name: m, backend: a}", "- {name: m, backend: a, endpoints: [/v1/embeddings]}", 1)
	p := budgetProcessor(t, yaml)
	p.handle(reqHeaders("POST", "/v1/embeddings", false))
	r := p.handle(bodyMsg(`{"model":"m","input":"` + strings.Repeat("word ", 100) + `"}`))
	require.Nil(t, r.GetImmediateResponse())
	res := p.lim.bud.Reserved()
	assert.Equal(t, p.lim.input*10, res, "input tokens at 10 per million, in micro-units")
}

// BenchmarkBudgetRequest is BenchmarkPolicyRequest's policy request for a
// tenant with day and month budgets on the memory store: what a budgeted
// request adds (its reservation and settlement).
func BenchmarkBudgetRequest(b *testing.B) {
	yaml := benchPolicyConfigs[1].yaml + `      budgets: [{window: day, amount: 1e9}, {window: month, amount: 1e9}]
telemetry:
  prices: {bench-model: {input_per_million: 1, output_per_million: 2}}
`
	body := e2eBenchBody(1 << 10)
	headers, bodyReq := benchRequestHeaders(len(body)), benchBodyRequest(body)
	srv, report := benchServer(b, yaml), newBenchReport()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		main := extproctest.NewStream(ctx, headers, bodyReq)
		if err := srv.Process(main); err != nil || len(main.Sent) != 2 || main.Sent[1].GetRequestBody() == nil {
			b.Fatalf("main stream: %v, answers %v", err, main.Sent)
		}
		if key := reportKeyOf(main.Sent[1]); key != "" {
			srv.reports.settle(report.forKey(key))
		}
	}
	if n := srv.Active(); n != 0 {
		b.Fatalf("%d requests still active", n)
	}
}

// TestBudgetWarningReachesTheUsageEvent: the request that crosses
// warn_percent first marks its window in its usage record (the NATS
// event); the next one does not.
func TestBudgetWarningReachesTheUsageEvent(t *testing.T) {
	yaml := strings.Replace(budgetYAML, "amount: 0.01", "amount: 0.005", 1)
	p := budgetProcessor(t, yaml)
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	require.Nil(t, p.handle(bodyMsg(`{"model":"m","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}`)).GetImmediateResponse())
	ws := p.record().Budgets
	require.Len(t, ws, 1)
	assert.True(t, ws[0].Warning, "0.004 reserved of 0.005 crosses 80%%")
	assert.InDelta(t, 0.005, ws[0].Limit, 1e-12)
	q := budgetProcessor(t, yaml)
	q.limits = p.limits
	q.handle(reqHeaders("POST", "/v1/chat/completions", false))
	q.handle(bodyMsg(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	require.Len(t, q.record().Budgets, 1)
	assert.False(t, q.record().Budgets[0].Warning, "once per window")
}
