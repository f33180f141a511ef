package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the expected sections of the golden files in testdata/")

// pairs maps each testdata folder to the translation its cases exercise.
var pairs = map[string]struct {
	client  Client
	backend Protocol
}{
	"openai_anthropic":  {ClientChat, ProtocolAnthropic},
	"anthropic_openai":  {ClientMessages, ProtocolOpenAI},
	"openai_ollama":     {ClientChat, ProtocolOllama},
	"openai_kserve":     {ClientCompletions, ProtocolKServe},
	"responses_openai":  {ClientResponses, ProtocolOpenAI},
	"embeddings_ollama": {ClientEmbeddings, ProtocolOllama},
	"openai_bedrock":    {ClientChat, ProtocolBedrock},
	"anthropic_bedrock": {ClientMessages, ProtocolBedrock},
	"openai_gemini":     {ClientChat, ProtocolGemini},
	"anthropic_gemini":  {ClientMessages, ProtocolGemini},
	"anthropic_vertex":  {ClientMessages, ProtocolAnthropicVertex},
	"openai_vertex":     {ClientChat, ProtocolAnthropicVertex},
}

// testOptions are the model settings every golden case runs with.
func testOptions() Options {
	return Options{Model: "upstream-model", PublicModel: "public-model", DefaultMaxTokens: 1024, Now: func() time.Time { return time.Unix(1700000000, 0) }, NewID: func() string { return "test" }}
}

// TestGolden runs every case file: testdata/<pair>/<case>.txtar holds the
// client request and the backend's answer (inputs) and the backend request
// and the client's answer (expected; -update rewrites them). Streams are
// also fed cut at every byte and byte by byte: the client bytes must not
// depend on how the backend's bytes were chunked.
func TestGolden(t *testing.T) {
	for dir, pair := range pairs {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
		require.NoError(t, err)
		require.NotEmpty(t, files, "no golden cases in testdata/%s", dir)
		for _, file := range files {
			t.Run(dir+"/"+strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
				runGolden(t, file, pair.client, pair.backend)
			})
		}
	}
}

func runGolden(t *testing.T, file string, c Client, p Protocol) {
	ar, err := txtar.ParseFile(file)
	require.NoError(t, err)
	sec := map[string][]byte{}
	for _, f := range ar.Files {
		sec[f.Name] = f.Data
	}
	got := map[string]string{}
	tr, err := New(c, p, testOptions())
	require.NoError(t, err)
	req, err := tr.Request(sec["client_request.json"])
	if err != nil {
		var re *RequestError
		require.True(t, errors.As(err, &re), "a refused request must fail with a RequestError, got %v", err)
		kind := "invalid"
		switch {
		case errors.Is(err, ErrUnsupported):
			kind = "unsupported"
		case errors.Is(err, ErrStateful):
			kind = "stateful"
		}
		got["error"] = kind + ": " + re.Msg + "\n"
	} else {
		got["backend_request"] = formatRequest(t, req)
		status := 200
		if s, ok := sec["backend_status"]; ok {
			status, err = strconv.Atoi(strings.TrimSpace(string(s)))
			require.NoError(t, err)
		}
		backend := sec["backend_response"]
		if p == ProtocolBedrock && req.Stream && status == 200 {
			backend = eventStreamFrames(t, backend)
		}
		if req.Stream && status == 200 {
			whole := string(tr.Stream(nil, backend, true))
			got["client_response"] = whole
			checkChunking(t, c, p, sec["client_request.json"], backend, whole)
		} else {
			st, body := tr.Response(status, backend)
			got["client_response"] = indentJSON(t, body)
			if st != 200 {
				got["client_status"] = strconv.Itoa(st) + "\n"
			}
		}
	}
	if *update {
		writeGolden(t, file, ar, got)
		return
	}
	for _, name := range []string{"backend_request", "client_status", "client_response", "error"} {
		assert.Equal(t, string(sec[name]), got[name], "section %s of %s (run go test -update to accept)", name, file)
	}
}

func checkChunking(t *testing.T, c Client, p Protocol, request, backend []byte, whole string) {
	run := func(chunks ...[]byte) string {
		tr, err := New(c, p, testOptions())
		require.NoError(t, err)
		_, err = tr.Request(request)
		require.NoError(t, err)
		var out []byte
		for i, ch := range chunks {
			out = tr.Stream(out, ch, i == len(chunks)-1)
		}
		return string(out)
	}
	for i := range len(backend) + 1 {
		if got := run(backend[:i], backend[i:]); got != whole {
			require.Equal(t, whole, got, "stream cut at byte %d", i)
		}
	}
	var bytewise [][]byte
	for i := range backend {
		bytewise = append(bytewise, backend[i:i+1])
	}
	bytewise = append(bytewise, nil)
	require.Equal(t, whole, run(bytewise...), "stream fed byte by byte")
}

func formatRequest(t *testing.T, r Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s\n", r.Path)
	for _, h := range r.Headers {
		fmt.Fprintf(&b, "%s: %s\n", h[0], h[1])
	}
	b.WriteString("\n")
	b.WriteString(indentJSON(t, r.Body))
	return b.String()
}

func indentJSON(t *testing.T, body []byte) string {
	var out bytes.Buffer
	require.NoError(t, json.Indent(&out, body, "", "  "), "not JSON: %s", body)
	return out.String() + "\n"
}

func writeGolden(t *testing.T, file string, ar *txtar.Archive, got map[string]string) {
	order := []string{"client_request.json", "backend_request", "error", "backend_status", "backend_response", "client_status", "client_response"}
	inputs := map[string][]byte{}
	for _, f := range ar.Files {
		inputs[f.Name] = f.Data
	}
	out := &txtar.Archive{Comment: ar.Comment}
	for _, name := range order {
		switch {
		case got[name] != "":
			out.Files = append(out.Files, txtar.File{Name: name, Data: []byte(got[name])})
		case name == "client_request.json" || name == "backend_status" || (name == "backend_response" && got["error"] == ""):
			if d, ok := inputs[name]; ok {
				out.Files = append(out.Files, txtar.File{Name: name, Data: d})
			}
		}
	}
	require.NoError(t, os.WriteFile(file, txtar.Format(out), 0o644))
}

func goldenFiles(tb testing.TB, dir string) []*txtar.Archive {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
	require.NoError(tb, err)
	var out []*txtar.Archive
	for _, f := range files {
		ar, err := txtar.ParseFile(f)
		require.NoError(tb, err)
		out = append(out, ar)
	}
	return out
}
