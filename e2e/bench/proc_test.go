package bench

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func TestReadProcAndFindChild(t *testing.T) {
	self, err := readProc(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, self.rssBytes)

	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid, err := findChild(os.Getpid(), "sleep", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, cmd.Process.Pid, pid)

	_, err = findChild(os.Getpid(), "no-such-command", 100*time.Millisecond)
	require.Error(t, err)
}

func TestParseGoMetrics(t *testing.T) {
	m, err := parseGoMetrics(strings.NewReader("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_memstats_heap_inuse_bytes 1.5e+06\ngo_threads 7\n"))
	require.NoError(t, err)
	assert.Equal(t, goMetrics{HeapInuseBytes: 1.5e6, Goroutines: 42}, m)
	_, err = parseGoMetrics(strings.NewReader("go_goroutines 42\n"))
	require.Error(t, err)
}

// The built-in config templates must stay valid Streamgate configs as the
// schema grows.
func TestConfigTemplates(t *testing.T) {
	for name, text := range map[string]string{"passthrough": passthroughConfig, "full": fullConfig, "translate": translateConfig} {
		t.Run(name, func(t *testing.T) {
			assert.NotEmpty(t, configLabel(text))
			raw, err := renderConfig(text, templateData{Gateway: "127.0.0.1:1", ExtProc: "127.0.0.1:2", XDS: "127.0.0.1:3",
				Admin: "127.0.0.1:4", Metrics: "127.0.0.1:5", Backend: "127.0.0.1:6", APIKey: "sk-test", APIKeyHash: "sha256:" + strings.Repeat("0", 64)})
			require.NoError(t, err)
			cfg, err := config.Parse(name+".yaml", raw)
			require.NoError(t, err)
			require.NotNil(t, cfg.Backend("bench"))
		})
	}
	assert.Equal(t, "x y", configLabel("# bench: x y\n# more\n"))
	assert.Empty(t, configLabel("# other\n"))
}

func TestEnvoyVersion(t *testing.T) {
	out := "\n/path/envoy  version: 0123456789012345678901234567890123456789/1.40.0/Clean/RELEASE/BoringSSL\n"
	assert.Equal(t, "1.40.0/Clean/RELEASE/BoringSSL", envoyVersion(out))
}
