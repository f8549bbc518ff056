package moduleeval

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needNix skips (fails in CI) without nix-instantiate and nix.
func needNix(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"nix-instantiate", "nix", "tar"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI needs %s", bin)
			}
			t.Skipf("no %s", bin)
		}
	}
}

// TestTheFetchIsWhatFlakeLockPins: without other sources, the tests fetch
// the revisions flake.lock pins, each checked against its narHash.
func TestTheFetchIsWhatFlakeLockPins(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "flake.lock"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Nodes map[string]struct {
			Locked map[string]any `json:"locked"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		t.Fatal(err)
	}
	hm, nixpkgs, err := pins(filepath.Join(RepoRoot(), "flake.lock"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []pin{hm, nixpkgs} {
		l := lock.Nodes[p.Name].Locked
		want := fmt.Sprintf(`builtins.fetchTarball { url = "https://github.com/%s/%s/archive/%s.tar.gz"; sha256 = "%s"; }`, l["owner"], l["repo"], l["rev"], l["narHash"])
		if got := fetchExpr(p); got != want {
			t.Errorf("%s: fetches\n%s\nwant\n%s", p.Name, got, want)
		}
	}
}

// packTree writes files into dir/<top>/ and tars it as GitHub does (one
// top-level directory) to tarball; it returns the tree's NAR hash.
func packTree(t *testing.T, files map[string]string, tarball string) string {
	t.Helper()
	dir := t.TempDir()
	top := filepath.Join(dir, "src-rev")
	for name, content := range files {
		p := filepath.Join(top, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Dir(tarball), 0o755)
	if out, err := exec.Command("tar", "-C", dir, "-czf", tarball, "src-rev").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	out, err := exec.Command("nix", "--extra-experimental-features", "nix-command", "--store", "dummy://", "hash", "path", top).Output()
	if err != nil {
		t.Fatalf("nix hash path: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// lockFor writes a flake.lock pinning home-manager and nixpkgs to the
// given revisions and hashes.
func lockFor(t *testing.T, root, hmHash, nixpkgsHash string) {
	t.Helper()
	node := func(repo, rev, hash string) map[string]any {
		return map[string]any{"locked": map[string]any{"type": "github", "owner": "o", "repo": repo, "rev": rev, "narHash": hash}}
	}
	data, _ := json.Marshal(map[string]any{"nodes": map[string]any{
		"home-manager": node("hm", "r1", hmHash), "nixpkgs": node("np", "r2", nixpkgsHash)}})
	if err := os.WriteFile(filepath.Join(root, "flake.lock"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFetchedSourcesAreCheckedAgainstTheLock runs the fetch for real
// against tarballs on file:// URLs (no code host is reachable here): the
// trees arrive when their NAR hashes are the lock's, and a tree whose
// hash is not is refused.
func TestFetchedSourcesAreCheckedAgainstTheLock(t *testing.T) {
	needNix(t)
	base := t.TempDir()
	defer func(b string) { archiveBase = b }(archiveBase)
	archiveBase = "file://" + base
	hmHash := packTree(t, map[string]string{"modules/modules.nix": "# home-manager\n"}, filepath.Join(base, "o/hm/archive/r1.tar.gz"))
	npHash := packTree(t, map[string]string{
		"lib/default.nix":                            "# lib\n",
		"nixos/modules/services/misc/ollama.nix":     "# ollama\n",
		"nixos/modules/services/misc/open-webui.nix": "# open-webui\n",
	}, filepath.Join(base, "o/np/archive/r2.tar.gz"))

	root := filepath.Join(t.TempDir(), "portclaim") // no ../shared beside it
	os.MkdirAll(root, 0o755)
	lockFor(t, root, hmHash, npHash)
	trees, err := findSources(context.Background(), root, "", filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(trees.HomeManager, "modules", "modules.nix")); string(got) != "# home-manager\n" {
		t.Errorf("home-manager's tree at %s has %q", trees.HomeManager, got)
	}
	if got, _ := os.ReadFile(filepath.Join(trees.NixOSServices, "nixos/modules/services/misc/ollama.nix")); string(got) != "# ollama\n" || trees.NixpkgsLib != trees.NixOSServices {
		t.Errorf("nixpkgs' tree: %+v", trees)
	}

	// nixpkgs' tarball no longer what the lock says. (A hash of a tree
	// the store has would give that tree, without a download: the hash
	// names the tree.)
	otherHash := packTree(t, map[string]string{"lib/default.nix": "# another lib\n"}, filepath.Join(t.TempDir(), "other.tar.gz"))
	lockFor(t, root, hmHash, otherHash)
	_, err = findSources(context.Background(), root, "", filepath.Join(t.TempDir(), "store"))
	if err == nil || !strings.Contains(err.Error(), "hash mismatch") || !strings.Contains(err.Error(), "fetching nixpkgs r2") {
		t.Errorf("a tree that is not the locked one: %v", err)
	}
}

// TestSourcesSayWhatTheyTried: without sources and without the network,
// the error names what was looked for, what was fetched, and what to do.
func TestSourcesSayWhatTheyTried(t *testing.T) {
	needNix(t)
	defer func(b string) { archiveBase = b }(archiveBase)
	archiveBase = "file:///nonexistent"
	root := filepath.Join(t.TempDir(), "portclaim")
	os.MkdirAll(root, 0o755)
	lock, _ := os.ReadFile(filepath.Join(RepoRoot(), "flake.lock"))
	os.WriteFile(filepath.Join(root, "flake.lock"), lock, 0o644)
	hm, _, _ := pins(filepath.Join(root, "flake.lock"))

	_, err := findSources(context.Background(), root, "", filepath.Join(t.TempDir(), "store"))
	for _, want := range []string{"PORTCLAIM_NIX_SOURCES is unset", filepath.Join(root, "..", "shared", "nix-sources") + " does not exist",
		"fetching home-manager " + hm.Rev, "give them the network", "nix flake check"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v: want %q", err, want)
		}
	}
	t.Log(err)
	// A PORTCLAIM_NIX_SOURCES without the trees is named as such.
	_, err = findSources(context.Background(), root, t.TempDir(), "")
	if err == nil || !strings.Contains(err.Error(), "PORTCLAIM_NIX_SOURCES=") || !strings.Contains(err.Error(), "nixos-services/") {
		t.Errorf("an empty PORTCLAIM_NIX_SOURCES: %v", err)
	}
}
