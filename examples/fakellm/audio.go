package fakellm

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
)

// MaxAudioFileBytes is the OpenAI Audio API's file limit (25 MiB); larger
// files get 413 as there.
const MaxAudioFileBytes = 25 << 20

// audioFormats are the file extensions the OpenAI Audio API accepts.
var audioFormats = []string{"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"}

// audioUpload is what serveTranscription reads of a multipart upload.
type audioUpload struct {
	fields   map[string]string
	fileName string
	fileSize int
}

// serveTranscription answers POST /v1/audio/transcriptions (translate
// false) and /v1/audio/translations as the OpenAI API does: a
// multipart/form-data body with a file (one of audioFormats, at most
// MaxAudioFileBytes) and a model, else a 400 (413 for the size). The text
// is deterministic: it names the file's size and format. response_format
// json (default), text, srt, vtt and verbose_json; usage {type: duration,
// seconds} for whisper models (16 kHz 16-bit mono assumed: 32000 bytes a
// second), {type: tokens} for the others. stream=true on transcriptions
// answers SSE: one transcript.text.delta per word (ITL apart), then
// transcript.text.done with the usage. Failure headers apply as elsewhere.
func (s *Server) serveTranscription(w http.ResponseWriter, r *http.Request, translate bool) {
	s.countRequest()
	up, status, msg := readAudioUpload(r)
	s.recordBody(up.fields["model"], up.fileSize)
	sc, err := parseScenario(r.Header, s.opts)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: typeInvalidRequest})
		return
	}
	if s.injectFailure(w, sc.fail) {
		return
	}
	if status != 0 {
		writeError(w, status, apiError{Message: msg, Type: typeInvalidRequest})
		return
	}
	model := up.fields["model"]
	w.Header().Set(HeaderReceivedModel, model)
	verb := "Transcribed"
	if translate {
		verb = "Translated"
	}
	ext := strings.TrimPrefix(path.Ext(up.fileName), ".")
	text := fmt.Sprintf("%s %d bytes of %s audio.", verb, up.fileSize, ext)
	seconds := float64(up.fileSize) / 32000
	u := map[string]any{"type": "duration", "seconds": seconds}
	if !strings.HasPrefix(model, "whisper") {
		in := up.fileSize/1000 + len(strings.Fields(up.fields["prompt"]))
		out := len(strings.Fields(text))
		u = map[string]any{"type": "tokens", "input_tokens": in, "output_tokens": out, "total_tokens": in + out,
			"input_token_details": map[string]int{"text_tokens": len(strings.Fields(up.fields["prompt"])), "audio_tokens": up.fileSize / 1000}}
	}
	if !s.wait(r.Context(), sc.ttft) {
		return
	}
	if !translate && up.fields["stream"] == "true" {
		s.streamTranscript(w, r, sc, text, u)
		return
	}
	format := up.fields["response_format"]
	switch format {
	case "", "json":
		writeJSON(w, http.StatusOK, map[string]any{"text": text, "usage": u})
	case "verbose_json":
		task := "transcribe"
		if translate {
			task = "translate"
		}
		writeJSON(w, http.StatusOK, map[string]any{"task": task, "language": "english", "duration": seconds, "text": text,
			"segments": []map[string]any{{"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": text}}, "usage": u})
	case "text":
		writeText(w, "text/plain; charset=utf-8", text+"\n")
	case "srt":
		writeText(w, "text/plain; charset=utf-8", "1\n00:00:00,000 --> "+clock(seconds, ',')+"\n"+text+"\n\n")
	case "vtt":
		writeText(w, "text/plain; charset=utf-8", "WEBVTT\n\n00:00:00.000 --> "+clock(seconds, '.')+"\n"+text+"\n\n")
	default:
		writeError(w, http.StatusBadRequest, apiError{Message: fmt.Sprintf("Invalid value: '%s'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'.", format), Type: typeInvalidRequest, Param: ptr("response_format")})
		return
	}
	s.markCompleted()
}

// streamTranscript writes the transcript as OpenAI's SSE events.
func (s *Server) streamTranscript(w http.ResponseWriter, r *http.Request, sc scenario, text string, usage map[string]any) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i, word := range strings.Fields(text) {
		if i > 0 {
			word = " " + word
			if !s.wait(r.Context(), sc.itl) {
				return
			}
		}
		fmt.Fprintf(w, "data: %s\n\n", mustEncode(transcriptEvent{Type: "transcript.text.delta", Delta: word}))
		_ = rc.Flush()
	}
	fmt.Fprintf(w, "data: %s\n\n", mustEncode(transcriptEvent{Type: "transcript.text.done", Text: text, Usage: usage}))
	_ = rc.Flush()
	s.markCompleted()
}

// transcriptEvent is one event of a streamed transcription, its fields
// in OpenAI's order.
type transcriptEvent struct {
	Type     string         `json:"type"`
	Delta    string         `json:"delta,omitempty"`
	Text     string         `json:"text,omitempty"`
	Logprobs []any          `json:"logprobs,omitempty"`
	Usage    map[string]any `json:"usage,omitempty"`
}

// readAudioUpload reads the upload as the OpenAI API checks it; status is
// 0 when it is acceptable, else the status and message to answer.
func readAudioUpload(r *http.Request) (audioUpload, int, string) {
	up := audioUpload{fields: map[string]string{}}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return up, http.StatusBadRequest, fmt.Sprintf("Invalid Content-Type header (%s), expected multipart/form-data. (HINT: If you're using curl, you can pass -F for each field.)", clipValue(ct))
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF { // a clean end; a cut body is wrapped
			break
		}
		if err != nil {
			return up, http.StatusBadRequest, "Could not parse multipart form"
		}
		if p.FileName() != "" || p.FormName() == "file" {
			up.fileName = p.FileName()
			n, err := io.Copy(io.Discard, io.LimitReader(p, MaxAudioFileBytes+1))
			up.fileSize = int(n)
			if err != nil {
				return up, http.StatusBadRequest, "Could not parse multipart form"
			}
			if n > MaxAudioFileBytes {
				return up, http.StatusRequestEntityTooLarge, fmt.Sprintf("Maximum content size limit (%d) exceeded (%d bytes read)", MaxAudioFileBytes, n)
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(p, 1<<20))
		if err != nil {
			return up, http.StatusBadRequest, "Could not parse multipart form"
		}
		up.fields[p.FormName()] = string(v)
	}
	switch ext := strings.ToLower(strings.TrimPrefix(path.Ext(up.fileName), ".")); {
	case up.fileName == "":
		return up, http.StatusBadRequest, "1 validation error for Request\nbody -> file\n  field required"
	case up.fields["model"] == "":
		return up, http.StatusBadRequest, "you must provide a model parameter"
	case !slices.Contains(audioFormats, ext):
		return up, http.StatusBadRequest, fmt.Sprintf("Invalid file format. Supported formats: %s", strings.Join(audioFormats, ", "))
	}
	return up, 0, ""
}

// clipValue shortens a client value echoed in a message.
func clipValue(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// clock formats seconds as an SRT/VTT timestamp with sep before the
// milliseconds.
func clock(seconds float64, sep byte) string {
	ms := int(seconds * 1000)
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", ms/3600000, ms/60000%60, ms/1000%60, sep, ms%1000)
}

// writeText answers 200 with a plain body.
func writeText(w http.ResponseWriter, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}
