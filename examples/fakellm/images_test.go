package fakellm_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/sse"
)

func postImages(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url+fakellm.ImagesGenerationsPath, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func TestImageGenerationsFake(t *testing.T) {
	srv := httptest.NewServer(fakellm.New(fakellm.Options{}))
	t.Cleanup(srv.Close)

	t.Run("b64_json PNGs with gpt-image usage, deterministic", func(t *testing.T) {
		const body = `{"model":"gpt-image-1","prompt":"a red fox in snow","n":2,"size":"1536x1024","quality":"high"}`
		resp, b := postImages(t, srv.URL, body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		var got struct {
			Data []struct {
				B64JSON string `json:"b64_json"`
			}
			Size, Quality string
			Usage         struct {
				InputTokens        int `json:"input_tokens"`
				OutputTokens       int `json:"output_tokens"`
				TotalTokens        int `json:"total_tokens"`
				InputTokensDetails struct {
					TextTokens int `json:"text_tokens"`
				} `json:"input_tokens_details"`
			}
		}
		require.NoError(t, json.Unmarshal(b, &got))
		require.Len(t, got.Data, 2)
		for _, d := range got.Data {
			raw, err := base64.StdEncoding.DecodeString(d.B64JSON)
			require.NoError(t, err)
			img, err := png.Decode(bytes.NewReader(raw))
			require.NoError(t, err, "a real PNG")
			assert.Equal(t, 8, img.Bounds().Dx())
		}
		assert.NotEqual(t, got.Data[0].B64JSON, got.Data[1].B64JSON)
		assert.Equal(t, "1536x1024", got.Size)
		assert.Equal(t, "high", got.Quality)
		assert.Equal(t, 5, got.Usage.InputTokens)
		assert.Equal(t, 5, got.Usage.InputTokensDetails.TextTokens)
		assert.Equal(t, 2*6240, got.Usage.OutputTokens)
		assert.Equal(t, 5+2*6240, got.Usage.TotalTokens)
		_, again := postImages(t, srv.URL, body)
		assert.Equal(t, b[strings.Index(string(b), `"data"`):], again[strings.Index(string(again), `"data"`):], "the same request gets the same images")
	})

	t.Run("url answers as DALL-E without usage", func(t *testing.T) {
		resp, b := postImages(t, srv.URL, `{"model":"dall-e-3","prompt":"a fox","response_format":"url","size":"1792x1024"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.Contains(t, string(b), `"url":"https://fakellm.invalid/images/`)
		assert.NotContains(t, string(b), "usage")
	})

	t.Run("stream: partial images then completed with usage", func(t *testing.T) {
		resp, b := postImages(t, srv.URL, `{"model":"gpt-image-1","prompt":"a fox","stream":true,"partial_images":2,"size":"1024x1024","quality":"low"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
		var dec sse.Decoder
		dec.Feed(b)
		dec.Close()
		var types []string
		for {
			ev, ok, err := dec.Next()
			require.NoError(t, err)
			if !ok {
				break
			}
			var d struct {
				Type  string
				Usage *struct {
					OutputTokens int `json:"output_tokens"`
				}
			}
			require.NoError(t, json.Unmarshal(ev.Data, &d))
			assert.Equal(t, d.Type, string(ev.Type), "the event name is the type")
			types = append(types, d.Type)
			if d.Type == "image_generation.completed" {
				require.NotNil(t, d.Usage)
				assert.Equal(t, 272, d.Usage.OutputTokens)
			}
		}
		assert.Equal(t, []string{"image_generation.partial_image", "image_generation.partial_image", "image_generation.completed"}, types)
	})

	for name, tc := range map[string]struct{ body, param, code string }{
		"unsupported size":  {`{"model":"gpt-image-1","prompt":"p","size":"1000x1000"}`, "size", "invalid_value"},
		"missing prompt":    {`{"model":"gpt-image-1"}`, "prompt", "missing_required_parameter"},
		"n above 10":        {`{"model":"gpt-image-1","prompt":"p","n":11}`, "n", "integer_above_max_value"},
		"bad quality":       {`{"model":"gpt-image-1","prompt":"p","quality":"ultra"}`, "quality", "invalid_value"},
		"too many partials": {`{"model":"gpt-image-1","prompt":"p","stream":true,"partial_images":4}`, "partial_images", "invalid_value"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, b := postImages(t, srv.URL, tc.body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			var e struct {
				Error struct{ Message, Type, Param, Code string }
			}
			require.NoError(t, json.Unmarshal(b, &e))
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			assert.Equal(t, tc.param, e.Error.Param)
			assert.Equal(t, tc.code, e.Error.Code)
			assert.NotEmpty(t, e.Error.Message)
		})
	}
}
