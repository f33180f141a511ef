// Package fakegemini is Streamgate's fake Google Gemini backend, for tests:
// the Gemini API (POST /v1beta/models/{model}:generateContent and
// :streamGenerateContent?alt=sse with an x-goog-api-key) and Vertex AI (the
// same methods under /v1/projects/{project}/locations/{location}/
// publishers/google/models/, with an OAuth2 bearer). It serves a fake
// Google token endpoint, POST /token, for the JWT bearer grant a service
// account key makes: the assertion must be signed (RS256) by the test's
// key pair, issued by the service account, for this endpoint and the
// cloud-platform scope; the tokens it issues are the only bearers accepted.
//
// Answers are GenerateContentResponse JSON, or SSE events each holding
// one ("data: {...}\r\n\r\n", as Google sends them), with usageMetadata.
// A request whose last text holds "fake:rate-limit" gets 429
// RESOURCE_EXHAUSTED, "fake:invalid" 400 INVALID_ARGUMENT; a request with
// function declarations and no functionResponse yet gets a call of the
// first function with {"city":"Paris"}.
//
// It also serves Claude on Vertex AI (claude.go): Anthropic's Messages
// API under publishers/anthropic, with the same bearer tokens.
package fakegemini

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Options configures a Server.
type Options struct {
	// APIKey is the Gemini API key accepted ("" accepts none).
	APIKey string
	// Project and Location are the Vertex AI project and location served.
	Project, Location string
	// ClientEmail and PublicKey are the service account allowed to get
	// tokens and the public half of its key.
	ClientEmail string
	PublicKey   *rsa.PublicKey
	// TokenURL is the token endpoint's own URL, the audience assertions
	// must name.
	TokenURL string
}

// Usage is what every answer reports in usageMetadata.
var Usage = struct{ Prompt, Candidates, Cached, Thoughts int }{Prompt: 21, Candidates: 7, Cached: 4, Thoughts: 3}

// Server is the fake; an http.Handler safe for concurrent use.
type Server struct {
	opts   Options
	mu     sync.Mutex
	tokens map[string]bool
	issued int
	paths  []string
}

// New returns a Server for opts.
func New(opts Options) *Server { return &Server{opts: opts, tokens: map[string]bool{}} }

// SetTokenURL sets the audience assertions must name, once the server's
// address is known.
func (s *Server) SetTokenURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.TokenURL = u
}

// TokensIssued counts the tokens the token endpoint issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Paths lists the request URIs (path and query) that reached a model.
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

// ServeHTTP serves the token endpoint and the models.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		s.token(w, r)
		return
	}
	if r.Method != http.MethodPost {
		googleError(w, http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "Method not allowed.")
		return
	}
	if rest, ok := s.claudePath(r.URL.Path); ok {
		if s.authorized(w, r, true) {
			s.claude(w, r, rest)
		}
		return
	}
	rest, vertex := s.modelPath(r.URL.Path)
	if rest == "" {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server.")
		return
	}
	if !s.authorized(w, r, vertex) {
		return
	}
	_, method, ok := strings.Cut(rest, ":")
	stream := method == "streamGenerateContent"
	if !ok || (method != "generateContent" && !stream) {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "Unknown method.")
		return
	}
	if stream && r.URL.Query().Get("alt") != "sse" {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "This fake streams only with alt=sse.")
		return
	}
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.RequestURI())
	s.mu.Unlock()
	s.generate(w, r, stream)
}

// modelPath returns "{model}:{method}" of a Gemini API or Vertex AI path
// ("" when it is neither) and whether it is Vertex's.
func (s *Server) modelPath(p string) (string, bool) {
	if rest, ok := strings.CutPrefix(p, "/v1beta/models/"); ok {
		return rest, false
	}
	prefix := "/v1/projects/" + s.opts.Project + "/locations/" + s.opts.Location + "/publishers/google/models/"
	if rest, ok := strings.CutPrefix(p, prefix); ok && s.opts.Project != "" {
		return rest, true
	}
	return "", false
}

// authorized checks the API key (Gemini API) or bearer (Vertex AI) as
// Google does, answering its error when it fails.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, vertex bool) bool {
	if vertex {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		known := ok && s.tokens[tok]
		s.mu.Unlock()
		if !known {
			googleError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token.")
		}
		return known
	}
	key := r.Header.Get("X-Goog-Api-Key")
	if key == "" || key != s.opts.APIKey {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{
  "error": {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {
          "service": "generativelanguage.googleapis.com"
        }
      }
    ]
  }
}
`)
		return false
	}
	return true
}

// token serves the JWT bearer grant (RFC 7523) a service account key makes.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(w, "unsupported_grant_type", "Invalid grant_type.")
		return
	}
	s.mu.Lock()
	aud := s.opts.TokenURL
	s.mu.Unlock()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return s.opts.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(s.opts.ClientEmail), jwt.WithAudience(aud), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil || s.opts.PublicKey == nil {
		oauthError(w, "invalid_grant", "Invalid JWT Signature.")
		return
	}
	if scope, _ := claims["scope"].(string); !slices.Contains(strings.Fields(scope), "https://www.googleapis.com/auth/cloud-platform") {
		oauthError(w, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "ya29.fake-" + hex.EncodeToString(b[:])
	s.mu.Lock()
	s.tokens[tok] = true
	s.issued++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": int(time.Hour / time.Second), "token_type": "Bearer"})
}

func oauthError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// googleError writes Google's error shape.
func googleError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	b, _ := json.MarshalIndent(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}}, "", "  ")
	_, _ = w.Write(append(b, '\n'))
}
