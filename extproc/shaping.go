package extproc

import (
	"encoding/json"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/streamgate/streamgate/config"
)

// shaper applies one model's request shaping. It is immutable and shared
// by every request of the model.
type shaper struct {
	cfg      *config.Shaping
	defaults []shapingDefault // sorted by field, JSON-encoded once
	headers  []*corev3.HeaderValueOption
}

type shapingDefault struct {
	field string
	raw   []byte
}

// newShaper prepares s; nil means no shaping.
func newShaper(s *config.Shaping) *shaper {
	if s == nil {
		return nil
	}
	sh := &shaper{cfg: s}
	for f, v := range s.Defaults {
		raw, err := json.Marshal(v)
		if err != nil {
			continue // YAML values always encode; keep the rest working
		}
		sh.defaults = append(sh.defaults, shapingDefault{field: f, raw: raw})
	}
	sort.Slice(sh.defaults, func(i, j int) bool { return sh.defaults[i].field < sh.defaults[j].field })
	names := make([]string, 0, len(s.Headers))
	for h := range s.Headers {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		sh.headers = append(sh.headers, header(h, s.Headers[h]))
	}
	return sh
}

// apply returns body shaped: forbidden fields refused, dropped fields
// removed, defaults filled, max_tokens lowered to the ceiling, temperature
// and top_p clamped. It returns body itself when nothing changed. Cost: one
// field lookup per rule; the body is copied only when a rule changes it.
func (sh *shaper) apply(model string, body []byte) ([]byte, error) {
	if sh == nil {
		return body, nil
	}
	s := sh.cfg
	for _, f := range s.Forbid {
		if gjson.GetBytes(body, f).Exists() {
			return nil, reject(ErrForbiddenField, "The field `%s` is not allowed for the model `%s`.", f, model)
		}
	}
	var err error
	out := body
	for _, f := range s.Drop {
		if gjson.GetBytes(out, f).Exists() {
			if out, err = sjson.DeleteBytes(out, f); err != nil {
				return nil, reject(ErrBadJSON, "The request could not be shaped: %v", err)
			}
		}
	}
	for _, d := range sh.defaults {
		if !gjson.GetBytes(out, d.field).Exists() {
			if out, err = sjson.SetRawBytes(out, d.field, d.raw); err != nil {
				return nil, reject(ErrBadJSON, "The request could not be shaped: %v", err)
			}
		}
	}
	if s.MaxTokens > 0 {
		for _, f := range []string{"max_tokens", "max_completion_tokens"} {
			if v := gjson.GetBytes(out, f); v.Type == gjson.Number && v.Int() > int64(s.MaxTokens) {
				if out, err = sjson.SetBytes(out, f, s.MaxTokens); err != nil {
					return nil, reject(ErrBadJSON, "The request could not be shaped: %v", err)
				}
			}
		}
	}
	for f, r := range map[string]*config.Range{"temperature": s.Temperature, "top_p": s.TopP} {
		if r == nil {
			continue
		}
		if v := gjson.GetBytes(out, f); v.Type == gjson.Number {
			if c := min(max(v.Float(), r.Min), r.Max); c != v.Float() {
				if out, err = sjson.SetBytes(out, f, c); err != nil {
					return nil, reject(ErrBadJSON, "The request could not be shaped: %v", err)
				}
			}
		}
	}
	return out, nil
}
