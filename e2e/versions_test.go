package e2e

import (
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const splitConfig = listeners + twoBackends + `models:
  - name: split
    allow_pin: true
    versions:
      - {name: v1, backend: backend-a, upstream_model: split-v1, weight: 70}
      - {name: v2, backend: backend-b, upstream_model: split-v2, weight: 30}
  - name: fixed
    backend: backend-a
`

// TestWeightedSplit sends 2,000 requests to a 70/30 split and checks v1's
// share within 5 binomial standard deviations of 70 % (about ±5.1 points:
// a correct split fails by chance about once in 1.7 million runs, while a
// 60/40 or 80/20 split is still caught), and that the response names the
// version that served it.
func TestWeightedSplit(t *testing.T) {
	g := startGateway(t, splitConfig)
	const total = 2000
	var v1, v2, mismatched atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				resp, err := http.Post(g.gateway+"/v1/chat/completions", "application/json",
					strings.NewReader(`{"model":"split","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`))
				if err != nil {
					mismatched.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				version, backend, upstream := resp.Header.Get("x-streamgate-model-version"), resp.Header.Get("x-fakellm-backend"), resp.Header.Get("x-fakellm-received-model")
				switch {
				case version == "v1" && backend == "backend-a" && upstream == "split-v1":
					v1.Add(1)
				case version == "v2" && backend == "backend-b" && upstream == "split-v2":
					v2.Add(1)
				default:
					mismatched.Add(1)
				}
			}
		}()
	}
	for range total {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	require.Zero(t, mismatched.Load(), "every response names the version, backend and upstream model that served it")
	const p = 0.7
	sigma := math.Sqrt(p*(1-p)/total) * 100 // of the share, in percentage points
	share := float64(v1.Load()) / total * 100
	t.Logf("v1 %d (%.1f%%), v2 %d; 5σ = %.1f points", v1.Load(), share, v2.Load(), 5*sigma)
	assert.InDelta(t, p*100, share, 5*sigma)
}

func TestPinnedVersion(t *testing.T) {
	g := startGateway(t, splitConfig)
	do := func(model, pin string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(`{"model":"`+model+`","messages":[]}`))
		require.NoError(t, err)
		req.Header.Set("x-streamgate-model-version", pin)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}
	for range 20 {
		resp := do("split", "v2")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "v2", resp.Header.Get("x-streamgate-model-version"))
		assert.Equal(t, "backend-b", resp.Header.Get("x-fakellm-backend"))
	}
	requireOpenAIError(t, do("split", "v9"), http.StatusNotFound, "model_version_not_found")
	requireOpenAIError(t, do("fixed", "default"), http.StatusForbidden, "model_version_pin_not_allowed")
}
