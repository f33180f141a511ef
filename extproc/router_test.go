package extproc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func splitRoutes(t *testing.T) *Routes {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(`
backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
  - {name: b, protocol: openai, endpoints: ["127.0.0.1:2"]}
models:
  - name: m
    allow_pin: true
    versions:
      - {name: v1, backend: a, upstream_model: m-1, weight: 90}
      - {name: v2, backend: b, upstream_model: m-2, weight: 10}
      - {name: shadow, backend: b, weight: 0}
  - name: fixed
    versions:
      - {name: only, backend: a, weight: 1}
`))
	require.NoError(t, err)
	return NewRoutes(cfg, 0)
}

func TestPickByWeight(t *testing.T) {
	r := splitRoutes(t)
	for name, tc := range map[string]struct {
		roll    uint64
		version string
	}{
		"first of v1": {0, "v1"}, "last of v1": {89, "v1"}, "first of v2": {90, "v2"}, "last of v2": {99, "v2"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := r.Pick("m", "", func(n uint64) uint64 { require.EqualValues(t, 100, n); return tc.roll })
			require.NoError(t, err)
			assert.Equal(t, tc.version, got.Version)
		})
	}
}

func TestPickPinned(t *testing.T) {
	r := splitRoutes(t)
	got, err := r.Pick("m", "shadow", nil)
	require.NoError(t, err)
	assert.Equal(t, "b", got.Backend)
	assert.Equal(t, "m", got.UpstreamModel, "upstream name defaults to the public one")

	_, err = r.Pick("m", "v9", nil)
	require.ErrorIs(t, err, ErrVersionNotFound)
	_, err = r.Pick("fixed", "only", nil)
	require.ErrorIs(t, err, ErrPinNotAllowed)
	_, err = r.Pick("nope", "", nil)
	require.ErrorIs(t, err, ErrUnknownModel)
}
