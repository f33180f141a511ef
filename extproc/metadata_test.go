package extproc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/contract"
)

// TestMetaFieldsSetsEveryField: strings set past the room asked for are
// still set, each field its own value.
func TestMetaFieldsSetsEveryField(t *testing.T) {
	for name, room := range map[string]int{"no room": 0, "room for two": 2, "room for all": 4} {
		t.Run(name, func(t *testing.T) {
			m := newMetaFields(room, 0)
			want := map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
			for _, k := range []string{"a", "b", "c", "d"} {
				m.str(k, want[k])
			}
			require.Len(t, m.f, len(want))
			for k, v := range want {
				assert.Equal(t, v, m.f[k].GetStringValue(), k)
			}
			m.f["a"].Kind = nil
			assert.Equal(t, "2", m.f["b"].GetStringValue(), "values are not shared")
		})
	}
}

// TestRequestMetadataFitsItsRoom: a limited request's metadata (every
// field but the trace id and picking) takes no more string fields than
// requestFields makes room for (plus stream and queue wait).
func TestRequestMetadataFitsItsRoom(t *testing.T) {
	p := limitedProcessor(t, limitedYAML)
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	br := p.handle(bodyMsg(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`))
	require.NotNil(t, br.GetRequestBody())
	fields := br.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.Contains(t, fields, contract.MetaLimitDecision)
	assert.LessOrEqual(t, len(fields), p.requestFields(false)+2)
}
