// Package moduleeval evaluates portclaim's NixOS and home-manager modules
// the way NixOS and home-manager do: inside home-manager's own module
// system (modules.nix, the activation DAG, home-environment.nix,
// services.podman, services.ollama) and home-manager's NixOS module, with
// nixpkgs' own ollama and open-webui modules, over stand-ins for the other
// NixOS options portclaim and those modules set (standins/) and a
// stand-in package set (stub-pkgs.nix). It needs the home-manager revision
// flake.lock pins, nixpkgs' lib and those two service modules as source
// trees (see Sources), and Debian's nix-instantiate; on a machine with
// Nix, `nix flake check` is the real thing.
package moduleeval

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/portclaim/portclaim/nixos-tests/nixeval"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string { return nixeval.RepoRoot() }

// Expr wraps expr so that `e` is eval.nix's attribute set (home, nixos,
// lib, portclaim, pkgsFor) and `lib` nixpkgs' lib with lib.hm.
func Expr(expr string) (string, error) {
	s, err := Sources()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("let e = import %s { hmSrc = %s; libSrc = %s; servicesSrc = %s; }; lib = e.lib; in %s",
		filepath.Join(RepoRoot(), "nixos-tests", "moduleeval", "eval.nix"), s.HomeManager, s.NixpkgsLib, s.NixOSServices, expr), nil
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
