# Evaluates portclaim's modules inside the real module systems, without
# the rest of nixpkgs: home-manager's own modules (modules.nix:
# home-environment.nix, the activation DAG, files, systemd,
# services.podman, services.ollama, ...) and home-manager's NixOS module,
# with nixpkgs' own ollama and open-webui modules as they are, over
# stand-ins for the other NixOS options (standins/), on a stand-in package
# set (stub-pkgs.nix).
#
#   hmSrc:       a home-manager source tree (the revision flake.lock pins)
#   libSrc:      a nixpkgs source tree's lib/ parent (nixpkgs' lib)
#   servicesSrc: where nixos/modules/services/misc/{ollama,open-webui}.nix
#                are (a nixpkgs tree)
{
  hmSrc,
  libSrc,
  servicesSrc,
}:
let
  baseLib = import (libSrc + "/lib");
  lib = import (hmSrc + "/modules/lib/stdlib-extended.nix") baseLib;
  portclaim = import ../../module.nix;

  # pkgs with portclaim in it, as the flake's overlay provides it.
  pkgsFor =
    args:
    let
      stub = import ./stub-pkgs.nix ({ lib = baseLib; } // args);
      pkgs = stub // {
        pkgsBuildHost = pkgs;
        buildPackages = pkgs;
        portclaim = portclaimPackage;
      };
      portclaimPackage = stub.stdenv.mkDerivation {
        pname = "portclaim";
        version = "0.1.0";
        name = "portclaim-0.1.0";
        meta.mainProgram = "portclaim";
      };
    in
    pkgs;

  hmModules =
    pkgs:
    import (hmSrc + "/modules/modules.nix") {
      inherit pkgs lib;
      # The package set is given, as with home-manager.useGlobalPkgs (the
      # nixpkgs module would import nixpkgs itself).
      useNixpkgsModule = false;
    };

  # What home-manager's entry points do with a result: failed assertions
  # and warnings, for the tests to read.
  checks = config: {
    failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    inherit (config) warnings;
  };

  # The activation script's entries in the order home-manager runs them:
  # the DAG home-environment.nix sorts, for the same config.
  activationOrder =
    config:
    let
      sorted = lib.hm.dag.topoSort config.home.activation;
    in
    if sorted ? result then map (e: e.name) sorted.result else throw "activation DAG cycle: ${builtins.toJSON sorted}";
in
rec {
  inherit lib portclaim pkgsFor;

  # flake.nix's outputs, with this package set as nixpkgs' and the
  # home-manager source as the home-manager input.
  flake = flakeWith { };
  flakeWith =
    pkgsArgs:
    let
      flakeFile = import ../../flake.nix;
      self = flakeFile.outputs {
        self = self // {
          outPath = toString ../..;
        };
        nixpkgs = {
          lib = baseLib;
          legacyPackages = baseLib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
            system: pkgsFor ({ inherit system; } // pkgsArgs)
          );
        };
        home-manager.nixosModules.home-manager = hmSrc + "/nixos";
      };
    in
    self;

  # A NixOS VM test file's testScript, rendered against its nodes
  # evaluated here (runNixOSTest needs pkgs, which CI does not have): the
  # script as the test driver would run it, and the node names.
  renderTestScript =
    file:
    let
      test = import file;
      nodeModules = test.nodesFor {
        home-manager.nixosModules.home-manager = hmSrc + "/nixos";
        portclaimModules = {
          inherit (portclaim) nixos homeManager;
        };
      };
      nodes = builtins.mapAttrs (_: m: (nixos { modules = [ m ]; }).config) nodeModules;
    in
    {
      script = test.testScript { inherit nodes; };
      nodes = builtins.attrNames nodeModules;
    };

  # Standalone home-manager: the user's modules plus portclaim's.
  home =
    {
      modules,
      pkgsArgs ? { },
      osConfig ? null,
    }:
    let
      pkgs = pkgsFor pkgsArgs;
      eval = lib.evalModules {
        class = "homeManager";
        modules =
          [
            portclaim.homeManager
            {
              home.username = lib.mkDefault "alice";
              home.homeDirectory = lib.mkDefault "/home/alice";
              home.stateVersion = "26.05";
              # The nixpkgs lib here is newer than the pinned release.
              home.enableNixpkgsReleaseCheck = false;
            }
          ]
          ++ modules
          ++ hmModules pkgs;
        specialArgs = {
          modulesPath = toString (hmSrc + "/modules");
        }
        // lib.optionalAttrs (osConfig != null) { inherit osConfig; };
      };
    in
    eval
    // {
      checks = checks eval.config;
      activationOrder = activationOrder eval.config;
    };

  # NixOS with home-manager's NixOS module and portclaim's (unless
  # withPortclaim is false: a system that does not import it).
  nixos =
    {
      modules,
      pkgsArgs ? { },
      withPortclaim ? true,
    }:
    let
      pkgs = pkgsFor pkgsArgs;
      eval = baseLib.evalModules {
        class = "nixos";
        modules = [
          ./standins
          (servicesSrc + "/nixos/modules/services/misc/ollama.nix")
          (servicesSrc + "/nixos/modules/services/misc/open-webui.nix")
          (hmSrc + "/nixos")
          {
            _module.args.pkgs = pkgs;
            home-manager.useGlobalPkgs = true;
            home-manager.sharedModules = [ { home.enableNixpkgsReleaseCheck = false; } ];
          }
        ]
        ++ baseLib.optional withPortclaim portclaim.nixos
        ++ modules;
      };
    in
    eval
    // {
      checks = checks eval.config;
      users = builtins.mapAttrs (_: hm: {
        config = hm;
        checks = checks hm;
        activationOrder = activationOrder hm;
      }) eval.config.home-manager.users;
      installed = installedFiles eval.config;
    };

  # The files a NixOS configuration installs through the options
  # portclaim's module sets, by absolute path, in lib.systemFiles' form:
  #   environment.etc.<name>.text          -> /etc/<target>
  #   systemd.units.<name>.text, wantedBy  -> /etc/systemd/system/<name>, .wants links
  #   systemd.packages (files under etc/systemd/system or lib/systemd/system)
  #                                        -> /etc/systemd/system/...
  #   systemd.tmpfiles.packages (lib/tmpfiles.d/*.conf) -> /etc/tmpfiles.d/...
  # as nixos/lib/systemd-lib.nix's generateUnits, etc.nix and tmpfiles.nix
  # lay them out.
  installedFiles =
    config:
    let
      unitDir = "/etc/systemd/system";
      etc = lib.mapAttrs' (_: e: lib.nameValuePair "/etc/${e.target}" e.text) (
        lib.filterAttrs (_: e: e.enable && e.text != null) config.environment.etc
      );
      units = lib.mapAttrs' (n: u: lib.nameValuePair "${unitDir}/${n}" u.text) (
        lib.filterAttrs (_: u: u.enable && u.text != null) config.systemd.units
      );
      wants = builtins.listToAttrs (
        lib.concatLists (
          lib.mapAttrsToList (
            n: u:
            map (t: {
              name = "${unitDir}/${t}.wants/${n}";
              value.symlink = "${unitDir}/${n}";
            }) u.wantedBy
          ) config.systemd.units
        )
      );
      fromPackages =
        prefixes: to: pkgs:
        builtins.listToAttrs (
          lib.concatMap (
            p:
            let
              d = p.destination or "";
              hit = builtins.filter (pre: lib.hasPrefix pre d) prefixes;
            in
            lib.optional (p.stub or "" == "writeTextFile" && hit != [ ]) {
              name = to + lib.removePrefix (builtins.head hit) d;
              value = p.text;
            }
          ) pkgs
        );
    in
    etc
    // units
    // wants
    // fromPackages [ "/etc/systemd/system" "/lib/systemd/system" ] unitDir config.systemd.packages
    // fromPackages [ "/lib/tmpfiles.d" ] "/etc/tmpfiles.d" config.systemd.tmpfiles.packages;
}
