package xds

import (
	"encoding/json"
	"os"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// TestDropInFilterMatchesAllInOne keeps envoy/dropin/http_filter.yaml, the
// snippet operators paste, equal to the filter the all-in-one listener uses.
func TestDropInFilterMatchesAllInOne(t *testing.T) {
	src, err := os.ReadFile("../envoy/dropin/http_filter.yaml")
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(src)
	require.NoError(t, err)
	var got hcmv3.HttpFilter
	require.NoError(t, protojson.Unmarshal(js, &got))

	cfg, err := config.Parse("t.yaml", []byte("backends: [{name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\n"))
	require.NoError(t, err)
	// The drop-in forwards every header: it cannot know the config's
	// limits.tenant_header or tracing, and a missing header would silently
	// change which tenant pays (forwardRules is all-in-one only).
	ep := extProcFilter(cfg)
	ep.ForwardRules = nil
	want, err := typed("envoy.filters.http.ext_proc", ep)
	require.NoError(t, err)
	if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
		t.Fatalf("envoy/dropin/http_filter.yaml differs from the all-in-one ext_proc filter (-want +got):\n%s", diff)
	}
}

// TestDropInUsageSnippetsMatchAllInOne keeps envoy/dropin/usage_filters.yaml
// and usage_report_log.yaml equal to the reading filters and the usage
// report log of the all-in-one listener.
func TestDropInUsageSnippetsMatchAllInOne(t *testing.T) {
	src, err := os.ReadFile("../envoy/dropin/usage_filters.yaml")
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(src)
	require.NoError(t, err)
	var raw []json.RawMessage
	require.NoError(t, json.Unmarshal(js, &raw))
	want, err := usageFilters()
	require.NoError(t, err)
	require.Len(t, raw, len(want))
	for i, r := range raw {
		var got hcmv3.HttpFilter
		require.NoError(t, protojson.Unmarshal(r, &got))
		if diff := cmp.Diff(want[i], &got, protocmp.Transform()); diff != "" {
			t.Fatalf("envoy/dropin/usage_filters.yaml filter %d differs from the all-in-one one (-want +got):\n%s", i, diff)
		}
	}

	src, err = os.ReadFile("../envoy/dropin/usage_report_log.yaml")
	require.NoError(t, err)
	js, err = yaml.YAMLToJSON(src)
	require.NoError(t, err)
	var got accesslogv3.AccessLog
	require.NoError(t, protojson.Unmarshal(js, &got))
	log, err := usageReportLog()
	require.NoError(t, err)
	if diff := cmp.Diff(log, &got, protocmp.Transform()); diff != "" {
		t.Fatalf("envoy/dropin/usage_report_log.yaml differs from the all-in-one usage report log (-want +got):\n%s", diff)
	}
}

// TestDropInRouteSnippet keeps envoy/dropin/route.yaml a valid route whose
// retry policy is the all-in-one failover policy.
func TestDropInRouteSnippet(t *testing.T) {
	src, err := os.ReadFile("../envoy/dropin/route.yaml")
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(src)
	require.NoError(t, err)
	var got routev3.Route
	require.NoError(t, protojson.Unmarshal(js, &got))
	require.NoError(t, got.Validate())
	require.Equal(t, contract.BackendHeader, got.GetRoute().GetClusterHeader())
	want, err := failoverRetry(2)
	require.NoError(t, err)
	if diff := cmp.Diff(want, got.GetRoute().GetRetryPolicy(), protocmp.Transform()); diff != "" {
		t.Fatalf("route.yaml retry policy differs (-want +got):\n%s", diff)
	}
	cfg := &config.Config{Limits: &config.Limits{}, ExtProc: config.ExtProc{Listen: "127.0.0.1:50051"}}
	require.Empty(t, got.GetTypedPerFilterConfig(), "no route turns anything on for usage any more")
	// The all-in-one route's headers, and the one its cross chains' routes
	// add (a drop-in route serves every chain).
	wantHeaders := append(responseHeadersToAdd(cfg), answeredBy())
	if diff := cmp.Diff(wantHeaders, got.GetResponseHeadersToAdd(), protocmp.Transform()); diff != "" {
		t.Fatalf("route.yaml response headers differ from the all-in-one route with limits and a cross chain (-want +got):\n%s", diff)
	}
}
