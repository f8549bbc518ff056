package moduleeval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/nixeval"
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

// missing says which file a tree lacks, if any.
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

var sources = sync.OnceValues(func() (Trees, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	return findSources(ctx, RepoRoot(), os.Getenv("PORTCLAIM_NIX_SOURCES"), fetchStore())
})

// Sources returns the trees the evaluation reads, or why they cannot be
// had: $PORTCLAIM_NIX_SOURCES, else ../shared/nix-sources beside the
// repository, else home-manager and nixpkgs fetched at the revisions
// flake.lock pins, checked against its narHash (see fetchPinned).
func Sources() (Trees, error) { return sources() }

// fetchStore is where fetched trees are kept: a Nix store of the tests'
// own under the user's cache directory (no daemon, no /nix needed).
func fetchStore() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "portclaim", "nix-store")
}

func findSources(ctx context.Context, root, env, store string) (Trees, error) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		return Trees{}, fmt.Errorf("nix-instantiate not found (apt-get install nix-bin); `nix flake check` is the real thing")
	}
	if env != "" {
		t := localTrees(env)
		if err := t.missing(); err != nil {
			return Trees{}, fmt.Errorf("PORTCLAIM_NIX_SOURCES=%s lacks a tree (%v): it must hold home-manager/, nixpkgs-lib/ and nixos-services/", env, err)
		}
		return t, nil
	}
	shared := filepath.Join(root, "..", "shared", "nix-sources")
	if t := localTrees(shared); t.missing() == nil {
		return t, nil
	}
	t, err := fetchPinned(ctx, filepath.Join(root, "flake.lock"), store)
	if err != nil {
		return Trees{}, fmt.Errorf("no Nix sources: PORTCLAIM_NIX_SOURCES is unset and %s does not exist, so the tests fetched what flake.lock pins, which failed: %w; give them the network, or set PORTCLAIM_NIX_SOURCES to a directory of home-manager/, nixpkgs-lib/ and nixos-services/ (`nix flake check` evaluates the modules for real)", shared, err)
	}
	return t, nil
}

// archiveBase is where a GitHub input's tarball is (a test points it at
// files).
var archiveBase = "https://github.com"

// pin is one flake.lock input: its tarball at the locked revision and the
// NAR hash of the tree it unpacks to.
type pin struct {
	Name, Rev, URL, NarHash string
}

// pins reads flake.lock's home-manager and nixpkgs inputs.
func pins(lockFile string) (hm, nixpkgs pin, err error) {
	data, err := os.ReadFile(lockFile)
	if err != nil {
		return pin{}, pin{}, err
	}
	var lock struct {
		Nodes map[string]struct {
			Locked struct {
				Type, Owner, Repo, Rev, NarHash string
			} `json:"locked"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return pin{}, pin{}, fmt.Errorf("%s: %w", lockFile, err)
	}
	get := func(name string) (pin, error) {
		l := lock.Nodes[name].Locked
		if l.Type != "github" || l.Owner == "" || l.Repo == "" || l.Rev == "" || !strings.HasPrefix(l.NarHash, "sha256-") {
			return pin{}, fmt.Errorf("%s pins no GitHub revision with a narHash for %s", lockFile, name)
		}
		return pin{Name: name, Rev: l.Rev, NarHash: l.NarHash,
			URL: fmt.Sprintf("%s/%s/%s/archive/%s.tar.gz", archiveBase, l.Owner, l.Repo, l.Rev)}, nil
	}
	if hm, err = get("home-manager"); err != nil {
		return pin{}, pin{}, err
	}
	nixpkgs, err = get("nixpkgs")
	return hm, nixpkgs, err
}

// fetchExpr fetches p: builtins.fetchTarball unpacks the tarball and
// refuses a tree whose NAR hash is not p.NarHash.
func fetchExpr(p pin) string {
	return fmt.Sprintf("builtins.fetchTarball { url = %s; sha256 = %s; }", nixeval.NixString(p.URL), nixeval.NixString(p.NarHash))
}

// fetchPinned fetches home-manager and nixpkgs as flake.lock pins them
// into the Nix store at store (a path already there is not fetched
// again): nixpkgs gives lib/ and the service modules.
func fetchPinned(ctx context.Context, lockFile, store string) (Trees, error) {
	hm, nixpkgs, err := pins(lockFile)
	if err != nil {
		return Trees{}, err
	}
	var dirs []string
	for _, p := range []pin{hm, nixpkgs} {
		dir, err := fetch(ctx, store, p)
		if err != nil {
			return Trees{}, fmt.Errorf("fetching %s %s: %w", p.Name, p.Rev, err)
		}
		dirs = append(dirs, dir)
	}
	t := Trees{HomeManager: dirs[0], NixpkgsLib: dirs[1], NixOSServices: dirs[1]}
	if err := t.missing(); err != nil {
		return Trees{}, fmt.Errorf("the fetched trees lack a file: %w", err)
	}
	return t, nil
}

// fetch runs fetchExpr(p) against the store at store and returns where
// the tree is on this machine.
func fetch(ctx context.Context, store string, p pin) (string, error) {
	if err := os.MkdirAll(store, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "nix-instantiate", "--store", store, "--eval", "--json", "-E", fetchExpr(p))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "NIX_PATH=")
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndex(msg, "error: "); i >= 0 {
			msg = msg[i:] // the last of Nix's retries says it all
		}
		return "", fmt.Errorf("%s: %v: %s", p.URL, err, msg)
	}
	var path string
	if err := json.Unmarshal(out, &path); err != nil {
		return "", fmt.Errorf("nix-instantiate printed %q: %w", out, err)
	}
	// A store given by its path keeps /nix/store/... under it.
	return filepath.Join(store, path), nil
}
