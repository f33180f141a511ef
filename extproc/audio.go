package extproc

import (
	"errors"
	"strconv"

	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/form"
	"github.com/streamgate/streamgate/extproc/tokens"
)

// The OpenAI Audio API takes the policy path of every endpoint (routing by
// model with aliases, versions, fallbacks and the upstream name, tenant
// authorization, limits, telemetry) with two kinds of body:
//
//   - POST /v1/audio/transcriptions and /v1/audio/translations are
//     multipart/form-data uploads (contract.UploadPaths), capped by
//     gateway.max_upload_bytes instead of max_request_body_bytes. The body
//     Envoy buffered is read by extproc/form: the text fields only (model,
//     stream, prompt, ...), the file scanned past, never copied or logged.
//     The upstream model is written into the model field alone
//     (form.RewriteModel) and content-length follows. Limits estimate the
//     prompt field's tokens and reserve the default output; the usage the
//     backend reports ({"type": "tokens", input_tokens, output_tokens}, in
//     the JSON body or the stream's transcript.text.done event) settles
//     it; a duration usage (whisper-1) or a text, srt or vtt answer leaves
//     the reservation as charged. stream=true answers (SSE
//     transcript.text.delta / transcript.text.done) pass chunk by chunk.
//   - POST /v1/audio/speech is JSON (model, input, voice, ...): the input
//     is estimated as any prompt; the answer is audio bytes (or SSE with
//     stream_format "sse") that pass untouched, never through ext_proc,
//     unless a concurrency cap must learn the response's end (speechRead).
//
// Only OpenAI-protocol backends serve these (vLLM serves transcriptions
// and translations); the others refuse them as unsupported_by_backend.

// upload is the state of an upload request: its content type (for the
// boundary), then its form once the body is read.
type upload struct {
	contentType string
	form        *form.Form
}

// maxUploadField caps one text field of an upload form; OpenAI's prompt
// field is a few hundred tokens.
const maxUploadField = 64 << 10

// checkUploadType refuses an upload whose content type is not
// multipart/form-data with a boundary before Envoy sends its body.
func (p *processor) checkUploadType() error {
	if p.up == nil {
		return nil
	}
	if _, err := form.Boundary(p.up.contentType); err != nil {
		return reject(ErrBadForm, "The request must be multipart/form-data with a boundary (Content-Type), carrying the file and the model.")
	}
	return nil
}

// noBody is the refusal of a request without a body.
func (p *processor) noBody() error {
	if p.up != nil {
		return reject(ErrNoBody, "The request has no body; send a multipart form with the file and the model.")
	}
	return reject(ErrNoBody, "The request has no body; send a JSON object.")
}

// parseBody reads the fields policy needs: an upload's form, or any other
// endpoint's JSON (parseRequest).
func (p *processor) parseBody(body []byte) (requestInfo, error) {
	if p.up == nil {
		return parseRequest(body, p.routes.bodyPolicy())
	}
	f, err := form.Read(p.up.contentType, body, form.Limits{ValueBytes: maxUploadField})
	if err != nil {
		return requestInfo{}, formError(err)
	}
	info := requestInfo{
		Model:           f.Model,
		Tokens:          auth.TokenRequest{MaxTokens: -1, MaxCompletionTokens: -1, N: 1},
		MaxOutputTokens: -1,
	}
	if v, ok := f.Value("stream"); ok {
		// OpenAI's form fields take "true"/"false" (what its SDKs send).
		if info.Stream, err = strconv.ParseBool(v); err != nil {
			return requestInfo{}, reject(ErrBadForm, "The stream parameter must be a boolean.")
		}
	}
	p.up.form = f
	return info, nil
}

// formError is the client's message for a form the reader refused: it
// names the rule, never a value (a field may hold anything, a file part
// audio).
func formError(err error) error {
	switch {
	case errors.Is(err, form.ErrMissingModel):
		return reject(ErrMissingModel, "You must provide a model parameter.")
	case errors.Is(err, form.ErrContentType):
		return reject(ErrBadForm, "The request must be multipart/form-data with a boundary (Content-Type), carrying the file and the model.")
	case errors.Is(err, form.ErrTruncated):
		return reject(ErrBadForm, "The multipart body ends before its closing boundary.")
	case errors.Is(err, form.ErrDuplicate), errors.Is(err, form.ErrTooLarge):
		// These messages name a field or a limit only.
		return reject(ErrBadForm, "The multipart body was refused: %s.", err.Error())
	}
	return reject(ErrBadForm, "The multipart body is malformed; send multipart/form-data with the file and the model.")
}

// rewriteModel writes the upstream model name into the body: in the form's
// model field for an upload, else in the JSON at (rewriteModelAt).
func (p *processor) rewriteModel(body []byte, at span, model string) ([]byte, error) {
	if p.up == nil {
		return rewriteModelAt(body, at, model)
	}
	out, err := form.RewriteModel(p.up.form, body, model)
	if err != nil {
		return nil, reject(ErrBadForm, "The multipart body is malformed; send multipart/form-data with the file and the model.")
	}
	return out, nil
}

// estimate is the request's token estimate for admission: an upload's
// prompt field (the audio itself is not counted before the backend
// reports it), any other body's by tokens.EstimateRequest.
func (p *processor) estimate(body []byte, c *tokens.Counter, b *tokens.Budget) tokens.Estimate {
	if p.up == nil {
		return tokens.EstimateRequest(body, c, b)
	}
	prompt, _ := p.up.form.Value("prompt")
	return tokens.Estimate{Input: int64(c.Count(prompt, b))}
}

// speechRead is what of a speech response Envoy sends ext_proc: nothing,
// so the audio streams straight to the client, unless the limits cap
// concurrency, whose slot must be held until the response ends: then the
// body comes chunk by chunk (readBody), passed on unread and unchanged.
func speechRead(l *Limits) responseRead {
	if l != nil && l.capsConcurrency {
		return readBody
	}
	return readNone
}
