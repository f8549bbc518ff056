package actionlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

func TestFileRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "portclaim")
	l := Open(dir)
	l.journal = false // the journal is exercised end to end
	l.Add(Entry{Action: "stop", Unit: "ollama.service", Ports: []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 11434}}, Result: "done", Msg: "for alice"})
	l.Close()
	data, err := os.ReadFile(filepath.Join(dir, "portclaim.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `action=stop unit=ollama.service ports=11434/tcp result=done msg="for alice"`) {
		t.Errorf("log line: %q", data)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "portclaim.log")); fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestStateDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/tmp/xdg-state")
	if got := StateDir(); got != "/tmp/xdg-state/portclaim" {
		t.Errorf("StateDir = %q", got)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/alice")
	if got := StateDir(); got != "/home/alice/.local/state/portclaim" {
		t.Errorf("StateDir = %q", got)
	}
}
