package xds

// Names of Envoy extensions xds configures that go-control-plane's
// pkg/wellknown does not define (the names ext_proc shares are in package
// contract).
const (
	aggregateCluster        = "envoy.clusters.aggregate"
	previousPrioritiesRetry = "envoy.retry_priorities.previous_priorities"
	previousHostsPredicate  = "envoy.retry_host_predicates.previous_hosts"
	earlyHeaderMutation     = "envoy.http.early_header_mutation.header_mutation"
	celAccessLogFilter      = "envoy.access_loggers.extension_filters.cel"
	// httpProtocolOptionsKey is the typed_extension_protocol_options key
	// of a cluster's upstream HTTP protocol options.
	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)
