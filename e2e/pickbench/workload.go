package pickbench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// Workload is one request mix. A shared-prefix workload has Users
// conversations at a time, each on one of SystemPrompts long system
// prompts, each turn resending the whole conversation so far plus a new
// user message; after Turns turns a conversation starts afresh. A uniform
// workload (SystemPrompts 0) sends single-turn requests whose system prompt
// is unique from its first byte, of about the shared workload's mean size.
type Workload struct {
	Name          string  `json:"name"`
	SystemPrompts int     `json:"system_prompts,omitempty"`
	SystemBytes   int     `json:"system_bytes"`
	Users         int     `json:"users,omitempty"`
	Turns         int     `json:"turns,omitempty"`
	UserBytes     int     `json:"user_bytes"`
	MaxTokens     int     `json:"max_tokens"`
	Rate          float64 `json:"rate_per_sim_second"` // arrivals per simulated second
}

// message is one chat message.
type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// conversation is one user's chat.
type conversation struct {
	id   int
	msgs []message
	turn int
	busy bool
}

// turn is one request of a workload: its body and the conversation it
// continues (nil for uniform requests).
type turn struct {
	body []byte
	conv *conversation
}

// generator hands out the requests of a workload; safe for concurrent use.
type generator struct {
	w     Workload
	mu    sync.Mutex
	rng   *rand.Rand
	sys   []string
	convs []*conversation
	next  int // next conversation or request id
}

func newGenerator(w Workload, seed uint64) *generator {
	g := &generator{w: w, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	for k := range w.SystemPrompts {
		g.sys = append(g.sys, text(fmt.Sprintf("You are assistant %d of the benchmark fleet. ", k), w.SystemBytes, uint64(k)+1))
	}
	for range w.Users {
		g.convs = append(g.convs, g.newConversation())
	}
	return g
}

func (g *generator) newConversation() *conversation {
	c := &conversation{id: g.next}
	g.next++
	sys := g.sys[c.id%len(g.sys)]
	c.msgs = []message{{Role: "system", Content: sys}}
	return c
}

// take returns the next request: for shared-prefix, the next turn of a
// random idle conversation (a new one when all are busy).
func (g *generator) take() *turn {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sys) == 0 {
		id := g.next
		g.next++
		head := fmt.Sprintf("Request %d. You are a one-off assistant. ", id)
		msgs := []message{
			{Role: "system", Content: text(head, g.w.SystemBytes, 1<<32+uint64(id))},
			{Role: "user", Content: text(fmt.Sprintf("Question %d: ", id), g.w.UserBytes, 1<<33+uint64(id))},
		}
		return &turn{body: chatBody(msgs, g.w.MaxTokens)}
	}
	var c *conversation
	start := g.rng.IntN(len(g.convs))
	for i := range g.convs {
		if cc := g.convs[(start+i)%len(g.convs)]; !cc.busy {
			c = cc
			break
		}
	}
	if c == nil {
		c = g.newConversation()
		g.convs = append(g.convs, c)
	}
	c.busy = true
	c.turn++
	c.msgs = append(c.msgs, message{Role: "user", Content: text(fmt.Sprintf("User %d, turn %d: ", c.id, c.turn), g.w.UserBytes, uint64(c.id)<<8+uint64(c.turn))})
	return &turn{body: chatBody(c.msgs, g.w.MaxTokens), conv: c}
}

// done ends t with the assistant's reply: the conversation keeps it for
// its next turn, or starts afresh after its last turn or a failure.
func (g *generator) done(t *turn, reply string, ok bool) {
	c := t.conv
	if c == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c.busy = false
	if !ok {
		c.msgs = c.msgs[:len(c.msgs)-1]
		c.turn--
		return
	}
	c.msgs = append(c.msgs, message{Role: "assistant", Content: reply})
	if c.turn >= g.w.Turns {
		nc := g.newConversation()
		*c = *nc
	}
}

// chatBody is a streaming chat completion request. The fields before
// messages are the same in every request, so prompts that share a prefix
// give bodies that share one.
func chatBody(msgs []message, maxTokens int) []byte {
	b, err := json.Marshal(struct {
		Model         string         `json:"model"`
		Stream        bool           `json:"stream"`
		StreamOptions map[string]any `json:"stream_options"`
		MaxTokens     int            `json:"max_tokens"`
		Messages      []message      `json:"messages"`
	}{benchModel, true, map[string]any{"include_usage": true}, maxTokens, msgs})
	if err != nil {
		panic(err) // strings and ints always marshal
	}
	return b
}

// benchModel is the model every request names.
const benchModel = "bench-model"

var vocabulary = strings.Fields(`the a of to and in is for on with that as by at from this be are or an it
model server cache prefix token request stream latency queue batch prompt user answer system context
please explain summarize translate review write code test data table query result error value field
quickly carefully briefly detail example list step plan reason because when while after before`)

// text is head followed by pseudo-random words (seeded) up to n bytes.
func text(head string, n int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 0x7e47))
	var b strings.Builder
	b.Grow(n + 16)
	b.WriteString(head)
	for b.Len() < n {
		b.WriteString(vocabulary[r.IntN(len(vocabulary))])
		b.WriteByte(' ')
	}
	return b.String()[:max(n, len(head))]
}
