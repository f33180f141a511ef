package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisLimitsConfig limits every tenant to one total-tokens-per-minute
// budget kept in Redis (REDIS, CLUSTER, PREFIX, TPM and FAIL_OPEN are replaced).
var redisLimitsConfig = twoModels("5s") + `limits:
  tenant_header: x-tenant
  store: redis
  redis: {address: "REDIS", cluster: CLUSTER, key_prefix: "PREFIX", timeout: 200ms, fail_open: FAIL_OPEN}
  tenants:
    - name: "*"
      total_tokens_per_minute: TPM
`

// e2eRedis is the address in the environment variable name
// (STREAMGATE_TEST_REDIS, STREAMGATE_TEST_REDIS_CLUSTER); without one the
// test skips, or fails under STREAMGATE_REQUIRE_ALL=1.
func e2eRedis(t *testing.T, name string) string {
	t.Helper()
	addr := os.Getenv(name)
	if addr == "" {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			t.Fatalf("%s is unset and STREAMGATE_REQUIRE_ALL=1: Redis is required", name)
		}
		t.Skipf("%s is unset: no Redis to test against", name)
	}
	return addr
}

func redisConfig(addr string, cluster bool, prefix string, tpm int, failOpen bool) string {
	return strings.NewReplacer("REDIS", addr, "CLUSTER", fmt.Sprint(cluster), "PREFIX", prefix, "TPM", fmt.Sprint(tpm),
		"FAIL_OPEN", fmt.Sprint(failOpen)).Replace(redisLimitsConfig)
}

func randomPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "e2e-" + hex.EncodeToString(b[:])
}

// TestRedisSharedTPM runs two gateway processes on one Redis and floods
// both with one tenant's requests for a few seconds, each client retrying
// 100 ms after a 429: the tokens the backends report for the requests
// admitted in that window add up to the one limit (the full bucket plus
// its refill over the window) within 5%, not to one limit per gateway.
func TestRedisSharedTPM(t *testing.T) {
	t.Run("server", func(t *testing.T) { testSharedTPM(t, e2eRedis(t, "STREAMGATE_TEST_REDIS"), false) })
	t.Run("cluster", func(t *testing.T) { testSharedTPM(t, e2eRedis(t, "STREAMGATE_TEST_REDIS_CLUSTER"), true) })
}

func testSharedTPM(t *testing.T, addr string, cluster bool) {
	const tpm, workers, outTokens = 24000, 8, 200
	const window, retryEvery = 3 * time.Second, 100 * time.Millisecond
	cfg := redisConfig(addr, cluster, randomPrefix(), tpm, false)
	gws := []*env{startGateway(t, cfg), startGateway(t, cfg)}

	var mu sync.Mutex
	admitted := make([]int, len(gws))
	var refused int
	start := time.Now()
	var wg sync.WaitGroup
	for g, e := range gws {
		for w := range workers {
			wg.Go(func() {
				for {
					body, _ := json.Marshal(map[string]any{"model": "model-b", "max_tokens": outTokens,
						"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("worker %d of gateway %d", w, g)}}})
					resp, err := postTo(t.Context(), e, body, map[string]string{"x-tenant": "shared", "x-fakellm-tokens": fmt.Sprint(outTokens)})
					if !assert.NoError(t, err) {
						return
					}
					var out struct {
						Usage struct {
							TotalTokens int `json:"total_tokens"`
						}
					}
					err = json.NewDecoder(resp.Body).Decode(&out)
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if time.Since(start) > window {
						return // the answer came after the window: not counted
					}
					if resp.StatusCode == http.StatusTooManyRequests {
						mu.Lock()
						refused++
						mu.Unlock()
						time.Sleep(retryEvery)
						continue
					}
					if !assert.Equal(t, http.StatusOK, resp.StatusCode) || !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					admitted[g] += out.Usage.TotalTokens
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	total := admitted[0] + admitted[1]
	allowed := float64(tpm) * (1 + window.Seconds()/60) // the full bucket, then its refill
	t.Logf("admitted %d + %d = %d tokens in %v; the limit allows %.0f (%d + refill); %d refusals",
		admitted[0], admitted[1], total, window, allowed, tpm, refused)
	assert.GreaterOrEqual(t, refused, 2*workers, "every client was refused at least once")
	assert.Positive(t, admitted[0], "gateway 1 admitted requests")
	assert.Positive(t, admitted[1], "gateway 2 admitted requests")
	assert.InEpsilon(t, allowed, float64(total), 0.05, "one limit across both gateways (not one each), fully used")
	for _, e := range gws {
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
		assert.Zero(t, metric(t, e, "streamgate_ratelimit_store_errors_total"))
	}
}

// TestRedisUnreachable: with Redis down, a fail-closed gateway refuses
// limited requests with an OpenAI 503 and a fail-open one serves them;
// both count the failures and report the outage.
func TestRedisUnreachable(t *testing.T) {
	e2eRedis(t, "STREAMGATE_TEST_REDIS")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := lis.Addr().String()
	require.NoError(t, lis.Close())
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail_open=%v", failOpen), func(t *testing.T) {
			e := startGateway(t, redisConfig(down, false, randomPrefix(), 1000, failOpen))
			for range 3 {
				resp, err := postTo(t.Context(), e, chatBody("model-b", false, "hi"), map[string]string{"x-tenant": "t"})
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if failOpen {
					assert.Equal(t, http.StatusOK, resp.StatusCode)
					assert.Empty(t, resp.Header.Get("x-ratelimit-limit-tokens"), "no bucket to report")
					continue
				}
				require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
				assert.Equal(t, "1", resp.Header.Get("retry-after"))
				var eb struct {
					Error struct{ Message, Type, Code string }
				}
				require.NoError(t, json.Unmarshal(body, &eb), "%s", body)
				assert.Equal(t, "overloaded", eb.Error.Code)
				assert.Equal(t, "server_error", eb.Error.Type)
				assert.NotEmpty(t, eb.Error.Message)
				assert.NotContains(t, string(body), down, "the store's address does not leak")
			}
			assert.GreaterOrEqual(t, metric(t, e, "streamgate_ratelimit_store_errors_total"), 3.0)
			assert.InDelta(t, 1, metric(t, e, "streamgate_ratelimit_store_outage"), 0)
			assert.Equal(t, 1, strings.Count(e.logs.String(), "rate limit store unreachable"), "logged once per outage")
		})
	}
}
