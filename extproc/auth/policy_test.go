package auth

import (
	"errors"
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

func TestApplyTokenCap(t *testing.T) {
	tn := &Tenant{Name: "t", MaxTokens: 100}
	for name, tc := range map[string]struct {
		body    string
		inject  bool
		want    string
		wantErr error
	}{
		"under cap":              {body: `{"max_tokens":50}`, want: `{"max_tokens":50}`},
		"at cap":                 {body: `{"max_tokens":100}`, want: `{"max_tokens":100}`},
		"completion field":       {body: `{"max_completion_tokens":99}`, want: `{"max_completion_tokens":99}`},
		"over cap":               {body: `{"max_tokens":101}`, wantErr: ErrTokenCap},
		"completion over cap":    {body: `{"max_tokens":1,"max_completion_tokens":1000}`, wantErr: ErrTokenCap},
		"missing gets cap":       {body: `{"model":"m"}`, inject: true, want: `{"model":"m","max_tokens":100}`},
		"null gets cap":          {body: `{"max_tokens":null}`, inject: true, want: `{"max_tokens":100}`},
		"missing without inject": {body: `{"input":"x"}`, want: `{"input":"x"}`},
		"repeated field":         {body: `{"max_tokens":1,"max_tokens":1000}`, wantErr: ErrBadRequest},
		"escaped field":          {body: `{"max_tokens":1,"max\u005ftokens":1000}`, wantErr: ErrBadRequest},
		"string":                 {body: `{"max_tokens":"1000"}`, wantErr: ErrBadRequest},
		"float":                  {body: `{"max_tokens":1.5}`, wantErr: ErrBadRequest},
		"negative":               {body: `{"max_tokens":-1}`, wantErr: ErrBadRequest},
		"huge":                   {body: `{"max_tokens":99999999999999999999999}`, wantErr: ErrBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tn.ApplyTokenCap([]byte(tc.body), tc.inject)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(got))
		})
	}
	body := []byte(`{"max_tokens":5000}`)
	got, err := (&Tenant{Name: "uncapped"}).ApplyTokenCap(body, true)
	require.NoError(t, err)
	assert.Equal(t, string(body), string(got), "no cap: body untouched")
}

// FuzzApplyTokenCap: whatever JSON object a client sends, a body that passes
// never asks for more than the cap, and an injected body asks for something.
func FuzzApplyTokenCap(f *testing.F) {
	f.Add([]byte(`{"model":"m","max_tokens":10}`), true)
	f.Add([]byte(`{"max_completion_tokens":1000}`), false)
	f.Add([]byte(`{"max_tokens":1,"max\u005ftokens":1000}`), true)
	f.Add([]byte(`{"max_tokens":1e9}`), true)
	f.Add([]byte(`{}`), true)
	tn := &Tenant{Name: "t", MaxTokens: 100}
	f.Fuzz(func(t *testing.T, body []byte, inject bool) {
		if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
			t.Skip("the processor refuses this body before the cap")
		}
		out, err := tn.ApplyTokenCap(body, inject)
		if err != nil {
			if !errors.Is(err, ErrTokenCap) && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !gjson.ValidBytes(out) {
			t.Fatalf("output is not JSON: %s", out)
		}
		asked := false
		for _, f := range tokenFields {
			v := gjson.GetBytes(out, f)
			if v.Type == gjson.Number {
				asked = true
				if v.Int() > tn.MaxTokens || v.Float() > float64(tn.MaxTokens) {
					t.Fatalf("%s=%s passed a cap of %d", f, v.Raw, tn.MaxTokens)
				}
			}
		}
		if inject && !asked {
			t.Fatalf("no token limit after injection: %s", out)
		}
	})
}
