package contract

// RealtimeLog is the log name of the access log entries Envoy sends the
// ext_proc server's AccessLogService when a Realtime WebSocket session
// ends: its model, backend, status, duration and bytes each way.
const RealtimeLog = "streamgate_realtime"

// RealtimePath is the OpenAI Realtime API's WebSocket endpoint.
const RealtimePath = "/v1/realtime"
