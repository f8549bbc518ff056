{
  description = "portclaim: let home-manager services claim the ports that NixOS system services hold";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    home-manager = {
      url = "github:nix-community/home-manager/release-26.05";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      home-manager,
    }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      portclaim = import ./module.nix;
      version = "0.2.0";
      commit = self.shortRev or self.dirtyShortRev or "unknown";
      # The man page's date: the source's, not the build's clock.
      date = builtins.substring 0 8 (self.lastModifiedDate or "19700101000000");

      # go.mod says go 1.26: build with it where the default Go is older.
      buildGoModule =
        pkgs:
        if pkgs ? go_1_26 && lib.versionOlder pkgs.go.version "1.26" then
          pkgs.buildGoModule.override { go = pkgs.go_1_26; }
        else
          pkgs.buildGoModule;

      package =
        pkgs:
        (buildGoModule pkgs) {
          pname = "portclaim";
          inherit version;
          src = lib.fileset.toSource {
            root = ./.;
            fileset = lib.fileset.unions [
              ./go.mod
              ./go.sum
              ./cmd
              ./pkg
            ];
          };
          # The hash of `go mod vendor` for go.sum. After changing go.mod or
          # go.sum: go mod vendor -o /tmp/v && nix hash path /tmp/v
          # (README "Updating"); nixos-tests/nixeval checks it in CI.
          vendorHash = "sha256-eYzdteu6+CuUlvA8hw6C90Ifls/U9dfJ+qcv49fv/wk=";
          subPackages = [ "cmd/portclaim" ];
          env.CGO_ENABLED = 0;
          ldflags = [
            "-s"
            "-w"
            "-X main.version=${version}"
            "-X main.commit=${commit}"
            "-X main.date=${date}"
          ];
          nativeBuildInputs = [ pkgs.installShellFiles ];
          # subPackages limits go test to cmd/portclaim as well: test every
          # package. The unit tests read /proc and need no systemd; the
          # end-to-end tests boot machines and run in the checks below.
          preCheck = ''
            unset subPackages
          '';
          checkFlags = [ "-skip=TestReadSeesRealSockets|TestScanAndHasSocket" ];
          # Completions and the man page come from the binary itself, so
          # only where the build platform can run it.
          postInstall = lib.optionalString (pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform) ''
            installShellCompletion --cmd portclaim \
              --bash <($out/bin/portclaim completion bash) \
              --zsh <($out/bin/portclaim completion zsh) \
              --fish <($out/bin/portclaim completion fish)
            $out/bin/portclaim man > portclaim.1
            installManPage portclaim.1
          '';
          meta = {
            description = "Let home-manager services claim the ports that NixOS system services hold";
            mainProgram = "portclaim";
            license = lib.licenses.mit;
            platforms = lib.platforms.linux;
          };
        };

      # The flake's modules: portclaim's, with the package defaulting to
      # this flake's build (and, for a cross build, the manifest checked by
      # the build platform's). A key makes a second import harmless.
      export =
        name: module:
        { pkgs, ... }:
        let
          host = pkgs.stdenv.hostPlatform.system;
          build = pkgs.stdenv.buildPlatform.system;
          native = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
        in
        {
          _file = ./flake.nix;
          key = "portclaim-flake#${name}";
          imports = [ module ];
          config = lib.mkMerge [
            (lib.mkIf (self.packages ? ${host}) {
              services.portclaim.package = lib.mkDefault self.packages.${host}.default;
            })
            (lib.optionalAttrs (name == "homeManager") (
              lib.mkIf (!native && self.packages ? ${build}) {
                services.portclaim.validationPackage = lib.mkDefault self.packages.${build}.default;
              }
            ))
          ];
        };
      homeModule = export "homeManager" portclaim.homeManager;
    in
    {
      lib = portclaim.lib;

      packages = forAllSystems (pkgs: {
        default = package pkgs;
        portclaim = package pkgs;
      });

      overlays.default = final: _prev: { portclaim = package final; };

      nixosModules.default = export "nixos" portclaim.nixos;
      # home-manager's convention is homeModules; homeManagerModules is the
      # older name. Both are the same module (one key).
      homeModules.default = homeModule;
      homeManagerModules.default = homeModule;

      checks = forAllSystems (
        pkgs:
        let
          args = {
            inherit pkgs home-manager;
            portclaimModules = {
              nixos = self.nixosModules.default;
              homeManager = self.homeModules.default;
            };
          };
        in
        {
          # Builds the binary and runs every unit test.
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          # Both modules evaluated by NixOS and home-manager, their files
          # built and compared with lib.systemFiles; no VM.
          modules = import ./nixos-tests/modules.nix args;
          # The end-to-end scenarios as NixOS VM tests (need KVM); the same
          # list runs on systemd-nspawn machines in nixos-tests/*_test.go.
          resolve = import ./nixos-tests/resolve.nix args;
          detect = import ./nixos-tests/detect.nix args;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.go
            pkgs.gopls
            pkgs.nixfmt-rfc-style
            pkgs.mmdebstrap
            pkgs.nix
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}
