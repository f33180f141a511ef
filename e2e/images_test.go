package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/auth"
)

const (
	imagesKey      = "sk-e2e-images-4b6d8f0a2c"
	imagesKeyChat  = "sk-e2e-images-chat-9e1c3a5b7d"
	imagesKeyRPM   = "sk-e2e-images-rpm-3f5a7c9e1b"
	imagesUpstream = "images-upstream-secret-5d7f9b1c3e"
	imagesPrompt   = "a lighthouse at dusk"
)

// imagesConfig: gpt-image on an OpenAI backend (upstream gpt-image-1, with
// backend-b as its fallback), a chat-only model on an Anthropic backend,
// per-image prices, uploads capped at 1 MiB; tenants: acme may use the image endpoints under a
// token rate its long prompts exceed, chat may not, rpm has one request a
// minute.
var imagesConfig = strings.Replace(listeners, "gateway:\n", "gateway:\n  max_request_body_bytes: 524288\n  max_upload_bytes: 1048576\n", 1) + `backends:
  - name: oai
    protocol: openai
    endpoints: [{{.BackendA}}]
    credential: {header: authorization, env: SG_E2E_IMAGES_UPSTREAM}
  - name: backend-b
    protocol: openai
    endpoints: [{{.BackendB}}]
    credential: {header: authorization, env: SG_E2E_IMAGES_UPSTREAM}
  - name: claude
    protocol: anthropic
    endpoints: [{{.BackendB}}]
models:
  - name: gpt-image
    backend: oai
    upstream_model: gpt-image-1
    fallbacks: [backend-b]
  - name: chat-only
    backend: claude
auth:
  tenants:
    - name: acme
      models: ["*"]
      endpoints: ["/v1/images/*"]
      api_keys: [{hash: %[1]s}]
    - name: chat
      models: ["*"]
      endpoints: [/v1/chat/completions]
      api_keys: [{hash: %[2]s}]
    - name: rpm
      models: ["*"]
      api_keys: [{hash: %[3]s}]
limits:
  tenants:
    - name: acme
      total_tokens_per_minute: 1000000
      input_tokens_per_minute: 300
    - name: rpm
      requests_per_minute: 1
telemetry:
  prices:
    gpt-image:
      input_per_million: 5
      output_per_million: 40
      per_image: {"1024x1024": 0.04, "1024x1024/low": 0.011, "1024x1024/high": 0.167, "1792x1024": 0.08}
`

type imagesUsage struct {
	Input  int `json:"input_tokens"`
	Output int `json:"output_tokens"`
	Total  int `json:"total_tokens"`
}

type imagesError struct {
	Class, Message, Code, Param string
	Status                      *int
}

func runImagesPy(t *testing.T, py string, e *env, key, mode string, out any, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), py, append([]string{filepath.Join("py", "images_client.py"), e.gateway, "gpt-image", key, mode}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "images_client.py failed:\n%s", stderr.String())
	require.NoError(t, json.Unmarshal(stdout, out), "images_client.py printed %s", stdout)
}

// TestOpenAISDKImages: the official SDK's images.generate (n=2, url,
// stream=True with partial images) through Envoy under auth and limits,
// the upstream model rewritten, usage reconciled and images priced in the
// access log and metrics; bad input refused in the OpenAI shape, leaking
// nothing.
func TestOpenAISDKImages(t *testing.T) {
	py := pythonSDKs(t)
	e := startImagesGateway(t)
	inBefore := metric(t, e, `streamgate_tokens_reconciled_total{direction="input"}`)

	var ok struct {
		Generate struct {
			Count         int
			PNG           bool
			Size, Quality string
			Usage         *imagesUsage
		}
		URL struct {
			URLs  []string
			Usage *imagesUsage
		}
		Stream struct {
			Types []string
			PNG   bool
			Usage *imagesUsage
		}
	}
	runImagesPy(t, py, e, imagesKey, "ok", &ok)

	t.Run("generate n=2 b64_json PNGs with gpt-image usage", func(t *testing.T) {
		assert.Equal(t, 2, ok.Generate.Count)
		assert.True(t, ok.Generate.PNG)
		assert.Equal(t, "1024x1024", ok.Generate.Size)
		require.NotNil(t, ok.Generate.Usage)
		assert.Equal(t, imagesUsage{4, 2 * 1056, 4 + 2*1056}, *ok.Generate.Usage)
		line := waitLogLine(t, e, func(l map[string]any) bool {
			return l["endpoint"] == "/v1/images/generations" && l["images"] == 2.0
		})
		assert.Equal(t, 200.0, line["status"])
		assert.Equal(t, "gpt-image", line["model"])
		assert.Equal(t, "gpt-image-1", line["upstream_model"])
		assert.Equal(t, 4.0, line["input_tokens"])
		assert.Equal(t, 2112.0, line["output_tokens"])
		assert.InDelta(t, 2*0.04+(4*5+2112*40)/1e6, line["cost_usd"], 1e-9)
	})

	t.Run("url answer without usage priced by the size asked", func(t *testing.T) {
		require.Len(t, ok.URL.URLs, 1)
		assert.Nil(t, ok.URL.Usage)
		line := waitLogLine(t, e, func(l map[string]any) bool {
			return l["endpoint"] == "/v1/images/generations" && l["images"] == 1.0 && l["input_tokens"] == nil
		})
		assert.InDelta(t, 0.08, line["cost_usd"], 1e-9)
	})

	t.Run("stream=True: partial images then completed, passed untouched", func(t *testing.T) {
		assert.Equal(t, []string{"image_generation.partial_image", "image_generation.partial_image", "image_generation.completed"}, ok.Stream.Types)
		assert.True(t, ok.Stream.PNG)
		require.NotNil(t, ok.Stream.Usage)
		assert.Equal(t, imagesUsage{4, 272, 276}, *ok.Stream.Usage)
		line := waitLogLine(t, e, func(l map[string]any) bool {
			return l["endpoint"] == "/v1/images/generations" && l["stream"] == true && l["images"] != nil
		})
		assert.Equal(t, 1.0, line["images"])
		assert.InDelta(t, 0.011+(4*5+272*40)/1e6, line["cost_usd"], 1e-9)
		assert.Equal(t, 272.0, line["output_tokens"])
	})

	t.Run("usage reconciled and cost in the metrics", func(t *testing.T) {
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
		// Two calls reported 4 input tokens; the url answer reported none
		// and keeps its estimate (5: the prompt's 20 bytes).
		assert.InDelta(t, 4+5+4, metric(t, e, `streamgate_tokens_reconciled_total{direction="input"}`)-inBefore, 0)
		want := 2*0.04 + 0.08 + 0.011 + (8*5+(2112+272)*40)/1e6
		assert.InDelta(t, want, metric(t, e, `streamgate_cost_usd_total{model="gpt-image",tenant="acme"}`), 1e-9)
		assert.InDelta(t, 2, metric(t, e, `gen_ai_client_token_usage_count{gen_ai_operation_name="generate_content",gen_ai_provider_name="openai",gen_ai_request_model="gpt-image",gen_ai_response_model="gpt-image-1",gen_ai_token_type="output",streamgate_backend="oai"}`), 0)
	})

	var bad struct {
		BadSize      imagesError `json:"bad_size"`
		MissingModel imagesError `json:"missing_model"`
		UnknownModel imagesError `json:"unknown_model"`
		OtherBackend imagesError `json:"other_backend"`
		LongPrompt   imagesError `json:"long_prompt"`
	}
	runImagesPy(t, py, e, imagesKey, "errors", &bad)

	t.Run("bad input is refused in the OpenAI shape", func(t *testing.T) {
		for name, tc := range map[string]struct {
			got                imagesError
			class, code, param string
			status             int
			messageContains    string
		}{
			"the backend's 400 on a bad size passes": {bad.BadSize, "BadRequestError", "invalid_value", "size", 400, "'1000x1000'"},
			"missing model":                          {bad.MissingModel, "BadRequestError", "invalid_request", "", 400, "You must provide a model parameter."},
			"unknown model":                          {bad.UnknownModel, "NotFoundError", "model_not_found", "", 404, "no-such-model"},
			"a backend that serves no images":        {bad.OtherBackend, "BadRequestError", "unsupported_by_backend", "", 400, "OpenAI Images API"},
			"a prompt over the input rate":           {bad.LongPrompt, "RateLimitError", "rate_limit_exceeded", "", 429, "Rate limit reached"},
		} {
			t.Run(name, func(t *testing.T) {
				assert.Equal(t, tc.class, tc.got.Class)
				require.NotNil(t, tc.got.Status)
				assert.Equal(t, tc.status, *tc.got.Status)
				assert.Equal(t, tc.code, tc.got.Code)
				assert.Equal(t, tc.param, tc.got.Param)
				assert.Contains(t, tc.got.Message, tc.messageContains)
			})
		}
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	})

	t.Run("auth and request limits", func(t *testing.T) {
		post := func(key string) int {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.gateway+"/v1/images/generations",
				strings.NewReader(`{"model":"gpt-image","prompt":"p","size":"1024x1024"}`))
			require.NoError(t, err)
			req.Header.Set("content-type", "application/json")
			if key != "" {
				req.Header.Set("authorization", "Bearer "+key)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		assert.Equal(t, http.StatusUnauthorized, post(""))
		assert.Equal(t, http.StatusForbidden, post(imagesKeyChat), "a tenant limited to chat may not generate images")
		assert.Equal(t, http.StatusOK, post(imagesKeyRPM))
		assert.Equal(t, http.StatusTooManyRequests, post(imagesKeyRPM), "one request a minute")
	})

	t.Run("a failing backend falls back", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.gateway+"/v1/images/generations",
			strings.NewReader(`{"model":"gpt-image","prompt":"p","response_format":"url"}`))
		require.NoError(t, err)
		req.Header.Set("authorization", "Bearer "+imagesKey)
		req.Header.Set("x-fakellm-fail", "503")
		req.Header.Set("x-fakellm-fail-backend", "backend-a")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "backend-b", resp.Header.Get("x-fakellm-backend"))
		assert.Equal(t, "gpt-image-1", resp.Header.Get("x-fakellm-received-model"))
	})

	t.Run("no secret, prompt or image is ever logged", func(t *testing.T) {
		logs := e.logs.String()
		for _, s := range []string{imagesKey, imagesKeyChat, imagesKeyRPM, imagesUpstream, imagesPrompt, "iVBORw0KGgo"} {
			assert.NotContains(t, logs, s)
		}
	})
}

// startImagesGateway runs a gateway with imagesConfig.
func startImagesGateway(t *testing.T) *env {
	t.Helper()
	t.Setenv("SG_E2E_IMAGES_UPSTREAM", imagesUpstream)
	return startGateway(t, fmt.Sprintf(imagesConfig, auth.HashKey(imagesKey), auth.HashKey(imagesKeyChat), auth.HashKey(imagesKeyRPM)))
}

// TestOpenAISDKImageEdits: the official SDK's images.edit (two image[]
// files, and stream=True) through Envoy as multipart uploads, routed from
// the form's model field, priced; the backend's checks pass through, and
// malformed or oversized uploads are refused in the OpenAI shape.
func TestOpenAISDKImageEdits(t *testing.T) {
	py := pythonSDKs(t)
	e := startImagesGateway(t)
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 4))))
	pngPath := filepath.Join(t.TempDir(), "in.png")
	require.NoError(t, os.WriteFile(pngPath, buf.Bytes(), 0o600))

	var out struct {
		Edit struct {
			Count int
			PNG   bool
			Size  string
			Usage *imagesUsage
		}
		EditStream struct {
			Types []string
			PNG   bool
			Usage *imagesUsage
		} `json:"edit_stream"`
		NotAnImage   imagesError `json:"not_an_image"`
		MissingModel imagesError `json:"edit_missing_model"`
		UnknownModel imagesError `json:"edit_unknown_model"`
		TooLarge     imagesError `json:"too_large"`
	}
	runImagesPy(t, py, e, imagesKey, "edit", &out, pngPath)

	t.Run("two images edited, priced by size and quality", func(t *testing.T) {
		assert.Equal(t, 2, out.Edit.Count)
		assert.True(t, out.Edit.PNG)
		require.NotNil(t, out.Edit.Usage)
		assert.Equal(t, imagesUsage{4, 2 * 4160, 4 + 2*4160}, *out.Edit.Usage)
		line := waitLogLine(t, e, func(l map[string]any) bool {
			return l["endpoint"] == "/v1/images/edits" && l["images"] == 2.0
		})
		assert.Equal(t, "gpt-image-1", line["upstream_model"])
		assert.InDelta(t, 2*0.167+(4*5+8320*40)/1e6, line["cost_usd"], 1e-9)
	})

	t.Run("stream=True edit: image_edit events passed untouched", func(t *testing.T) {
		assert.Equal(t, []string{"image_edit.partial_image", "image_edit.completed"}, out.EditStream.Types)
		assert.True(t, out.EditStream.PNG)
		require.NotNil(t, out.EditStream.Usage)
		line := waitLogLine(t, e, func(l map[string]any) bool {
			return l["endpoint"] == "/v1/images/edits" && l["stream"] == true && l["images"] != nil
		})
		assert.Equal(t, 1.0, line["images"])
		assert.Equal(t, 1056.0, line["output_tokens"])
	})

	t.Run("refusals in the OpenAI shape", func(t *testing.T) {
		for name, tc := range map[string]struct {
			got         imagesError
			status      int
			code, param string
			messageHas  string
		}{
			"the backend's 400 on a file that is no image passes": {out.NotAnImage, 400, "unsupported_file_mimetype", "image", "unsupported mimetype"},
			"missing model field":             {out.MissingModel, 400, "invalid_request", "", "You must provide a model parameter."},
			"unknown model":                   {out.UnknownModel, 404, "model_not_found", "", "no-such-model"},
			"an upload over max_upload_bytes": {out.TooLarge, 413, "request_too_large", "", "upload limit of 1048576 bytes"},
		} {
			t.Run(name, func(t *testing.T) {
				require.NotNil(t, tc.got.Status, "%+v", tc.got)
				assert.Equal(t, tc.status, *tc.got.Status)
				assert.Equal(t, tc.code, tc.got.Code)
				assert.Equal(t, tc.param, tc.got.Param)
				assert.Contains(t, tc.got.Message, tc.messageHas)
			})
		}
	})

	t.Run("malformed multipart is refused before the backend", func(t *testing.T) {
		good := "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-image\r\n--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n" + buf.String() + "\r\n--b--\r\n"
		before := e.backendA.Stats().Requests
		for name, tc := range map[string]struct{ ct, body, want string }{
			"JSON on the upload path": {"application/json", `{"model":"gpt-image","prompt":"p"}`, "multipart/form-data with a boundary"},
			"no boundary":             {"multipart/form-data", good, "multipart/form-data with a boundary"},
			"cut before its end":      {"multipart/form-data; boundary=b", good[:len(good)-8], "closing boundary"},
			"no form-data name":       {"multipart/form-data; boundary=b", "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n", "malformed"},
			"model sent twice":        {"multipart/form-data; boundary=b", strings.Replace(good, "--b--", "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nother\r\n--b--", 1), "model"},
		} {
			t.Run(name, func(t *testing.T) {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.gateway+"/v1/images/edits", strings.NewReader(tc.body))
				require.NoError(t, err)
				req.Header.Set("content-type", tc.ct)
				req.Header.Set("authorization", "Bearer "+imagesKey)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				var body struct {
					Error struct{ Message, Type, Code string }
				}
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
				assert.Equal(t, "invalid_request", body.Error.Code)
				assert.Contains(t, body.Error.Message, tc.want)
				assert.NotContains(t, body.Error.Message, "PNG")
			})
		}
		assert.Equal(t, before, e.backendA.Stats().Requests, "no malformed upload reached the backend")
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	})

	t.Run("no key or image bytes in the logs", func(t *testing.T) {
		logs := e.logs.String()
		for _, s := range []string{imagesKey, imagesUpstream, "add a red hat", "these are not image bytes", base64.StdEncoding.EncodeToString(buf.Bytes())[:16]} {
			assert.NotContains(t, logs, s)
		}
	})
}
