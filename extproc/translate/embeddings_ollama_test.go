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
// with 200 (an embeddings list) or 502, in either encoding, without panic.
func FuzzEmbeddingsOllamaResponse(f *testing.F) {
	for _, r := range goldenSections(f, "embeddings_ollama", "backend_response") {
		f.Add(r, false)
		f.Add(r, true)
	}
	f.Add([]byte(`{"embeddings":[[1e999,-0]]}`), true)
	f.Fuzz(func(t *testing.T, backend []byte, b64 bool) {
		tr, err := New(ClientEmbeddings, ProtocolOllama, testOptions())
		require.NoError(t, err)
		format := "float"
		if b64 {
			format = "base64"
		}
		_, err = tr.Request([]byte(`{"model":"public-model","input":"a","encoding_format":"` + format + `"}`))
		require.NoError(t, err)
		status, body := tr.Response(200, backend)
		require.Contains(t, []int{200, 502}, status)
		require.True(t, json.Valid(body), "not JSON: %s", body)
	})
}
