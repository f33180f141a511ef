package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// rerankRequest is the Cohere/Jina rerank request vLLM serves on
// /v1/rerank; documents are strings or objects with a text field.
type rerankRequest struct {
	Model           string            `json:"model"`
	Query           *string           `json:"query"`
	Documents       []json.RawMessage `json:"documents"`
	TopN            *int              `json:"top_n"`
	ReturnDocuments *bool             `json:"return_documents"`
}

type rerankResult struct {
	Index          int               `json:"index"`
	Document       map[string]string `json:"document,omitempty"`
	RelevanceScore float64           `json:"relevance_score"`
}

type rerankResponse struct {
	ID      string         `json:"id"`
	Model   string         `json:"model"`
	Usage   rerankUsage    `json:"usage"`
	Results []rerankResult `json:"results"`
}

type rerankUsage struct {
	TotalTokens int `json:"total_tokens"`
}

// serveRerank answers POST /v1/rerank as vLLM does: the documents ranked by
// a deterministic relevance (the share of the query's words each holds),
// best first, cut to top_n, with usage.total_tokens counting the words of
// the query and of every document. Failure headers apply as elsewhere.
func (s *Server) serveRerank(w http.ResponseWriter, r *http.Request) {
	var req rerankRequest
	sc, ok := s.accept(w, r, &req, func() string { return req.Model })
	if !ok {
		return
	}
	texts, err := rerankTexts(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: typeInvalidRequest, Param: ptr("documents")})
		return
	}
	query := strings.Fields(strings.ToLower(*req.Query))
	resp := rerankResponse{ID: "rerank-fake", Model: req.Model, Results: make([]rerankResult, len(texts))}
	resp.Usage.TotalTokens = len(query)
	for i, text := range texts {
		words := strings.Fields(strings.ToLower(text))
		resp.Usage.TotalTokens += len(words)
		resp.Results[i] = rerankResult{Index: i, RelevanceScore: relevance(query, words)}
		if req.ReturnDocuments == nil || *req.ReturnDocuments {
			resp.Results[i].Document = map[string]string{"text": text}
		}
	}
	slices.SortStableFunc(resp.Results, func(a, b rerankResult) int {
		switch {
		case a.RelevanceScore > b.RelevanceScore:
			return -1
		case a.RelevanceScore < b.RelevanceScore:
			return 1
		}
		return 0
	})
	if req.TopN != nil && *req.TopN >= 0 && *req.TopN < len(resp.Results) {
		resp.Results = resp.Results[:*req.TopN]
	}
	s.respond(w, r, sc.ttft, sc.fail, mustEncode(resp))
}

// rerankTexts checks the request and reads the documents' text.
func rerankTexts(req rerankRequest) ([]string, error) {
	if req.Query == nil {
		return nil, fmt.Errorf("'query' is a required property")
	}
	if len(req.Documents) == 0 {
		return nil, fmt.Errorf("'documents' must be a non-empty array")
	}
	texts := make([]string, len(req.Documents))
	for i, d := range req.Documents {
		var obj struct {
			Text *string `json:"text"`
		}
		if json.Unmarshal(d, &texts[i]) == nil {
			continue
		}
		if json.Unmarshal(d, &obj) != nil || obj.Text == nil {
			return nil, fmt.Errorf("documents[%d] must be a string or an object with a text field", i)
		}
		texts[i] = *obj.Text
	}
	return texts, nil
}

// relevance is the share of the query's words found in the document.
func relevance(query, doc []string) float64 {
	if len(query) == 0 {
		return 0
	}
	n := 0
	for _, q := range query {
		if slices.Contains(doc, q) {
			n++
		}
	}
	return float64(n) / float64(len(query))
}
