package contract

// Names of cross-protocol failover: a model whose fallback backends speak
// another protocol than its version's backend. Envoy sends such a request
// to the chain's aggregate cluster, which runs the ext_proc server again as
// an upstream HTTP filter (UpstreamExtProcFilter) once per attempt, after
// its load balancer picked the endpoint, to translate and authorize the
// request for the backend that attempt goes to. Envoy builds an attempt's
// upstream filters from the route's cluster (the aggregate), never from
// the member cluster that serves it, so the backend is learnt from the
// picked endpoint's metadata (EndpointNamespace).
const (
	// UpstreamExtProcFilter names the ext_proc filter of a cross chain's
	// aggregate cluster.
	UpstreamExtProcFilter = "streamgate.upstream_ext_proc"
	// EndpointNamespace and EndpointBackendKey are where each endpoint of
	// a backend in a cross chain names its backend, in the endpoint's
	// filter metadata.
	EndpointNamespace  = "streamgate"
	EndpointBackendKey = "backend"
	// UpstreamAttribute is the attribute the upstream ext_proc filter asks
	// for: the picked endpoint's backend. Envoy files attributes under
	// ExtProcFilter whichever filter sends them; only the upstream filter
	// asks for this one and a client cannot set attributes, so its
	// presence on a stream's first message marks an upstream stream.
	UpstreamAttribute = "xds.upstream_host_metadata.filter_metadata['" + EndpointNamespace + "']['" + EndpointBackendKey + "']"
	// AnsweredByHeader is the response header the route of a cross chain
	// sets to the backend that answered (the endpoint's metadata); the
	// main ext_proc filter reads it to translate the response from that
	// backend's protocol, and removes it.
	AnsweredByHeader = HeaderPrefix + "answered-by"
	// PathHeader carries the client's request path to the upstream
	// ext_proc filter of a cross request: every attempt sees the headers
	// the previous one changed (Envoy shares one header map between
	// attempts), so the original path travels beside :path, with only the
	// query parameters some backend of the chain may receive.
	PathHeader = HeaderPrefix + "path"
)
