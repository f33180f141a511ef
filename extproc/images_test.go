package extproc

import (
	"bytes"
	"mime/multipart"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/form"
)

// imagePrices prices the test model's images by size, and quality.
const imagePrices = `telemetry: {usage: false, prices: {public: {input_per_million: 5, output_per_million: 40, per_image: {"1024x1024": 0.04, "1024x1024/high": 0.17, "auto": 0.05}}}}`

func TestImagesCostByCountSizeAndQuality(t *testing.T) {
	const usage = `"usage":{"input_tokens":10,"input_tokens_details":{"image_tokens":0,"text_tokens":10},"output_tokens":4160,"total_tokens":4170}`
	for name, tc := range map[string]struct {
		request, contentType, response string
		images                         int64
		cost                           float64
		usage                          bool
	}{
		"two images priced by the size asked": {`{"model":"public","prompt":"a cat","n":2,"size":"1024x1024"}`, "application/json",
			`{"created":1,"data":[{"url":"https://x/1.png"},{"url":"https://x/2.png"}]}`, 2, 2 * 0.04, false},
		"the size and quality the response states win, tokens priced too": {`{"model":"public","prompt":"a cat","size":"auto"}`, "application/json",
			`{"created":1,"data":[{"b64_json":"QUJD"}],"quality":"high","size":"1024x1024",` + usage + `}`, 1, 0.17 + (10*5+4160*40)/1e6, true},
		"no size anywhere is auto": {`{"model":"public","prompt":"a cat"}`, "application/json",
			`{"created":1,"data":[{"b64_json":"QUJD"}]}`, 1, 0.05, false},
		"an unpriced size costs nothing": {`{"model":"public","prompt":"a cat","size":"256x256"}`, "application/json",
			`{"created":1,"data":[{"b64_json":"QUJD"}]}`, 1, 0, false},
		"a stream's completed events": {`{"model":"public","prompt":"a cat","n":2,"size":"1024x1024","stream":true,"partial_images":1}`, "text/event-stream",
			"event: image_generation.partial_image\ndata: {\"type\":\"image_generation.partial_image\",\"b64_json\":\"QUJD\",\"partial_image_index\":0}\n\n" +
				"event: image_generation.completed\ndata: {\"type\":\"image_generation.completed\",\"b64_json\":\"QUJD\",\"size\":\"1024x1024\",\"quality\":\"medium\",\"usage\":{\"input_tokens\":5,\"output_tokens\":100,\"total_tokens\":105}}\n\n" +
				"event: image_generation.completed\ndata: {\"type\":\"image_generation.completed\",\"b64_json\":\"QUJD\",\"size\":\"1024x1024\",\"quality\":\"medium\",\"usage\":{\"input_tokens\":5,\"output_tokens\":100,\"total_tokens\":105}}\n\n",
			2, 2*0.04 + (10*5+200*40)/1e6, true},
	} {
		t.Run(name, func(t *testing.T) {
			p, reg, _ := telemetryProcessor(t, imagePrices)
			p.Tenant = "acme"
			hr := p.handle(reqHeaders("POST", "/v1/images/generations", false))
			require.NotNil(t, hr.GetModeOverride(), "priced images are read without telemetry.usage")
			br := p.handle(bodyMsg(tc.request))
			sent := br.GetRequestBody().GetResponse()
			require.NotNil(t, sent, "%v", br)
			assert.Equal(t, strings.Replace(tc.request, `"public"`, `"private"`, 1), string(sent.GetBodyMutation().GetBody()), "only the model is rewritten")
			p.handle(respHeaders("200", tc.contentType))
			cut := len(tc.response) / 3
			first := p.handle(respBody(tc.response[:cut], false))
			assert.Nil(t, first.GetResponseBody().GetResponse(), "the body passes untouched")
			last := p.handle(respBody(tc.response[cut:], true))
			assert.Nil(t, last.GetResponseBody().GetResponse(), "the body passes untouched")
			md := last.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
			require.NotNil(t, md)
			assert.InDelta(t, float64(tc.images), md[contract.MetaImages].GetNumberValue(), 0)
			assert.InDelta(t, tc.cost, md[contract.MetaCostUSD].GetNumberValue(), 1e-12)
			_, hasUsage := md[contract.MetaInputTokens]
			assert.Equal(t, tc.usage, hasUsage)
			assert.NotContains(t, md, contract.MetaTTFTMS, "an image has no first token")
			p.finish()
			assert.InDelta(t, tc.cost, counterValue(t, reg, "streamgate_cost_usd_total", map[string]string{"tenant": "other", "model": "public"}), 1e-12)
		})
	}
}

func TestImagesFailedResponseCostsNothing(t *testing.T) {
	p, _, _ := telemetryProcessor(t, imagePrices)
	p.handle(reqHeaders("POST", "/v1/images/generations", false))
	p.handle(bodyMsg(`{"model":"public","prompt":"a cat","n":3,"size":"1024x1024"}`))
	p.handle(respHeaders("400", "application/json"))
	last := p.handle(respBody(`{"error":{"message":"Invalid size","type":"invalid_request_error","param":"size","code":"invalid_value"}}`, true))
	md := last.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.NotContains(t, md, contract.MetaImages)
	assert.NotContains(t, md, contract.MetaCostUSD)
}

func TestImagesEndpointsRouteAndRefuse(t *testing.T) {
	p := newTranslationProcessor(t, translationConfig)
	p.handle(requestHeaders("/v1/images/generations"))
	ir := p.handle(requestBody(`{"model":"sonnet","prompt":"a cat"}`)).GetImmediateResponse()
	require.NotNil(t, ir, "an Anthropic backend serves no images")
	assert.Equal(t, 400, int(ir.GetStatus().GetCode()))
	assert.Contains(t, string(ir.GetBody()), `"code":"unsupported_by_backend"`)
	assert.Contains(t, string(ir.GetBody()), "cannot be used with the OpenAI Images API")

	for name, tc := range map[string]struct {
		body   string
		status int
		want   string
	}{
		"missing model": {`{"prompt":"a cat"}`, 400, `"message":"You must provide a model parameter."`},
		"unknown model": {`{"model":"nope","prompt":"a cat"}`, 404, `"code":"model_not_found"`},
		"not JSON":      {`prompt=a+cat`, 400, `"code":"invalid_request"`},
		"n not integer": {`{"model":"gpt","prompt":"a cat","n":"2"}`, 400, `"code":"invalid_request"`},
	} {
		t.Run(name, func(t *testing.T) {
			p := newTranslationProcessor(t, translationConfig)
			p.handle(requestHeaders("/v1/images/generations"))
			ir := p.handle(requestBody(tc.body)).GetImmediateResponse()
			require.NotNil(t, ir)
			assert.Equal(t, tc.status, int(ir.GetStatus().GetCode()))
			assert.Contains(t, string(ir.GetBody()), tc.want)
		})
	}
}

// counterValue is the value of the counter series name{want}, 0 when
// there is none.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// editForm is an edit as the OpenAI SDK sends it: fields, then image[]
// files.
func editForm(t *testing.T, fields ...string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	require.NoError(t, w.SetBoundary("sg-edit-boundary"))
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	for _, name := range []string{"a.png", "b.png"} {
		fw, err := w.CreateFormFile("image[]", name)
		require.NoError(t, err)
		_, _ = fw.Write([]byte("\x89PNG-SECRET-IMAGE"))
	}
	require.NoError(t, w.Close())
	return w.FormDataContentType(), b.Bytes()
}

func TestImageEditRoutedFromTheFormAndPriced(t *testing.T) {
	p, _, _ := telemetryProcessor(t, imagePrices)
	ct, body := editForm(t, "model", "public", "prompt", "add a hat", "n", "2", "size", "1024x1024", "quality", "high")
	hr := p.handle(reqHeaders("POST", "/v1/images/edits", false, "content-type", ct, "content-length", strconv.Itoa(len(body))))
	require.NotNil(t, hr.GetRequestHeaders(), "%v", hr)
	br := p.handle(bodyMsg(string(body)))
	common := br.GetRequestBody().GetResponse()
	require.NotNil(t, common, "%v", br)
	out := common.GetBodyMutation().GetBody()
	f, err := form.Read(ct, out, form.Limits{})
	require.NoError(t, err)
	assert.Equal(t, "private", f.Model, "the upstream model is in the model field")
	assert.Equal(t, []string{"image[]", "image[]"}, f.FileFields, "the files pass")
	assert.Equal(t, int64(2), p.info.Tokens.N)

	p.handle(respHeaders("200", "application/json"))
	// A backend that states nothing: n images at the size and quality asked.
	last := p.handle(respBody(`{"created":1,"data":[{"url":"u1"},{"url":"u2"}]}`, true))
	md := last.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.InDelta(t, 2, md[contract.MetaImages].GetNumberValue(), 0)
	assert.InDelta(t, 2*0.17, md[contract.MetaCostUSD].GetNumberValue(), 1e-12)
}

func TestImageEditRefusals(t *testing.T) {
	ct, noModel := editForm(t, "prompt", "p")
	_, badN := editForm(t, "model", "public", "prompt", "p", "n", "two")
	_, zeroN := editForm(t, "model", "public", "prompt", "p", "n", "0")
	_, unknown := editForm(t, "model", "nope", "prompt", "p")
	_, good := editForm(t, "model", "public", "prompt", "p")
	for name, tc := range map[string]struct {
		ct     string
		body   []byte
		status int
		want   string
	}{
		"missing model":  {ct, noModel, 400, "You must provide a model parameter."},
		"n not a number": {ct, badN, 400, "The n parameter must be an integer from 1 to"},
		"n zero":         {ct, zeroN, 400, "The n parameter must be an integer from 1 to"},
		"unknown model":  {ct, unknown, 404, "model_not_found"},
		"a JSON body":    {"application/json", []byte(`{"model":"public","prompt":"p"}`), 400, "multipart/form-data"},
		"cut short":      {ct, good[:len(good)-10], 400, "closing boundary"},
	} {
		t.Run(name, func(t *testing.T) {
			p, _, _ := telemetryProcessor(t, imagePrices)
			resp := p.handle(reqHeaders("POST", "/v1/images/edits", false, "content-type", tc.ct))
			ir := resp.GetImmediateResponse()
			if ir == nil {
				ir = p.handle(bodyMsg(string(tc.body))).GetImmediateResponse()
			}
			require.NotNil(t, ir)
			assert.Equal(t, tc.status, int(ir.GetStatus().GetCode()))
			assert.Contains(t, string(ir.GetBody()), tc.want)
			assert.NotContains(t, string(ir.GetBody()), "SECRET")
		})
	}
}
