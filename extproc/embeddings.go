package extproc

import (
	"unsafe"

	"github.com/tidwall/gjson"
)

// The embeddings API (POST /v1/embeddings) takes the generic path of
// onRequestBody: its input is checked here (checkEmbeddingsInput) before
// anything counts it, then it is routed by model, authorized, limited on
// the input alone (tokens.EstimateRequest: strings exactly where a
// tokenizer is configured, token arrays by their length; generates
// reserves no output), reconciled from usage.prompt_tokens, passed to
// OpenAI-protocol backends as is and translated for Ollama ones
// (translate.ClientEmbeddings).

// inputShape is which of the four forms of the OpenAI embeddings input a
// request uses.
type inputShape uint8

const (
	inputText        inputShape = iota + 1 // "text"
	inputTexts                             // ["text", ...]
	inputTokens                            // [1, 2, 3]
	inputTokenArrays                       // [[1, 2], [3]]
)

// checkEmbeddingsInput holds an embeddings request's input (raw, its JSON
// as promptOf returns it, nil when absent) to the OpenAI API's schema: a
// non-empty string, a non-empty array of non-empty strings, a non-empty
// array of non-negative integer token ids, or a non-empty array of such
// arrays, never a mix. The refusal names the input field and the item at
// fault, never its content. Cost: one pass over the input, no allocation.
func checkEmbeddingsInput(raw []byte) (inputShape, error) {
	if len(raw) == 0 {
		return 0, reject(ErrBadJSON, "You must provide an input: the 'input' field is required.")
	}
	v := gjson.Parse(unsafe.String(unsafe.SliceData(raw), len(raw)))
	switch {
	case v.Type == gjson.Null:
		return 0, reject(ErrBadJSON, "You must provide an input: the 'input' field is required.")
	case v.Type == gjson.String:
		if v.Str == "" {
			return 0, reject(ErrBadJSON, "Invalid 'input': the string is empty; send non-empty text.")
		}
		return inputText, nil
	case !v.IsArray():
		return 0, reject(ErrBadJSON, "Invalid 'input': send a string, an array of strings, an array of token ids or an array of token-id arrays.")
	}
	var shape inputShape
	var err error
	i := 0
	v.ForEach(func(_, x gjson.Result) bool {
		var s inputShape
		switch {
		case x.Type == gjson.String && x.Str == "":
			err = reject(ErrBadJSON, "Invalid 'input[%d]': the string is empty; send non-empty text.", i)
		case x.Type == gjson.String:
			s = inputTexts
		case x.Type == gjson.Number && tokenID(x):
			s = inputTokens
		case x.Type == gjson.Number:
			err = reject(ErrBadJSON, "Invalid 'input[%d]': a token id must be a non-negative integer.", i)
		case x.IsArray():
			s = inputTokenArrays
			err = checkTokenArray(x, i)
		default:
			err = reject(ErrBadJSON, "Invalid 'input[%d]': send strings, token ids or token-id arrays.", i)
		}
		if err == nil && shape != 0 && s != shape {
			err = reject(ErrBadJSON, "Invalid 'input[%d]': the input mixes %s and %s; send one kind.", i, shape, s)
		}
		shape = s
		i++
		return err == nil
	})
	if err == nil && i == 0 {
		err = reject(ErrBadJSON, "Invalid 'input': the array is empty; send at least one item.")
	}
	return shape, err
}

// checkTokenArray checks the i-th item of a batch of token arrays.
func checkTokenArray(x gjson.Result, i int) error {
	var err error
	n := 0
	x.ForEach(func(_, t gjson.Result) bool {
		if t.Type != gjson.Number || !tokenID(t) {
			err = reject(ErrBadJSON, "Invalid 'input[%d][%d]': a token id must be a non-negative integer.", i, n)
		}
		n++
		return err == nil
	})
	if err == nil && n == 0 {
		err = reject(ErrBadJSON, "Invalid 'input[%d]': the token array is empty.", i)
	}
	return err
}

// tokenID reports whether a JSON number is a non-negative integer that
// fits an int64: digits only, as a token id is written.
func tokenID(x gjson.Result) bool {
	r := x.Raw
	if len(r) == 0 || len(r) > 18 {
		return false
	}
	for i := 0; i < len(r); i++ {
		if r[i] < '0' || r[i] > '9' {
			return false
		}
	}
	return true
}

// String names the shape in messages.
func (s inputShape) String() string {
	switch s {
	case inputText, inputTexts:
		return "strings"
	case inputTokens:
		return "token ids"
	case inputTokenArrays:
		return "token-id arrays"
	}
	return "nothing"
}
