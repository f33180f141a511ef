package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHashKey(t *testing.T) {
	for name, tc := range map[string]struct {
		in, out, errOut string
	}{
		// printf 'sk-test-123' | sha256sum
		"one line":            {in: "sk-test-123\n", out: "sha256:e0dbaa0c6455768bf812d8345ec96a2677d1e3bf17dbb0020b115c80092811e6\n"},
		"no newline":          {in: "sk-test-123", out: "sha256:e0dbaa0c6455768bf812d8345ec96a2677d1e3bf17dbb0020b115c80092811e6\n"},
		"CRLF":                {in: "sk-test-123\r\n", out: "sha256:e0dbaa0c6455768bf812d8345ec96a2677d1e3bf17dbb0020b115c80092811e6\n"},
		"only the first line": {in: "sk-test-123\nsecond\n", out: "sha256:e0dbaa0c6455768bf812d8345ec96a2677d1e3bf17dbb0020b115c80092811e6\n"},
		"empty":               {in: "", errOut: "non-empty line"},
		"surrounding space":   {in: " sk-test-123\n", errOut: "without surrounding spaces"},
		"unsendable":          {in: "sk test\n", errOut: "characters clients cannot send"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := hashKeyCmd(nil, strings.NewReader(tc.in), &stdout, &stderr)
			if tc.errOut != "" {
				require.ErrorIs(t, err, ErrReported)
				assert.Contains(t, stderr.String(), tc.errOut)
				assert.Empty(t, stdout.String())
				assert.NotContains(t, stderr.String(), "sk", "the key is never echoed")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.out, stdout.String())
			assert.NotContains(t, stdout.String()+stderr.String(), "sk-test")
		})
	}
}
