package form

import (
	"bytes"
	"errors"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// build writes a form the way clients do: fields in order, then a file.
func build(t testing.TB, fields [][2]string, file []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		require.NoError(t, w.WriteField(f[0], f[1]))
	}
	if file != nil {
		fw, err := w.CreateFormFile("file", "speech.mp3")
		require.NoError(t, err)
		_, err = fw.Write(file)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return w.FormDataContentType(), b.Bytes()
}

const ct = "multipart/form-data; boundary=XyZ"

func TestRead(t *testing.T) {
	secret := []byte("SECRET-AUDIO-BYTES\r\n--notit\r\n")
	typ, body := build(t, [][2]string{{"model", "whisper-1"}, {"stream", "true"}, {"include[]", "logprobs"}, {"include[]", "x"}}, secret)
	f, err := Read(typ, body, Limits{})
	require.NoError(t, err)
	assert.Equal(t, "whisper-1", f.Model)
	assert.Equal(t, 1, f.Files)
	assert.Equal(t, []string{"file"}, f.FileFields)
	v, ok := f.Value("stream")
	assert.True(t, ok)
	assert.Equal(t, "true", v)
	assert.Len(t, f.Fields, 4)
	for _, fl := range f.Fields {
		assert.NotContains(t, fl.Value, "SECRET")
	}
}

func TestReadRefuses(t *testing.T) {
	part := func(name, v string) string {
		return "--XyZ\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + v + "\r\n"
	}
	file := "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nSECRET-BYTES\r\n"
	for name, tc := range map[string]struct {
		ct, body string
		lim      Limits
		want     error
	}{
		"json content type":   {"application/json", `{"model":"m"}`, Limits{}, ErrContentType},
		"no boundary":         {"multipart/form-data", part("model", "m") + "--XyZ--", Limits{}, ErrContentType},
		"boundary too long":   {"multipart/form-data; boundary=" + strings.Repeat("b", 71), "", Limits{}, ErrContentType},
		"empty body":          {ct, "", Limits{}, ErrMalformed},
		"wrong boundary":      {ct, strings.ReplaceAll(part("model", "m"), "XyZ", "Abc") + "--Abc--", Limits{}, ErrMalformed},
		"no closing boundary": {ct, part("model", "m") + file[:len(file)-2], Limits{}, ErrTruncated},
		"cut in a file":       {ct, part("model", "m") + file[:60], Limits{}, ErrTruncated},
		"no model":            {ct, part("prompt", "p") + file + "--XyZ--", Limits{}, ErrMissingModel},
		"empty model":         {ct, part("model", "") + "--XyZ--", Limits{}, ErrMissingModel},
		"model is a file":     {ct, strings.ReplaceAll(file, `"file"`, `"model"`) + "--XyZ--", Limits{}, ErrMissingModel},
		"duplicate model":     {ct, part("model", "a") + part("model", "b") + "--XyZ--", Limits{}, ErrDuplicate},
		"duplicate stream":    {ct, part("model", "a") + part("stream", "false") + part("stream", "true") + "--XyZ--", Limits{}, ErrDuplicate},
		"no name":             {ct, "--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--", Limits{}, ErrMalformed},
		"not form-data":       {ct, "--XyZ\r\nContent-Disposition: attachment; name=\"model\"\r\n\r\nv\r\n--XyZ--", Limits{}, ErrMalformed},
		"too many parts":      {ct, part("model", "a") + part("b", "b") + part("c", "c") + "--XyZ--", Limits{Parts: 2}, ErrTooLarge},
		"value too long":      {ct, part("model", "a") + part("prompt", "123456") + "--XyZ--", Limits{ValueBytes: 5}, ErrTooLarge},
		"header too large":    {ct, "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\nX-Pad: " + strings.Repeat("p", 100) + "\r\n\r\nm\r\n--XyZ--", Limits{HeaderBytes: 64}, ErrTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Read(tc.ct, []byte(tc.body), tc.lim)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.want), "got %v", err)
			assert.NotContains(t, err.Error(), "SECRET")
		})
	}
}

func TestRewriteModel(t *testing.T) {
	file := bytes.Repeat([]byte("RIFF\r\n--XyZ-not-a-boundary\n"), 100)
	for name, fields := range map[string][][2]string{
		"model first":  {{"model", "whisper"}, {"language", "en"}},
		"model last":   {{"language", "en"}, {"model", "whisper"}},
		"model alone":  {{"model", "whisper"}},
		"crlf in vals": {{"prompt", "a\r\nb"}, {"model", "whisper"}},
	} {
		t.Run(name, func(t *testing.T) {
			typ, body := build(t, fields, file)
			f, err := Read(typ, body, Limits{})
			require.NoError(t, err)
			out, err := RewriteModel(f, body, "upstream-model-v2")
			require.NoError(t, err)
			assert.Equal(t, len(body)+len("upstream-model-v2")-len("whisper"), len(out))
			g, err := Read(typ, out, Limits{})
			require.NoError(t, err)
			assert.Equal(t, "upstream-model-v2", g.Model)
			// Everything else is as sent: the file and the other fields.
			r := multipart.NewReader(bytes.NewReader(out), f.boundary)
			mf, err := r.ReadForm(1 << 20)
			require.NoError(t, err)
			fh := mf.File["file"][0]
			fr, err := fh.Open()
			require.NoError(t, err)
			var got bytes.Buffer
			_, _ = got.ReadFrom(fr)
			assert.Equal(t, file, got.Bytes())
			for _, fl := range fields {
				if fl[0] != "model" {
					assert.Equal(t, []string{fl[1]}, mf.Value[fl[0]])
				}
			}
		})
	}
	t.Run("a model name with a newline is refused", func(t *testing.T) {
		typ, body := build(t, [][2]string{{"model", "m"}}, nil)
		f, err := Read(typ, body, Limits{})
		require.NoError(t, err)
		_, err = RewriteModel(f, body, "a\r\n--XyZ")
		assert.ErrorIs(t, err, ErrMalformed)
	})
	t.Run("LF-only line ends", func(t *testing.T) {
		body := "preamble\n--XyZ\nContent-Disposition: form-data; name=\"model\"\n\nm1\n--XyZ--\n"
		f, err := Read(ct, []byte(body), Limits{})
		require.NoError(t, err)
		out, err := RewriteModel(f, []byte(body), "m22")
		require.NoError(t, err)
		assert.Equal(t, strings.Replace(body, "m1", "m22", 1), string(out))
	})
}

// FuzzForm: Read never panics and never returns a file's bytes; whatever
// it accepts, RewriteModel either refuses or writes a body Read parses to
// the same fields with the new model.
func FuzzForm(f *testing.F) {
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF....\r\n--XyZ--\r\n"))
	f.Add([]byte("pre\n--XyZ\nContent-Disposition: form-data; name=\"model\"\n\nm\n--XyZ--"))
	f.Add([]byte("--XyZ \t\r\nContent-Disposition: form-data; name=\"a[]\"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a[]\"\r\n\r\n2\r\n--XyZ\r\nContent-Disposition: form-data; name=model\r\n\r\n\r\n--XyZx\r\n--XyZ--"))
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db\r\n--XyZ--"))
	f.Fuzz(func(t *testing.T, body []byte) {
		form, err := Read(ct, body, Limits{Parts: 8, ValueBytes: 256})
		if err != nil {
			return
		}
		out, err := RewriteModel(form, body, "rewritten")
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, err := Read(ct, out, Limits{Parts: 8, ValueBytes: 256})
		if err != nil {
			t.Fatalf("the rewritten body does not parse: %v\n%q", err, out)
		}
		if again.Model != "rewritten" || len(again.Fields) != len(form.Fields) || again.Files != form.Files {
			t.Fatalf("rewrite changed more than the model: %+v vs %+v", again, form)
		}
		for i, fl := range form.Fields {
			if fl.Name != "model" && again.Fields[i] != fl {
				t.Fatalf("field %d changed: %v vs %v", i, again.Fields[i], fl)
			}
		}
	})
}

// BenchmarkRead: one request with a 1 MiB file part and five text fields;
// the cost is the scan of the file, allocations do not grow with it.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		typ, body := build(b, [][2]string{{"model", "whisper-1"}, {"language", "en"}, {"response_format", "json"}, {"temperature", "0"}, {"stream", "false"}}, bytes.Repeat([]byte{0x5a}, size))
		b.Run(strings.ReplaceAll(byteSize(size), " ", ""), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Read(typ, body, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return "1MiB"
	}
	return "1KiB"
}
