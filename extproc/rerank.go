package extproc

// The rerank API (POST /v1/rerank, the Cohere/Jina shape vLLM serves:
// {model, query, documents, top_n} answered by {results: [{index,
// relevance_score}], usage: {total_tokens}}) takes the generic path of
// onRequestBody: routed by model, authorized, limited on an input
// estimate of query and documents (tokens.EstimateRequest) with no output
// reserved, reconciled from usage.total_tokens (tokens.ParseUsage), passed
// to OpenAI-protocol backends as is and refused on others.

// generates reports whether requests on e generate output tokens, for
// which admission reserves and askUsage asks usage: embeddings and rerank
// only read their input, speech outputs audio (no tokens); images are no
// tokens in the chat sense (a GPT image model's output tokens are
// reconciled from the usage it reports).
func generates(e endpoint) bool {
	return e != endpointEmbeddings && e != endpointRerank && e != endpointSpeech && !isImages(e)
}
