package extproc

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/streamgate/streamgate/extproc/auth"
)

// requestInfo is what Streamgate reads from a request body: only the fields
// routing and policy need, without decoding the whole document.
type requestInfo struct {
	Model  string
	Stream bool
	// Tokens is the output the client asked for: max_tokens and
	// max_completion_tokens (-1 when absent or null) and n (1 when absent).
	Tokens auth.TokenRequest
	// MaxOutputTokens is the Responses API's max_output_tokens (-1 when
	// absent or null).
	MaxOutputTokens int64
	// prompts are where the prompt fields lie in the body (picking.go).
	prompts [numKeptFields - numTypedFields]span
	// model is where the model's JSON string lies in the body (rewriteModelAt).
	model span
}

// parseRequest checks body against bp (nil: the defaults) and reads what
// policy needs. In order: a depth check (checkDepth) so that no recursive
// parser ever sees a body nested deeper than bp allows, a UTF-8 check (JSON
// is UTF-8, RFC 8259 §8.1; the JSON validator does not check it, and
// backends differ: one refuses, another substitutes U+FFFD), JSON validation, and
// one pass over the top-level keys that refuses any key folding onto a
// controlled field unless it spells the field exactly, once, with the type
// the field takes. Every later reader of the body (token cap, shaping,
// estimate, translation) relies on this having passed. Nothing is
// allocated per message.
func parseRequest(body []byte, bp *bodyPolicy) (requestInfo, error) {
	if bp == nil {
		bp = defaultBodyPolicy
	}
	if !checkDepth(body, bp.maxDepth) {
		return requestInfo{}, reject(ErrBadJSON, "The request body nests arrays and objects more than %d levels deep, the gateway limit (gateway.max_json_depth).", bp.maxDepth)
	}
	if !utf8.Valid(body) {
		return requestInfo{}, reject(ErrBadJSON, "The request body is not valid UTF-8; JSON must be encoded in UTF-8.")
	}
	if !gjson.ValidBytes(body) {
		return requestInfo{}, reject(ErrBadJSON, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)")
	}
	// A string view of the body, not a copy: the body is read here only, and
	// what outlives the request (the model name) is cloned below.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return requestInfo{}, reject(ErrBadJSON, "The request body must be a JSON object.")
	}
	var typed [numKeptFields]gjson.Result
	if err := bp.scan(root, &typed); err != nil {
		return requestInfo{}, err
	}
	info, err := readFields(&typed)
	info.keepPrompts(&typed, len(body))
	if m := typed[fieldModel]; m.Index > 0 && m.Index+len(m.Raw) <= len(body) {
		info.model = span{m.Index, len(m.Raw)}
	}
	return info, err
}

// scan makes one pass over the top-level keys of root: a key that folds
// onto a controlled field (foldName) must spell it exactly, without
// escapes, and appear once, since a backend may match keys loosely or
// honour the last copy while policy read the first. The values of the
// typed fields land in typed.
func (bp *bodyPolicy) scan(root gjson.Result, typed *[numKeptFields]gjson.Result) error {
	var seenBuf [64]bool
	seen := seenBuf[:]
	if len(bp.names) > len(seenBuf) {
		seen = make([]bool, len(bp.names))
	}
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		i, ok := bp.lookup(k.Str)
		if !ok {
			return true
		}
		switch name := bp.names[i]; {
		case k.Str != name || len(k.Raw) != len(name)+2:
			err = reject(ErrBadJSON, "The request body spells the %q field with other letter case, delimiters or escapes; send it exactly as %q.", name, name)
		case seen[i]:
			err = reject(ErrBadJSON, "The request body repeats the %q field; send it once.", name)
		default:
			seen[i] = true
			if i < numKeptFields {
				typed[i] = v
			}
			return true
		}
		return false
	})
	return err
}

// readFields checks the type of each typed field and reads it.
func readFields(typed *[numKeptFields]gjson.Result) (requestInfo, error) {
	model := typed[fieldModel]
	if model.Type != gjson.String || model.Str == "" {
		return requestInfo{}, reject(ErrMissingModel, "You must provide a model parameter.")
	}
	info := requestInfo{Model: strings.Clone(model.Str)}
	if v := typed[fieldStream]; present(v) {
		if !v.IsBool() {
			return requestInfo{}, reject(ErrBadJSON, "The stream parameter must be a boolean.")
		}
		info.Stream = v.Bool()
	}
	var err error
	t := &info.Tokens
	if t.MaxTokens, err = readInt(typed[fieldMaxTokens], "max_tokens", 0, math.MaxInt64); err != nil {
		return requestInfo{}, err
	}
	if t.MaxCompletionTokens, err = readInt(typed[fieldMaxCompletionTokens], "max_completion_tokens", 0, math.MaxInt64); err != nil {
		return requestInfo{}, err
	}
	if info.MaxOutputTokens, err = readInt(typed[fieldMaxOutputTokens], "max_output_tokens", 0, math.MaxInt64); err != nil {
		return requestInfo{}, err
	}
	if t.N, err = readInt(typed[fieldN], "n", 1, MaxN); err != nil {
		return requestInfo{}, err
	}
	t.N = max(t.N, 1)
	for _, i := range []int{fieldTemperature, fieldTopP} {
		if v := typed[i]; present(v) && v.Type != gjson.Number {
			return requestInfo{}, reject(ErrBadJSON, "The %s parameter must be a number.", policyFields[i])
		}
	}
	if v := typed[fieldStreamOptions]; present(v) {
		if err := checkStreamOptions(v); err != nil {
			return requestInfo{}, err
		}
	}
	return info, nil
}

// present reports whether a field was sent with a value other than null.
func present(v gjson.Result) bool { return v.Exists() && v.Type != gjson.Null }

// readInt reads an integer field in [lo, hi]; -1 when absent or null.
func readInt(v gjson.Result, name string, lo, hi int64) (int64, error) {
	if !present(v) {
		return -1, nil
	}
	n, err := strconv.ParseInt(v.Raw, 10, 64)
	if v.Type != gjson.Number || err != nil || n < lo || n > hi {
		if hi == math.MaxInt64 {
			return 0, reject(ErrBadJSON, "The %s parameter must be an integer of at least %d.", name, lo)
		}
		return 0, reject(ErrBadJSON, "The %s parameter must be an integer from %d to %d.", name, lo, hi)
	}
	return n, nil
}

// checkStreamOptions holds stream_options, which admission reads
// include_usage from, to the rules of the top level.
func checkStreamOptions(v gjson.Result) error {
	const name = "include_usage"
	if !v.IsObject() {
		return reject(ErrBadJSON, "The stream_options parameter must be an object.")
	}
	var err error
	seen := false
	v.ForEach(func(k, x gjson.Result) bool {
		var buf [32]byte
		switch {
		case string(foldName(buf[:0], k.Str)) != "includeusage":
			return true
		case k.Str != name || len(k.Raw) != len(name)+2 || seen:
			err = reject(ErrBadJSON, "The stream_options parameter repeats or misspells %q; send it once, exactly.", name)
		case present(x) && !x.IsBool():
			err = reject(ErrBadJSON, "The stream_options.include_usage parameter must be a boolean.")
		default:
			seen = true
			return true
		}
		return false
	})
	return err
}

// rewriteModel returns body with its model field set to model, leaving every
// other byte of the document as it was.
func rewriteModel(body []byte, model string) ([]byte, error) {
	out, err := sjson.SetBytes(body, "model", model)
	if err != nil {
		return nil, reject(ErrBadJSON, "The model field could not be rewritten: %v", err)
	}
	return out, nil
}

// rewriteModelAt is rewriteModel for the body parseRequest read, whose
// model string lies at at: it writes the same bytes without searching the
// body again. A model name that needs escaping, or an unknown span, takes
// rewriteModel.
func rewriteModelAt(body []byte, at span, model string) ([]byte, error) {
	if at.n < 2 || at.at+at.n > len(body) || body[at.at] != '"' || !plainJSONString(model) {
		return rewriteModel(body, model)
	}
	out := make([]byte, 0, len(body)-at.n+len(model)+2)
	out = append(out, body[:at.at]...)
	out = append(append(append(out, '"'), model...), '"')
	return append(out, body[at.at+at.n:]...), nil
}

// plainJSONString reports whether s goes into JSON as is between quotes,
// as sjson writes it unescaped: no control byte, quote, backslash or
// non-ASCII byte.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }
