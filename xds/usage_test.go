package xds

import (
	"slices"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// TestUsageTapOnlyWithLimits: the usage tap is in the chain, and turned on
// by the backend routes, exactly when limits read usage through it.
func TestUsageTapOnlyWithLimits(t *testing.T) {
	const base = "backends: [{name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\nmodels: [{name: m, backend: a}]\n"
	for _, tc := range []struct {
		name, yaml string
		tap        bool
	}{
		{"no limits", base, false},
		{"limits", base + "limits: {tenants: [{name: t, requests_per_minute: 1}]}\n", true},
		{"limits read inline", base + "limits: {read_usage: inline, tenants: [{name: t, requests_per_minute: 1}]}\n", false},
		// A name may resolve to several ext_proc replicas: the tap stream
		// could reach one that does not hold the request.
		{"ext_proc behind a DNS name", base + "extproc: {listen: \"0.0.0.0:50051\", address: \"streamgate:50051\"}\nlimits: {tenants: [{name: t, requests_per_minute: 1}]}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(tc.yaml))
			require.NoError(t, err)
			l, err := gatewayListener(cfg)
			require.NoError(t, err)
			var hcm hcmv3.HttpConnectionManager
			require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
			var names []string
			for _, f := range hcm.GetHttpFilters() {
				names = append(names, f.GetName())
			}
			assert.Equal(t, tc.tap, slices.Contains(names, contract.UsageFilter), "filters %v", names)
			rc, err := routeConfig(cfg)
			require.NoError(t, err)
			for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
				_, on := r.GetTypedPerFilterConfig()[contract.UsageFilter]
				assert.Equal(t, tc.tap && r.GetName() != "unrouted", on, "route %s", r.GetName())
			}
		})
	}
}
