package tokens

import (
	"strings"

	"github.com/tidwall/gjson"
)

// Images is what an OpenAI Images API response reported about the images
// it carried: how many (the objects of a body's data array, or a
// stream's completed events), and the size and quality it states ("" when
// it states none). Count 0 means none were seen: the caller falls back to
// the n the request asked for.
type Images struct {
	Count         int64
	Size, Quality string
}

// imageEvents are the event types that carry one finished image (the
// generations and edits streams); partial images are previews of it.
const (
	imageGenerationCompleted = "image_generation.completed"
	imageEditCompleted       = "image_edit.completed"
)

// imagesEvent reads one Images API stream event: a completed event counts
// one image, adds its usage (each carries its own image's) and states the
// size and quality.
func (m *StreamMeter) imagesEvent(payload []byte) {
	typ := gjson.GetBytes(payload, "type")
	if typ.Str != imageGenerationCompleted && typ.Str != imageEditCompleted {
		return
	}
	m.images.Count++
	if u, ok := ParseResponsesUsage(gjson.GetBytes(payload, "usage")); ok {
		m.usage.Input += u.Input
		m.usage.Output += u.Output
		m.found = true
	}
	if s := gjson.GetBytes(payload, "size"); s.Type == gjson.String && m.images.Size == "" {
		m.images.Size = strings.Clone(s.Str)
	}
	if q := gjson.GetBytes(payload, "quality"); q.Type == gjson.String && m.images.Quality == "" {
		m.images.Quality = strings.Clone(q.Str)
	}
}

// ImagesSeen returns what an Images API stream reported so far (Images mode).
func (m *StreamMeter) ImagesSeen() Images { return m.images }
