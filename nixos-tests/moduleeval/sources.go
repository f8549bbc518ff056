package moduleeval

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Trees are the source trees the evaluation reads.
type Trees struct {
	// HomeManager is a home-manager tree (modules/modules.nix, nixos/).
	HomeManager string
	// NixpkgsLib holds nixpkgs' lib/ (a nixpkgs tree, or its lib's parent).
	NixpkgsLib string
	// NixOSServices holds nixpkgs' nixos/modules/services/misc/ollama.nix
	// and open-webui.nix (a nixpkgs tree, or a directory of those files
	// under the same paths).
	NixOSServices string
}

// The files each tree must have.
func (t Trees) missing() error {
	for _, p := range []string{
		filepath.Join(t.HomeManager, "modules", "modules.nix"),
		filepath.Join(t.NixpkgsLib, "lib", "default.nix"),
		filepath.Join(t.NixOSServices, "nixos", "modules", "services", "misc", "ollama.nix"),
		filepath.Join(t.NixOSServices, "nixos", "modules", "services", "misc", "open-webui.nix"),
	} {
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	return nil
}

// localTrees is the layout of a sources directory: home-manager/,
// nixpkgs-lib/ and nixos-services/ side by side.
func localTrees(dir string) Trees {
	return Trees{
		HomeManager:   filepath.Join(dir, "home-manager"),
		NixpkgsLib:    filepath.Join(dir, "nixpkgs-lib"),
		NixOSServices: filepath.Join(dir, "nixos-services"),
	}
}

var sources = sync.OnceValues(func() (Trees, error) { return findSources(RepoRoot(), os.Getenv("PORTCLAIM_NIX_SOURCES")) })

// Sources returns the trees the evaluation reads, or why they cannot be
// had: from $PORTCLAIM_NIX_SOURCES, else ../shared/nix-sources beside the
// repository.
func Sources() (Trees, error) { return sources() }

func findSources(root, env string) (Trees, error) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		return Trees{}, fmt.Errorf("nix-instantiate not found (apt-get install nix-bin); `nix flake check` is the real thing")
	}
	dir := env
	if dir == "" {
		dir = filepath.Join(root, "..", "shared", "nix-sources")
	}
	t := localTrees(dir)
	if err := t.missing(); err != nil {
		return Trees{}, fmt.Errorf("no home-manager, nixpkgs lib and nixpkgs service module sources (%v); set PORTCLAIM_NIX_SOURCES, or run `nix flake check`, which evaluates the modules for real", err)
	}
	return t, nil
}
