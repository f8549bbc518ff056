package moduleeval

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/nixos-tests/golden"
)

// TestOptionsDoc: docs/options.md is what nix/docs.nix renders from the
// option declarations of both modules (-update rewrites it), and every
// option it lists has a description and a type.
func TestOptionsDoc(t *testing.T) {
	need(t)
	var got string
	if err := Eval(context.Background(), `import `+filepath.Join(RepoRoot(), "nix", "docs.nix")+` { lib = lib; root = `+RepoRoot()+`; }`, &got); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(RepoRoot(), "docs", "options.md")
	golden.Check(t, path, got)
	for _, name := range []string{
		"services.portclaim.enable", "services.portclaim.yield", "services.portclaim.claimsDir",
		"services.portclaim.metrics.textfileDirectory", "services.portclaim.strict",
		"services.portclaim.validationPackage", "services.portclaim.services.<name>.ports",
	} {
		if !strings.Contains(got, "### `"+name+"`") {
			t.Errorf("docs/options.md lacks %s", name)
		}
	}
	// MyST roles ({file}`x`, {option}`x`) are for nixpkgs' manual; in
	// Markdown they would show as written.
	if role := regexp.MustCompile("\\{[a-z]+\\}`[^`]*`").FindString(got); role != "" {
		t.Errorf("docs/options.md shows a role as written: %s", role)
	}
	if !strings.Contains(got, "`podman-<name>.service`") {
		t.Error("docs/options.md does not render {file}`podman-<name>.service` as code")
	}
	for _, block := range strings.Split(got, "### ")[1:] {
		lines := strings.Split(block, "\n")
		if len(lines) < 3 || strings.TrimSpace(lines[2]) == "" || !strings.Contains(block, "- type: ") || strings.Contains(block, "<unknown-file>") {
			t.Errorf("option without a description, type or file:\n%s", block)
		}
	}
}
