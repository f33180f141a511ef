package extproc

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// requestInfo is what Streamgate reads from a request body: only the fields
// routing needs, without decoding the whole document.
type requestInfo struct {
	Model  string
	Stream bool
}

// parseRequest validates body as JSON and reads model and stream. Cost is
// one validation pass plus two field scans; nothing is allocated per message.
func parseRequest(body []byte) (requestInfo, error) {
	if !gjson.ValidBytes(body) {
		return requestInfo{}, reject(ErrBadJSON, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)")
	}
	// A string view of the body, not a copy: the body is read here only, and
	// what outlives the request (the model name) is cloned below.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return requestInfo{}, reject(ErrBadJSON, "The request body must be a JSON object.")
	}
	var info requestInfo
	var model, stream gjson.Result
	var dup string
	// One pass over the top-level keys. A repeated key is refused: a backend
	// may honour the last copy while routing read the first.
	// Escaped spellings of these keys are refused for the same reason.
	root.ForEach(func(k, v gjson.Result) bool {
		if (k.Str == "model" || k.Str == "stream") && len(k.Raw) != len(k.Str)+2 {
			dup = k.Str
			return false
		}
		switch k.Str {
		case "model":
			if model.Exists() {
				dup = k.Str
				return false
			}
			model = v
		case "stream":
			if stream.Exists() {
				dup = k.Str
				return false
			}
			stream = v
		}
		return true
	})
	if dup != "" {
		return requestInfo{}, reject(ErrBadJSON, "The request body repeats or escapes the %q field.", dup)
	}
	if model.Type != gjson.String || model.Str == "" {
		return requestInfo{}, reject(ErrMissingModel, "You must provide a model parameter.")
	}
	info.Model = strings.Clone(model.Str)
	if stream.Exists() && stream.Type != gjson.Null {
		if !stream.IsBool() {
			return requestInfo{}, reject(ErrBadJSON, "The stream parameter must be a boolean.")
		}
		info.Stream = stream.Bool()
	}
	return info, nil
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

func itoa(n int) string { return strconv.Itoa(n) }
