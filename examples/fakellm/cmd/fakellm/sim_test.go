package main

import (
	"bufio"
	"context"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// parseSim parses args with the simulator flags and returns its handler.
func parseSim(t *testing.T, args ...string) (http.Handler, error) {
	t.Helper()
	fs := flag.NewFlagSet("fakellm", flag.ContinueOnError)
	sim := addSimFlags(fs)
	require.NoError(t, fs.Parse(args))
	return sim.handler("sim-a", 4)
}

func TestServeRunsTheVLLMSimulatorFromFlags(t *testing.T) {
	h, err := parseSim(t, "-sim", "vllm", "-sim-speed", "100", "-sim-slow", "2",
		"-sim-max-num-seqs", "3", "-sim-loras", "sql,chat", "-sim-model", "llama")
	require.NoError(t, err)
	require.NotNil(t, h)
	opts := h.(*fakellm.Sim).Options()
	assert.Equal(t, 3, opts.MaxNumSeqs)
	assert.Equal(t, []string{"sql", "chat"}, opts.LoRAs)
	assert.Equal(t, fakellm.DefaultSimKVBlocks, opts.KVBlocks)
	assert.InDelta(t, 2.0, opts.Slowness, 0)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, "127.0.0.1:0", "sim-a", h, pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "fakellm sim-a listening on ")
	require.True(t, ok, line)

	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"sql","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `"prompt_tokens_details":{"cached_tokens":0}`)
	assert.Contains(t, string(body), `"content":"tok0 tok1 tok2 tok3 "`)

	resp, err = http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), `vllm:num_requests_waiting{model_name="llama"} 0`)
	assert.Contains(t, string(body), `max_lora="2"`)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return within 5s of cancellation")
	}
}

func TestSimFlagsOffKeepThePlainFake(t *testing.T) {
	h, err := parseSim(t)
	require.NoError(t, err)
	assert.Nil(t, h)
}

func TestSimFlagsRejectBadValues(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown mode":   {[]string{"-sim", "sglang"}, `unknown -sim "sglang"`},
		"negative slots": {[]string{"-sim", "vllm", "-sim-max-num-seqs", "-1"}, "max num seqs -1 is negative"},
		"negative speed": {[]string{"-sim", "vllm", "-sim-speed", "-1"}, "speed -1 must be positive"},
		"empty adapter":  {[]string{"-sim", "vllm", "-sim-loras", "a,,b"}, "LoRA adapter name is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseSim(t, tc.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
