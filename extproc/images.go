package extproc

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/tokens"
)

// The OpenAI Images API: POST /v1/images/generations ({model, prompt, n,
// size, quality, response_format, stream, partial_images}, JSON) and
// POST /v1/images/edits (the same fields with image[] files and a mask,
// multipart/form-data: an upload, read by extproc/form as the audio
// uploads are, capped by gateway.max_upload_bytes, the files never copied
// or logged). Both take the generic path of onRequestBody: routed by model,
// authorized, limited on an input estimate of the prompt with no output
// reserved (generates), passed to OpenAI-protocol backends as is and
// refused on others. The response is metered in images mode
// (tokens.BodyMeter.Images, tokens.StreamMeter.Images): a GPT image
// model's usage (input_tokens, output_tokens) reconciles the reservation,
// and the images it carried, at the size and quality it states, are
// priced by telemetry.prices[model].per_image (Prices.ImageCost). Streams
// (image_generation.partial_image and .completed events) pass untouched,
// scanned as they pass without holding an event (tokens.imageStream).

// imageRequest is what an Images API request states about the images it
// asks for, read for their price when the response states less.
type imageRequest struct {
	size, quality string
}

// isImages reports whether e is an Images API endpoint.
func isImages(e endpoint) bool {
	return e == endpointImageGenerations || e == endpointImageEdits
}

// readImageRequest reads the size and quality of an Images request: the
// form fields of an edit (whose n it reads too: parseBody reads forms for
// any upload), the JSON of a generation that parseRequest accepted. Cost:
// one scan of the top-level keys, or of the form's text fields.
func (p *processor) readImageRequest(body []byte) (imageRequest, error) {
	if p.up != nil && p.up.form != nil {
		return p.readImageForm()
	}
	var r imageRequest
	for i, v := range gjson.GetManyBytes(body, "size", "quality") {
		if v.Type != gjson.String {
			continue
		}
		if i == 0 {
			r.size = strings.Clone(v.Str)
		} else {
			r.quality = strings.Clone(v.Str)
		}
	}
	return r, nil
}

// readImageForm reads an edit's size, quality and n form fields (the
// OpenAI SDKs send n as its decimal text).
func (p *processor) readImageForm() (imageRequest, error) {
	var r imageRequest
	r.size, _ = p.up.form.Value("size")
	r.quality, _ = p.up.form.Value("quality")
	if v, ok := p.up.form.Value("n"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > MaxN {
			return imageRequest{}, reject(ErrBadForm, "The n parameter must be an integer from 1 to %d.", MaxN)
		}
		p.info.Tokens.N = n
	}
	return r, nil
}

// imagesMade is what a finished Images request produced, as priced: the
// images the response carried (the n the request asked for when the meter
// saw none, or stopped reading), at the size and quality the response
// states, else the request's, else "auto". Zero for a response that failed
// or was not observed.
func (p *processor) imagesMade() tokens.Images {
	if !isImages(p.endpoint) || p.status < http.StatusOK || p.status >= http.StatusMultipleChoices || p.answered {
		return tokens.Images{}
	}
	var seen tokens.Images
	truncated := false
	switch {
	case p.meter.stream != nil:
		seen, truncated = p.meter.stream.ImagesSeen(), p.meter.stream.Truncated()
	case p.meter.body != nil:
		seen = p.meter.body.ImagesSeen()
	default:
		return tokens.Images{} // passed unread: nothing known
	}
	if seen.Count == 0 || truncated {
		seen.Count = max(seen.Count, p.info.Tokens.N)
	}
	if seen.Size == "" {
		seen.Size = p.img.size
	}
	if seen.Size == "" {
		seen.Size = "auto"
	}
	if seen.Quality == "" {
		seen.Quality = p.img.quality
	}
	return seen
}
