package extproc

import "github.com/streamgate/streamgate/extproc/telemetry"

// noteClusters records the clusters a route may lead to: its own (a
// backend or a failover chain's) and each backend of the chain.
func (r *Routes) noteClusters(cluster string, chain []string) {
	r.clusters[cluster] = true
	for _, b := range chain {
		r.clusters[b] = true
	}
}

// labelModel returns model as a metric label: itself when it is a public
// model name, else telemetry.Other. A nil r knows no model.
func (r *Routes) labelModel(model string) string {
	if r == nil || !r.Has(model) {
		return telemetry.Other
	}
	return model
}

// labelCluster returns an Envoy cluster name as a metric label: itself
// when a route leads to it, else telemetry.Other.
func (r *Routes) labelCluster(cluster string) string {
	if r == nil || !r.clusters[cluster] {
		return telemetry.Other
	}
	return cluster
}
