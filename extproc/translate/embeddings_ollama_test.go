package translate

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEmbeddingsBase64 holds the base64 encoding to what the OpenAI SDKs
// decode (Python: array("f", b64decode(s)), little-endian float32s): every
// float32 Ollama prints comes back bit for bit.
func TestEmbeddingsBase64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vec := []float32{0, float32(math.Copysign(0, -1)), 1, -1, math.SmallestNonzeroFloat32, math.MaxFloat32}
	for range 200 {
		vec = append(vec, float32(rng.NormFloat64()))
	}
	nums := make([]string, len(vec))
	for i, f := range vec {
		nums[i] = strconv.FormatFloat(float64(f), 'g', -1, 32) // as Go's encoding/json prints a float32
	}
	backend := `{"model":"m","embeddings":[[` + strings.Join(nums, ",") + `]],"prompt_eval_count":7}`
	tr, err := New(ClientEmbeddings, ProtocolOllama, testOptions())
	require.NoError(t, err)
	_, err = tr.Request([]byte(`{"model":"public-model","input":["a"],"encoding_format":"base64"}`))
	require.NoError(t, err)
	status, body := tr.Response(200, []byte(backend))
	require.Equal(t, 200, status, string(body))
	var got struct {
		Data []struct{ Embedding string }
	}
	require.NoError(t, json.Unmarshal(body, &got))
	require.Len(t, got.Data, 1)
	raw, err := base64.StdEncoding.DecodeString(got.Data[0].Embedding)
	require.NoError(t, err)
	require.Len(t, raw, 4*len(vec))
	for i, f := range vec {
		assert.Equal(t, math.Float32bits(f), binary.LittleEndian.Uint32(raw[4*i:]), "element %d", i)
	}
}

// FuzzEmbeddingsOllamaResponse: any Ollama answer becomes a JSON body
// with 200 (an embeddings list) or 502, in either encoding, without panic;
// where both encodings answer 200, the base64 vectors are the float ones.
func FuzzEmbeddingsOllamaResponse(f *testing.F) {
	for _, r := range goldenSections(f, "embeddings_ollama", "backend_response") {
		f.Add(r)
	}
	f.Add([]byte(`{"embeddings":[[1e999,-0]]}`))
	f.Add([]byte(`{"embeddings":[ [ 1 , 2 ] , [] ]}`))
	f.Fuzz(func(t *testing.T, backend []byte) {
		answer := func(format string) (int, []byte) {
			tr, err := New(ClientEmbeddings, ProtocolOllama, testOptions())
			require.NoError(t, err)
			_, err = tr.Request([]byte(`{"model":"public-model","input":"a","encoding_format":"` + format + `"}`))
			require.NoError(t, err)
			status, body := tr.Response(200, backend)
			require.Contains(t, []int{200, 502}, status)
			require.True(t, json.Valid(body), "not JSON: %s", body)
			return status, body
		}
		fs, fb := answer("float")
		bs, bb := answer("base64")
		if fs != 200 || bs != 200 {
			return
		}
		var floats struct {
			Data []struct{ Embedding []json.Number }
		}
		var b64 struct{ Data []struct{ Embedding string } }
		require.NoError(t, json.Unmarshal(fb, &floats))
		require.NoError(t, json.Unmarshal(bb, &b64))
		require.Len(t, b64.Data, len(floats.Data))
		for i, d := range b64.Data {
			raw, err := base64.StdEncoding.DecodeString(d.Embedding)
			require.NoError(t, err)
			require.Len(t, raw, 4*len(floats.Data[i].Embedding))
			for k, x := range floats.Data[i].Embedding {
				want, err := strconv.ParseFloat(string(x), 32)
				require.NoError(t, err)
				require.Equal(t, math.Float32bits(float32(want)), binary.LittleEndian.Uint32(raw[4*k:]), "vector %d element %d", i, k)
			}
		}
	})
}

// BenchmarkEmbeddingsOllamaResponse: translating one Ollama answer of 64
// vectors of 1024 floats (about 640 KiB), per answer; MB/s of backend JSON.
func BenchmarkEmbeddingsOllamaResponse(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	var sb strings.Builder
	sb.WriteString(`{"model":"nomic-embed-text","embeddings":[`)
	for i := range 64 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('[')
		for k := range 1024 {
			if k > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.FormatFloat(rng.NormFloat64()/32, 'g', -1, 32))
		}
		sb.WriteByte(']')
	}
	sb.WriteString(`],"total_duration":1,"load_duration":1,"prompt_eval_count":640}`)
	backend := []byte(sb.String())
	for _, format := range []string{"float", "base64"} {
		b.Run(format, func(b *testing.B) {
			tr, err := New(ClientEmbeddings, ProtocolOllama, testOptions())
			require.NoError(b, err)
			_, err = tr.Request([]byte(`{"model":"m","input":"a","encoding_format":"` + format + `"}`))
			require.NoError(b, err)
			b.ReportAllocs()
			b.SetBytes(int64(len(backend)))
			for b.Loop() {
				if st, _ := tr.Response(200, backend); st != 200 {
					b.Fatal(st)
				}
			}
		})
	}
}
