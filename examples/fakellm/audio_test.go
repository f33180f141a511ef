package fakellm_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// upload builds a multipart body: fields, then a file unless name is "".
func upload(t *testing.T, name string, size int, fields ...string) (string, *bytes.Buffer) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	if name != "" {
		fw, err := w.CreateFormFile("file", name)
		require.NoError(t, err)
		_, _ = fw.Write(bytes.Repeat([]byte{1}, size))
	}
	require.NoError(t, w.Close())
	return w.FormDataContentType(), &b
}

func TestTranscriptionFake(t *testing.T) {
	srv := httptest.NewServer(fakellm.New(fakellm.Options{}))
	t.Cleanup(srv.Close)
	post := func(path, ct string, body io.Reader) (*http.Response, []byte) {
		resp, err := http.Post(srv.URL+path, ct, body)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	t.Run("json with token usage", func(t *testing.T) {
		ct, body := upload(t, "a.wav", 4000, "model", "gpt-4o-transcribe", "prompt", "two words")
		resp, b := post("/v1/audio/transcriptions", ct, body)
		require.Equal(t, 200, resp.StatusCode, string(b))
		assert.JSONEq(t, `{"text":"Transcribed 4000 bytes of wav audio.","usage":{"type":"tokens","input_tokens":6,"output_tokens":6,"total_tokens":12,"input_token_details":{"text_tokens":2,"audio_tokens":4}}}`, string(b))
		assert.Equal(t, "gpt-4o-transcribe", resp.Header.Get(fakellm.HeaderReceivedModel))
	})
	t.Run("whisper reports duration, text and srt formats", func(t *testing.T) {
		ct, body := upload(t, "a.mp3", 64000, "model", "whisper-1")
		_, b := post("/v1/audio/translations", ct, body)
		assert.JSONEq(t, `{"text":"Translated 64000 bytes of mp3 audio.","usage":{"type":"duration","seconds":2}}`, string(b))
		ct, body = upload(t, "a.mp3", 64000, "model", "whisper-1", "response_format", "text")
		_, b = post("/v1/audio/transcriptions", ct, body)
		assert.Equal(t, "Transcribed 64000 bytes of mp3 audio.\n", string(b))
		ct, body = upload(t, "a.mp3", 64000, "model", "whisper-1", "response_format", "srt")
		_, b = post("/v1/audio/transcriptions", ct, body)
		assert.Equal(t, "1\n00:00:00,000 --> 00:00:02,000\nTranscribed 64000 bytes of mp3 audio.\n\n", string(b))
	})
	t.Run("stream", func(t *testing.T) {
		ct, body := upload(t, "a.wav", 1000, "model", "gpt-4o-mini-transcribe", "stream", "true")
		resp, b := post("/v1/audio/transcriptions", ct, body)
		assert.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
		events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
		require.Len(t, events, 7, "a delta per word, then done")
		assert.Equal(t, `data: {"type":"transcript.text.delta","delta":"Transcribed"}`, events[0])
		assert.Contains(t, events[6], `data: {"type":"transcript.text.done","text":"Transcribed 1000 bytes of wav audio.","usage":{`)
	})
	cases := map[string]func() (string, io.Reader){
		"no file":       func() (string, io.Reader) { return upload(t, "", 0, "model", "m") },
		"no model":      func() (string, io.Reader) { return upload(t, "a.wav", 10) },
		"bad extension": func() (string, io.Reader) { return upload(t, "a.txt", 10, "model", "m") },
		"json body":     func() (string, io.Reader) { return "application/json", strings.NewReader(`{"model":"m"}`) },
		"cut body": func() (string, io.Reader) {
			ct, b := upload(t, "a.wav", 10, "model", "m")
			return ct, bytes.NewReader(b.Bytes()[:b.Len()-8])
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			ct, body := mk()
			resp, b := post("/v1/audio/transcriptions", ct, body)
			assert.Equal(t, 400, resp.StatusCode, string(b))
			var e struct {
				Error struct{ Message, Type string }
			}
			require.NoError(t, json.Unmarshal(b, &e))
			assert.Equal(t, "invalid_request_error", e.Error.Type)
		})
	}
	t.Run("file over 25 MiB", func(t *testing.T) {
		ct, body := upload(t, "a.wav", fakellm.MaxAudioFileBytes+1, "model", "m")
		resp, b := post("/v1/audio/transcriptions", ct, body)
		assert.Equal(t, 413, resp.StatusCode, string(b))
	})
}

func TestSpeechFake(t *testing.T) {
	srv := httptest.NewServer(fakellm.New(fakellm.Options{ITL: 50 * time.Millisecond}))
	t.Cleanup(srv.Close)
	post := func(body string) *http.Response {
		resp, err := http.Post(srv.URL+"/v1/audio/speech", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	t.Run("wav in chunks, the first before the last is written", func(t *testing.T) {
		start := time.Now()
		resp := post(`{"model":"tts-1","input":"hello world","voice":"alloy","response_format":"wav"}`)
		require.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "audio/wav", resp.Header.Get("Content-Type"))
		r := bufio.NewReader(resp.Body)
		head, err := r.Peek(12)
		require.NoError(t, err)
		first := time.Since(start)
		assert.Equal(t, "RIFF", string(head[:4]))
		assert.Equal(t, "WAVE", string(head[8:12]))
		all, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Len(t, all, 44+2*int(11*0.02*24000))
		assert.Less(t, first, time.Since(start)-100*time.Millisecond, "the audio streams")
	})
	t.Run("sse", func(t *testing.T) {
		resp := post(`{"model":"gpt-4o-mini-tts","input":"hi","voice":"alloy","stream_format":"sse"}`)
		b, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Contains(t, string(b), `"type":"speech.audio.delta"`)
		assert.Contains(t, string(b), `"type":"speech.audio.done"`)
	})
	for name, body := range map[string]string{
		"no input":       `{"model":"tts-1","voice":"alloy"}`,
		"no voice":       `{"model":"tts-1","input":"x"}`,
		"input too long": `{"model":"tts-1","voice":"alloy","input":"` + strings.Repeat("x", 4097) + `"}`,
		"bad format":     `{"model":"tts-1","voice":"alloy","input":"x","response_format":"ogg"}`,
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, 400, post(body).StatusCode)
		})
	}
}
