package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamgate/streamgate/examples/fakellm"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", fakellm.Options{Name: "backend-z", Tokens: 2}, pw)
	}()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("cannot read announcement: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "fakellm backend-z listening on ")
	if !ok || strings.HasSuffix(addr, ":0") {
		t.Fatalf("announcement %q, want the real listening address", line)
	}

	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatalf("cannot send request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(fakellm.HeaderBackend) != "backend-z" ||
		!strings.Contains(string(body), `"content":"tok0 tok1 "`) {
		t.Fatalf("status %d, backend %q, body %s", resp.StatusCode, resp.Header.Get(fakellm.HeaderBackend), body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v, want nil after graceful shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5s of cancellation")
	}
}

func TestRunReportsListenError(t *testing.T) {
	err := run(t.Context(), "256.0.0.1:1", fakellm.Options{}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "cannot listen on 256.0.0.1:1") {
		t.Fatalf("run = %v, want a listen error", err)
	}
}
