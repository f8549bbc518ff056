package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	p, err := Parse("p.json", []byte(`{"version":1,"claimsDir":"/var/lib/portclaim/claims",
		"yield":[{"unit":"ollama.service","users":["alice"]},{"unit":"qdrant.service","users":["alice","bob"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allows("alice", "ollama.service") || !p.Allows("bob", "qdrant.service") || p.Allows("bob", "ollama.service") || p.Allows("alice", "sshd.service") {
		t.Errorf("Allows wrong for %+v", p.Yield)
	}
}

func TestParseProblems(t *testing.T) {
	_, err := Parse("p.json", []byte(`{"version":2,"claimsDir":"relative/dir","yield":[{"unit":"../x","users":["alice"]},{"unit":"a.service","users":["../root"]}]}`))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"version: 2", "claimsDir: \"relative/dir\"", "yield[0].unit", "yield[1].users[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestLoadRefusesAPolicyAUserCouldWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.json")
	os.WriteFile(path, []byte(`{"version":1,"yield":[]}`), 0o666)
	os.Chmod(path, 0o666)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "not trusting") {
		t.Fatalf("Load of a world-writable policy = %v, want refusal", err)
	}
	if os.Getuid() == 0 {
		os.Chmod(path, 0o644)
		os.Chmod(dir, 0o755)
		if _, err := Load(path); err != nil {
			t.Fatalf("root-owned 0644 policy refused: %v", err)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "services.portclaim") {
		t.Fatalf("got %v, want ErrMissing naming the NixOS option", err)
	}
}
