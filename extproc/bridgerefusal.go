package extproc

import "errors"

// Refusals of the event-stream bridge (package bridge, docs/streams.md):
// a request message it cannot send through the gateway. Each has a row in
// the refusal table; the bridge renders them with RefusalBody.
var (
	// ErrBadEnvelope is a request message that is not a valid envelope:
	// not JSON, or without an id, a reply destination or a body.
	ErrBadEnvelope = errors.New("invalid request envelope")
	// ErrUnknownCredentialRef is an envelope naming a credential the
	// bridge's config does not define.
	ErrUnknownCredentialRef = errors.New("unknown credential reference")
	// ErrDeadlineExceeded is a request whose envelope deadline passed
	// before it could be answered.
	ErrDeadlineExceeded = errors.New("request deadline exceeded")
	// ErrAttemptsExhausted is a request the gateway refused as overloaded
	// (429, 503) or failed on every one of the bridge's attempts.
	ErrAttemptsExhausted = errors.New("delivery attempts exhausted")
)

// RefusalBody renders err as its refusal table row's OpenAI JSON error
// with msg, and returns the row's HTTP status and code. Safe for
// concurrent use; msg must be fit for clients (no secrets, no content).
func RefusalBody(err error, msg string) (status int, code string, body []byte) {
	r := refusalOf(err)
	return r.status, r.code, r.openAIBody(msg)
}
