package sse

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// scanAll splits the chunks into lines with one LineScanner, each chunk
// appended to what the previous calls left, the way its readers use it.
func scanAll(chunks ...string) []string {
	var s LineScanner
	var lines []string
	var buf []byte
	for i, c := range chunks {
		buf = append(buf, c...)
		for {
			line, n, ok := s.Next(buf, i == len(chunks)-1)
			if !ok {
				break
			}
			lines = append(lines, string(line))
			buf = buf[n:]
		}
	}
	return lines
}

func TestLineScanner(t *testing.T) {
	for name, tc := range map[string]struct {
		chunks []string
		want   []string
	}{
		"LF":                         {[]string{"a\nb\n"}, []string{"a", "b"}},
		"CRLF":                       {[]string{"a\r\nb\r\n"}, []string{"a", "b"}},
		"CR":                         {[]string{"a\rb\r"}, []string{"a", "b"}},
		"blank lines in every form":  {[]string{"a\n\r\n\r\r\n\n"}, []string{"a", "", "", "", ""}},
		"CRLF split between chunks":  {[]string{"a\r", "\nb\r\n"}, []string{"a", "b"}},
		"CR at a chunk end, then CR": {[]string{"a\r", "\rb\n"}, []string{"a", "", "b"}},
		"CR at a chunk end, then b":  {[]string{"a\r", "b\n"}, []string{"a", "b"}},
		"LF waits in an empty chunk": {[]string{"a\r", "", "\n", "b\n"}, []string{"a", "b"}},
		"last line without end":      {[]string{"a\nb"}, []string{"a", "b"}},
		"incomplete line waits":      {[]string{"ab", "c\n"}, []string{"abc"}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, scanAll(tc.chunks...))
		})
	}
}

func TestField(t *testing.T) {
	for name, tc := range map[string]struct{ line, name, value string }{
		"data":           {"data: x", "data", "x"},
		"no space":       {"data:x", "data", "x"},
		"two spaces":     {"data:  x", "data", " x"},
		"no colon":       {"data", "data", ""},
		"comment":        {": ping", "", "ping"},
		"colon in value": {"data: a:b", "data", "a:b"},
		"empty value":    {"event:", "event", ""},
	} {
		t.Run(name, func(t *testing.T) {
			n, v := Field([]byte(tc.line))
			assert.Equal(t, tc.name, string(n))
			assert.Equal(t, tc.value, string(v))
		})
	}
}
