// Package translate converts requests and responses between the API a
// client speaks and the protocol a backend serves, so that clients keep their
// SDKs and backends keep theirs. Each (client API × backend protocol) pair
// lives in its own files; New picks one for a request.
//
// A Translator serves one request: it rewrites the buffered request body
// once, then translates the response either whole (non-streaming and error
// responses) or chunk by chunk (streams), holding only the unfinished event,
// never the stream.
package translate

import (
	"errors"
	"fmt"
	"time"
)

// Client is a client-facing API, chosen by the request path.
type Client int

// Client APIs.
const (
	ClientUnknown Client = iota
	// ClientChat is OpenAI Chat Completions, POST /v1/chat/completions.
	ClientChat
	// ClientCompletions is OpenAI legacy Completions, POST /v1/completions.
	ClientCompletions
	// ClientEmbeddings is OpenAI Embeddings, POST /v1/embeddings.
	ClientEmbeddings
	// ClientMessages is Anthropic Messages, POST /v1/messages.
	ClientMessages
	// ClientResponses is the OpenAI Responses API, POST /v1/responses.
	ClientResponses
	// ClientRerank is the Cohere/Jina rerank API vLLM serves, POST /v1/rerank.
	ClientRerank
	// ClientImages is the OpenAI Images API: POST /v1/images/generations
	// (JSON) and /v1/images/edits (multipart).
	ClientImages
	// ClientAudio is the OpenAI Audio API: POST /v1/audio/transcriptions,
	// /v1/audio/translations (multipart uploads) and /v1/audio/speech.
	ClientAudio
)

// String names the API for messages.
func (c Client) String() string {
	switch c {
	case ClientChat:
		return "OpenAI Chat Completions"
	case ClientCompletions:
		return "OpenAI Completions"
	case ClientEmbeddings:
		return "OpenAI Embeddings"
	case ClientMessages:
		return "Anthropic Messages"
	case ClientResponses:
		return "OpenAI Responses"
	case ClientRerank:
		return "Rerank"
	case ClientImages:
		return "OpenAI Images"
	case ClientAudio:
		return "OpenAI Audio"
	}
	return "unknown API"
}

// Protocol is a backend's wire protocol; the values match the config's
// backend protocol names.
type Protocol string

// Backend protocols.
const (
	ProtocolOpenAI    Protocol = "openai"
	ProtocolAnthropic Protocol = "anthropic"
	ProtocolOllama    Protocol = "ollama"
	ProtocolKServe    Protocol = "kserve-v2"
	ProtocolBedrock   Protocol = "bedrock"
	ProtocolGemini    Protocol = "gemini"
	// ProtocolAnthropicVertex is Claude on Vertex AI (anthropic_vertex.go):
	// an anthropic backend with a vertex block. No config names it; the
	// gateway chooses it for such a backend.
	ProtocolAnthropicVertex Protocol = "anthropic-vertex"
)

// Native reports whether a backend of protocol p serves client API c as is,
// so no translation is needed.
func Native(c Client, p Protocol) bool {
	switch p {
	case ProtocolOpenAI:
		return c == ClientChat || c == ClientCompletions || c == ClientEmbeddings || c == ClientRerank || c == ClientAudio || c == ClientImages
	case ProtocolAnthropic:
		return c == ClientMessages
	}
	return false
}

// Supported reports whether New can translate between c and p. It is cheap
// and safe to call from any goroutine.
func Supported(c Client, p Protocol) bool {
	switch c {
	case ClientChat:
		return p == ProtocolAnthropic || p == ProtocolOllama || p == ProtocolBedrock || p == ProtocolGemini || p == ProtocolAnthropicVertex
	case ClientEmbeddings:
		return p == ProtocolOllama
	case ClientCompletions:
		return p == ProtocolKServe
	case ClientMessages:
		return p == ProtocolOpenAI || p == ProtocolBedrock || p == ProtocolGemini || p == ProtocolAnthropicVertex
	case ClientResponses: // Anthropic, Ollama, Bedrock, Gemini through Chat Completions (chain.go)
		return p == ProtocolOpenAI || Supported(ClientChat, p)
	}
	return false
}

// Options are the per-model settings a translation applies.
type Options struct {
	// Model is the model name the backend expects.
	Model string
	// PublicModel is the model name the client asked for, which translated
	// answers that name no model of their own report (embeddings).
	PublicModel string
	// DefaultMaxTokens is the output cap sent to a backend that requires
	// one (Anthropic) when the client sent none.
	DefaultMaxTokens int
	// Now stamps the "created" field of translated OpenAI objects; nil
	// means time.Now.
	Now func() time.Time
	// NewID makes the ids of answers whose backend sends none (Bedrock);
	// nil means random hex.
	NewID func() string
	// BedrockInvoke sends a bedrock backend Claude's Messages API through
	// InvokeModel / InvokeModelWithResponseStream instead of Converse
	// (anthropic_invoke.go).
	BedrockInvoke bool
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Request is a translated request for the backend.
type Request struct {
	// Body replaces the client's request body.
	Body []byte
	// Path replaces the request path.
	Path string
	// Headers are set on the backend request, as name/value pairs.
	Headers [][2]string
	// Stream tells whether the client asked for a streamed response.
	Stream bool
}

// Translator translates one request and its response. It belongs to one
// request and one goroutine; its methods are called in this order: Request
// once, then either Response once or Stream per response body chunk.
type Translator interface {
	// Request rewrites the client's request body for the backend. A request
	// the backend protocol cannot express fails with a *RequestError.
	Request(body []byte) (Request, error)
	// Response translates a whole response body with its HTTP status (a
	// non-streaming answer, or an error of any kind) and returns the status
	// and body the client gets.
	Response(status int, body []byte) (int, []byte)
	// Stream translates the next chunk of a streamed response and appends
	// the client's bytes to dst. end marks the last chunk. A backend error
	// event or a broken stream becomes the client protocol's error event;
	// Stream itself never fails. Cost per chunk: framing plus a few field
	// lookups, with no allocation that grows with the stream.
	Stream(dst, chunk []byte, end bool) []byte
}

// Errors a request translation fails with; match them with errors.Is.
var (
	// ErrUnsupported marks a request using a feature the backend protocol
	// cannot express. The client gets a 400: it is never silently dropped.
	ErrUnsupported = errors.New("feature not supported by the backend protocol")
	// ErrInvalid marks a request that is malformed for its own API.
	ErrInvalid = errors.New("invalid request")
	// ErrStateful marks a Responses request that needs server-side state
	// (previous_response_id, store, background), which a translation to a
	// stateless backend cannot keep. The client gets a 400 naming the field.
	ErrStateful = errors.New("request needs server-side state")
	// ErrNoTranslation is returned by New for a pair it cannot translate.
	ErrNoTranslation = errors.New("no translation between these APIs")
)

// RequestError is a request the translation refuses. Msg is written for the
// client and holds no request content beyond field names.
type RequestError struct {
	Kind error // ErrUnsupported, ErrInvalid or ErrStateful
	Msg  string
}

// Error returns Msg.
func (e *RequestError) Error() string { return e.Msg }

// Unwrap returns Kind.
func (e *RequestError) Unwrap() error { return e.Kind }

func unsupported(format string, args ...any) error {
	return &RequestError{Kind: ErrUnsupported, Msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return &RequestError{Kind: ErrInvalid, Msg: fmt.Sprintf(format, args...)}
}

// New returns the Translator for one request from a client speaking c to a
// backend speaking p, or ErrNoTranslation.
func New(c Client, p Protocol, opts Options) (Translator, error) {
	switch {
	case c == ClientChat && p == ProtocolAnthropic:
		return &chatToMessages{opts: opts}, nil
	case c == ClientMessages && p == ProtocolOpenAI:
		return &messagesToChat{opts: opts}, nil
	case c == ClientResponses && p == ProtocolOpenAI:
		return &responsesToChat{opts: opts}, nil
	case c == ClientChat && p == ProtocolOllama:
		return &chatToOllama{opts: opts}, nil
	case c == ClientCompletions && p == ProtocolKServe:
		return &completionsToKServe{opts: opts}, nil
	case c == ClientEmbeddings && p == ProtocolOllama:
		return &embeddingsToOllama{opts: opts}, nil
	case c == ClientMessages && p == ProtocolBedrock && opts.BedrockInvoke:
		return &messagesToInvoke{opts: opts}, nil
	case c == ClientChat && p == ProtocolBedrock && opts.BedrockInvoke:
		return &chatToInvoke{inner: chatToMessages{opts: opts}, inv: messagesToInvoke{opts: opts}}, nil
	case c == ClientChat && p == ProtocolBedrock:
		return &chatToBedrock{inner: chatToMessages{opts: opts}}, nil
	case c == ClientMessages && p == ProtocolBedrock:
		return &messagesToBedrock{opts: opts}, nil
	case c == ClientMessages && p == ProtocolAnthropicVertex:
		return &messagesToVertex{opts: opts}, nil
	case c == ClientChat && p == ProtocolAnthropicVertex:
		return &chatToVertex{inner: chatToMessages{opts: opts}, vx: messagesToVertex{opts: opts}}, nil
	case c == ClientChat && p == ProtocolGemini:
		return newChatToGemini(opts), nil
	case c == ClientMessages && p == ProtocolGemini:
		return &messagesToGemini{opts: opts}, nil
	case c == ClientResponses && Supported(ClientChat, p):
		inner, err := New(ClientChat, p, opts)
		if err != nil {
			return nil, err
		}
		return &chain{outer: &responsesToChat{opts: opts}, inner: inner}, nil
	}
	return nil, fmt.Errorf("cannot translate %s to the %s protocol: %w", c, p, ErrNoTranslation)
}
