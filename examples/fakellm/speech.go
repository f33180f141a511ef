package fakellm

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"unicode/utf8"
)

// Speech audio the fake generates: OpenAI's PCM is 24 kHz, 16-bit signed
// little-endian, mono; each input character lasts speechCharSeconds.
const (
	speechRate        = 24000
	speechCharSeconds = 0.02
	maxSpeechInput    = 4096 // characters, as the OpenAI API caps input
	speechChunks      = 4    // chunks an answer is written in, ITL apart
)

// speechRequest is the OpenAI POST /v1/audio/speech body.
type speechRequest struct {
	Model          string   `json:"model"`
	Input          *string  `json:"input"`
	Voice          any      `json:"voice"`
	ResponseFormat string   `json:"response_format"`
	StreamFormat   string   `json:"stream_format"`
	Speed          *float64 `json:"speed"`
}

// serveSpeech answers POST /v1/audio/speech as the OpenAI API does: input
// (1 to 4096 characters) and voice are required; the answer is audio
// streamed in speechChunks chunks (the first after the TTFT, the others
// ITL apart), flushed one by one: a 440 Hz tone as long as the input
// (speechCharSeconds a character), as wav (a RIFF header, then PCM), pcm
// (raw samples) or mp3 (the default: silent MPEG-1 Layer III frames);
// other formats get 400 here. stream_format "sse" sends
// speech.audio.delta events (base64 audio) and speech.audio.done with
// usage instead.
func (s *Server) serveSpeech(w http.ResponseWriter, r *http.Request) {
	var req speechRequest
	sc, ok := s.accept(w, r, &req, func() string { return req.Model })
	if !ok {
		return
	}
	if msg, param := checkSpeech(req); msg != "" {
		writeError(w, http.StatusBadRequest, apiError{Message: msg, Type: typeInvalidRequest, Param: ptr(param)})
		return
	}
	audio, contentType := speechAudio(*req.Input, req.ResponseFormat)
	if !s.wait(r.Context(), sc.ttft) {
		return
	}
	h := w.Header()
	sse := req.StreamFormat == "sse"
	if sse {
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
	} else {
		h.Set("Content-Type", contentType)
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	size := (len(audio) + speechChunks - 1) / speechChunks
	for i := 0; i < len(audio); i += size {
		if i > 0 && !s.wait(r.Context(), sc.itl) {
			return
		}
		chunk := audio[i:min(i+size, len(audio))]
		if sse {
			fmt.Fprintf(w, "data: %s\n\n", mustEncode(map[string]any{"type": "speech.audio.delta", "audio": base64.StdEncoding.EncodeToString(chunk)}))
		} else {
			_, _ = w.Write(chunk)
		}
		_ = rc.Flush()
	}
	if sse {
		in, out := utf8.RuneCountInString(*req.Input)/4+1, len(audio)/1000
		fmt.Fprintf(w, "data: %s\n\n", mustEncode(map[string]any{"type": "speech.audio.done",
			"usage": map[string]int{"input_tokens": in, "output_tokens": out, "total_tokens": in + out}}))
		_ = rc.Flush()
	}
	s.markCompleted()
}

// checkSpeech returns the OpenAI API's message and param for a request it
// refuses, or "".
func checkSpeech(req speechRequest) (msg, param string) {
	switch {
	case req.Input == nil:
		return "Missing required parameter: 'input'.", "input"
	case *req.Input == "":
		return "Invalid 'input': empty string. Expected a string with minimum length 1, but got an empty string instead.", "input"
	case utf8.RuneCountInString(*req.Input) > maxSpeechInput:
		return fmt.Sprintf("Invalid 'input': string too long. Expected a string with maximum length %d, but got a string with length %d instead.", maxSpeechInput, utf8.RuneCountInString(*req.Input)), "input"
	case req.Voice == nil:
		return "Missing required parameter: 'voice'.", "voice"
	case req.StreamFormat != "" && req.StreamFormat != "sse" && req.StreamFormat != "audio":
		return fmt.Sprintf("Invalid value: '%s'. Supported values are: 'sse' and 'audio'.", clipValue(req.StreamFormat)), "stream_format"
	}
	switch req.ResponseFormat {
	case "", "mp3", "wav", "pcm":
		return "", ""
	}
	return fmt.Sprintf("fakellm generates mp3, wav and pcm only, not '%s'.", clipValue(req.ResponseFormat)), "response_format"
}

// speechAudio is the audio of input in format, and its content type.
func speechAudio(input, format string) ([]byte, string) {
	n := int(float64(utf8.RuneCountInString(input)) * speechCharSeconds * speechRate)
	switch format {
	case "pcm":
		return tone(nil, n), "audio/pcm"
	case "wav":
		return tone(wavHeader(n), n), "audio/wav"
	}
	return silentMP3(float64(n) / speechRate), "audio/mpeg"
}

// tone appends n samples of a 440 Hz tone (16-bit little-endian) to b.
func tone(b []byte, n int) []byte {
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/speechRate))
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// wavHeader is the RIFF/WAVE header of n 16-bit mono samples.
func wavHeader(n int) []byte {
	data := uint32(2 * n)
	b := make([]byte, 0, 44+2*n)
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, 36+data)
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1) // PCM
	b = binary.LittleEndian.AppendUint16(b, 1) // mono
	b = binary.LittleEndian.AppendUint32(b, speechRate)
	b = binary.LittleEndian.AppendUint32(b, speechRate*2)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	return binary.LittleEndian.AppendUint32(b, data)
}

// silentMP3 is seconds of silence as MPEG-1 Layer III frames (128 kbit/s,
// 44.1 kHz, 417 bytes and 1152 samples a frame): a frame header and zero
// side information and data decode to silence.
func silentMP3(seconds float64) []byte {
	frames := max(1, int(math.Ceil(seconds*44100/1152)))
	b := make([]byte, 0, frames*417)
	for range frames {
		b = append(b, 0xFF, 0xFB, 0x90, 0x64)
		b = append(b, make([]byte, 413)...)
	}
	return b
}
