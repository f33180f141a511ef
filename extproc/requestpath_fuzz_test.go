package extproc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/ratelimit"
	"github.com/streamgate/streamgate/extproc/tokens"
)

// The whole request path under fuzzing: a tenant allowed only the model
// "public" (shaped) with a token cap, a forbidden model "secret", and an
// in-memory limiter behind a store that checks every charge.
const (
	fuzzKey       = "sk-fuzz-acme-0123456789"
	fuzzTokenCap  = 50
	fuzzShapedMax = 40
)

const fuzzYAML = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - name: public
    backend: a
    upstream_model: public-up
    shaping:
      max_tokens: 40
      temperature: {min: 0, max: 1}
      forbid: [logprobs]
      drop: [user]
      defaults: {seed: 7}
  - name: secret
    backend: a
    upstream_model: secret-up
auth:
  tenants:
    - {name: acme, models: [public], max_tokens: 50, api_keys: [{hash: %s}]}
limits:
  tenants:
    - name: acme
      requests_per_minute: 1000000000
      total_tokens_per_minute: 1000000000000
      output_tokens_per_minute: 1000000000000
`

// fuzzPaths are the endpoints a fuzzed body is sent to (by index).
var fuzzPaths = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"}

// checkedStore is a rate store that fails the test on a negative charge or
// on a refund larger than what was reserved in the same bucket.
type checkedStore struct {
	ratelimit.Store
	t        *testing.T
	reserved map[string]int64
}

func (s *checkedStore) Reserve(ctx context.Context, charges []ratelimit.Charge) (ratelimit.Decision, error) {
	for _, c := range charges {
		if c.Cost < 0 {
			s.t.Fatalf("negative charge %d to %s", c.Cost, c.Key)
		}
		s.reserved[c.Key] = c.Cost
	}
	return s.Store.Reserve(ctx, charges)
}

func (s *checkedStore) Adjust(ctx context.Context, charges []ratelimit.Charge) error {
	for _, c := range charges {
		if c.Cost < 0 && -c.Cost > s.reserved[c.Key] {
			s.t.Fatalf("refund of %d to %s, which reserved %d", -c.Cost, c.Key, s.reserved[c.Key])
		}
	}
	return s.Store.Adjust(ctx, charges)
}

// FuzzRequestPath sends any body to any endpoint through parse, tenant
// policy, token cap, shaping, estimate and admission, then reconciles any
// usage. Invariants: no panic; every charge non-negative and every refund
// within its reservation; and the body that would go upstream, read the
// way a lenient backend reads it (encoding/json: case-folded keys, last
// copy wins, numbers in strings taken), names only the allowed model and
// asks for at most the cap in all its choices, without forbidden or
// dropped fields.
func FuzzRequestPath(f *testing.F) {
	cfg, err := config.Parse("fuzz.yaml", []byte(fmt.Sprintf(fuzzYAML, auth.HashKey(fuzzKey))))
	require.NoError(f, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := auth.New(f.Context(), cfg, auth.Options{Log: log})
	require.NoError(f, err)
	store := &checkedStore{Store: ratelimit.NewMemoryStore(ratelimit.SystemClock{})}
	lim, err := NewLimits(cfg, store, prometheus.NewRegistry())
	require.NoError(f, err)
	routes := NewRoutes(cfg, 1)
	f.Add([]byte(`{"model":"public","messages":[{"role":"user","content":"hi"}]}`), uint8(0), int64(10), int64(5))
	f.Fuzz(func(t *testing.T, body []byte, endpoint uint8, usedIn, usedOut int64) {
		store.t, store.reserved = t, map[string]int64{}
		p := newProcessor(routes, cfg.Gateway.MaxRequestBodyBytes, log, nil)
		p.ctx, p.auth, p.limits = context.Background(), a, lim
		defer p.finish()
		path := fuzzPaths[int(endpoint)%len(fuzzPaths)]
		r := p.handle(reqHeaders("POST", path, false, "authorization", "Bearer "+fuzzKey, "content-type", "application/json"))
		require.Nil(t, r.GetImmediateResponse(), "headers refused")
		r = p.handle(bodyMsg(string(body)))
		if ir := r.GetImmediateResponse(); ir != nil {
			code := ir.GetStatus().GetCode()
			require.True(t, code >= 400 && code < 600, "status %d", code)
			require.True(t, json.Valid(ir.GetBody()), "error body %q", ir.GetBody())
			return
		}
		upstream := body
		if m := r.GetRequestBody().GetResponse().GetBodyMutation().GetBody(); m != nil {
			upstream = m
		}
		checkUpstream(t, upstream, lim.fallback)
		if p.lim == nil || p.lim.res == nil {
			return
		}
		reserved := p.lim.res.Reserved()
		require.GreaterOrEqual(t, reserved.Input, int64(0))
		require.GreaterOrEqual(t, reserved.Output, int64(0))
		require.LessOrEqual(t, reserved.Output, max(int64(fuzzTokenCap), cfg.Limits.DefaultOutputTokens))
		p.lim.res.Finish(ratelimit.Usage{Input: usedIn, Output: usedOut})
	})
}

// lenientRequest is the upstream body as a lenient backend decodes it.
type lenientRequest struct {
	Model               string          `json:"model"`
	MaxTokens           json.Number     `json:"max_tokens"`
	MaxCompletionTokens json.Number     `json:"max_completion_tokens"`
	N                   json.Number     `json:"n"`
	Temperature         json.Number     `json:"temperature"`
	Logprobs            json.RawMessage `json:"logprobs"`
	User                json.RawMessage `json:"user"`
}

// checkUpstream asserts the invariants of a body about to go upstream.
func checkUpstream(t *testing.T, upstream []byte, c *tokens.Counter) {
	t.Helper()
	require.True(t, gjson.ValidBytes(upstream), "upstream body is not JSON: %q", upstream)
	var got lenientRequest
	require.NoError(t, json.Unmarshal(upstream, &got), "upstream body %q", upstream)
	require.Equal(t, "public-up", got.Model, "upstream body %q", upstream)
	require.Nil(t, got.Logprobs, "forbidden field upstream: %q", upstream)
	require.Nil(t, got.User, "dropped field upstream: %q", upstream)
	n := int64(1)
	if got.N != "" {
		v, err := got.N.Int64()
		require.NoError(t, err)
		require.True(t, v >= 1 && v <= MaxN, "n=%d upstream", v)
		n = v
	}
	for _, v := range []json.Number{got.MaxTokens, got.MaxCompletionTokens} {
		if v == "" {
			continue
		}
		mt, err := v.Int64()
		require.NoError(t, err, "token field %q upstream", v)
		hi, lo := bits.Mul64(uint64(mt), uint64(n))
		require.True(t, mt >= 0 && hi == 0 && lo <= fuzzTokenCap, "%d tokens × n=%d upstream above the cap: %q", mt, n, upstream)
	}
	if got.Temperature != "" {
		temp, err := got.Temperature.Float64()
		if err == nil && !math.IsInf(temp, 0) {
			require.True(t, temp >= 0 && temp <= 1, "temperature %v upstream", temp)
		}
	}
	est := tokens.EstimateRequest(upstream, c, nil)
	require.GreaterOrEqual(t, est.Input, int64(0))
	require.GreaterOrEqual(t, est.MaxOutput, int64(0))
}
