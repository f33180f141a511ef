// Package fakeazure is Streamgate's fake Azure OpenAI resource: the data
// plane paths /openai/deployments/{deployment}/{chat/completions,
// completions, embeddings}?api-version=..., checked as Azure checks them
// (a supported api-version, a known deployment, an api-key header or a
// bearer token), answered by a fakellm server in the OpenAI wire format
// (which Azure OpenAI speaks). It also serves a fake Microsoft Entra ID
// token endpoint, POST /{tenant}/oauth2/v2.0/token, with the client
// credentials grant; the tokens it issues are the only bearers accepted.
package fakeazure

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// Options configures a Server.
type Options struct {
	// APIKey is the resource key accepted in the api-key header ("" accepts none).
	APIKey string
	// APIVersions are the api-version values accepted (default 2024-10-21).
	APIVersions []string
	// Deployments are the deployment names served (default: any).
	Deployments []string
	// ClientID and ClientSecret are the Entra application allowed to get
	// tokens; TokenTTL is their lifetime (default 1h).
	ClientID, ClientSecret string
	TokenTTL               time.Duration
}

// Server is the fake resource and token endpoint; an http.Handler safe for
// concurrent use.
type Server struct {
	opts   Options
	llm    *fakellm.Server
	mu     sync.Mutex
	tokens map[string]time.Time // issued token → expiry
	issued int
	paths  []string
}

// New returns a Server for opts.
func New(opts Options) *Server {
	if len(opts.APIVersions) == 0 {
		opts.APIVersions = []string{"2024-10-21"}
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = time.Hour
	}
	return &Server{opts: opts, llm: fakellm.New(fakellm.Options{Name: "fakeazure"}), tokens: map[string]time.Time{}}
}

// TokensIssued counts the tokens the token endpoint issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Paths lists the request URIs (path and query) that reached a deployment.
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

// ServeHTTP serves the token endpoint and the deployments.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		s.token(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/")
	dep, op, _ := strings.Cut(rest, "/")
	if !ok || dep == "" || !slices.Contains([]string{"chat/completions", "completions", "embeddings"}, op) {
		azureError(w, http.StatusNotFound, "404", "Resource not found")
		return
	}
	v := r.URL.Query().Get("api-version")
	if v == "" || !slices.Contains(s.opts.APIVersions, v) {
		azureError(w, http.StatusNotFound, "404", "Resource not found")
		return
	}
	if !s.authorized(r) {
		azureError(w, http.StatusUnauthorized, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.")
		return
	}
	if len(s.opts.Deployments) > 0 && !slices.Contains(s.opts.Deployments, dep) {
		azureError(w, http.StatusNotFound, "DeploymentNotFound", "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.")
		return
	}
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.RequestURI())
	s.mu.Unlock()
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath, r2.URL.RawQuery, r2.RequestURI = "/v1/"+op, "", "", ""
	s.llm.ServeHTTP(w, r2)
}

// authorized checks the api-key header or a bearer token this fake issued
// and that has not expired.
func (s *Server) authorized(r *http.Request) bool {
	if k := r.Header.Get("Api-Key"); k != "" {
		return s.opts.APIKey != "" && k == s.opts.APIKey
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && time.Now().Before(exp)
}

// token is the client credentials grant as Entra ID serves it (form
// parameters; errors as {"error": ..., "error_description": ...}).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the parameter 'grant_type'.")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
		return
	}
	id, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	if s.opts.ClientID == "" || id != s.opts.ClientID || secret != s.opts.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	if f.Get("scope") != "https://cognitiveservices.azure.com/.default" {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is not valid.")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "fake-entra-" + hex.EncodeToString(b[:])
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.opts.TokenTTL)
	s.issued++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": int(s.opts.TokenTTL.Seconds()), "ext_expires_in": int(s.opts.TokenTTL.Seconds()), "access_token": tok})
}

func azureError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
