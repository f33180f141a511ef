package translate

// chain translates through an intermediate API: outer from the client's
// API to it, inner from it to the backend's protocol. The Responses API
// reaches Anthropic, Ollama and Bedrock backends this way, through Chat
// Completions. Per chunk it holds the inner translation's output for the
// chunk, reused across chunks: no allocation that grows with the stream.
type chain struct {
	outer, inner Translator
	mid          []byte
}

// Request translates the client's body to the intermediate API, then to
// the backend's. The client's stream flag and both translations' headers
// carry over.
func (c *chain) Request(body []byte) (Request, error) {
	mid, err := c.outer.Request(body)
	if err != nil {
		return Request{}, err
	}
	out, err := c.inner.Request(mid.Body)
	if err != nil {
		return Request{}, err
	}
	out.Stream = mid.Stream
	out.Headers = append(mid.Headers, out.Headers...)
	return out, nil
}

// Response translates a whole answer back through both.
func (c *chain) Response(status int, body []byte) (int, []byte) {
	return c.outer.Response(c.inner.Response(status, body))
}

// Stream translates a chunk back through both.
func (c *chain) Stream(dst, chunk []byte, end bool) []byte {
	c.mid = c.inner.Stream(c.mid[:0], chunk, end)
	return c.outer.Stream(dst, c.mid, end)
}
