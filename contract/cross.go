package contract

// Names of cross-protocol failover: a model whose fallback backends speak
// another protocol than its version's backend. Envoy sends such a request
// to a failover chain of per-backend "cross" clusters, each of which runs
// the ext_proc server again as an upstream HTTP filter
// (UpstreamExtProcFilter), once per attempt, to translate and authorize
// the request for the backend that attempt goes to.
const (
	// CrossPrefix starts the name of a backend's cross cluster: the same
	// endpoints as the backend's own cluster, with the upstream filters.
	CrossPrefix = "streamgate_xp_"
	// UpstreamExtProcFilter names the ext_proc filter of a cross cluster;
	// Envoy files the attributes it sends under this name, which is how
	// the server tells an upstream stream from a client's (a client cannot
	// set attributes).
	UpstreamExtProcFilter = "streamgate.upstream_ext_proc"
	// UpstreamBackendMetadata is the gRPC metadata key naming, on every
	// stream of a cross cluster's ext_proc filter, the backend the attempt
	// goes to.
	UpstreamBackendMetadata = "x-streamgate-upstream-backend"
	// AnsweredByHeader is the response header a cross cluster's upstream
	// header filter sets to the backend that answered; the main ext_proc
	// filter reads it to translate the response from that backend's
	// protocol, and removes it.
	AnsweredByHeader = HeaderPrefix + "answered-by"
	// PathHeader carries the client's request path to the upstream
	// ext_proc filter of a cross request: every attempt sees the headers
	// the previous one changed (Envoy shares one header map between
	// attempts), so the original path travels beside :path.
	PathHeader = HeaderPrefix + "path"
)

// CrossCluster names backend's cross cluster.
func CrossCluster(backend string) string { return CrossPrefix + backend }

// CrossChainCluster names the aggregate cluster of a cross-protocol
// failover chain: the chain's backends' cross clusters, in order.
func CrossChainCluster(chain []string) string {
	names := make([]string, len(chain))
	for i, b := range chain {
		names[i] = CrossCluster(b)
	}
	return FailoverCluster(names)
}
