// Package picking chooses, per request, which endpoint of a backend serves
// it, from the model servers' own load (queue depth, KV-cache use, the
// requests Streamgate has in flight there), prefix-cache affinity and the
// LoRA adapters each server holds. A Pool keeps one Backend per configured
// backend with `picking`, scrapes every endpoint's Prometheus metrics in
// the background, and answers Pick without blocking on the network: a pick
// reads only what the scrapers last stored. Envoy is told the result
// through the override-host load balancing policy (contract.LBNamespace).
//
// Files: picking.go the types, endpoint.go the endpoint state, scrape.go
// and dialect.go the metrics, pool.go the lifecycle and reload, score.go
// the scorers and Pick, prefix.go the prefix-affinity index, lora.go the
// adapter affinity, wait.go the saturated backend's wait queue and request
// priorities, metrics.go the per-endpoint metrics.
package picking

// Request is what a pick reads from one request.
type Request struct {
	// Prompt is the text the model server's prefix cache keys on, in the
	// order the server sees it (system prompt first). Not retained.
	Prompt []byte
	// LoRA is the adapter the request names ("" for the base model).
	LoRA string
}

// Result is one pick.
type Result struct {
	// Endpoints are "IP:port", best first: the pick, then the fallbacks
	// Envoy tries on connect failure, reset, 5xx or 429 before the first
	// byte. Empty when the backend has no endpoint to offer.
	Endpoints []string
	// Reason names what decided the pick, for the access log and the
	// pick-reason metric: one of the Reason* constants.
	Reason string
	// Saturated is true when every endpoint is past its saturation
	// thresholds: the caller should queue or shed instead of sending.
	Saturated bool
	// ep is the endpoint Pick counted the request on.
	ep *Endpoint
}

// Pick reasons.
const (
	// ReasonScore: the weighted score of fresh metrics decided.
	ReasonScore = "score"
	// ReasonPrefix: prefix affinity outweighed load.
	ReasonPrefix = "prefix"
	// ReasonLoRA: the adapter being loaded outweighed load.
	ReasonLoRA = "lora"
	// ReasonInFlight: no fresh metrics; Streamgate's own in-flight counts
	// decided.
	ReasonInFlight = "in_flight"
	// ReasonSaturated: every endpoint is full; the least loaded is first.
	ReasonSaturated = "saturated"
)

// Metrics is one scrape of an endpoint, in the dialect-neutral form the
// scorers read.
type Metrics struct {
	// Waiting and Running are requests queued and in the running batch.
	Waiting, Running float64
	// KVCache is the KV-cache use, 0-1.
	KVCache float64
	// RunningLoRA and WaitingLoRA are adapters in use and requested;
	// MaxLoRA is how many fit at once (0: unknown).
	RunningLoRA, WaitingLoRA []string
	MaxLoRA                  int
}

// Done ends the request this pick counted on its first endpoint (every
// Result from Backend.Pick with endpoints must be ended exactly once, at the
// request's end). Safe on a zero Result.
func (r *Result) Done() {
	if r.ep != nil {
		r.ep.Done()
		r.ep = nil
	}
}
