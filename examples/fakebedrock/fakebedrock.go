// Package fakebedrock is Streamgate's fake AWS Bedrock Runtime: the
// Converse and ConverseStream APIs (POST /model/{modelId}/converse and
// /converse-stream) checked as Bedrock checks them. Every request must be
// SigV4-signed for the configured region and service "bedrock" by a known
// access key: the fake signs the request again with the AWS SDK's own
// signer and compares (403 InvalidSignatureException,
// UnrecognizedClientException, ... otherwise). Streams are AWS event-stream
// binary frames written by the SDK's encoder.
//
// Answers are deterministic: "Echo: " and the last user text, or, when the
// request offers tools and its last message is no tool result, a call of
// the first tool with ToolInput. The last user text steers failures:
// "fake:throttle" gets a 429 ThrottlingException, "fake:invalid" a 400
// ValidationException, "fake:stream-throttle" a stream that ends in a
// throttlingException frame.
package fakebedrock

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// ToolInput is the input of every tool call the fake makes.
const ToolInput = `{"city":"Paris"}`

// ToolUseID is the id of every tool call the fake makes.
const ToolUseID = "tooluse_fake01"

// Options configures a Server.
type Options struct {
	// Region requests must be signed for (default us-east-1).
	Region string
	// Host is the Host header requests must carry and be signed for
	// (default bedrock-runtime.REGION.amazonaws.com).
	Host string
	// Keys maps access key ids to their secret keys.
	Keys map[string]string
	// SessionToken, when set, is the token temporary credentials carry.
	SessionToken string
	// Models are the model ids served; empty means any.
	Models []string
	// Now is the server's clock (default time.Now).
	Now func() time.Time
}

// Request is what the fake recorded of one verified request.
type Request struct {
	Path  string
	Model string
	Body  []byte
}

// Server is the fake; an http.Handler safe for concurrent use.
type Server struct {
	opts     Options
	mu       sync.Mutex
	requests []Request
	refused  int
}

// New returns a Server for opts.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Host == "" {
		opts.Host = "bedrock-runtime." + opts.Region + ".amazonaws.com"
	}
	return &Server{opts: opts}
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// Requests returns the verified requests so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Refused counts the requests refused for their signature.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// ServeHTTP serves the Converse APIs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "ValidationException", "The request body could not be read.")
		return
	}
	if err := s.verify(r, body); err != nil {
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
		var ae *authError
		if errors.As(err, &ae) {
			writeError(w, http.StatusForbidden, ae.typ, ae.msg)
			return
		}
		writeError(w, http.StatusInternalServerError, "InternalServerException", err.Error())
		return
	}
	if r.Host != s.opts.Host {
		writeError(w, http.StatusForbidden, "InvalidSignatureException", "The request was signed for another host than this endpoint.")
		return
	}
	model, stream, invoke, ok := route(r)
	if !ok || r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, "UnknownOperationException", "")
		return
	}
	if len(s.opts.Models) > 0 && !slices.Contains(s.opts.Models, model) {
		writeError(w, http.StatusBadRequest, "ValidationException", "The provided model identifier is invalid.")
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Path: r.URL.EscapedPath(), Model: model, Body: body})
	s.mu.Unlock()
	if invoke {
		s.invoke(w, body, stream)
		return
	}
	var req converseRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "The request body is not valid JSON for this operation.")
		return
	}
	if msg := req.validate(); msg != "" {
		writeError(w, http.StatusBadRequest, "ValidationException", msg)
		return
	}
	a := plan(req)
	switch a.fail {
	case "fake:throttle":
		writeError(w, http.StatusTooManyRequests, "ThrottlingException", "Too many requests, please wait before trying again.")
		return
	case "fake:invalid":
		writeError(w, http.StatusBadRequest, "ValidationException", "The model rejected the request: fake:invalid.")
		return
	}
	w.Header().Set("X-Amzn-Requestid", "fake-request-id")
	if stream {
		s.stream(w, a)
		return
	}
	writeJSON(w, http.StatusOK, a.whole())
}

// route reads the model id and the operation from the escaped path:
// /model/{modelId}/converse, /converse-stream, /invoke or
// /invoke-with-response-stream, the model id escaped as one segment (':'
// as %3A, '/' of an ARN as %2F).
func route(r *http.Request) (model string, stream, invoke, ok bool) {
	rest, found := strings.CutPrefix(r.URL.EscapedPath(), "/model/")
	if !found {
		return "", false, false, false
	}
	id, op, found := strings.Cut(rest, "/")
	if !found || id == "" {
		return "", false, false, false
	}
	model, err := url.PathUnescape(id)
	if err != nil {
		return "", false, false, false
	}
	switch op {
	case "converse":
		return model, false, false, true
	case "converse-stream":
		return model, true, false, true
	case "invoke":
		return model, false, true, true
	case "invoke-with-response-stream":
		return model, true, true, true
	}
	return "", false, false, false
}

// writeError answers as Bedrock does: the exception name in
// x-amzn-ErrorType and {"message": ...} as the body.
func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-Errortype", typ+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	writeJSON(w, status, map[string]string{"message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
