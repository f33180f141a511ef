package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestImagePriceKey(t *testing.T) {
	for key, want := range map[string]struct {
		size, quality string
		ok            bool
	}{
		"1024x1024":         {"1024x1024", "", true},
		"1536x864/high":     {"1536x864", "high", true},
		"auto":              {"auto", "", true},
		"auto/low":          {"auto", "low", true},
		"1024x1024/":        {ok: false},
		"1024x1024/ultra":   {ok: false},
		"1024X1024":         {ok: false},
		"1024x":             {ok: false},
		"01024x1024":        {ok: false},
		"123456x1":          {ok: false},
		"1024x1024x1":       {ok: false},
		"large":             {ok: false},
		"":                  {ok: false},
		"1024x1024/high/hd": {ok: false},
	} {
		t.Run(key, func(t *testing.T) {
			size, quality, ok := ImagePriceKey(key)
			assert.Equal(t, want.ok, ok)
			if want.ok {
				assert.Equal(t, want.size, size)
				assert.Equal(t, want.quality, quality)
			}
		})
	}
}

func TestImagePricesValidatedWithLines(t *testing.T) {
	src := `backends:
  - name: a
    protocol: openai
    endpoints: ["127.0.0.1:8000"]
models:
  - name: img
    backend: a
telemetry:
  prices:
    img:
      per_image:
        "1024x1024": 0.04
        "1024x1024/high": 0.17
        "big": 0.1
        "512x512": -1
`
	_, err := Parse("prices.yaml", []byte(src))
	require.Error(t, err)
	ps := Problems(err)
	require.Len(t, ps, 2, err.Error())
	byLine := map[int]string{}
	for _, p := range ps {
		byLine[p.Line] = p.Msg
	}
	assert.Contains(t, byLine[14], `per_image key "big" of model "img" is not an image size`)
	assert.Contains(t, byLine[15], `per_image price "512x512" of model "img" must be between 0 and 1000 USD per image`)

	ok := strings.NewReplacer(`        "big": 0.1`+"\n", "", "-1", "0.02").Replace(src)
	cfg, err := Parse("prices.yaml", []byte(ok))
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"1024x1024": 0.04, "1024x1024/high": 0.17, "512x512": 0.02}, cfg.Telemetry.Prices["img"].PerImage)
}
