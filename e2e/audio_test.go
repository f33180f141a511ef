package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/auth"
)

const (
	audioKeyAcme  = "sk-e2e-audio-acme-5b7d9f1a3c"
	audioKeyGuest = "sk-e2e-audio-guest-8e0a2c4d6f"
	audioKeySmall = "sk-e2e-audio-small-3f5a7c9e1b"
	audioUpstream = "audio-upstream-secret-9c1e3a5b7d"
	// audioMarker fills every uploaded file: no log may contain it.
	audioMarker = "AUDIO-SECRET-BYTES"
	audioPrompt = "names: Ada, Grace"
)

// audioConfig: one OpenAI backend (a fakellm requiring audioUpstream) for
// a transcription model, a whisper model and a speech model, each with an
// upstream name; an Anthropic backend that cannot serve audio. JSON bodies
// are capped at 64 KiB, uploads at 2 MiB. acme may use everything (one
// stream at a time); guest only speech; small has 40 tokens a minute.
var audioConfig = strings.Replace(listeners, "gateway:\n", "gateway:\n  max_request_body_bytes: 65536\n  max_upload_bytes: 2097152\n", 1) + `backends:
  - name: audio
    protocol: openai
    endpoints: [%[1]s]
    credential: {header: authorization, env: SG_E2E_AUDIO_UPSTREAM}
  - name: claude
    protocol: anthropic
    endpoints: [%[1]s]
  - name: audio2
    protocol: openai
    endpoints: [%[5]s]
    credential: {header: authorization, env: SG_E2E_AUDIO_UPSTREAM}
models:
  - name: transcribe-fo
    backend: audio
    upstream_model: gpt-4o-transcribe
    fallbacks: [audio2]
  - name: transcribe
    backend: audio
    upstream_model: gpt-4o-transcribe
  - name: whisper
    backend: audio
    upstream_model: whisper-1
  - name: tts
    backend: audio
    upstream_model: tts-1
  - name: claude
    backend: claude
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: %[2]s}]
    - name: guest
      models: ["*"]
      endpoints: [/v1/audio/speech]
      api_keys: [{hash: %[3]s}]
    - name: small
      models: ["*"]
      api_keys: [{hash: %[4]s}]
limits:
  tenants:
    - name: acme
      concurrent_streams: 2
    - name: small
      total_tokens_per_minute: 40
    - name: "*"
      requests_per_minute: 1000
`

type audioGateway struct {
	*env
	backend, fallback *fakellm.Server
}

func startAudioGateway(t *testing.T) *audioGateway {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := fakellm.New(fakellm.Options{Name: "audio", APIKey: audioUpstream})
	srv := &http.Server{Handler: b}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	lis2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b2 := fakellm.New(fakellm.Options{Name: "audio2", APIKey: audioUpstream})
	srv2 := &http.Server{Handler: b2}
	go func() { _ = srv2.Serve(lis2) }()
	t.Cleanup(func() { srv2.Close() })
	t.Setenv("SG_E2E_AUDIO_UPSTREAM", audioUpstream)
	cfg := fmt.Sprintf(audioConfig, lis.Addr().String(), auth.HashKey(audioKeyAcme), auth.HashKey(audioKeyGuest), auth.HashKey(audioKeySmall), lis2.Addr().String())
	return &audioGateway{env: startGateway(t, cfg), backend: b, fallback: b2}
}

// runAudioPy runs e2e/py/audio_client.py in mode and decodes its JSON.
func runAudioPy(t *testing.T, py string, e *env, mode string, out any) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), py, filepath.Join("py", "audio_client.py"), e.gateway, audioKeyAcme, mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "audio_client.py failed:\n%s", stderr.String())
	require.NoError(t, json.Unmarshal(stdout, out), "audio_client.py printed %s", stdout)
}

// audioUpload is a multipart body: fields, then a file of size bytes.
func audioUpload(t *testing.T, size int, fields ...string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	require.NoError(t, w.SetBoundary("sg-e2e-audio-boundary"))
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	fw, err := w.CreateFormFile("file", "a.wav")
	require.NoError(t, err)
	_, _ = fw.Write([]byte(strings.Repeat(audioMarker, size/len(audioMarker)+1))[:size])
	require.NoError(t, w.Close())
	return w.FormDataContentType(), b.Bytes()
}

func TestAudioSDK(t *testing.T) {
	py := pythonSDKs(t)
	g := startAudioGateway(t)
	var out struct {
		Transcription struct {
			Text  string
			Usage map[string]any
		}
		TranscriptionStream struct {
			Types  []string
			Deltas string
			Text   string
			Usage  map[string]any
		} `json:"transcription_stream"`
		Translation       struct{ Text string }
		TranscriptionText string `json:"transcription_text"`
		Speech            struct {
			Bytes       int
			Riff, Wave  string
			ContentType string  `json:"content_type"`
			First       float64 `json:"first_s"`
			Total       float64 `json:"total_s"`
			Chunks      int
		}
		SpeechPCM struct{ Bytes int } `json:"speech_pcm"`
	}
	runAudioPy(t, py, g.env, "ok", &out)

	t.Run("transcription routed by the model field, usage reconciled", func(t *testing.T) {
		assert.Equal(t, "Transcribed 64000 bytes of wav audio.", out.Transcription.Text)
		assert.Equal(t, "tokens", out.Transcription.Usage["type"])
		line := waitLogLine(t, g.env, func(l map[string]any) bool {
			return l["endpoint"] == "/v1/audio/transcriptions" && l["status"] == 200.0
		})
		assert.Equal(t, "transcribe", line["model"])
		assert.Equal(t, out.Transcription.Usage["input_tokens"], line["input_tokens"], "the access log has the backend's usage")
		assert.Equal(t, out.Transcription.Usage["output_tokens"], line["output_tokens"])
	})
	t.Run("stream=true passes the SSE events through", func(t *testing.T) {
		s := out.TranscriptionStream
		require.NotEmpty(t, s.Types)
		assert.Equal(t, "transcript.text.done", s.Types[len(s.Types)-1])
		assert.Len(t, s.Types, 7)
		assert.Equal(t, s.Text, s.Deltas)
		assert.Equal(t, "tokens", s.Usage["type"])
	})
	t.Run("translation and the text format", func(t *testing.T) {
		assert.Equal(t, "Translated 64000 bytes of wav audio.", out.Translation.Text)
		line := waitLogLine(t, g.env, func(l map[string]any) bool {
			return l["endpoint"] == "/v1/audio/translations" && l["status"] == 200.0
		})
		assert.Equal(t, 2.0, line["audio_seconds"], "whisper's duration usage reaches the access log")
		assert.Equal(t, "Transcribed 64000 bytes of wav audio.", strings.TrimSpace(out.TranscriptionText))
	})
	t.Run("speech streams chunk by chunk to a file", func(t *testing.T) {
		s := out.Speech
		assert.Equal(t, "RIFF", s.Riff)
		assert.Equal(t, "WAVE", s.Wave)
		assert.Equal(t, "audio/wav", s.ContentType)
		assert.Equal(t, 44+2*int(23*0.02*24000), s.Bytes)
		t.Logf("speech: first chunk after %.3fs, whole answer after %.3fs, %d chunks", s.First, s.Total, s.Chunks)
		// Four chunks 300 ms apart: the first arrives long before the last.
		assert.Greater(t, s.Total, 0.85)
		assert.Less(t, s.First, s.Total-0.6, "the first chunk reached the client before the fake finished")
		assert.Equal(t, 2*int(2*0.02*24000), out.SpeechPCM.Bytes)
	})
	t.Run("metrics name the audio operations", func(t *testing.T) {
		body := get(t, g.metrics+"/metrics")
		for _, op := range []string{"transcription", "translation", "speech"} {
			assert.Contains(t, body, `gen_ai_operation_name="`+op+`"`)
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "gen_ai_client_token_usage_count{") && strings.Contains(line, `"transcription"`) && strings.Contains(line, `gen_ai_token_type="output"`) {
				assert.NotEqual(t, "0", line[strings.LastIndexByte(line, ' ')+1:], line)
			}
		}
	})
	t.Run("nothing leaks", func(t *testing.T) {
		waitMetric(t, g.env, "streamgate_reservations_outstanding", 0)
		logs := g.logs.String()
		for _, s := range []string{audioKeyAcme, audioUpstream, audioMarker, audioPrompt} {
			assert.NotContains(t, logs, s)
		}
	})
}

func TestAudioSDKErrors(t *testing.T) {
	py := pythonSDKs(t)
	g := startAudioGateway(t)
	var out map[string]struct {
		Class   *string
		Status  int
		Type    string
		Code    string
		Message string
	}
	runAudioPy(t, py, g.env, "errors", &out)
	for name, want := range map[string]struct {
		class, code string
		status      int
	}{
		"unknown_model":        {"NotFoundError", "model_not_found", 404},
		"too_large":            {"APIStatusError", "request_too_large", 413},
		"speech_unknown_model": {"NotFoundError", "model_not_found", 404},
		"speech_unsupported":   {"BadRequestError", "unsupported_by_backend", 400},
	} {
		got := out[name]
		require.NotNil(t, got.Class, name)
		assert.Equal(t, want.class, *got.Class, name)
		assert.Equal(t, want.status, got.Status, name)
		assert.Equal(t, want.code, got.Code, name)
		assert.NotEmpty(t, got.Message, name)
	}
	assert.Contains(t, out["too_large"].Message, "upload limit of 2097152 bytes")
}

func TestAudioRefusals(t *testing.T) {
	g := startAudioGateway(t)
	post := func(t *testing.T, path, key, ct string, body []byte, headers ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("content-type", ct)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		if key != "" {
			req.Header.Set("authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	ct, good := audioUpload(t, 1000, "model", "transcribe")
	_, noModel := audioUpload(t, 1000, "prompt", "p")
	dupCT, dup := audioUpload(t, 1000, "model", "transcribe", "model", "whisper")
	_, unknown := audioUpload(t, 1000, "model", "nope")
	_, claude := audioUpload(t, 1000, "model", "claude")
	_, longPrompt := audioUpload(t, 1000, "model", "transcribe", "prompt", strings.Repeat("word ", 100))
	bigCT, big := audioUpload(t, 3<<20, "model", "transcribe")
	_, overJSONCap := audioUpload(t, 200<<10, "model", "transcribe")
	const transcriptions = "/v1/audio/transcriptions"
	for name, tc := range map[string]struct {
		path, key, ct string
		body          []byte
		status        int
		code          string
	}{
		"no key":                {transcriptions, "", ct, good, 401, "invalid_api_key"},
		"endpoint not allowed":  {transcriptions, audioKeyGuest, ct, good, 403, "permission_denied"},
		"not multipart":         {transcriptions, audioKeyAcme, "application/json", []byte(`{"model":"transcribe"}`), 400, "invalid_request"},
		"malformed multipart":   {transcriptions, audioKeyAcme, ct, []byte("this is not a form"), 400, "invalid_request"},
		"truncated multipart":   {transcriptions, audioKeyAcme, ct, good[:len(good)-20], 400, "invalid_request"},
		"missing model":         {transcriptions, audioKeyAcme, ct, noModel, 400, "invalid_request"},
		"duplicate model":       {transcriptions, audioKeyAcme, dupCT, dup, 400, "invalid_request"},
		"unknown model":         {transcriptions, audioKeyAcme, ct, unknown, 404, "model_not_found"},
		"backend without audio": {"/v1/audio/translations", audioKeyAcme, ct, claude, 400, "unsupported_by_backend"},
		"prompt over the rate":  {transcriptions, audioKeySmall, ct, longPrompt, 429, "rate_limit_exceeded"},
		"upload over its cap":   {transcriptions, audioKeyAcme, bigCT, big, 413, "request_too_large"},
		"speech over JSON cap":  {"/v1/audio/speech", audioKeyAcme, "application/json", []byte(`{"model":"tts","voice":"alloy","input":"` + strings.Repeat("x", 70<<10) + `"}`), 413, "request_too_large"},
		"speech missing model":  {"/v1/audio/speech", audioKeyAcme, "application/json", []byte(`{"voice":"alloy","input":"x"}`), 400, "invalid_request"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := post(t, tc.path, tc.key, tc.ct, tc.body)
			assert.Equal(t, tc.status, resp.StatusCode, string(body))
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			require.NoError(t, json.Unmarshal(body, &e), string(body))
			assert.Equal(t, tc.code, e.Error.Code, string(body))
			assert.NotContains(t, string(body), audioMarker)
		})
	}
	t.Run("an upload past the JSON cap but within its own passes", func(t *testing.T) {
		resp, body := post(t, transcriptions, audioKeyAcme, ct, overJSONCap)
		assert.Equal(t, 200, resp.StatusCode, string(body))
		assert.JSONEq(t, `{"text":"Transcribed 204800 bytes of wav audio.","usage":{"type":"tokens","input_tokens":204,"output_tokens":6,"total_tokens":210,"input_token_details":{"text_tokens":0,"audio_tokens":204}}}`, string(body))
		assert.Equal(t, "gpt-4o-transcribe", g.backend.Stats().LastModel, "the upstream name was written into the form")
		assert.Equal(t, 200<<10, g.backend.Stats().LastBodyBytes, "the file arrived whole")
	})
	t.Run("an upload fails over to the fallback backend whole", func(t *testing.T) {
		for _, size := range []int{1000, 200 << 10} {
			fct, body := audioUpload(t, size, "model", "transcribe-fo")
			resp, out := post(t, transcriptions, audioKeyAcme, fct, body, "x-fakellm-fail", "503", "x-fakellm-fail-backend", "audio")
			assert.Equal(t, 200, resp.StatusCode, string(out))
			assert.Equal(t, "audio2", resp.Header.Get("x-fakellm-backend"), "size %d", size)
			assert.Equal(t, "gpt-4o-transcribe", resp.Header.Get(fakellm.HeaderReceivedModel))
			assert.Contains(t, string(out), fmt.Sprintf("Transcribed %d bytes", size))
		}
	})
	t.Run("the backend's own 400 passes through", func(t *testing.T) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		require.NoError(t, w.WriteField("model", "transcribe"))
		require.NoError(t, w.Close())
		resp, body := post(t, transcriptions, audioKeyAcme, w.FormDataContentType(), b.Bytes())
		assert.Equal(t, 400, resp.StatusCode, string(body))
		assert.Contains(t, string(body), "file")
	})
	t.Run("nothing leaks", func(t *testing.T) {
		waitMetric(t, g.env, "streamgate_reservations_outstanding", 0)
		logs := g.logs.String()
		for _, s := range []string{audioKeyAcme, audioKeyGuest, audioKeySmall, audioUpstream, audioMarker} {
			assert.NotContains(t, logs, s)
		}
	})
}

// TestAudioLargeUpload: with the default caps and no limits (speech then
// asks ext_proc for no response phase), a file near OpenAI's 25 MiB
// limit passes through Envoy and ext_proc whole (the JSON cap stays 8 MiB);
// a file over 25 MiB within the upload cap gets the backend's own 413; a
// body over the upload cap gets Envoy's 413 naming it.
func TestAudioLargeUpload(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := fakellm.New(fakellm.Options{Name: "audio"})
	srv := &http.Server{Handler: b}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	g := startGateway(t, listeners+fmt.Sprintf(`backends:
  - name: audio
    protocol: openai
    endpoints: [%s]
models:
  - name: transcribe
    backend: audio
    upstream_model: gpt-4o-transcribe
`, lis.Addr().String()))
	for name, tc := range map[string]struct {
		size   int
		status int
		want   string
	}{
		"24 MiB file":              {24 << 20, 200, "Transcribed 25165824 bytes of wav audio."},
		"file over OpenAI's limit": {25<<20 + 100<<10, 413, "Maximum content size limit"},
		"body over the upload cap": {27 << 20, 413, "upload limit of 27262976 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			ct, body := audioUpload(t, tc.size, "model", "transcribe")
			start := time.Now()
			resp, err := http.Post(g.gateway+"/v1/audio/transcriptions", ct, bytes.NewReader(body))
			require.NoError(t, err)
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			t.Logf("%s: %d in %s", name, resp.StatusCode, time.Since(start))
			assert.Equal(t, tc.status, resp.StatusCode, string(out))
			assert.Contains(t, string(out), tc.want)
		})
	}
	t.Run("speech streams straight through (no limits: no response phase)", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+"/v1/audio/speech",
			strings.NewReader(`{"model":"transcribe","input":"Hello from the gateway.","voice":"alloy","response_format":"pcm"}`))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		req.Header.Set(fakellm.HeaderITL, "300")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		buf := make([]byte, 1)
		_, err = io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		first := time.Since(start)
		rest, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		total := time.Since(start)
		t.Logf("speech: first byte after %s, whole answer after %s", first, total)
		assert.Equal(t, 2*int(23*0.02*24000), 1+len(rest))
		assert.Greater(t, total, 850*time.Millisecond)
		assert.Less(t, first, total-600*time.Millisecond, "the first chunk reached the client before the fake finished")
	})
	assert.NotContains(t, g.logs.String(), audioMarker)
}
