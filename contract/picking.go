package contract

// Endpoint picking: the names of the Gateway API Inference Extension's
// endpoint-picker protocol, which Envoy's override-host load balancing
// policy reads. Streamgate's own backends with `picking` and an external
// InferencePool that uses Streamgate as its endpoint picker both speak them.
const (
	// LBNamespace is the dynamic metadata namespace the override-host
	// policy reads the picked endpoints from.
	LBNamespace = "envoy.lb"
	// DestinationEndpointKey holds the picked endpoint and its fallbacks,
	// "IP:port,IP:port,...", in LBNamespace; as a request header it is the
	// same list (clients may not send it: Streamgate removes it).
	DestinationEndpointKey = "x-gateway-destination-endpoint"
	// DestinationServedKey is where Envoy reports the endpoint it used.
	DestinationServedKey = "x-gateway-destination-endpoint-served"
	// SubsetNamespace is the filter metadata namespace in which a proxy
	// passes the endpoints an external picker may choose from.
	SubsetNamespace = "envoy.lb.subset_hint"
	// SubsetKey holds that candidate list in SubsetNamespace.
	SubsetKey = "x-gateway-destination-endpoint-subset"
)

// Keys under MetadataNamespace that name a backend with picking's choice,
// read by the access log (the endpoint Envoy finally used is its
// upstream_host).
const (
	// MetaPickedEndpoint is the endpoint picked first, "IP:port".
	MetaPickedEndpoint = "picked_endpoint"
	// MetaPickReason is what decided the pick (picking.Reason*).
	MetaPickReason = "pick_reason"
)
