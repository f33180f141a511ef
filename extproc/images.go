package extproc

import (
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/tokens"
)

// The OpenAI Images API: POST /v1/images/generations ({model, prompt, n,
// size, quality, response_format, stream, partial_images}, JSON) and
// POST /v1/images/edits (the same fields and image files, multipart).
// Both take the generic path of onRequestBody: routed by model,
// authorized, limited on an input estimate of the prompt with no output
// reserved (generates), passed to OpenAI-protocol backends as is and
// refused on others. The response is metered in images mode
// (tokens.BodyMeter.Images, tokens.StreamMeter.Images): a GPT image
// model's usage (input_tokens, output_tokens) reconciles the reservation,
// and the images it carried, at the size and quality it states, are
// priced by telemetry.prices[model].per_image (imageCost). Streams
// (image_generation.partial_image and .completed events) pass untouched.

// imageRequest is what an Images API request states about the images it
// asks for, read for their price when the response states less.
type imageRequest struct {
	size, quality string
}

// isImages reports whether e is an Images API endpoint.
func isImages(e endpoint) bool {
	return e == endpointImageGenerations || e == endpointImageEdits
}

// readImageRequest reads the size and quality of a JSON Images request
// that parseRequest accepted. Cost: one scan of the top-level keys.
func readImageRequest(body []byte) imageRequest {
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
	return r
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
