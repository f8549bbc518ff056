package moduleeval

import (
	"context"
	"strings"
	"testing"
)

// TestFlakePackage: the package build runs every unit test (go test is
// not limited to subPackages), stamps version and commit, and installs
// completions and the man page where the build platform can run the
// binary.
func TestFlakePackage(t *testing.T) {
	need(t)
	var r struct {
		Native, Cross struct {
			Ldflags     []string `json:"ldflags"`
			PreCheck    string   `json:"preCheck"`
			PostInstall string   `json:"postInstall"`
			SubPackages []string `json:"subPackages"`
			Inputs      []string `json:"inputs"`
		}
	}
	err := Eval(context.Background(), `let
  read = f: let p = f.packages.x86_64-linux.default; in {
    inherit (p) ldflags preCheck postInstall subPackages;
    inputs = map (i: i.name) p.nativeBuildInputs;
  };
in { native = read e.flake; cross = read (e.flakeWith { native = false; }); }`, &r)
	if err != nil {
		t.Fatal(err)
	}
	n := r.Native
	if !strings.Contains(strings.Join(n.Ldflags, " "), "-X main.version=0.2.0 -X main.commit=unknown") {
		t.Errorf("ldflags %q: want version and commit (unknown outside git)", n.Ldflags)
	}
	if !strings.Contains(n.PreCheck, "unset subPackages") || len(n.SubPackages) != 1 {
		t.Errorf("subPackages %q, preCheck %q: the build must build cmd/portclaim and test every package", n.SubPackages, n.PreCheck)
	}
	for _, want := range []string{"--bash <($out/bin/portclaim completion bash)", "--zsh <($out/bin/portclaim completion zsh)", "--fish <($out/bin/portclaim completion fish)", "$out/bin/portclaim man > portclaim.1", "installManPage portclaim.1"} {
		if !strings.Contains(n.PostInstall, want) {
			t.Errorf("postInstall lacks %q:\n%s", want, n.PostInstall)
		}
	}
	if !strings.Contains(strings.Join(n.Inputs, " "), "installShellFiles") {
		t.Errorf("nativeBuildInputs %q lack installShellFiles", n.Inputs)
	}
	if strings.TrimSpace(r.Cross.PostInstall) != "" {
		t.Errorf("a cross build runs the host's binary: postInstall %q", r.Cross.PostInstall)
	}
}

// TestFlakeModules: the flake's modules default the package to the
// flake's build, import twice without harm (both home-manager names are
// the same module), and a cross build validates with the build platform's.
func TestFlakeModules(t *testing.T) {
	need(t)
	var r struct {
		NixOS       string `json:"nixos"`
		Home        string `json:"home"`
		Validation  string `json:"validation"`
		CrossValid  string `json:"crossValid"`
		CrossSystem string `json:"crossSystem"`
	}
	err := Eval(context.Background(), `let
  f = e.flake;
  n = e.nixos { modules = [ f.nixosModules.default f.nixosModules.default e.portclaim.nixos { services.portclaim.enable = true; } ]; };
  h = e.home { modules = [ f.homeModules.default f.homeManagerModules.default { services.portclaim.enable = true; } ]; };
  hc = e.home { pkgsArgs.native = false; modules = [ (e.flakeWith { native = false; }).homeModules.default { services.portclaim.enable = true; } ]; };
in {
  nixos = n.config.services.portclaim.package.stub or "";
  home = h.config.services.portclaim.package.stub or "";
  validation = h.config.services.portclaim.validationPackage.stub or "";
  crossValid = hc.config.services.portclaim.validationPackage.stub or "";
  crossSystem = hc.config.services.portclaim.validationPackage.name;
}`, &r)
	if err != nil {
		t.Fatal(err)
	}
	if r.NixOS != "buildGoModule" || r.Home != "buildGoModule" || r.Validation != "buildGoModule" || r.CrossValid != "buildGoModule" {
		t.Errorf("packages from the flake's modules: %+v, want the flake's build everywhere", r)
	}
}

// TestFlakeChecks: nix flake check builds the package (with its tests),
// evaluates and builds both modules without a VM, and runs both VM tests,
// each a real runNixOSTest definition.
func TestFlakeChecks(t *testing.T) {
	need(t)
	var r struct {
		Checks []string          `json:"checks"`
		Tests  map[string]string `json:"tests"`
	}
	err := Eval(context.Background(), `let
  pkgs = e.pkgsFor { } // { testers.runNixOSTest = t: t // { runNixOSTest = true; }; };
  args = {
    inherit pkgs;
    home-manager.nixosModules.home-manager = { };
    portclaimModules = { inherit (e.portclaim) nixos homeManager; };
  };
  vm = file: let t = import file args; in if t.runNixOSTest or false then t.name else "not a runNixOSTest";
in {
  checks = builtins.attrNames e.flake.checks.x86_64-linux;
  tests = { detect = vm `+RepoRoot()+`/nixos-tests/detect.nix; resolve = vm `+RepoRoot()+`/nixos-tests/resolve.nix; };
}`, &r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Checks, " ") != "detect modules package resolve" {
		t.Errorf("checks %v", r.Checks)
	}
	if r.Tests["detect"] != "portclaim-detect" || r.Tests["resolve"] != "portclaim-resolve" {
		t.Errorf("VM tests: %v", r.Tests)
	}
}
