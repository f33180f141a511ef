package bridge

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc"
)

func TestParseEnvelope(t *testing.T) {
	tests := map[string]struct {
		msg     string
		wantErr string // substring; "" means valid
		check   func(t *testing.T, e *Envelope)
	}{
		"minimal": {msg: `{"id":"r1","reply_to":"res.a","body":{"model":"m"}}`, check: func(t *testing.T, e *Envelope) {
			assert.Equal(t, "/v1/chat/completions", e.Endpoint)
			assert.JSONEq(t, `{"model":"m"}`, string(e.Body))
			assert.False(t, e.streams())
		}},
		"everything": {msg: `{"id":"r2","credential":"acme","reply_to":"results","deadline":"2030-01-02T03:04:05Z","priority":"critical","endpoint":"/v1/embeddings","stream_chunks":true,"body":{"model":"m","stream":true}}`,
			check: func(t *testing.T, e *Envelope) {
				assert.Equal(t, "acme", e.Credential)
				assert.Equal(t, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), e.Deadline.UTC())
				assert.Equal(t, "/v1/embeddings", e.Endpoint)
				assert.True(t, e.streams())
			}},
		"chunks without stream": {msg: `{"id":"r","reply_to":"x","stream_chunks":true,"body":{"model":"m"}}`, check: func(t *testing.T, e *Envelope) { assert.False(t, e.streams()) }},
		"not json":              {msg: `{"id":`, wantErr: "not a JSON envelope"},
		"array":                 {msg: `[]`, wantErr: "not a JSON envelope"},
		"no id":                 {msg: `{"reply_to":"x","body":{}}`, wantErr: "id must be"},
		"control char id":       {msg: `{"id":"a\u0001","reply_to":"x","body":{}}`, wantErr: "id must be"},
		"no reply":              {msg: `{"id":"r","body":{}}`, wantErr: "reply_to"},
		"wildcard reply":        {msg: `{"id":"r","reply_to":"res.>","body":{}}`, wantErr: "reply_to"},
		"JetStream API reply":   {msg: `{"id":"r","reply_to":"$JS.API.STREAM.DELETE.REQ","body":{}}`, wantErr: "reply_to"},
		"internal topic reply":  {msg: `{"id":"r","reply_to":"__consumer_offsets","body":{}}`, wantErr: "reply_to"},
		"journal reply":         {msg: `{"id":"r","reply_to":"streamgate-bridge-done.g.t","body":{}}`, wantErr: "reply_to"},
		"empty token reply":     {msg: `{"id":"r","reply_to":"res..a","body":{}}`, wantErr: "reply_to"},
		"bad endpoint":          {msg: `{"id":"r","reply_to":"x","endpoint":"/v1/files","body":{}}`, wantErr: "endpoint"},
		"bad priority":          {msg: `{"id":"r","reply_to":"x","priority":"urgent","body":{}}`, wantErr: "priority"},
		"bad deadline":          {msg: `{"id":"r","reply_to":"x","deadline":"tomorrow","body":{}}`, wantErr: "RFC 3339"},
		"no body":               {msg: `{"id":"r","reply_to":"x"}`, wantErr: "body must be"},
		"string body":           {msg: `{"id":"r","reply_to":"x","body":"{}"}`, wantErr: "body must be"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, err := ParseEnvelope([]byte(tc.msg))
			if tc.wantErr == "" {
				require.NoError(t, err)
				tc.check(t, e)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.True(t, errors.Is(err, extproc.ErrBadEnvelope))
			status, code, body := extproc.RefusalBody(err, err.Error())
			assert.Equal(t, 400, status)
			assert.Equal(t, "invalid_envelope", code)
			assert.Contains(t, string(body), `"code":"invalid_envelope"`)
		})
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"id":"r1","reply_to":"res.a","body":{"model":"m"}}`,
		`{"id":"r2","credential":"acme","reply_to":"results","deadline":"2030-01-02T03:04:05Z","priority":"critical","endpoint":"/v1/embeddings","stream_chunks":true,"body":{"model":"m","stream":true}}`,
		`{"id":`, `[]`, `null`, `{"id":"r","reply_to":"x","body":"{}"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEnvelope(data)
		if err != nil {
			if !errors.Is(err, extproc.ErrBadEnvelope) {
				t.Fatalf("error %v is not ErrBadEnvelope", err)
			}
			return
		}
		if e.ID == "" || e.ReplyTo == "" || len(e.Body) == 0 || e.Body[0] != '{' || !endpoints[e.Endpoint] {
			t.Fatalf("accepted an invalid envelope: %+v", e)
		}
		_ = e.streams()
	})
}
