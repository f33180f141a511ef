package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// streamFaultConfig is backendFaultConfig with a translated model: claude
// is served by an Anthropic backend (the fake serves both APIs).
var streamFaultConfig = strings.Replace(backendFaultConfig, "models:\n", `  - name: claude-a
    protocol: anthropic
    endpoints: [{{.BackendA}}]
models:
  - name: claude
    backend: claude-a
`, 1)

// sdkSaw is what e2e/py/fault_client.py reports.
type sdkSaw struct {
	Deltas                int
	Finish                *string
	Error                 *struct{ Class, Message string }
	EndedAfterLastDeltaMs int `json:"ended_after_last_delta_ms"`
}

// TestFaultBackendMidStream: a backend that dies mid-stream (connection
// aborted), stalls (stream_idle_timeout, 3 s here, ends it) or sends
// malformed SSE, seen through the official SDKs, passed through and
// translated both ways. A stream cut short never looks completed: the SDK
// raises, or sees no finish reason. Nothing is held afterwards.
func TestFaultBackendMidStream(t *testing.T) {
	py := pythonSDKs(t)
	e := startGateway(t, streamFaultConfig)
	cases := []struct{ api, model, how string }{
		{"openai", "solo", "passed through"},
		{"anthropic", "solo", "translated (Anthropic client, OpenAI backend)"},
		{"openai", "claude", "translated (OpenAI client, Anthropic backend)"},
	}
	var args []string
	for _, fault := range []string{"midstream", "stall", "malformed"} {
		for _, c := range cases {
			args = append(args, c.model+":"+c.api+":"+fault)
		}
	}
	// Healthy streams of the same backend run beside the faulty ones.
	clients := 4
	if faultsLong() {
		clients = 32
	}
	ctx, stop := context.WithCancel(context.Background())
	load, wg := runLoad(ctx, loadSpec{gateway: e.gateway, clients: clients, model: "solo"})
	h2 := make(chan string, 2)
	for _, fault := range []string{"midstream", "stall"} {
		go func() { h2 <- h2cCut(e, fault) }()
	}
	start := time.Now()
	var saw map[string]sdkSaw
	runPyArgs(t, py, "fault_client.py", append([]string{e.gateway}, args...), &saw)
	t.Logf("%d cases in %s", len(args), time.Since(start).Round(time.Millisecond))
	for range 2 {
		got := <-h2
		t.Logf("HTTP/2 client: %s", got)
		assert.Contains(t, got, "INTERNAL_ERROR", "an HTTP/2 client's cut stream is reset")
	}
	stop()
	wg.Wait()
	t.Logf("healthy streams beside them (%d clients): outcomes %v, slowest %v", clients, load.outcomes, load.slowest)
	assert.Equal(t, load.outcomes["ok"], sum(load.outcomes), "a faulty stream affects no other")
	for _, fault := range []string{"midstream", "stall", "malformed"} {
		for _, c := range cases {
			s := saw[c.model+":"+c.api+":"+fault]
			t.Logf("%s / %s: %d deltas, finish %s, error %+v, ended %d ms after the last delta", fault, c.how, s.Deltas, deref(s.Finish), s.Error, s.EndedAfterLastDeltaMs)
			assert.Nil(t, s.Finish, "%s / %s: a stream cut short has no finish reason", fault, c.how)
			assert.NotNil(t, s.Error, "%s / %s: the SDK raises: the stream never looks completed", fault, c.how)
			assert.Positive(t, s.Deltas, "%s / %s: the tokens before the fault arrived", fault, c.how)
		}
	}
	assertNothingHeld(t, e)
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// h2cCut streams a passed-through completion over HTTP/2 (cleartext) with
// the backend failure fault and reports how the stream ended and how long
// after its last event.
func h2cCut(e *env, fault string) string {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 30 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, e.gateway+"/v1/chat/completions", bytes.NewReader(chatBody("solo", true, "x")))
	req.Header.Set("x-fakellm-fail", fault)
	req.Header.Set("x-fakellm-tokens", "20")
	req.Header.Set("x-fakellm-itl-ms", "5")
	resp, err := client.Do(req)
	if err != nil {
		return fault + ": " + err.Error()
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	last := time.Now()
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "data:") {
			last = time.Now()
		}
		if err != nil {
			return fmt.Sprintf("%s over %s: %v, %s after the last event", fault, resp.Proto, err, time.Since(last).Round(time.Millisecond))
		}
	}
}
