package bench

import (
	"io"
	"testing"

	"github.com/streamgate/streamgate/config"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseConfigsAddsTheBaselineAndKeepsRunOrder(t *testing.T) {
	for name, tc := range map[string]struct {
		in      string
		want    []string
		wantErr bool
	}{
		"all":               {in: "a,b,c,d,e,f,g", want: allConfigs},
		"subset with b":     {in: "b,c,d,f", want: []string{"b", "c", "d", "f"}},
		"b added":           {in: "f,d", want: []string{"b", "d", "f"}},
		"spaces and repeat": {in: " c , c,a", want: []string{"a", "b", "c"}},
		"unknown":           {in: "b,h", wantErr: true},
		"empty item":        {in: "b,,c", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseConfigs(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseOptionsConfigsAndSmoke(t *testing.T) {
	base := []string{"-envoy", "/bin/true"}
	o, err := parseOptions(base, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, allConfigs, o.Configs, "every configuration runs by default")

	o, err = parseOptions(append(base, "-configs", "c,f"), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "c", "f"}, o.Configs)

	o, err = parseOptions(append(base, "-smoke"), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, allConfigs, o.Configs, "the smoke run covers every configuration")
	assert.True(t, o.FailOnErrors)

	_, err = parseOptions(append(base, "-smoke", "-markdown", "docs/performance.md"), io.Discard)
	require.Error(t, err, "a smoke run must not write the performance page")
}

func TestConfigurationsSplitClientsByUsage(t *testing.T) {
	o := Options{StreamgateBin: "sg", FullBin: "sg-new", Configs: []string{"b", "d", "f", "g"}}
	ts := configurations(o, "# bench: custom\n", "my.yaml", &backend{addr: "127.0.0.1:1"})
	byID := map[string]*target{}
	for _, tg := range ts {
		byID[tg.ID] = tg
	}
	require.Len(t, byID, len(allConfigs))
	for id, asks := range map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true, "f": false, "g": false} {
		assert.Equal(t, asks, byID[id].AsksUsage, "(%s) asks for usage", id)
	}
	for _, id := range []string{"d", "f"} {
		assert.Equal(t, "my.yaml", byID[id].Config, "(%s) runs the -full-config template", id)
		assert.Equal(t, "custom", byID[id].Note)
		assert.Equal(t, "sg-new", byID[id].Binary, "(%s) runs -full-streamgate", id)
	}
	assert.Equal(t, "e2e/bench/configs/everything.yaml", byID["g"].Config)
	assert.NotEmpty(t, byID["g"].Note, "everything.yaml has a # bench: label")
	for id, skipped := range map[string]bool{"a": true, "b": false, "c": true, "d": false, "e": true, "f": false, "g": false} {
		assert.Equal(t, skipped, byID[id].Skipped != "", "(%s) skipped", id)
	}
}

func TestConfigTemplatesLoad(t *testing.T) {
	for name, text := range map[string]string{
		"passthrough": passthroughConfig, "full": fullConfig, "translate": translateConfig, "everything": everythingConfig,
	} {
		t.Run(name, func(t *testing.T) {
			d, err := newTemplateData("127.0.0.1:9", "sk-test")
			require.NoError(t, err)
			raw, err := renderConfig(text, d)
			require.NoError(t, err)
			_, err = config.Parse(name+".yaml", raw)
			require.NoError(t, err)
			assert.NotEmpty(t, configLabel(text), "the first line labels the configuration")
		})
	}
}
