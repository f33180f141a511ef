package tokens

import (
	"math"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Per-message costs of the chat format, as OpenAI's counting guide gives
// them: every message is wrapped in a few format tokens, and the reply is
// primed with a few more.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	tokensReply      = 3
	// tokensPerImage is what a low-detail image costs; higher details cost
	// more, which the reconciliation corrects.
	tokensPerImage = 85
)

// Estimate is what a request is expected to consume before it runs.
type Estimate struct {
	// Input is the estimated prompt tokens: message contents (strings or
	// text parts), names, tool calls and their arguments, tool and function
	// definitions, the prompt or input of legacy completions and embeddings,
	// and the instructions and input (a string or items) of the Responses API.
	Input int64
	// MaxOutput is max_completion_tokens (or max_tokens, or the Responses
	// API's max_output_tokens) times n (n taken
	// at most MaxChoices), saturating at math.MaxInt64; 0 when the request
	// sets no limit, for the caller to apply its default.
	MaxOutput int64
}

// EstimateRequest estimates an OpenAI request body (chat, completions,
// embeddings or responses) already validated as a JSON object. It walks only the fields
// that hold text and allocates nothing per message beyond what c does.
func EstimateRequest(body []byte, c *Counter, b *Budget) Estimate {
	if len(body) == 0 {
		return Estimate{}
	}
	// Read body in place: nothing below keeps a string past this call.
	root := gjson.Parse(unsafe.String(&body[0], len(body)))
	var e Estimate
	var maxTokens, maxCompletion, n gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "messages":
			e.Input += messagesTokens(v, c, b)
		case "tools", "functions":
			// Definitions reach the model as text; their JSON is a fair proxy.
			e.Input += int64(c.Count(v.Raw, b))
		case "prompt", "input", "query":
			e.Input += promptTokens(v, c, b)
		case "instructions": // Responses API: the system message
			e.Input += tokensPerMessage + int64(c.countJSON(v, b))
		case "documents":
			// Rerank: strings, or objects whose JSON is a fair proxy.
			e.Input += documentTokens(v, c, b)
		case "max_tokens", "max_output_tokens": // max_output_tokens: Responses API
			maxTokens = v
		case "max_completion_tokens":
			maxCompletion = v
		case "n":
			n = v
		}
		return true
	})
	limit := maxCompletion
	if limit.Type != gjson.Number {
		limit = maxTokens
	}
	if limit.Type == gjson.Number && limit.Int() > 0 {
		e.MaxOutput = limit.Int()
		if n.Type == gjson.Number && n.Int() > 1 {
			e.MaxOutput = MulSat(e.MaxOutput, min(n.Int(), MaxChoices))
		}
	}
	return e
}

// MaxChoices bounds the n an estimate multiplies by. The gateway refuses a
// larger n before estimating; the bound keeps a cost finite for any body.
const MaxChoices = 128

// MulSat returns a×b for non-negative a and b, saturating at
// math.MaxInt64 instead of overflowing: a cost never wraps negative.
func MulSat(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func messagesTokens(msgs gjson.Result, c *Counter, b *Budget) int64 {
	if !msgs.IsArray() {
		return 0
	}
	var total int64 = tokensReply
	msgs.ForEach(func(_, m gjson.Result) bool {
		total += tokensPerMessage
		m.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "role":
				total += int64(c.countJSON(v, b))
			case "name":
				total += tokensPerName + int64(c.countJSON(v, b))
			case "content":
				total += contentTokens(v, c, b)
			case "tool_calls", "function_call":
				// Names and JSON arguments are generated text the model reads back.
				total += int64(c.Count(v.Raw, b))
			}
			return true
		})
		return true
	})
	return total
}

// contentTokens counts a message content: a string or an array of parts.
func contentTokens(v gjson.Result, c *Counter, b *Budget) int64 {
	switch {
	case v.Type == gjson.String:
		return int64(c.countJSON(v, b))
	case v.IsArray():
		var total int64
		v.ForEach(func(_, part gjson.Result) bool {
			switch part.Get("type").Str {
			case "text", "input_text", "refusal":
				total += int64(c.countJSON(part.Get("text"), b))
			case "image_url", "input_image":
				total += tokensPerImage
			default:
				// Unknown part kinds still cost what their JSON spells.
				total += int64(c.Count(part.Raw, b))
			}
			return true
		})
		return total
	}
	return 0
}

// promptTokens counts a completions prompt or embeddings input: a string,
// an array of strings, an array of token ids or an array of such arrays.
func promptTokens(v gjson.Result, c *Counter, b *Budget) int64 {
	switch {
	case v.Type == gjson.String:
		return int64(c.countJSON(v, b))
	case v.Type == gjson.Number:
		return 1
	case v.IsArray():
		var total int64
		v.ForEach(func(_, x gjson.Result) bool {
			total += promptTokens(x, c, b)
			return true
		})
		return total
	case v.IsObject():
		return itemTokens(v, c, b)
	}
	return 0
}

// itemTokens counts one Responses API input item: a message's content
// (a string or parts), a function call's name and arguments, a function
// call output's output; other items what their JSON spells.
func itemTokens(item gjson.Result, c *Counter, b *Budget) int64 {
	total := int64(tokensPerMessage)
	item.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "content", "output":
			total += contentTokens(v, c, b)
		case "name", "arguments":
			total += int64(c.countJSON(v, b))
		case "type", "role", "call_id", "id", "status":
		default:
			total += int64(c.Count(v.Raw, b))
		}
		return true
	})
	return total
}

// documentTokens estimates a rerank request's documents: strings, objects
// with a text field (Cohere's shape) counted by that text, other objects
// (multimodal documents) by their JSON.
func documentTokens(v gjson.Result, c *Counter, b *Budget) int64 {
	if !v.IsArray() {
		return promptTokens(v, c, b)
	}
	var total int64
	v.ForEach(func(_, d gjson.Result) bool {
		switch t := d.Get("text"); {
		case d.Type == gjson.String:
			total += int64(c.countJSON(d, b))
		case d.IsObject() && t.Type == gjson.String:
			total += int64(c.countJSON(t, b))
		case d.IsObject():
			total += int64(c.Count(d.Raw, b))
		}
		return true
	})
	return total
}
