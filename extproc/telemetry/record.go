package telemetry

import (
	"strconv"
	"time"

	"github.com/streamgate/streamgate/config"
)

// Record is what Streamgate learned about one request by the time it
// ended. The processor fills it; Metrics and the usage sink read it.
// Never holds a credential or prompt text.
type Record struct {
	RequestID string
	Tenant    string
	// TenantLabel is Tenant, Other for a tenant the config does not name
	// (an open gateway takes tenants from a header), or "" when tenant
	// labels are off.
	TenantLabel string
	Endpoint    string
	// Operation is the gen_ai.operation.name; "" for non-GenAI requests.
	Operation string
	// Provider is the gen_ai.provider.name: the backend's protocol.
	Provider string
	// Model is the public model (or Other); UpstreamModel what the
	// backend was asked for; ResponseModel what it answered with (or Other).
	Model, UpstreamModel, ResponseModel string
	Backend, Version                    string
	Stream                              bool
	// Status is the HTTP status the client got (0: not observed).
	Status int
	// Refusal is Streamgate's error code when it answered the request itself.
	Refusal string
	// Start is when the request reached ext_proc; FirstByte when the first
	// response body chunk did (zero: none); End when the response ended
	// (zero: it did not, e.g. the client went away).
	Start, FirstByte, End time.Time
	// Finished is when the ext_proc stream closed, the end of last resort.
	Finished time.Time
	// UsageKnown is set when the backend reported token usage.
	UsageKnown                bool
	InputTokens, OutputTokens int64
	// CostUSD prices the tokens and, on the image endpoints, the images.
	CostUSD float64
	// Images is how many images an Images API response carried (0
	// elsewhere).
	Images    int64
	QueueWait time.Duration
	// Decision is the limiter's decision; "" when no limits apply.
	Decision string
	// Unread is set when the response body passed unread: its end, timing
	// and usage are unknown.
	Unread bool
	// Budgets are the spend budget windows the request counted in (or was
	// refused by); nil for tenants without a budget.
	Budgets []BudgetWindow
}

// BudgetWindow is one spend budget window of a request, as its usage
// event reports it: amounts in the currency of the prices, Spent as of
// the request's last budget call (reservations in flight included).
type BudgetWindow struct {
	Scope  string    `json:"scope"`
	Key    string    `json:"key,omitempty"`
	Window string    `json:"window"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Limit  float64   `json:"limit"`
	Spent  float64   `json:"spent"`
	// Warning: this request crossed the window's warning share first
	// (once per window across replicas).
	Warning bool `json:"warning,omitempty"`
}

// ErrorType is the error.type attribute: "" for a complete successful
// response, Streamgate's error code for a refusal, the HTTP status for a
// failed response, "incomplete" for a response that never ended.
func (r *Record) ErrorType() string {
	switch {
	case r.Refusal != "":
		return r.Refusal
	case r.Status >= 400:
		return strconv.Itoa(r.Status)
	case r.End.IsZero() && r.Status != 0:
		return "incomplete"
	}
	return ""
}

// Duration is start to the end of the response (or of the ext_proc stream).
func (r *Record) Duration() time.Duration {
	end := r.End
	if end.IsZero() {
		end = r.Finished
	}
	return end.Sub(r.Start)
}

// TTFT is the time to the first response body chunk.
func (r *Record) TTFT() (time.Duration, bool) {
	if r.FirstByte.IsZero() || r.ErrorType() != "" || !r.Generates() {
		return 0, false
	}
	return r.FirstByte.Sub(r.Start), true
}

// TimePerOutputToken is the time from the first chunk to the end spread
// over the output tokens after the first; streamed responses with usage only.
func (r *Record) TimePerOutputToken() (time.Duration, bool) {
	if !r.Stream || !r.UsageKnown || r.OutputTokens < 2 || r.FirstByte.IsZero() || r.End.IsZero() || r.ErrorType() != "" {
		return 0, false
	}
	return r.End.Sub(r.FirstByte) / time.Duration(r.OutputTokens-1), true
}

// Prices turn token counts into USD. Immutable; nil prices nothing.
type Prices map[string]config.Price

// Cost returns what input and output tokens of model cost, 0 when the
// model has no price.
func (p Prices) Cost(model string, input, output int64) float64 {
	pr, ok := p[model]
	if !ok {
		return 0
	}
	return (float64(input)*pr.InputPerMillion + float64(output)*pr.OutputPerMillion) / 1e6
}

// ImageCost returns what count images of model at size and quality cost:
// the per_image price of "size/quality", else of "size", else nothing.
func (p Prices) ImageCost(model, size, quality string, count int64) float64 {
	pr, ok := p[model]
	if !ok || len(pr.PerImage) == 0 || count <= 0 {
		return 0
	}
	if quality != "" {
		if x, ok := pr.PerImage[size+"/"+quality]; ok {
			return float64(count) * x
		}
	}
	return float64(count) * pr.PerImage[size]
}

// Generates reports whether the operation generates output tokens as a
// stream of text: embeddings and rerank read input only (no output tokens,
// no first token); speech outputs audio, whose bytes are no tokens; images
// come whole (no output-token stream, no first token).
func (r *Record) Generates() bool {
	return r.Operation != OperationEmbeddings && r.Operation != OperationRerank && r.Operation != OperationSpeech &&
		r.Operation != OperationGenerateContent
}
