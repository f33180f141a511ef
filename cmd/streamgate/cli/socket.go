package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/envoy"
)

// findEnvoy returns the Envoy binary `streamgate run` starts, or "" when
// want is false or none is found (logged: run then serves an Envoy started
// elsewhere).
func findEnvoy(want bool, log *slog.Logger) (string, error) {
	if !want {
		return "", nil
	}
	wd, _ := os.Getwd()
	bin, err := envoy.Find(wd)
	if errors.Is(err, envoy.ErrNotFound) {
		log.Warn("not starting Envoy", "reason", err.Error())
		return "", nil
	}
	return bin, err
}

// maxSocketPath bounds a unix socket's file name: sun_path holds 108 bytes
// on Linux and 104 on macOS, the terminating NUL included.
const maxSocketPath = 100

// localExtProc puts the ext_proc server of a `streamgate run` that starts
// Envoy on a unix socket in a new directory only this user may enter, when
// the config leaves extproc.listen and extproc.address unset. It returns
// the config to serve, the loader the config watcher must use so reloads
// keep the same socket, and the directory to remove once the servers have
// stopped ("" when none was made). When no directory can be made (or its
// path is too long for a socket) the config keeps its TCP default.
func localExtProc(cfg *config.Config, log *slog.Logger) (*config.Config, func(string) (*config.Config, error), string) {
	if !cfg.ExtProc.Defaulted() {
		return cfg, config.Load, ""
	}
	dir, sock, err := socketDir()
	if err != nil {
		log.Warn("ext_proc stays on TCP", "address", cfg.ExtProc.Listen, "reason", err.Error())
		return cfg, config.Load, ""
	}
	load := func(path string) (*config.Config, error) {
		c, err := config.Load(path)
		if err != nil || c == nil {
			return c, err
		}
		return c.WithLocalExtProc(sock), nil
	}
	return cfg.WithLocalExtProc(sock), load, dir
}

// socketDir makes a private directory under $XDG_RUNTIME_DIR (a per-user
// tmpfs), else the temporary directory, and names the socket in it.
func socketDir() (dir, sock string, err error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if fi, err := os.Stat(base); base == "" || err != nil || !fi.IsDir() {
		base = ""
	}
	dir, err = os.MkdirTemp(base, "streamgate-")
	if err != nil {
		return "", "", fmt.Errorf("cannot create the ext_proc socket directory: %w", err)
	}
	sock = filepath.Join(dir, "extproc.sock")
	if len(sock) > maxSocketPath {
		_ = os.Remove(dir)
		return "", "", fmt.Errorf("cannot use %s: a unix socket path may hold at most %d bytes", sock, maxSocketPath)
	}
	return dir, sock, nil
}
