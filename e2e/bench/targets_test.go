package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLostPortRace(t *testing.T) {
	dir := t.TempDir()
	lost := filepath.Join(dir, "lost.log")
	other := filepath.Join(dir, "other.log")
	if err := os.WriteFile(lost, []byte("error `cannot bind '127.0.0.1:41265': Address already in use`\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("cannot load config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !lostPortRace(&target{logPath: lost}) {
		t.Error("a bind failure is a lost port race")
	}
	if lostPortRace(&target{logPath: other}) || lostPortRace(nil) || lostPortRace(&target{}) {
		t.Error("other failures are not retried")
	}
}
