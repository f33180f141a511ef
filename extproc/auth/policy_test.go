package auth

import (
	"errors"
	"math"
	"math/bits"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/config"
)

func TestTenantAllows(t *testing.T) {
	tn := newTenant(config.Tenant{Name: "t", Models: []string{"gpt-*", "exact"}, Endpoints: []string{"/v1/chat/completions", "/v1/models"}})
	for model, want := range map[string]bool{
		"gpt-4o": true, "gpt-": true, "exact": true, "exactly": false, "llama": false, "org/gpt-4": false,
	} {
		assert.Equal(t, want, tn.AllowsModel(model), model)
	}
	for ep, want := range map[string]bool{
		"/v1/chat/completions": true, "/v1/models": true, "/v1/embeddings": false, "/v1/completions": false,
	} {
		assert.Equal(t, want, tn.AllowsEndpoint(ep), ep)
	}
	all := newTenant(config.Tenant{Name: "all", Models: []string{"*"}})
	assert.True(t, all.AllowsModel("meta-llama/Llama-3.1-8B-Instruct"), "a lone * crosses '/'")
	assert.True(t, all.AllowsEndpoint("/v1/embeddings"), "no endpoint list allows all")
	none := newTenant(config.Tenant{Name: "none"})
	assert.False(t, none.AllowsModel("x"))
}

// tokens builds a TokenRequest: mt and mct are -1 when absent; n is 1 when 0.
func tokens(mt, mct, n int64) TokenRequest {
	return TokenRequest{MaxTokens: mt, MaxCompletionTokens: mct, N: max(n, 1)}
}

func TestApplyTokenCap(t *testing.T) {
	tn := &Tenant{Name: "t", MaxTokens: 100}
	for name, tc := range map[string]struct {
		req     TokenRequest
		inject  bool
		want    string
		wantErr error
	}{
		"under cap":              {req: tokens(50, -1, 1), want: `{}`},
		"at cap":                 {req: tokens(100, -1, 1), want: `{}`},
		"completion field":       {req: tokens(-1, 99, 1), want: `{}`},
		"over cap":               {req: tokens(101, -1, 1), wantErr: ErrTokenCap},
		"completion over cap":    {req: tokens(1, 1000, 1), wantErr: ErrTokenCap},
		"missing gets cap":       {req: tokens(-1, -1, 1), inject: true, want: `{"max_tokens":100}`},
		"missing without inject": {req: tokens(-1, -1, 1), want: `{}`},
		"huge":                   {req: tokens(math.MaxInt64, -1, 1), wantErr: ErrTokenCap},
		"named field over cap":   {req: TokenRequest{MaxTokens: 101, MaxCompletionTokens: -1, N: 1, Field: "max_output_tokens"}, wantErr: ErrTokenCap},
		"named field missing":    {req: TokenRequest{MaxTokens: -1, MaxCompletionTokens: -1, N: 1, Field: "max_output_tokens"}, inject: true, want: `{"max_output_tokens":100}`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tn.ApplyTokenCap([]byte(`{}`), tc.req, tc.inject)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(got))
		})
	}
	body := []byte(`{"max_tokens":5000}`)
	got, err := (&Tenant{Name: "uncapped"}).ApplyTokenCap(body, tokens(5000, -1, 1), true)
	require.NoError(t, err)
	assert.Equal(t, string(body), string(got), "no cap: body untouched")
}

// TestTokenCapCountsChoices (issue 23 finding 3): the cap bounds
// max_tokens × n, the output a request may really produce, without
// overflowing for any n.
func TestTokenCapCountsChoices(t *testing.T) {
	tn := &Tenant{Name: "t", MaxTokens: 100}
	for name, tc := range map[string]struct {
		req     TokenRequest
		inject  bool
		want    string
		wantErr error
	}{
		"within cap":          {req: tokens(25, -1, 4), want: `{}`},
		"over cap with n":     {req: tokens(30, -1, 4), wantErr: ErrTokenCap},
		"completion with n":   {req: tokens(-1, 51, 2), wantErr: ErrTokenCap},
		"huge n":              {req: tokens(8, -1, 1<<60), wantErr: ErrTokenCap},
		"injected per choice": {req: tokens(-1, -1, 3), inject: true, want: `{"max_tokens":33}`},
		"n above cap":         {req: tokens(-1, -1, 101), inject: true, wantErr: ErrTokenCap},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tn.ApplyTokenCap([]byte(`{}`), tc.req, tc.inject)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(got))
		})
	}
}

// FuzzApplyTokenCap: whatever a client asks for, a request that passes
// never asks for more than the cap in all its choices, and an injected
// body asks for something.
func FuzzApplyTokenCap(f *testing.F) {
	f.Add(int64(10), int64(-1), int64(1), true)
	f.Add(int64(-1), int64(1000), int64(1), false)
	f.Add(int64(8), int64(-1), int64(1)<<60, true)
	f.Add(int64(-1), int64(-1), int64(3), true)
	tn := &Tenant{Name: "t", MaxTokens: 100}
	f.Fuzz(func(t *testing.T, mt, mct, n int64, inject bool) {
		req := TokenRequest{MaxTokens: max(mt, -1), MaxCompletionTokens: max(mct, -1), N: max(n, 1)}
		out, err := tn.ApplyTokenCap([]byte(`{}`), req, inject)
		if err != nil {
			if !errors.Is(err, ErrTokenCap) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		asked := false
		values := []int64{req.MaxTokens, req.MaxCompletionTokens}
		if v := gjson.GetBytes(out, "max_tokens"); v.Exists() {
			values = append(values, v.Int())
		}
		for _, v := range values {
			if v < 0 {
				continue
			}
			asked = true
			if hi, lo := bits.Mul64(uint64(v), uint64(req.N)); hi != 0 || lo > uint64(tn.MaxTokens) {
				t.Fatalf("%d tokens × n=%d passed a cap of %d", v, req.N, tn.MaxTokens)
			}
		}
		if inject && !asked {
			t.Fatalf("no token limit after injection: %s", out)
		}
	})
}
