package pickbench

import (
	"encoding/json"
	"strings"
	"testing"
)

type sentBody struct {
	Model     string    `json:"model"`
	Stream    bool      `json:"stream"`
	MaxTokens int       `json:"max_tokens"`
	Messages  []message `json:"messages"`
}

func decode(t *testing.T, b []byte) sentBody {
	t.Helper()
	var s sentBody
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return s
}

func sharedWorkload() Workload {
	return Workload{Name: "shared-prefix", SystemPrompts: 2, SystemBytes: 1000, Users: 1, Turns: 2, UserBytes: 100, MaxTokens: 8}
}

func TestNextTurnResendsTheConversationWithTheReply(t *testing.T) {
	g := newGenerator(sharedWorkload(), 1)
	t1 := g.take()
	g.done(t1, "the answer", true)
	t2 := g.take()
	b1, b2 := decode(t, t1.body), decode(t, t2.body)
	if !b1.Stream || b1.Model != benchModel || b1.MaxTokens != 8 {
		t.Fatalf("turn 1 = %+v, want a streaming request for %s with max_tokens 8", b1, benchModel)
	}
	if len(b1.Messages) != 2 || len(b2.Messages) != 4 {
		t.Fatalf("turns have %d and %d messages, want 2 (system, user) and 4", len(b1.Messages), len(b2.Messages))
	}
	for i, m := range b1.Messages {
		if b2.Messages[i] != m {
			t.Fatalf("turn 2 message %d = %+v, want turn 1's %+v", i, b2.Messages[i], m)
		}
	}
	if b2.Messages[2] != (message{Role: "assistant", Content: "the answer"}) {
		t.Fatalf("turn 2 message 2 = %+v, want the assistant's reply", b2.Messages[2])
	}
	if got := len(b1.Messages[0].Content); got != 1000 {
		t.Fatalf("system prompt is %d bytes, want 1000", got)
	}
	if !strings.HasPrefix(string(t2.body), string(t1.body[:len(t1.body)-len(`"}]}`)-100])) {
		t.Fatal("turn 2's body does not start with turn 1's (a prefix cache could not reuse it)")
	}
}

func TestConversationStartsAfreshAfterItsLastTurn(t *testing.T) {
	g := newGenerator(sharedWorkload(), 1)
	for range 2 {
		g.done(g.take(), "reply", true)
	}
	b := decode(t, g.take().body)
	if len(b.Messages) != 2 {
		t.Fatalf("after the last turn the next request has %d messages, want a new conversation (2)", len(b.Messages))
	}
}

func TestFailedTurnIsNotKeptInTheConversation(t *testing.T) {
	g := newGenerator(sharedWorkload(), 1)
	g.done(g.take(), "", false)
	b := decode(t, g.take().body)
	if len(b.Messages) != 2 || !strings.Contains(b.Messages[1].Content, "turn 1:") {
		t.Fatalf("after a failed turn 1 the retry is %+v, want turn 1 again", b.Messages)
	}
}

func TestBusyConversationsGetCompanions(t *testing.T) {
	g := newGenerator(sharedWorkload(), 1)
	a, b := g.take(), g.take()
	if a.conv == b.conv {
		t.Fatal("two concurrent turns went to one conversation")
	}
	sa, sb := decode(t, a.body).Messages[0].Content, decode(t, b.body).Messages[0].Content
	if sa == sb {
		t.Fatal("conversations 0 and 1 share a system prompt, want prompts assigned round robin")
	}
}

func TestConversationsOnOneSystemPromptShareIt(t *testing.T) {
	w := sharedWorkload()
	w.Users = 3
	g := newGenerator(w, 1)
	seen := map[int]string{}
	for range 3 {
		tr := g.take()
		seen[tr.conv.id] = decode(t, tr.body).Messages[0].Content
	}
	if seen[0] != seen[2] || seen[0] == seen[1] {
		t.Fatal("conversations 0 and 2 should share system prompt 0, conversation 1 have prompt 1")
	}
}

func TestUniformPromptsDifferFromTheFirstContentByte(t *testing.T) {
	g := newGenerator(Workload{Name: "uniform", SystemBytes: 2000, UserBytes: 100, MaxTokens: 8}, 1)
	a, b := decode(t, g.take().body), decode(t, g.take().body)
	if len(a.Messages) != 2 || len(a.Messages[0].Content) != 2000 {
		t.Fatalf("uniform request = %d messages, system %d bytes; want 2 and 2000", len(a.Messages), len(a.Messages[0].Content))
	}
	if a.Messages[0].Content[:16] == b.Messages[0].Content[:16] {
		t.Fatal("two uniform prompts share their first 16 bytes")
	}
}
