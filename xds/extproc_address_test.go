package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/contract"
)

// TestExtProcAddress: Envoy dials extproc.address when set (a DNS name makes
// the cluster STRICT_DNS), else the listen address.
func TestExtProcAddress(t *testing.T) {
	for name, tc := range map[string]struct {
		extproc  string
		wantHost string
		wantType clusterv3.Cluster_DiscoveryType
	}{
		"listen only":     {extproc: "listen: 127.0.0.1:50051", wantHost: "127.0.0.1", wantType: clusterv3.Cluster_STATIC},
		"address by name": {extproc: "listen: 0.0.0.0:50051\n  address: streamgate:50051", wantHost: "streamgate", wantType: clusterv3.Cluster_STRICT_DNS},
		"address by IP":   {extproc: "listen: 0.0.0.0:50051\n  address: 10.0.0.7:50051", wantHost: "10.0.0.7", wantType: clusterv3.Cluster_STATIC},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := parse(t, "extproc:\n  "+tc.extproc+"\nbackends:\n  - name: a\n    protocol: openai\n    endpoints: [127.0.0.1:1]\nmodels:\n  - name: m\n    backend: a\n")
			snap, err := Snapshot(cfg, AllInOne)
			require.NoError(t, err)
			c := snap.GetResources(resourcev3.ClusterType)[contract.ExtProcCluster].(*clusterv3.Cluster)
			assert.Equal(t, tc.wantType, c.GetType())
			sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			assert.Equal(t, tc.wantHost, sa.GetAddress())
			assert.Equal(t, uint32(50051), sa.GetPortValue())
		})
	}
}
