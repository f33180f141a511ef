package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// CompletionWindow is the only completion window batches take.
const CompletionWindow = "24h"

// maxMetadata bounds a batch's metadata (OpenAI's: 16 pairs).
const maxMetadata = 16

// Service serves the Files and Batches endpoints. The caller's tenant is
// the TenantHeader Envoy's ext_proc sets after authentication (a client's
// own is replaced); "" on a gateway without tenants.
type Service struct {
	Runner       *Runner
	TenantHeader string
	// Ctx bounds the batches the service starts (the server's life).
	Ctx context.Context
}

// Handler returns the service's routes.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/files", s.createFile)
	mux.HandleFunc("GET /v1/files", s.listFiles)
	mux.HandleFunc("GET /v1/files/{id}", s.getFile)
	mux.HandleFunc("GET /v1/files/{id}/content", s.fileContent)
	mux.HandleFunc("DELETE /v1/files/{id}", s.deleteFile)
	mux.HandleFunc("POST /v1/batches", s.createBatch)
	mux.HandleFunc("GET /v1/batches", s.listBatches)
	mux.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	mux.HandleFunc("POST /v1/batches/{id}/cancel", s.cancelBatch)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "No such endpoint of the batch service.", "")
	})
	return mux
}

func (s *Service) tenant(r *http.Request) string { return r.Header.Get(s.TenantHeader) }

func (s *Service) createFile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxFileBytes+1<<20)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body must be a multipart form with file and purpose, the file at most 200 MB.", "file")
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	if p := r.FormValue("purpose"); p != "batch" {
		writeError(w, http.StatusBadRequest, "invalid_request", "This gateway stores files with purpose batch only.", "purpose")
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The form has no file.", "file")
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The file could not be read.", "file")
		return
	}
	if _, err := ParseInput(data, ""); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_file", "The batch input file is invalid. "+err.Error(), "file")
		return
	}
	name := hdr.Filename
	if len(name) > 256 {
		name = name[:256]
	}
	file, err := s.Runner.Store.AddFile(File{CreatedAt: s.Runner.Now().Unix(), Filename: name, Purpose: "batch", Tenant: s.tenant(r)}, data)
	if err != nil {
		s.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, public(*file))
}

// public is f without its owner.
func public(f File) File { f.Tenant = ""; return f }

func (s *Service) getFile(w http.ResponseWriter, r *http.Request) {
	f, err := s.Runner.Store.File(s.tenant(r), r.PathValue("id"))
	if err != nil {
		notFound(w, "file", r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, public(*f))
}

func (s *Service) fileContent(w http.ResponseWriter, r *http.Request) {
	data, err := s.Runner.Store.Content(s.tenant(r), r.PathValue("id"))
	if err != nil {
		notFound(w, "file", r.PathValue("id"))
		return
	}
	w.Header().Set("content-type", "application/octet-stream")
	w.Header().Set("content-length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

func (s *Service) deleteFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, b := range s.Runner.Store.Batches(s.tenant(r)) {
		if b.InputFileID == id && !b.Status.Terminal() {
			writeError(w, http.StatusConflict, "invalid_request", "The file is the input of a batch that has not finished; cancel it or wait.", "")
			return
		}
	}
	if err := s.Runner.Store.DeleteFile(s.tenant(r), id); err != nil {
		notFound(w, "file", id)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}

func (s *Service) listFiles(w http.ResponseWriter, r *http.Request) {
	purpose := r.URL.Query().Get("purpose")
	var ids []string
	var items []any
	for _, f := range s.Runner.Store.Files(s.tenant(r)) {
		if purpose == "" || f.Purpose == purpose {
			ids, items = append(ids, f.ID), append(items, public(f))
		}
	}
	writePage(w, r, ids, items)
}

type createRequest struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata"`
}

func (s *Service) createBatch(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body must be a JSON object.", "")
		return
	}
	switch {
	case !Endpoints[req.Endpoint]:
		writeError(w, http.StatusBadRequest, "invalid_request", "endpoint must be /v1/chat/completions, /v1/embeddings or /v1/responses.", "endpoint")
		return
	case req.CompletionWindow != CompletionWindow:
		writeError(w, http.StatusBadRequest, "invalid_request", "completion_window must be 24h.", "completion_window")
		return
	case len(req.Metadata) > maxMetadata:
		writeError(w, http.StatusBadRequest, "invalid_request", "metadata holds at most 16 pairs.", "metadata")
		return
	}
	tenant := s.tenant(r)
	f, err := s.Runner.Store.File(tenant, req.InputFileID)
	if err != nil || f.Purpose != "batch" {
		notFound(w, "file", req.InputFileID)
		return
	}
	if _, ok := s.Runner.Key(tenant); !ok {
		writeError(w, http.StatusForbidden, "permission_denied", "The gateway holds no batch credential for this tenant.", "")
		return
	}
	data, err := s.Runner.Store.Content(tenant, f.ID)
	if err == nil {
		_, err = ParseInput(data, req.Endpoint)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_file", "The batch input file is invalid. "+err.Error(), "input_file_id")
		return
	}
	now := s.Runner.Now()
	exp := now.Add(24 * time.Hour).Unix()
	b := &Batch{ID: newID("batch_"), Object: "batch", Endpoint: req.Endpoint, InputFileID: f.ID, CompletionWindow: CompletionWindow,
		Status: Validating, CreatedAt: now.Unix(), ExpiresAt: &exp, Metadata: req.Metadata, Tenant: tenant}
	if err := s.Runner.Store.SaveBatch(b); err != nil {
		s.internal(w, err)
		return
	}
	s.Runner.Start(s.Ctx, b.ID)
	writeJSON(w, http.StatusOK, b)
}

func (s *Service) getBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.Runner.Store.Batch(s.tenant(r), r.PathValue("id"))
	if err != nil {
		notFound(w, "batch", r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Service) cancelBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b, err := s.Runner.Cancel(s.tenant(r), id)
	switch {
	case errors.Is(err, ErrNotFound):
		notFound(w, "batch", id)
	case err != nil:
		writeError(w, http.StatusConflict, "invalid_request", "The batch has finished; it cannot be cancelled.", "")
	default:
		writeJSON(w, http.StatusOK, b)
	}
}

func (s *Service) listBatches(w http.ResponseWriter, r *http.Request) {
	var ids []string
	var items []any
	for _, b := range s.Runner.Store.Batches(s.tenant(r)) {
		ids, items = append(ids, b.ID), append(items, b)
	}
	writePage(w, r, ids, items)
}

// writePage writes the page of items (newest first) after the query's
// "after" id, of at most "limit" (1-100, default 20) items.
func writePage(w http.ResponseWriter, r *http.Request, ids []string, items []any) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit must be 1 to 100.", "limit")
			return
		}
		limit = n
	}
	start := 0
	if after := r.URL.Query().Get("after"); after != "" {
		for i, id := range ids {
			if id == after {
				start = i + 1
			}
		}
	}
	end := min(len(items), start+limit)
	page := map[string]any{"object": "list", "data": append([]any{}, items[start:end]...), "has_more": end < len(items), "first_id": nil, "last_id": nil}
	if end > start {
		page["first_id"], page["last_id"] = ids[start], ids[end-1]
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Service) internal(w http.ResponseWriter, err error) {
	s.Runner.Log.Error("batch: cannot store", "error", err.Error())
	writeError(w, http.StatusInternalServerError, "server_error", "The batch store failed; try again.", "")
}

func notFound(w http.ResponseWriter, what, id string) {
	if len(id) > 64 {
		id = id[:64]
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("No such %s: %q.", what, id), "")
}

// writeError writes OpenAI's error shape.
func writeError(w http.ResponseWriter, status int, code, msg, param string) {
	e := map[string]any{"message": msg, "type": "invalid_request_error", "code": code, "param": nil}
	if status >= 500 {
		e["type"] = "server_error"
	}
	if param != "" {
		e["param"] = param
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
