package nixeval

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func need(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must run the Nix checks: %v", err)
		}
		t.Skip(err)
	}
}

// TestEveryNixFileParses runs nix-instantiate --parse on every .nix file
// of the repository.
func TestEveryNixFileParses(t *testing.T) {
	need(t)
	n := 0
	filepath.WalkDir(RepoRoot(), func(path string, d os.DirEntry, err error) error {
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".nix") {
			n++
			if err := Parse(context.Background(), path); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	if n == 0 {
		t.Fatal("no .nix files found")
	}
}

// TestRenderGolden pins what the NixOS module renders for the README's
// example policy.
func TestRenderGolden(t *testing.T) {
	need(t)
	r, err := Render(context.Background(), "/var/lib/portclaim/claims", map[string][]string{
		"ollama.service": {"alice"},
		"qdrant.service": {"bob", "alice"},
		"qdrant.socket":  {"alice"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# policy.json\n" + r.Policy + "\n# polkit rule\n" + r.PolkitRule + "# tmpfiles\n")
	for _, l := range r.Tmpfiles {
		b.WriteString(l + "\n")
	}
	for _, u := range []string{"ollama.service", "qdrant.service", "qdrant.socket"} {
		b.WriteString("# " + u + " [Unit]\n" + strings.Join(r.Conditions[u], "\n") + "\n")
	}
	golden := filepath.Join("testdata", "render.golden")
	if *update {
		os.WriteFile(golden, []byte(b.String()), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("rendered output differs from %s (go test -update to accept):\n%s", golden, b.String())
	}
}

func TestRenderRejectsNonUnits(t *testing.T) {
	need(t)
	var out any
	err := Lib(context.Background(), `pc.unitOption "ollama"`, &out)
	if err == nil || !strings.Contains(err.Error(), "is not a .service or .socket unit name") {
		t.Fatalf("got %v, want the module's error", err)
	}
}
