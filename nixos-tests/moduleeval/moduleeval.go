// Package moduleeval evaluates portclaim's NixOS and home-manager modules
// the way NixOS and home-manager do: inside home-manager's own module
// system (modules.nix, the activation DAG, home-environment.nix,
// services.podman, services.ollama) and home-manager's NixOS module, over
// stand-ins for the NixOS options portclaim sets (nixos-standins.nix) and a
// stand-in package set (stub-pkgs.nix). It needs the home-manager revision
// flake.lock pins and nixpkgs' lib as source trees (../shared/nix-sources
// beside the repository, or $PORTCLAIM_NIX_SOURCES), and Debian's
// nix-instantiate; on a machine with Nix, `nix flake check` is the real
// thing.
package moduleeval

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/portclaim/portclaim/nixos-tests/nixeval"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string { return nixeval.RepoRoot() }

// Sources returns the home-manager source tree and the directory holding
// nixpkgs' lib/, or why they cannot be had.
func Sources() (hm, nixpkgsLib string, err error) {
	dir := os.Getenv("PORTCLAIM_NIX_SOURCES")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "..", "shared", "nix-sources")
	}
	hm = filepath.Join(dir, "home-manager")
	nixpkgsLib = filepath.Join(dir, "nixpkgs-lib")
	for _, p := range []string{filepath.Join(hm, "modules", "modules.nix"), filepath.Join(nixpkgsLib, "lib", "default.nix")} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("no home-manager and nixpkgs lib sources (%v); set PORTCLAIM_NIX_SOURCES, or run `nix flake check`, which evaluates the modules for real", err)
		}
	}
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		return "", "", fmt.Errorf("nix-instantiate not found (apt-get install nix-bin); `nix flake check` is the real thing")
	}
	return hm, nixpkgsLib, nil
}

// Expr wraps expr so that `e` is eval.nix's attribute set (home, nixos,
// lib, portclaim, pkgsFor) and `lib` nixpkgs' lib with lib.hm.
func Expr(expr string) (string, error) {
	hm, nl, err := Sources()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("let e = import %s { hmSrc = %s; libSrc = %s; }; lib = e.lib; in %s",
		filepath.Join(RepoRoot(), "nixos-tests", "moduleeval", "eval.nix"), hm, nl, expr), nil
}

// Eval evaluates expr (see Expr) strictly and decodes its JSON into out.
func Eval(ctx context.Context, expr string, out any) error {
	full, err := Expr(expr)
	if err != nil {
		return err
	}
	data, err := nixeval.Eval(ctx, full)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// Error is a failed evaluation; Stderr holds Nix's message.
type Error = nixeval.Error

// NixString quotes s as a Nix string literal.
func NixString(s string) string { return nixeval.NixString(s) }
