package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
)

// budgetConfig gives tenant "shared" a day budget of BUDGET on model-b
// (100 per million input tokens, 1000 per million output), kept in Redis
// (REDIS, CLUSTER, PREFIX are replaced), with the usage API on.
var budgetConfig = twoModels("5s") + `telemetry:
  prices: {model-b: {input_per_million: 100, output_per_million: 1000}}
limits:
  tenant_header: x-tenant
  store: redis
  redis: {address: "REDIS", cluster: CLUSTER, key_prefix: "PREFIX", timeout: 200ms}
  budget: {time_zone: Europe/Paris, usage_token_env: E2E_USAGE_TOKEN}
  tenants:
    - name: shared
      budgets: [{window: day, amount: BUDGET}, {window: 1h, amount: 1000}]
    - name: "*"
      budgets: [{window: month, amount: 100}]
`

const usageToken = "e2e-usage-token"

func budgetGatewayConfig(addr string, cluster bool, prefix string, amount float64) string {
	return strings.NewReplacer("REDIS", addr, "CLUSTER", fmt.Sprint(cluster), "PREFIX", prefix, "BUDGET", fmt.Sprint(amount)).Replace(budgetConfig)
}

// budgetStream sends one streamed chat request asking for usage and reads
// it to its end; it returns the status and the cost (micro-units) of the
// usage the backend reported.
func budgetStream(ctx context.Context, e *env, tenant string, maxTokens, tokens int) (int, int64, error) {
	body, _ := json.Marshal(map[string]any{"model": "model-b", "max_tokens": maxTokens, "stream": true,
		"stream_options": map[string]bool{"include_usage": true},
		"messages":       []map[string]string{{"role": "user", "content": "count to a hundred, slowly"}}})
	resp, err := postTo(ctx, e, body, map[string]string{"x-tenant": tenant, "x-fakellm-tokens": fmt.Sprint(tokens), "x-fakellm-itl-ms": "2"})
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, 0, nil
	}
	var cost int64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || !strings.Contains(data, `"usage":{`) {
			continue
		}
		var c struct {
			Usage struct {
				PromptTokens     int64 `json:"prompt_tokens"`
				CompletionTokens int64 `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return 0, 0, err
		}
		cost = c.Usage.PromptTokens*100 + c.Usage.CompletionTokens*1000
	}
	return resp.StatusCode, cost, sc.Err()
}

// usageAPI GETs path from e's usage API with the token.
func usageAPI(t *testing.T, e *env, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.metrics+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

type usageWindow struct {
	Scope, Window           string
	Limit, Spent, Remaining float64
	Models                  []struct {
		Model        string
		Cost         float64
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
		Requests     int64
	}
}

func tenantUsage(t *testing.T, e *env, tenant string) []usageWindow {
	t.Helper()
	status, body := usageAPI(t, e, "/usage?tenant="+tenant, usageToken)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var u struct {
		Tenants []struct {
			Tenant  string
			Windows []usageWindow
		}
	}
	require.NoError(t, json.Unmarshal(body, &u), "%s", body)
	require.Len(t, u.Tenants, 1)
	return u.Tenants[0].Windows
}

// TestBudgetSharedAcrossGateways runs three gateways on one Redis and
// floods them with one tenant's concurrent streams, each reserving 400
// output tokens and using 100: spending stops at the budget within one
// request's worst case, reconciliation gives back what reservations did
// not use (far more requests are served than reservations alone allow),
// and the usage API and CLI report exactly what the backends reported.
func TestBudgetSharedAcrossGateways(t *testing.T) {
	t.Run("server", func(t *testing.T) { testBudgetShared(t, e2eRedis(t, "STREAMGATE_TEST_REDIS"), false) })
	t.Run("cluster", func(t *testing.T) { testBudgetShared(t, e2eRedis(t, "STREAMGATE_TEST_REDIS_CLUSTER"), true) })
}

func testBudgetShared(t *testing.T, addr string, cluster bool) {
	const budget, workers, maxTokens, tokens = 6.0, 4, 400, 100
	t.Setenv("E2E_USAGE_TOKEN", usageToken)
	cfg := budgetGatewayConfig(addr, cluster, randomPrefix(), budget)
	gws := []*env{startGateway(t, cfg), startGateway(t, cfg), startGateway(t, cfg)}

	var mu sync.Mutex
	var spent int64 // micro-units, as the backends reported
	admitted, refused, inflight := make([]int, len(gws)), 0, 0
	var retryAfter, shouldRetry string
	start := time.Now()
	var wg sync.WaitGroup
	for g, e := range gws {
		for range workers {
			wg.Go(func() {
				for time.Since(start) < 30*time.Second {
					mu.Lock()
					inflight++
					mu.Unlock()
					status, cost, err := budgetStream(t.Context(), e, "shared", maxTokens, tokens)
					mu.Lock()
					inflight--
					idle := inflight == 0
					switch status {
					case http.StatusOK:
						admitted[g]++
						spent += cost
					case http.StatusTooManyRequests:
						refused++
					}
					mu.Unlock()
					if !assert.NoError(t, err) {
						return
					}
					if status == http.StatusTooManyRequests {
						if idle {
							return // nothing in flight to give room back: the day is spent
						}
						time.Sleep(20 * time.Millisecond) // streams in flight may settle below their reservations
						continue
					}
					assert.Equal(t, http.StatusOK, status)
				}
			})
		}
	}
	wg.Wait()
	// One more refusal, read whole: the refusal's shape.
	resp, err := postTo(t.Context(), gws[0], chatBody("model-b", false, "hi"), map[string]string{"x-tenant": "shared"})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s", body)
	retryAfter, shouldRetry = resp.Header.Get("retry-after"), resp.Header.Get("x-should-retry")
	assert.Contains(t, string(body), `"code":"budget_exceeded"`)
	assert.Equal(t, "false", shouldRetry)
	assert.NotEmpty(t, retryAfter)
	assert.Equal(t, "day", resp.Header.Get("x-streamgate-budget-window"))

	total := admitted[0] + admitted[1] + admitted[2]
	worst := int64(maxTokens*1000 + 20*100) // the reservation's output, and a prompt of under 20 tokens
	t.Logf("budget %.2f: admitted %v = %d streams in %v, spent %.6f (%.2f%%), %d refusals; reservations alone would allow %d",
		budget, admitted, total, time.Since(start).Round(time.Millisecond), float64(spent)/1e6, float64(spent)/1e4/budget, refused, int64(budget*1e6)/worst)
	for g := range gws {
		assert.Positive(t, admitted[g], "gateway %d admitted streams", g+1)
	}
	assert.LessOrEqual(t, spent, int64(budget*1e6), "spending stops at the line")
	assert.GreaterOrEqual(t, spent, int64(budget*1e6)-worst, "within one request's worst case of it")
	assert.Greater(t, int64(total), 2*int64(budget*1e6)/worst, "reconciliation gave back what reservations did not use")

	for _, e := range gws {
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	}
	// Every gateway's usage API reports the same spend: what the backends reported.
	for _, e := range gws {
		ws := tenantUsage(t, e, "shared")
		require.Len(t, ws, 2)
		day := ws[0]
		assert.Equal(t, "day", day.Window)
		assert.InDelta(t, float64(spent)/1e6, day.Spent, 1e-9, "usage API = sum of reported costs")
		assert.InDelta(t, budget-day.Spent, day.Remaining, 1e-9)
		require.Len(t, day.Models, 1)
		assert.Equal(t, int64(total), day.Models[0].Requests)
		assert.Equal(t, int64(total*tokens), day.Models[0].OutputTokens)
	}
	status, body := usageAPI(t, gws[1], "/usage/series?tenant=shared&step=hour", usageToken)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var series struct {
		Points []struct {
			Models []struct{ Cost float64 }
		}
	}
	require.NoError(t, json.Unmarshal(body, &series))
	var seriesCost float64
	for _, p := range series.Points {
		for _, m := range p.Models {
			seriesCost += m.Cost
		}
	}
	assert.InDelta(t, float64(spent)/1e6, seriesCost, 1e-9, "the hourly series adds up to the spend")

	status, _ = usageAPI(t, gws[0], "/usage", "wrong")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _ = usageAPI(t, gws[0], "/usage", "")
	assert.Equal(t, http.StatusUnauthorized, status)

	var out, errOut bytes.Buffer
	require.NoError(t, cli.Main(t.Context(), []string{"usage", "-c", gws[2].configPath, "-tenant", "shared"}, &out, &errOut), errOut.String())
	t.Logf("streamgate usage:\n%s", out.String())
	assert.Contains(t, out.String(), "shared")
	assert.Contains(t, out.String(), strconvAmount(float64(spent)/1e6), "the CLI prints the spend")
	assert.NotContains(t, gws[0].logs.String(), usageToken, "the usage token is never logged")
}

// strconvAmount prints an amount as the CLI does.
func strconvAmount(x float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", x), "0"), ".")
}

// TestBudgetCutStreamSettles: a client that leaves mid-stream is charged
// what was streamed (estimated), not its reservation, and its
// reservation is given back.
func TestBudgetCutStreamSettles(t *testing.T) {
	addr := e2eRedis(t, "STREAMGATE_TEST_REDIS")
	t.Setenv("E2E_USAGE_TOKEN", usageToken)
	e := startGateway(t, budgetGatewayConfig(addr, false, randomPrefix(), 100))
	// Complete streams first: where Envoy reads usage, a cut stream is
	// estimated from the bytes per token learnt from them (docs/limits.md).
	var whole int64
	for range 3 {
		status, cost, err := budgetStream(t.Context(), e, "cut", 1000, 100)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		whole += cost
	}
	ctx, cancel := context.WithCancel(t.Context())
	body, _ := json.Marshal(map[string]any{"model": "model-b", "max_tokens": 1000, "stream": true,
		"messages": []map[string]string{{"role": "user", "content": "go on"}}})
	resp, err := postTo(ctx, e, body, map[string]string{"x-tenant": "cut", "x-fakellm-tokens": "1000", "x-fakellm-itl-ms": "5"})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "100", resp.Header.Get("x-streamgate-budget-limit"), `"*" gives tenant cut a month of 100`)
	remaining := resp.Header.Get("x-streamgate-budget-remaining")
	rem, err := strconv.ParseFloat(remaining, 64)
	require.NoError(t, err)
	assert.Less(t, rem, 99.0, "the worst case (1.0) is reserved while the stream runs")
	sc := bufio.NewScanner(resp.Body)
	for i := 0; i < 20 && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "data: ") {
			i++
		}
	}
	cancel()
	resp.Body.Close()
	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	ws := tenantUsage(t, e, "cut")
	require.Len(t, ws, 1)
	cut := ws[0].Spent - float64(whole)/1e6
	t.Logf("cut after 20 events: charged %.6f of a %.6f reservation (header remaining %s)", cut, 1000*1000/1e6, remaining)
	assert.Positive(t, cut, "what was streamed is charged")
	assert.Less(t, cut, 0.5, "far less than the 1.0 reserved for 1000 output tokens")
}

// TestBudgetRedisUnreachable: with Redis down, budgets follow the rate
// limits' fail_open: fail-closed refuses with 503 overloaded, fail-open
// serves without budget headers; both count it, and the outage is logged
// once.
func TestBudgetRedisUnreachable(t *testing.T) {
	e2eRedis(t, "STREAMGATE_TEST_REDIS")
	t.Setenv("E2E_USAGE_TOKEN", usageToken)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := lis.Addr().String()
	require.NoError(t, lis.Close())
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail_open=%v", failOpen), func(t *testing.T) {
			cfg := strings.Replace(budgetGatewayConfig(down, false, randomPrefix(), 10), "timeout: 200ms", fmt.Sprintf("timeout: 200ms, fail_open: %v", failOpen), 1)
			e := startGateway(t, cfg)
			for range 3 {
				resp, err := postTo(t.Context(), e, chatBody("model-b", false, "hi"), map[string]string{"x-tenant": "shared"})
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if failOpen {
					assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
					assert.Empty(t, resp.Header.Get("x-streamgate-budget-limit"), "no window to report")
					continue
				}
				require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
				assert.Equal(t, "1", resp.Header.Get("retry-after"))
				assert.Contains(t, string(body), `"code":"overloaded"`)
				assert.NotContains(t, string(body), down)
			}
			decision := "store_unavailable"
			if failOpen {
				decision = "fail_open"
			}
			v, ok := scrapeSample(t, e, `streamgate_budget_decisions_total{decision="`+decision+`"}`)
			require.True(t, ok)
			assert.InDelta(t, 3, v, 0)
			assert.InDelta(t, 1, metric(t, e, "streamgate_ratelimit_store_outage"), 0)
			assert.Equal(t, 1, strings.Count(e.logs.String(), "rate limit store unreachable"), "logged once per outage")
		})
	}
}

// TestBudgetRefusalWithOfficialSDKs: the OpenAI and Anthropic SDKs, each
// with its default two retries, raise their rate limit error for a spent
// budget at once: x-should-retry: false stops the retries (one refusal
// each reaches the gateway).
func TestBudgetRefusalWithOfficialSDKs(t *testing.T) {
	py := pythonSDKs(t)
	addr := e2eRedis(t, "STREAMGATE_TEST_REDIS")
	t.Setenv("E2E_USAGE_TOKEN", usageToken)
	e := startGateway(t, budgetGatewayConfig(addr, false, randomPrefix(), 0.05))
	type sdkRefusal struct {
		Class, Code, Type, Message string
		Status                     int
		RetryAfter                 string `json:"retry_after"`
		ShouldRetry                string `json:"should_retry"`
		BudgetWindow               string `json:"budget_window"`
		Seconds                    float64
	}
	var out struct{ OpenAI, Anthropic sdkRefusal }
	runPyArgs(t, py, "budget_client.py", []string{e.gateway, "model-b", "shared"}, &out)
	t.Logf("openai: %+v\nanthropic: %+v", out.OpenAI, out.Anthropic)
	assert.Equal(t, "RateLimitError", out.OpenAI.Class)
	assert.Equal(t, 429, out.OpenAI.Status)
	assert.Equal(t, "budget_exceeded", out.OpenAI.Code)
	assert.Equal(t, "insufficient_quota", out.OpenAI.Type)
	assert.Contains(t, out.OpenAI.Message, "day budget of tenant shared is spent")
	assert.Equal(t, "false", out.OpenAI.ShouldRetry)
	assert.Equal(t, "day", out.OpenAI.BudgetWindow)
	assert.NotEmpty(t, out.OpenAI.RetryAfter)
	assert.Equal(t, "RateLimitError", out.Anthropic.Class)
	assert.Equal(t, 429, out.Anthropic.Status)
	assert.Equal(t, "rate_limit_error", out.Anthropic.Type)
	assert.Contains(t, out.Anthropic.Message, "day budget of tenant shared is spent")
	v, ok := scrapeSample(t, e, `streamgate_budget_decisions_total{decision="exceeded"}`)
	require.True(t, ok)
	assert.InDelta(t, 2, v, 0, "one request per SDK: neither retried")
}
