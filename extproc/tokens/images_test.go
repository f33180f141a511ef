package tokens

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/sse"
)

// imagesBody is an Images API answer as gpt-image models give it: base64
// images whose text holds braces, the size and quality, the usage.
const imagesBody = `{"created":1,"background":"opaque","data":[{"b64_json":"iVB{[\"}"},{"b64_json":"x","revised_prompt":"{a}"}],` +
	`"output_format":"png","quality":"high","size":"1024x1024",` +
	`"usage":{"input_tokens":50,"input_tokens_details":{"image_tokens":0,"text_tokens":50},"output_tokens":4160,"total_tokens":4210}}`

func feedImages(body string, cuts ...int) *BodyMeter {
	m := &BodyMeter{Images: true}
	prev := 0
	for _, c := range cuts {
		m.Feed([]byte(body[prev:c]), false)
		prev = c
	}
	m.Feed([]byte(body[prev:]), true)
	return m
}

func TestBodyMeterReadsImagesAtAnySplit(t *testing.T) {
	for cut := 0; cut <= len(imagesBody); cut++ {
		m := feedImages(imagesBody, cut)
		assert.Equal(t, Images{Count: 2, Size: "1024x1024", Quality: "high"}, m.ImagesSeen(), "cut at %d", cut)
		u, ok := m.Usage()
		require.True(t, ok, "cut at %d", cut)
		assert.Equal(t, Usage{Input: 50, Output: 4160}, u)
	}
}

func TestBodyMeterImages(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want Images
		ok   bool
	}{
		"dall-e url answer without usage":  {`{"created":1,"data":[{"url":"https://x/y.png","revised_prompt":"p"}]}`, Images{Count: 1}, false},
		"no data":                          {`{"created":1}`, Images{}, false},
		"empty data":                       {`{"created":1,"data":[]}`, Images{}, false},
		"nested objects are not images":    {`{"data":[{"a":{"b":{}}},{}]}`, Images{Count: 2}, false},
		"a second data member is not read": {`{"data":[{}],"data":[{},{}]}`, Images{Count: 1}, false},
		"data not top level":               {`{"x":{"data":[{}]}}`, Images{}, false},
		"size not a string":                {`{"data":[{}],"size":1024}`, Images{Count: 1}, false},
		"an error body":                    {`{"error":{"message":"bad size","type":"invalid_request_error","param":"size"}}`, Images{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			m := feedImages(tc.body)
			assert.Equal(t, tc.want, m.ImagesSeen())
			_, ok := m.Usage()
			assert.Equal(t, tc.ok, ok)
		})
	}
}

func TestBodyMeterOutsideImagesModeCountsNothing(t *testing.T) {
	m := &BodyMeter{}
	m.Feed([]byte(imagesBody), true)
	assert.Equal(t, Images{}, m.ImagesSeen())
	_, ok := m.Usage()
	assert.False(t, ok, "a chat meter does not read input_tokens")
}

// imagesStream is a streamed generation of two images with a partial
// image each, as the Images API sends it.
var imagesStream = "event: image_generation.partial_image\ndata: {\"type\":\"image_generation.partial_image\",\"b64_json\":\"QUJD\",\"partial_image_index\":0,\"size\":\"1024x1024\",\"quality\":\"low\"}\n\n" +
	"event: image_generation.completed\ndata: {\"type\":\"image_generation.completed\",\"b64_json\":\"QUJD\",\"size\":\"1024x1024\",\"quality\":\"low\",\"usage\":{\"input_tokens\":5,\"input_tokens_details\":{\"image_tokens\":0,\"text_tokens\":5},\"output_tokens\":272,\"total_tokens\":277}}\n\n" +
	"event: image_generation.partial_image\ndata: {\"type\":\"image_generation.partial_image\",\"b64_json\":\"QUJD\",\"partial_image_index\":0}\n\n" +
	"event: image_generation.completed\ndata: {\"type\":\"image_generation.completed\",\"b64_json\":\"QUJD\",\"size\":\"1024x1024\",\"quality\":\"low\",\"usage\":{\"input_tokens\":5,\"output_tokens\":272,\"total_tokens\":277}}\n\n"

func TestStreamMeterReadsImagesAtAnySplit(t *testing.T) {
	for cut := 0; cut <= len(imagesStream); cut++ {
		m := &StreamMeter{Images: true}
		require.Equal(t, imagesStream, feedSplit(m, imagesStream, []int{cut}), "an Images stream passes untouched")
		assert.Equal(t, Images{Count: 2, Size: "1024x1024", Quality: "low"}, m.ImagesSeen(), "cut at %d", cut)
		u, ok := m.Usage()
		require.True(t, ok, "cut at %d", cut)
		assert.Equal(t, Usage{Input: 10, Output: 544}, u, "each image's usage adds up")
	}
}

func TestStreamMeterImagesEditEventsAndErrors(t *testing.T) {
	s := "event: image_edit.completed\ndata: {\"type\":\"image_edit.completed\",\"b64_json\":\"x\",\"size\":\"512x512\"}\n\n" +
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"message\":\"m\"}}\n\n"
	m := &StreamMeter{Images: true}
	feedSplit(m, s, nil)
	assert.Equal(t, Images{Count: 1, Size: "512x512"}, m.ImagesSeen())
	_, ok := m.Usage()
	assert.False(t, ok)
}

// FuzzBodyMeterImages holds the image count to gjson on whole valid
// bodies, and to itself across any chunk split.
func FuzzBodyMeterImages(f *testing.F) {
	f.Add(imagesBody, 10, 70)
	f.Add(`{"data":[{"b64_json":"\\\"{"},{}],"size":"1x1"}`, 3, 20)
	f.Add(`{"d\u0061ta":[{}],"usage":{"input_tokens":1,"output_tokens":2}}`, 1, 2)
	f.Fuzz(func(t *testing.T, body string, cut, cut2 int) {
		if cut < 0 || cut > len(body) {
			cut = len(body) / 2
		}
		if cut2 < cut || cut2 > len(body) {
			cut2 = cut
		}
		whole, split := feedImages(body), feedImages(body, cut, cut2)
		u1, ok1 := whole.Usage()
		u2, ok2 := split.Usage()
		if whole.ImagesSeen() != split.ImagesSeen() || u1 != u2 || ok1 != ok2 {
			t.Fatalf("cuts at %d,%d changed what was read: %+v / %+v", cut, cut2, whole.ImagesSeen(), split.ImagesSeen())
		}
		if !gjson.Valid(body) || !gjson.Parse(body).IsObject() || len(body) > maxMember {
			return
		}
		want := int64(0)
		gjson.Get(body, "data").ForEach(func(_, v gjson.Result) bool {
			if v.IsObject() {
				want++
			}
			return true
		})
		if d := gjson.Get(body, "data"); !d.IsArray() || strings.Contains(body, `\u`) {
			return // escaped keys and non-array data: not compared
		}
		if got := whole.ImagesSeen().Count; got != want {
			t.Fatalf("counted %d images, gjson %d", got, want)
		}
	})
}

// FuzzStreamMeterImages: an Images-mode meter never changes the stream and
// reads the same images and usage however the stream is cut.
func FuzzStreamMeterImages(f *testing.F) {
	f.Add([]byte(imagesStream), 40)
	f.Add([]byte("data: {\"type\":\"image_edit.completed\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}\r\n\r\n"), 5)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		if cut < 0 || cut > len(data) {
			cut = len(data) / 2
		}
		whole := &StreamMeter{Images: true}
		whole.Feed(data, true)
		m := &StreamMeter{Images: true}
		a, _ := m.Feed(data[:cut], false)
		b, _ := m.Feed(data[cut:], true)
		if string(a)+string(b) != string(data) {
			t.Fatal("an Images meter changed the stream")
		}
		u1, ok1 := whole.Usage()
		u2, ok2 := m.Usage()
		if u1 != u2 || ok1 != ok2 || whole.ImagesSeen() != m.ImagesSeen() {
			t.Fatalf("cut at %d changed what was read: %v %v / %v %v", cut, u1, ok1, u2, ok2)
		}
	})
}

// TestStreamMeterReadsImagesOfAnySize: a final image far over the 1 MiB
// event bound, in 16 KiB chunks, is counted and its usage read without
// holding it; the stream passes untouched.
func TestStreamMeterReadsImagesOfAnySize(t *testing.T) {
	b64 := strings.Repeat("QUJD", 1<<20) // 4 MiB
	stream := "event: image_generation.partial_image\ndata: {\"type\":\"image_generation.partial_image\",\"b64_json\":\"" + b64 + "\",\"partial_image_index\":0}\n\n" +
		"event: image_generation.completed\r\ndata: {\"type\":\"image_generation.completed\",\"b64_json\":\"" + b64 + "\",\r\ndata: \"size\":\"1536x1024\",\"quality\":\"high\",\"usage\":{\"input_tokens\":7,\"output_tokens\":6240,\"total_tokens\":6247}}\r\n\r\n"
	m := &StreamMeter{Images: true}
	var cuts []int
	for c := 16 << 10; c < len(stream); c += 16 << 10 {
		cuts = append(cuts, c)
	}
	require.Equal(t, stream, feedSplit(m, stream, cuts))
	assert.False(t, m.Truncated())
	assert.Equal(t, Images{Count: 1, Size: "1536x1024", Quality: "high"}, m.ImagesSeen())
	u, ok := m.Usage()
	require.True(t, ok)
	assert.Equal(t, Usage{Input: 7, Output: 6240}, u)
}

// referenceImages reads an Images stream the plain way: whole events from
// sse.Decoder, each parsed by gjson. ok is false when an event's data is
// not a JSON object, where the two readers need not agree.
func referenceImages(data []byte) (Images, Usage, bool, bool) {
	var d sse.Decoder
	d.MaxEventSize = 1 << 30
	d.Feed(data)
	d.Close()
	var im Images
	var u Usage
	found := false
	for {
		ev, more, err := d.Next()
		if err != nil || !more {
			break
		}
		if !gjson.ValidBytes(ev.Data) || !gjson.ParseBytes(ev.Data).IsObject() {
			return im, u, found, false
		}
		if typ := gjson.GetBytes(ev.Data, "type").Str; typ != imageGenerationCompleted && typ != imageEditCompleted {
			continue
		}
		im.Count++
		if eu, ok := ParseResponsesUsage(gjson.GetBytes(ev.Data, "usage")); ok {
			u.Input += eu.Input
			u.Output += eu.Output
			found = true
		}
		if s := gjson.GetBytes(ev.Data, "size"); s.Type == gjson.String && im.Size == "" {
			im.Size = s.Str
		}
		if q := gjson.GetBytes(ev.Data, "quality"); q.Type == gjson.String && im.Quality == "" {
			im.Quality = q.Str
		}
	}
	return im, u, found, true
}

// FuzzStreamMeterImagesAgreesWithDecoder holds the streaming image
// scanner to sse.Decoder and gjson on streams of JSON events, at any cut.
func FuzzStreamMeterImagesAgreesWithDecoder(f *testing.F) {
	f.Add([]byte(imagesStream), 40)
	f.Add([]byte("data:{\"type\":\"image_edit.completed\",\r\ndata:\"size\":\"1x1\"}\r\rdata\n\n"), 7)
	f.Add([]byte(": comment\nevent: x\ndata: {\"type\":\"image_generation.completed\"}"), 12)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		if cut < 0 || cut > len(data) {
			cut = len(data) / 2
		}
		want, wu, wok, comparable := referenceImages(data)
		m := &StreamMeter{Images: true}
		m.Feed(data[:cut], false)
		m.Feed(data[cut:], true)
		if !comparable || strings.Contains(string(data), `\u`) {
			return // escaped keys: gjson and the meter may differ on invalid escapes
		}
		u, ok := m.Usage()
		if m.ImagesSeen() != want || u != wu || ok != wok {
			t.Fatalf("meter %+v %v %v, reference %+v %v %v", m.ImagesSeen(), u, ok, want, wu, wok)
		}
	})
}

// BenchmarkStreamMeterImages4MiB meters a streamed final image of 4 MiB of
// base64 in 16 KiB chunks, as Envoy sends them.
func BenchmarkStreamMeterImages4MiB(b *testing.B) {
	stream := []byte("event: image_generation.completed\ndata: {\"type\":\"image_generation.completed\",\"b64_json\":\"" + strings.Repeat("QUJD", 1<<20) +
		"\",\"size\":\"1024x1024\",\"usage\":{\"input_tokens\":7,\"output_tokens\":4160,\"total_tokens\":4167}}\n\n")
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		m := &StreamMeter{Images: true}
		for c := 0; c < len(stream); c += 16 << 10 {
			m.Feed(stream[c:min(c+16<<10, len(stream))], c+16<<10 >= len(stream))
		}
		if m.ImagesSeen().Count != 1 {
			b.Fatal("no image counted")
		}
	}
}
