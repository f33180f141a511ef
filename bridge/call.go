package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/sse"
)

// maxResponseBytes bounds a whole (not streamed) response the bridge
// buffers to publish as one message.
const maxResponseBytes = 64 << 20

// result is what one attempt came to.
type result struct {
	// published: the result went out (success or a final error result).
	published bool
	// retry: overloaded, failed or unanswered; try again later.
	retry bool
	// status is the gateway's HTTP status (0: no answer).
	status int
	// retryAfter is the gateway's Retry-After.
	retryAfter time.Duration
	// body is the gateway's error body, for a refusal.
	body []byte
	// err is the refusal when neither published nor retry.
	err error
	// ttfb is the time to the response headers (the admission's queueing signal).
	ttfb time.Duration
}

// resultMessage is a whole response, or the final message after chunks.
type resultMessage struct {
	ID      string          `json:"id"`
	Seq     int             `json:"seq,omitempty"`
	Final   bool            `json:"final,omitempty"`
	Status  int             `json:"status"`
	Attempt int             `json:"attempt"`
	Body    json.RawMessage `json:"body,omitempty"`
	Usage   json.RawMessage `json:"usage,omitempty"`
}

// chunkMessage is one event of a streamed response.
type chunkMessage struct {
	ID      string          `json:"id"`
	Seq     int             `json:"seq"`
	Attempt int             `json:"attempt"`
	Chunk   json.RawMessage `json:"chunk"`
}

// deadLetterMessage is what the dead-letter destination receives.
type deadLetterMessage struct {
	ID       string          `json:"id,omitempty"`
	Source   string          `json:"source"`
	Reason   string          `json:"reason"`
	Attempts int             `json:"attempts"`
	Status   int             `json:"status"`
	Body     json.RawMessage `json:"body"`
	Message  string          `json:"message"`
}

// call sends env through the gateway with key and publishes the result.
func (b *Bridge) call(ctx context.Context, s *source, env *Envelope, key string, attempt int) result {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	if env.Deadline != nil {
		ctx, cancel = context.WithDeadline(ctx, *env.Deadline)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.GatewayURL+env.Endpoint, bytes.NewReader(env.Body))
	if err != nil {
		return result{err: fmt.Errorf("cannot build the request: %w", err)}
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("authorization", "Bearer "+key)
	prio := env.Priority
	if prio == "" {
		prio = b.cfg.Priority
	}
	req.Header.Set(contract.PriorityHeader, prio)
	sent := b.now()
	resp, err := b.client.Do(req)
	if err != nil {
		return result{retry: true}
	}
	ttfb := b.now().Sub(sent)
	defer resp.Body.Close()
	switch st := resp.StatusCode; {
	case st >= 200 && st < 300:
	case st == http.StatusTooManyRequests || st == http.StatusRequestTimeout || st >= 500:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		return result{retry: true, status: st, retryAfter: retryAfter(resp.Header.Get("retry-after"), b.now())}
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		return result{status: st, body: body}
	}
	var perr error
	if env.streams() {
		perr = b.publishChunks(ctx, s, env, resp, attempt)
	} else {
		perr = b.publishWhole(ctx, s, env, resp, attempt)
	}
	if perr != nil {
		b.log.Warn("bridge: the response or its publication failed; retrying", "source", s.Name(), "id", env.ID, "error", perr.Error())
		return result{retry: true, status: resp.StatusCode}
	}
	return result{published: true, status: resp.StatusCode, ttfb: ttfb}
}

// publishWhole publishes the whole response as one message.
func (b *Bridge) publishWhole(ctx context.Context, s *source, env *Envelope, resp *http.Response, attempt int) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("cannot read the response: %w", err)
	}
	if !json.Valid(body) {
		return fmt.Errorf("the response is not JSON")
	}
	return b.publishResult(ctx, s, env, resultMessage{ID: env.ID, Status: resp.StatusCode, Attempt: attempt, Body: body, Usage: usageOf(body)})
}

func (b *Bridge) publishResult(ctx context.Context, s *source, env *Envelope, r resultMessage) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("cannot encode the result: %w", err)
	}
	return s.Publish(ctx, env.ReplyTo, []Outgoing{{Key: env.ID, ID: env.ID, Data: data}})
}

// publishChunks publishes each server-sent event of a streamed response
// as its own message, in order, then a final message with the usage.
func (b *Bridge) publishChunks(ctx context.Context, s *source, env *Envelope, resp *http.Response, attempt int) error {
	var dec sse.Decoder
	var usage json.RawMessage
	seq := 0
	buf := make([]byte, 32<<10)
	prefix := env.ID + ":" + strconv.Itoa(attempt) + ":"
	for eof := false; !eof; {
		n, err := resp.Body.Read(buf)
		dec.Feed(buf[:n])
		if err == io.EOF {
			dec.Close()
			eof = true
		} else if err != nil {
			return fmt.Errorf("cannot read the response stream: %w", err)
		}
		var out []Outgoing
		for {
			ev, ok, derr := dec.Next()
			if derr != nil {
				return fmt.Errorf("cannot read the response stream: %w", derr)
			}
			if !ok {
				break
			}
			if bytes.Equal(ev.Data, []byte("[DONE]")) || !json.Valid(ev.Data) {
				continue
			}
			if u := usageOf(ev.Data); u != nil {
				usage = u
			}
			seq++
			data, _ := json.Marshal(chunkMessage{ID: env.ID, Seq: seq, Attempt: attempt, Chunk: ev.Data})
			out = append(out, Outgoing{Key: prefix + strconv.Itoa(seq), ID: env.ID, Data: data})
		}
		if len(out) > 0 {
			if err := s.Publish(ctx, env.ReplyTo, out); err != nil {
				return err
			}
		}
	}
	final, _ := json.Marshal(resultMessage{ID: env.ID, Seq: seq + 1, Final: true, Status: resp.StatusCode, Attempt: attempt, Usage: usage})
	return s.Publish(ctx, env.ReplyTo, []Outgoing{{Key: env.ID, ID: env.ID, Data: final}})
}

// usageOf returns the usage object of a response or chunk: top-level
// "usage" (Chat Completions, Completions, Embeddings, Messages) or
// "response.usage" (a Responses API response.completed event); nil when
// absent or null.
func usageOf(body []byte) json.RawMessage {
	var v struct {
		Usage    json.RawMessage `json:"usage"`
		Response *struct {
			Usage json.RawMessage `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	u := v.Usage
	if (len(u) == 0 || string(u) == "null") && v.Response != nil {
		u = v.Response.Usage
	}
	if len(u) == 0 || string(u) == "null" {
		return nil
	}
	return u
}
