package xds

import (
	"testing"

	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/contract"
)

// TestClientHeaderMutation: the listener removes every client x-envoy-*
// header and the picking headers whatever the config, and the client's
// x-request-id unless gateway.trust_request_id (issue 21, hostile input).
func TestClientHeaderMutation(t *testing.T) {
	for name, tc := range map[string]struct {
		trust      bool
		removesRID bool
	}{
		"default":          {false, true},
		"trust_request_id": {true, false},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := parse(t, twoBackends)
			cfg.Gateway.TrustRequestID = tc.trust
			exts, err := requestIDMutation(cfg)
			require.NoError(t, err)
			require.Len(t, exts, 1)
			var m earlymutationv3.HeaderMutation
			require.NoError(t, exts[0].GetTypedConfig().UnmarshalTo(&m))
			var removed []string
			var prefixes []string
			for _, mu := range m.GetMutations() {
				if r := mu.GetRemove(); r != "" {
					removed = append(removed, r)
				}
				if p := mu.GetRemoveOnMatch().GetKeyMatcher().GetPrefix(); p != "" {
					prefixes = append(prefixes, p)
				}
			}
			assert.Equal(t, []string{"x-envoy-"}, prefixes)
			assert.Contains(t, removed, contract.DestinationEndpointKey)
			assert.Contains(t, removed, contract.DestinationServedKey)
			if tc.removesRID {
				assert.Contains(t, removed, contract.RequestIDHeader)
			} else {
				assert.NotContains(t, removed, contract.RequestIDHeader)
			}
		})
	}
}
