// Package bridge consumes inference requests from event streams (NATS
// JetStream, Kafka), sends each through the gateway's own listener, so
// auth, limits, routing, translation and telemetry apply unchanged, and
// publishes the results to the reply destination each request names
// (docs/streams.md). Delivery is at least once, with idempotency by
// request id: a message is acknowledged only after its result is
// published, and a redelivered request whose result was published is not
// run again.
package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc"
)

// maxIDLen bounds an envelope's id (it becomes a message header and a
// dedupe key).
const maxIDLen = 200

// Endpoints an envelope may call; the default is /v1/chat/completions.
var endpoints = map[string]bool{
	"/v1/chat/completions": true,
	"/v1/completions":      true,
	"/v1/embeddings":       true,
	"/v1/responses":        true,
	"/v1/messages":         true,
}

// Envelope is one request message: the OpenAI request body and what the
// bridge needs to deliver it (docs/streams.md has its JSON schema).
type Envelope struct {
	// ID identifies the request: results carry it, redeliveries are
	// recognised by it.
	ID string `json:"id"`
	// Credential names the bridge.credentials entry whose key the request
	// is sent with; empty means the source's credential.
	Credential string `json:"credential,omitempty"`
	// ReplyTo is the subject (NATS) or topic (Kafka) results go to.
	ReplyTo string `json:"reply_to"`
	// Deadline, when set, is when the request stops being worth
	// answering: it is dead-lettered instead of sent or retried after it.
	Deadline *time.Time `json:"deadline,omitempty"`
	// Priority overrides bridge.priority for this request.
	Priority string `json:"priority,omitempty"`
	// Endpoint is the API called (default /v1/chat/completions).
	Endpoint string `json:"endpoint,omitempty"`
	// StreamChunks publishes each event of a streamed response (a body
	// with "stream": true) as its own message, then a final one.
	StreamChunks bool `json:"stream_chunks,omitempty"`
	// Body is the API request body, passed through unchanged.
	Body json.RawMessage `json:"body"`
}

// ParseEnvelope decodes and checks one request message. Its errors wrap
// extproc.ErrBadEnvelope and say what is wrong without quoting the
// message. An envelope whose id could be read is returned with the error,
// so the refusal can name it.
func ParseEnvelope(data []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		var te *time.ParseError
		if errors.As(err, &te) {
			return nil, badEnvelope("deadline must be an RFC 3339 time")
		}
		return nil, badEnvelope("the message is not a JSON envelope object")
	}
	e.Endpoint = strings.TrimSpace(e.Endpoint)
	if e.Endpoint == "" {
		e.Endpoint = "/v1/chat/completions"
	}
	switch {
	case e.ID == "" || len(e.ID) > maxIDLen || !printable(e.ID):
		return nil, badEnvelope("id must be 1-%d printable characters", maxIDLen)
	case !validDestination(e.ReplyTo):
		return &e, badEnvelope("reply_to must be a subject or topic of 1-249 letters, digits, '.', '_' and '-', not starting with '$', '_' or '.' nor naming the bridge's own topics")
	case !endpoints[e.Endpoint]:
		return &e, badEnvelope("endpoint %q is not one the bridge calls", e.Endpoint)
	case !config.ValidPriority(e.Priority):
		return &e, badEnvelope("priority must be critical, standard or sheddable")
	}
	body := bytes.TrimSpace(e.Body)
	if len(body) == 0 || body[0] != '{' {
		return &e, badEnvelope("body must be a JSON object (the API request)")
	}
	e.Body = body
	return &e, nil
}

// streams reports whether the request asks for a streamed response whose
// chunks are published one by one.
func (e *Envelope) streams() bool {
	if !e.StreamChunks {
		return false
	}
	var b struct {
		Stream bool `json:"stream"`
	}
	_ = json.Unmarshal(e.Body, &b)
	return b.Stream
}

// envelopeError is a refusal with a message fit for the dead-letter body.
type envelopeError struct {
	kind error
	msg  string
}

func (e *envelopeError) Error() string { return e.msg }
func (e *envelopeError) Unwrap() error { return e.kind }

func badEnvelope(format string, args ...any) error {
	return &envelopeError{kind: extproc.ErrBadEnvelope, msg: "Invalid request envelope: " + fmt.Sprintf(format, args...) + "."}
}

func refuse(kind error, format string, args ...any) error {
	return &envelopeError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// validDestination reports whether s may be a reply destination: a name
// both brokers accept (Kafka's topic characters, NATS tokens), never a
// system subject ($JS.API..., $KV...), an internal topic (__consumer_offsets)
// or the bridge's dedupe topic: a message must not steer the bridge's
// publications into the brokers' control planes.
func validDestination(s string) bool {
	if s == "" || len(s) > 249 || s[0] == '.' || s[0] == '_' || s[len(s)-1] == '.' || strings.Contains(s, "..") ||
		strings.HasPrefix(s, "streamgate-bridge-done.") || strings.HasPrefix(s, "streamgate_bridge_") {
		return false
	}
	for _, r := range s {
		ok := r == '.' || r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
