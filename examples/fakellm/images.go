package fakellm

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ImagesGenerationsPath and ImagesEditsPath are the OpenAI Images API.
const (
	ImagesGenerationsPath = "/v1/images/generations"
	ImagesEditsPath       = "/v1/images/edits"
)

// imageRequest is the part of an Images API request the server reads
// (the JSON body of a generation, the form fields of an edit).
type imageRequest struct {
	Model          string  `json:"model"`
	Prompt         *string `json:"prompt"`
	N              *int    `json:"n"`
	Size           string  `json:"size"`
	Quality        string  `json:"quality"`
	ResponseFormat string  `json:"response_format"`
	Stream         bool    `json:"stream"`
	PartialImages  *int    `json:"partial_images"`
}

// imageData is one element of an Images response's data.
type imageData struct {
	B64JSON       string `json:"b64_json,omitempty"`
	URL           string `json:"url,omitempty"`
	RevisedPrompt string `json:"revised_prompt,omitempty"`
}

// imageUsage is a GPT image model's usage.
type imageUsage struct {
	InputTokens        int               `json:"input_tokens"`
	InputTokensDetails imageInputDetails `json:"input_tokens_details"`
	OutputTokens       int               `json:"output_tokens"`
	TotalTokens        int               `json:"total_tokens"`
}

type imageInputDetails struct {
	ImageTokens int `json:"image_tokens"`
	TextTokens  int `json:"text_tokens"`
}

// imagesResponse is the Images API's answer.
type imagesResponse struct {
	Created      int64       `json:"created"`
	Background   string      `json:"background,omitempty"`
	Data         []imageData `json:"data"`
	OutputFormat string      `json:"output_format,omitempty"`
	Quality      string      `json:"quality,omitempty"`
	Size         string      `json:"size,omitempty"`
	Usage        *imageUsage `json:"usage,omitempty"`
}

// imageEvent is one event of a streamed generation or edit.
type imageEvent struct {
	Type              string      `json:"type"`
	B64JSON           string      `json:"b64_json"`
	Background        string      `json:"background"`
	CreatedAt         int64       `json:"created_at"`
	OutputFormat      string      `json:"output_format"`
	PartialImageIndex *int        `json:"partial_image_index,omitempty"`
	Quality           string      `json:"quality"`
	Size              string      `json:"size"`
	Usage             *imageUsage `json:"usage,omitempty"`
}

// GPT image sizes, and the legacy (DALL·E) sizes a url answer takes.
var (
	gptImageSizes    = []string{"1024x1024", "1536x1024", "1024x1536", "auto"}
	legacyImageSizes = []string{"256x256", "512x512", "1024x1024", "1792x1024", "1024x1792"}
	gptImageQuality  = []string{"low", "medium", "high", "auto"}
	legacyQuality    = []string{"standard", "hd"}
)

// imageOutputTokens is gpt-image-1's output tokens per image by quality,
// for a square image; oblong ones (1536x1024) take half as many again.
var imageOutputTokens = map[string]int{"low": 272, "medium": 1056, "high": 4160}

// serveImageGenerations answers POST /v1/images/generations as the OpenAI
// Images API does: b64_json images (a small deterministic PNG) with a GPT
// image model's usage, or, with response_format url, URL images without
// usage as DALL·E answers; stream true sends image_generation.partial_image
// and image_generation.completed events. The size, quality, n and
// partial_images are checked as OpenAI checks them, with its error shape.
func (s *Server) serveImageGenerations(w http.ResponseWriter, r *http.Request) {
	var req imageRequest
	sc, ok := s.accept(w, r, &req, func() string { return req.Model })
	if !ok {
		return
	}
	s.answerImages(w, r, req, sc, "image_generation")
}

// answerImages validates req and answers it; kind prefixes stream events
// (image_generation or image_edit).
func (s *Server) answerImages(w http.ResponseWriter, r *http.Request, req imageRequest, sc scenario, kind string) {
	if e, ok := checkImageRequest(&req); !ok {
		writeError(w, http.StatusBadRequest, e)
		return
	}
	if req.Stream {
		s.streamImages(w, r, req, sc, kind)
		return
	}
	resp := imagesResponse{Created: time.Now().Unix()}
	for i := range *req.N {
		if req.ResponseFormat == "url" {
			resp.Data = append(resp.Data, imageData{URL: fmt.Sprintf("https://fakellm.invalid/images/%s-%d.png", imageKey(req, i), i), RevisedPrompt: *req.Prompt})
			continue
		}
		resp.Data = append(resp.Data, imageData{B64JSON: fakePNG(req, i, 0)})
	}
	if req.ResponseFormat != "url" {
		resp.Background, resp.OutputFormat, resp.Quality, resp.Size = "opaque", "png", req.Quality, req.Size
		u := imageUsageOf(req, *req.N)
		resp.Usage = &u
	}
	s.respond(w, r, sc.ttft, sc.fail, mustEncode(resp))
}

// checkImageRequest applies OpenAI's checks and defaults (n 1, size and
// quality as the model chooses for auto) to req.
func checkImageRequest(req *imageRequest) (apiError, bool) {
	invalid := func(param, code, msg string) (apiError, bool) {
		return apiError{Message: msg, Type: typeInvalidRequest, Param: ptr(param), Code: ptr(code)}, false
	}
	if req.Prompt == nil || *req.Prompt == "" {
		return invalid("prompt", "missing_required_parameter", "Missing required parameter: 'prompt'.")
	}
	if req.N == nil {
		req.N = ptr(1)
	}
	switch n := *req.N; {
	case n < 1:
		return invalid("n", "integer_below_min_value", fmt.Sprintf("Invalid 'n': integer below minimum value. Expected a value >= 1, but got %d instead.", n))
	case n > 10:
		return invalid("n", "integer_above_max_value", fmt.Sprintf("Invalid 'n': integer above maximum value. Expected a value <= 10, but got %d instead.", n))
	}
	sizes, qualities := gptImageSizes, gptImageQuality
	switch req.ResponseFormat {
	case "", "b64_json":
	case "url":
		sizes, qualities = legacyImageSizes, legacyQuality
		if req.Stream {
			return invalid("stream", "invalid_value", "Streaming is only supported for GPT image models, which return b64_json.")
		}
	default:
		return invalid("response_format", "invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are: 'url' and 'b64_json'.", req.ResponseFormat))
	}
	if req.Size == "" {
		req.Size = sizes[0]
	}
	if !slices.Contains(sizes, req.Size) {
		return invalid("size", "invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", req.Size, quoteList(sizes)))
	}
	if req.Size == "auto" {
		req.Size = "1024x1024"
	}
	if req.Quality == "" || req.Quality == "auto" {
		req.Quality = qualities[0]
		if req.ResponseFormat != "url" {
			req.Quality = "medium"
		}
	}
	if !slices.Contains(qualities, req.Quality) {
		return invalid("quality", "invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", req.Quality, quoteList(qualities)))
	}
	if p := req.PartialImages; p != nil && (*p < 0 || *p > 3) {
		return invalid("partial_images", "invalid_value", fmt.Sprintf("Invalid 'partial_images': expected a value between 0 and 3, but got %d instead.", *p))
	}
	return apiError{}, true
}

// quoteList renders values as OpenAI's messages list them: 'a', 'b', and 'c'.
func quoteList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = "'" + v + "'"
	}
	return strings.Join(q[:len(q)-1], ", ") + ", and " + q[len(q)-1]
}

// imageUsageOf is gpt-image-1's usage for n images of req: the prompt's
// words as text tokens, the output tokens of its size and quality.
func imageUsageOf(req imageRequest, n int) imageUsage {
	in := len(strings.Fields(*req.Prompt))
	out := imageOutputTokens[req.Quality]
	if req.Size != "1024x1024" {
		out += out / 2
	}
	out *= n
	return imageUsage{InputTokens: in, InputTokensDetails: imageInputDetails{TextTokens: in}, OutputTokens: out, TotalTokens: in + out}
}

// streamImages sends each image's partial images then its completed event
// (carrying that image's usage), as the Images API streams.
func (s *Server) streamImages(w http.ResponseWriter, r *http.Request, req imageRequest, sc scenario, kind string) {
	if !s.wait(r.Context(), sc.ttft) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	partials := 0
	if req.PartialImages != nil {
		partials = *req.PartialImages
	}
	ev := imageEvent{Background: "opaque", CreatedAt: time.Now().Unix(), OutputFormat: "png", Quality: req.Quality, Size: req.Size}
	for i := range *req.N {
		for p := range partials {
			ev.Type, ev.B64JSON, ev.PartialImageIndex, ev.Usage = kind+".partial_image", fakePNG(req, i, p+1), ptr(p), nil
			if !s.sendImageEvent(w, rc, r, ev, sc.itl) {
				return
			}
		}
		if sc.fail == failMidstream {
			panic(http.ErrAbortHandler)
		}
		u := imageUsageOf(req, 1)
		ev.Type, ev.B64JSON, ev.PartialImageIndex, ev.Usage = kind+".completed", fakePNG(req, i, 0), nil, &u
		if !s.sendImageEvent(w, rc, r, ev, sc.itl) {
			return
		}
	}
	s.markCompleted()
}

// sendImageEvent writes one named event after delay; false when the
// client went away.
func (s *Server) sendImageEvent(w http.ResponseWriter, rc *http.ResponseController, r *http.Request, ev imageEvent, delay time.Duration) bool {
	if !s.wait(r.Context(), delay) {
		return false
	}
	data := fmt.Appendf(nil, "event: %s\ndata: %s\n\n", ev.Type, mustEncode(ev))
	if _, err := w.Write(data); err != nil || rc.Flush() != nil {
		s.markCancelled()
		return false
	}
	return true
}

// imageKey names req's i-th image: a hash of the model, prompt and index.
func imageKey(req imageRequest, i int) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%s\x00%d", req.Model, *req.Prompt, i)
	return fmt.Sprintf("%08x", h.Sum32())
}

// fakePNG is a real 8x8 PNG, base64-encoded, whose colour is derived from
// the request and image index and whose brightness grows with each partial
// image (pass 1..3; 0 is the final image): the same request always gets
// the same bytes.
func fakePNG(req imageRequest, i, pass int) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%s\x00%d", req.Model, *req.Prompt, i)
	sum := h.Sum32()
	c := color.NRGBA{R: uint8(sum), G: uint8(sum >> 8), B: uint8(sum >> 16), A: 255}
	if pass > 0 {
		c.A = uint8(64 * pass)
	}
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for y := range 8 {
		for x := range 8 {
			img.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(fmt.Sprintf("fakellm: cannot encode PNG: %v", err))
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}
