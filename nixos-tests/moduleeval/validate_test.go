package moduleeval

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestModuleManifestsValidate: the manifests the home-manager module
// renders (the README's example; podman ports of every form, home-manager's
// ollama, a host-network container) are ones `portclaim validate` accepts,
// as the build's checkPhase runs it.
func TestModuleManifestsValidate(t *testing.T) {
	need(t)
	var manifests map[string]string
	err := Eval(context.Background(), `let
  readme = (e.nixos { modules = [ `+readmeSystem+` ]; }).config.home-manager.users.alice;
  forms = (e.home { modules = [ {
    services.podman.enable = true;
    services.podman.containers.local-ai-qdrant = { image = "q"; ports = [ "6333:6333" "127.0.0.1:6334:6334" "[::1]:6335:6335" "7000-7002:7000-7002" "5353:53/udp" "9" ]; };
    services.podman.containers.web = { image = "w"; ports = [ "8080:80" ]; network = "host"; };
    services.ollama.enable = true;
    services.ollama.host = "[::]";
    services.portclaim.enable = true;
    services.portclaim.strategy = "report";
  } ]; }).config;
in { readme = readme.services.portclaim.manifest.text; forms = forms.services.portclaim.manifest.text; }`, &manifests)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "portclaim")
	build := exec.Command("go", "build", "-o", bin, "./cmd/portclaim")
	build.Dir = RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building portclaim: %v\n%s", err, out)
	}
	for name, text := range manifests {
		path := filepath.Join(dir, name+".json")
		os.WriteFile(path, []byte(text), 0o644)
		if out, err := exec.Command(bin, "validate", path).CombinedOutput(); err != nil {
			t.Errorf("portclaim validate rejects the %s manifest: %v\n%s\n%s", name, err, out, text)
		}
	}
}
