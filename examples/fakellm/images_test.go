package fakellm_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
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

// pngBytes is a real 1x1 PNG.
func pngBytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))))
	return b.Bytes()
}

// editBody builds an edit upload: fields, then files (field name, file
// name, bytes).
func editBody(t *testing.T, fields []string, files ...[3]any) (string, *bytes.Buffer) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	for _, f := range files {
		fw, err := w.CreateFormFile(f[0].(string), f[1].(string))
		require.NoError(t, err)
		_, _ = fw.Write(f[2].([]byte))
	}
	require.NoError(t, w.Close())
	return w.FormDataContentType(), &b
}

func TestImageEditsFake(t *testing.T) {
	srv := httptest.NewServer(fakellm.New(fakellm.Options{}))
	t.Cleanup(srv.Close)
	post := func(ct string, body io.Reader) (int, map[string]any, http.Header) {
		resp, err := http.Post(srv.URL+fakellm.ImagesEditsPath, ct, body)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out map[string]any
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		} else {
			out = map[string]any{"sse": string(raw)}
		}
		return resp.StatusCode, out, resp.Header
	}
	img := pngBytes(t)
	fields := []string{"model", "gpt-image-1", "prompt", "add a hat", "n", "2", "size", "1024x1024"}

	t.Run("two PNGs and a mask", func(t *testing.T) {
		ct, b := editBody(t, fields, [3]any{"image[]", "a.png", img}, [3]any{"image[]", "b.png", img}, [3]any{"mask", "m.png", img})
		status, out, h := post(ct, b)
		require.Equal(t, http.StatusOK, status, out)
		assert.Len(t, out["data"], 2)
		assert.Equal(t, "gpt-image-1", h.Get(fakellm.HeaderReceivedModel))
		assert.Equal(t, 2*1056.0, out["usage"].(map[string]any)["output_tokens"])
	})

	t.Run("stream sends image_edit events", func(t *testing.T) {
		ct, b := editBody(t, []string{"model", "gpt-image-1", "prompt", "p", "stream", "true", "partial_images", "1"}, [3]any{"image", "a.png", img})
		status, out, _ := post(ct, b)
		require.Equal(t, http.StatusOK, status, out)
		sse := out["sse"].(string)
		assert.Contains(t, sse, "event: image_edit.partial_image\n")
		assert.Contains(t, sse, "event: image_edit.completed\n")
	})

	big := append(append([]byte(nil), img...), make([]byte, 5<<20)...)
	for name, tc := range map[string]struct {
		fields      []string
		files       [][3]any
		param, code string
	}{
		"no image":              {fields, nil, "image", "missing_required_parameter"},
		"not an image":          {fields, [][3]any{{"image", "a.png", []byte("hello, not an image")}}, "image", "unsupported_file_mimetype"},
		"a JPEG mask":           {fields, [][3]any{{"image", "a.png", img}, {"mask", "m.jpg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00")}}, "mask", "unsupported_file_mimetype"},
		"dall-e-2 over 4 MB":    {[]string{"model", "dall-e-2", "prompt", "p", "response_format", "url", "size", "512x512"}, [][3]any{{"image", "a.png", big}}, "image", "image_too_large"},
		"n not a number":        {[]string{"model", "gpt-image-1", "prompt", "p", "n", "two"}, [][3]any{{"image", "a.png", img}}, "n", "invalid_type"},
		"no prompt":             {[]string{"model", "gpt-image-1"}, [][3]any{{"image", "a.png", img}}, "prompt", "missing_required_parameter"},
		"unsupported edit size": {[]string{"model", "gpt-image-1", "prompt", "p", "size", "999x999"}, [][3]any{{"image", "a.png", img}}, "size", "invalid_value"},
	} {
		t.Run(name, func(t *testing.T) {
			ct, b := editBody(t, tc.fields, tc.files...)
			status, out, _ := post(ct, b)
			require.Equal(t, http.StatusBadRequest, status, out)
			e := out["error"].(map[string]any)
			assert.Equal(t, tc.param, e["param"])
			assert.Equal(t, tc.code, e["code"])
		})
	}

	t.Run("not multipart, or cut short", func(t *testing.T) {
		status, _, _ := post("application/json", strings.NewReader(`{"model":"gpt-image-1"}`))
		assert.Equal(t, http.StatusBadRequest, status)
		ct, b := editBody(t, fields, [3]any{"image", "a.png", img})
		status, _, _ = post(ct, bytes.NewReader(b.Bytes()[:b.Len()-20]))
		assert.Equal(t, http.StatusBadRequest, status)
	})
}
