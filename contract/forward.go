package contract

// Headers the ext_proc server reads that are not its own. Envoy forwards a
// header on the main filter's messages only if ForwardedHeaders lists it or
// it starts with HeaderPrefix (ext_proc removes those on sight, so it must
// see them).
const (
	// AuthorizationHeader carries a client's bearer key or JWT.
	AuthorizationHeader = "authorization"
	// APIKeyHeader carries a client's API key (Anthropic style).
	APIKeyHeader = "x-api-key"
	// TraceParentHeader and TraceStateHeader are the client's W3C trace
	// context, read when tracing is on.
	TraceParentHeader = "traceparent"
	TraceStateHeader  = "tracestate"
	// UpgradeHeader and WebSocketProtocolHeader are a WebSocket upgrade's
	// (the Realtime endpoint): the upgrade asked for, and the subprotocols,
	// one of which may carry the client's key.
	UpgradeHeader           = "upgrade"
	WebSocketProtocolHeader = "sec-websocket-protocol"
)

// ForwardedHeaders returns the exact names of every header the ext_proc
// server reads on the main filter, request and response phases alike, for
// a config whose limits name tenants by tenantHeader ("" when limits are
// off or the header is unused) and whose tracing is on or off. Headers
// starting with HeaderPrefix come on top. The slice is new on every call.
func ForwardedHeaders(tenantHeader string, tracing bool) []string {
	out := []string{
		":method", ":path", "content-length", "content-type", RequestIDHeader,
		AuthorizationHeader, APIKeyHeader, UpgradeHeader, WebSocketProtocolHeader,
		":status", // response headers: the backend's status
	}
	if tenantHeader != "" {
		out = append(out, tenantHeader)
	}
	if tracing {
		out = append(out, TraceParentHeader, TraceStateHeader)
	}
	return out
}
