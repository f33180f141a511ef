package extproc

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/form"
)

// audioForm is an upload as the OpenAI SDK sends it: fields, then the file.
func audioForm(t *testing.T, fields ...string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	require.NoError(t, w.SetBoundary("sg-test-boundary"))
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	fw, err := w.CreateFormFile("file", "a.wav")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("RIFF-SECRET-AUDIO"))
	require.NoError(t, w.Close())
	return w.FormDataContentType(), b.Bytes()
}

func uploadProcessor(t *testing.T) *processor {
	p := newTestProcessor(t)
	p.maxUpload = 4096 // above the test config's 1 KiB body cap
	return p
}

func TestTranscriptionRoutesAndRewritesTheModelField(t *testing.T) {
	p := uploadProcessor(t)
	ct, body := audioForm(t, "model", "public", "stream", "true", "prompt", "hello")
	hr := p.handle(reqHeaders("POST", "/v1/audio/transcriptions", false, "content-type", ct, "content-length", strconv.Itoa(len(body))))
	require.NotNil(t, hr.GetRequestHeaders(), "%v", hr)
	br := p.handle(bodyMsg(string(body)))
	common := br.GetRequestBody().GetResponse()
	require.NotNil(t, common, "%v", br)
	hs := setHeaders(common.GetHeaderMutation())
	assert.Equal(t, "a", hs["x-streamgate-backend"])
	out := common.GetBodyMutation().GetBody()
	assert.Equal(t, strconv.Itoa(len(out)), hs["content-length"])
	f, err := form.Read(ct, out, form.Limits{})
	require.NoError(t, err)
	assert.Equal(t, "private", f.Model, "the upstream model name is in the model field")
	assert.Contains(t, string(out), "RIFF-SECRET-AUDIO", "the file passes")
	assert.True(t, p.info.Stream)
	assert.Equal(t, endpointTranscriptions, p.endpoint)
}

func TestTranscriptionSameModelKeepsTheBody(t *testing.T) {
	p := uploadProcessor(t)
	ct, body := audioForm(t, "model", "same")
	p.handle(reqHeaders("POST", "/v1/audio/translations", false, "content-type", ct))
	br := p.handle(bodyMsg(string(body)))
	require.NotNil(t, br.GetRequestBody(), "%v", br)
	assert.Nil(t, br.GetRequestBody().GetResponse().GetBodyMutation())
}

func TestUploadRefusals(t *testing.T) {
	ct, good := audioForm(t, "model", "public")
	_, noModel := audioForm(t, "prompt", "p")
	_, dup := audioForm(t, "model", "public", "model", "same")
	_, badStream := audioForm(t, "model", "public", "stream", "maybe")
	_, unknown := audioForm(t, "model", "nope")
	for name, tc := range map[string]struct {
		ct     string
		body   []byte
		length int
		status int
	}{
		"json body":            {"application/json", []byte(`{"model":"public"}`), 0, http.StatusBadRequest},
		"no boundary":          {"multipart/form-data", good, 0, http.StatusBadRequest},
		"missing model":        {ct, noModel, 0, http.StatusBadRequest},
		"duplicate model":      {ct, dup, 0, http.StatusBadRequest},
		"stream not a boolean": {ct, badStream, 0, http.StatusBadRequest},
		"truncated":            {ct, good[:len(good)-10], 0, http.StatusBadRequest},
		"unknown model":        {ct, unknown, 0, http.StatusNotFound},
		"over the upload cap":  {ct, good, 5000, http.StatusRequestEntityTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			p := uploadProcessor(t)
			extra := []string{"content-type", tc.ct}
			if tc.length > 0 {
				extra = append(extra, "content-length", strconv.Itoa(tc.length))
			}
			r := p.handle(reqHeaders("POST", "/v1/audio/transcriptions", false, extra...))
			if r.GetImmediateResponse() == nil {
				r = p.handle(bodyMsg(string(tc.body)))
			}
			status, body := immediateStatus(t, r)
			assert.Equal(t, tc.status, status, "%v", body)
			assert.NotContains(t, body["error"].(map[string]any)["message"], "SECRET")
		})
	}
}

func TestUploadCapOnlyOnUploads(t *testing.T) {
	p := uploadProcessor(t)
	r := p.handle(reqHeaders("POST", "/v1/audio/speech", false, "content-type", "application/json", "content-length", "2000"))
	status, _ := immediateStatus(t, r)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status, "speech is JSON: the body cap applies")
	p = uploadProcessor(t)
	r = p.handle(reqHeaders("POST", "/v1/audio/transcriptions", false, "content-type", "multipart/form-data; boundary=x", "content-length", "2000"))
	assert.Nil(t, r.GetImmediateResponse(), "an upload may exceed the body cap up to max_upload_bytes")
}

func TestSpeechReadsNoResponseUnlessASlotNeedsItsEnd(t *testing.T) {
	assert.Equal(t, readNone, speechRead(nil))
	assert.Equal(t, readNone, speechRead(&Limits{}))
	assert.Equal(t, readBody, speechRead(&Limits{capsConcurrency: true}))
}

func TestUploadWithoutBody(t *testing.T) {
	p := uploadProcessor(t)
	r := p.handle(reqHeaders("POST", "/v1/audio/transcriptions", true, "content-type", "multipart/form-data; boundary=x"))
	status, body := immediateStatus(t, r)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body["error"].(map[string]any)["message"], "multipart form")
}

func TestSpeechRoutesAndPassesTheAudio(t *testing.T) {
	p := uploadProcessor(t)
	hr := p.handle(reqHeaders("POST", "/v1/audio/speech", false, "content-type", "application/json"))
	assert.Nil(t, hr.GetModeOverride(), "the audio never comes to ext_proc")
	br := p.handle(bodyMsg(`{"model":"public","input":"hi","voice":"alloy"}`))
	common := br.GetRequestBody().GetResponse()
	require.NotNil(t, common, "%v", br)
	assert.JSONEq(t, `{"model":"private","input":"hi","voice":"alloy"}`, string(common.GetBodyMutation().GetBody()))
	assert.True(t, p.done(br))
}
