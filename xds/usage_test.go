package xds

import (
	"slices"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// TestEnvoyReadsUsageWhenSomethingNeedsIt: the reading filters (before the
// router, after ext_proc) and the usage report log are installed exactly
// when limits or telemetry read usage through Envoy, and the access log
// then takes the usage fields from Envoy.
func TestEnvoyReadsUsageWhenSomethingNeedsIt(t *testing.T) {
	const base = "backends: [{name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\nmodels: [{name: m, backend: a}]\n"
	const limits = "limits: {tenants: [{name: t, requests_per_minute: 1}]}\n"
	for _, tc := range []struct {
		name, yaml string
		reads      bool
	}{
		{"nothing reads usage", base, false},
		{"limits", base + limits, true},
		{"telemetry usage", base + "telemetry: {usage: true}\n", true},
		{"limits read inline", base + "limits: {read_usage: inline, tenants: [{name: t, requests_per_minute: 1}]}\n", false},
		{"the former name tap", base + "limits: {read_usage: tap, tenants: [{name: t, requests_per_minute: 1}]}\n", true},
		// A name may resolve to several ext_proc replicas: the report
		// could reach one that does not hold the request.
		{"ext_proc behind a DNS name", base + "extproc: {listen: \"0.0.0.0:50051\", address: \"streamgate:50051\"}\n" + limits, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(tc.yaml))
			require.NoError(t, err)
			require.Equal(t, tc.reads, cfg.EnvoyReadsUsage())
			l, err := gatewayListener(cfg)
			require.NoError(t, err)
			var hcm hcmv3.HttpConnectionManager
			require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
			var names []string
			for _, f := range hcm.GetHttpFilters() {
				names = append(names, f.GetName())
			}
			if !tc.reads {
				assert.NotContains(t, names, contract.UsageFilter)
				assert.NotContains(t, names, contract.StripUsageFilter)
			} else {
				read, strip := slices.Index(names, contract.UsageFilter), slices.Index(names, contract.StripUsageFilter)
				assert.Equal(t, []int{1, 2, len(names) - 2}, []int{strip, read, read + 1}, "ext_proc, strip, read, grpc_stats, router: %v", names)
			}
			var logNames []string
			for _, al := range hcm.GetAccessLog() {
				logNames = append(logNames, al.GetTypedConfig().String())
			}
			reportLog := slices.ContainsFunc(logNames, func(s string) bool { return strings.Contains(s, contract.UsageReportLog) })
			assert.Equal(t, tc.reads, reportLog, "the usage report log")
			fileLog := logNames[len(logNames)-1]
			assert.Equal(t, tc.reads, strings.Contains(fileLog, contract.EnvoyUsageNamespace), "the access log's usage fields from Envoy")
		})
	}
}
