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
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      portclaim = import ./module.nix;
      version = "0.1.0";

      # go.mod says go 1.26: build with it where the default Go is older.
      buildGoModule =
        pkgs:
        if pkgs ? go_1_26 && nixpkgs.lib.versionOlder pkgs.go.version "1.26" then
          pkgs.buildGoModule.override { go = pkgs.go_1_26; }
        else
          pkgs.buildGoModule;

      package =
        pkgs:
        (buildGoModule pkgs) {
          pname = "portclaim";
          inherit version;
          src = nixpkgs.lib.fileset.toSource {
            root = ./.;
            fileset = nixpkgs.lib.fileset.unions [
              ./go.mod
              ./go.sum
              ./cmd
              ./pkg
            ];
          };
          # The hash of `go mod vendor` for go.sum. After changing go.mod or
          # go.sum: go mod vendor -o /tmp/v && nix hash path /tmp/v
          # (README "Updating"); nixos-tests/nixeval checks it in CI.
          vendorHash = "sha256-5CcVSFGTV8FauhLr/lrNpE/QZSLfkQLGSwEO/fMibU8=";
          subPackages = [ "cmd/portclaim" ];
          env.CGO_ENABLED = 0;
          ldflags = [
            "-s"
            "-w"
            "-X main.version=${version}"
          ];
          # The unit tests read /proc and need no systemd; the end-to-end
          # tests boot machines and run in the checks below instead.
          checkFlags = [ "-skip=TestReadSeesRealSockets|TestScanAndHasSocket" ];
          meta = {
            description = "Let home-manager services claim the ports that NixOS system services hold";
            mainProgram = "portclaim";
            license = nixpkgs.lib.licenses.mit;
            platforms = nixpkgs.lib.platforms.linux;
          };
        };

      # The flake's modules default services.portclaim.package to this
      # flake's build.
      withPackage =
        module:
        { pkgs, lib, ... }:
        {
          imports = [ module ];
          services.portclaim.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
    in
    {
      packages = forAllSystems (pkgs: {
        default = package pkgs;
        portclaim = package pkgs;
      });

      overlays.default = final: _prev: { portclaim = package final; };

      nixosModules.default = portclaim.nixos;
      homeManagerModules.default = withPackage portclaim.homeManager;

      # The end-to-end scenarios as NixOS VM tests (need KVM); the same
      # list runs on systemd-nspawn machines in nixos-tests/*_test.go.
      checks = forAllSystems (
        pkgs:
        let
          args = {
            inherit pkgs home-manager;
            portclaimModules = {
              nixos = self.nixosModules.default;
              homeManager = self.homeManagerModules.default;
            };
          };
        in
        {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
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
