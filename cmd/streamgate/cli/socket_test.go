package cli

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

const socketTestConfig = "backends: [{name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\n"

func TestLocalExtProcPicksAPrivateSocketOnlyForTheDefault(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("default: a socket in a new 0700 directory, kept by reloads", func(t *testing.T) {
		run, err := os.MkdirTemp("/tmp", "sgrun") // t.TempDir names are too long for a socket
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(run) })
		t.Setenv("XDG_RUNTIME_DIR", run)
		path := filepath.Join(t.TempDir(), "s.yaml")
		require.NoError(t, os.WriteFile(path, []byte(socketTestConfig), 0o600))
		cfg, err := config.Load(path)
		require.NoError(t, err)
		got, load, dir := localExtProc(cfg, discard)
		require.NotEmpty(t, dir)
		defer os.RemoveAll(dir)
		assert.Equal(t, "unix:"+filepath.Join(dir, "extproc.sock"), got.ExtProc.Listen)
		assert.True(t, strings.HasPrefix(dir, os.Getenv("XDG_RUNTIME_DIR")), dir)
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
		again, err := load(path)
		require.NoError(t, err)
		assert.Equal(t, got.ExtProc.Listen, again.ExtProc.Listen)
		assert.Equal(t, config.DefaultExtProcListen, cfg.ExtProc.Listen, "the loaded config is not changed")
	})
	t.Run("listen set: kept, no directory", func(t *testing.T) {
		cfg, err := config.Parse("s.yaml", []byte("extproc: {listen: 127.0.0.1:50999}\n"+socketTestConfig))
		require.NoError(t, err)
		got, _, dir := localExtProc(cfg, discard)
		assert.Empty(t, dir)
		assert.Equal(t, "127.0.0.1:50999", got.ExtProc.Listen)
	})
	t.Run("a path too long for a socket: TCP default", func(t *testing.T) {
		long := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
		require.NoError(t, os.Mkdir(long, 0o700))
		t.Setenv("XDG_RUNTIME_DIR", long)
		cfg, err := config.Parse("s.yaml", []byte(socketTestConfig))
		require.NoError(t, err)
		got, _, dir := localExtProc(cfg, discard)
		assert.Empty(t, dir)
		assert.Equal(t, config.DefaultExtProcListen, got.ExtProc.Listen)
		entries, err := os.ReadDir(long)
		require.NoError(t, err)
		assert.Empty(t, entries, "the unusable directory is removed")
	})
}
