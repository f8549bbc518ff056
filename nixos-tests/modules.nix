# The modules as NixOS and home-manager evaluate them, without a VM (flake
# checks.<system>.modules): a NixOS configuration with home-manager's and
# portclaim's modules is evaluated with the real nixpkgs, its /etc is built,
# and every file of lib.systemFiles is compared with what NixOS put there;
# alice's manifest is built (so `portclaim validate` checks it); the
# collision warnings are what the moduleeval tests expect. CI without Nix
# runs the same checks over stand-ins (nixos-tests/moduleeval).
{
  pkgs,
  home-manager,
  portclaimModules,
}:
let
  inherit (pkgs) lib;
  pc = import ../nix/lib.nix;

  evalNixOS =
    modules:
    (import (pkgs.path + "/nixos/lib/eval-config.nix") {
      system = null;
      modules = [
        {
          nixpkgs.pkgs = pkgs;
          boot.isContainer = true;
          system.stateVersion = "26.05";
          users.users.alice = {
            isNormalUser = true;
            uid = 1000;
          };
          home-manager.useGlobalPkgs = true;
          home-manager.users.alice = {
            imports = [ portclaimModules.homeManager ];
            home.stateVersion = "26.05";
          };
        }
        home-manager.nixosModules.home-manager
        portclaimModules.nixos
      ]
      ++ modules;
    }).config;

  sleeper = "${pkgs.coreutils}/bin/sleep infinity";

  # What the end-to-end machines install, installed by NixOS.
  built = evalNixOS [
    {
      systemd.services.ollama = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = sleeper;
      };
      systemd.services.qdrant.serviceConfig.ExecStart = sleeper;
      systemd.sockets.qdrant = {
        wantedBy = [ "sockets.target" ];
        listenStreams = [ "6333" ];
      };
      services.portclaim = {
        enable = true;
        yield."ollama.service".users = [ "alice" ];
        yield."qdrant.socket".users = [ "alice" ];
        metrics.textfileDirectory = "/var/lib/prometheus-node-exporter/textfile";
      };
      home-manager.users.alice.services.portclaim = {
        enable = true;
        services.ollama = {
          systemUnits = [ "ollama.service" ];
          userUnits = [ "podman-local-ai-ollama.service" ];
          ports = [ { port = 11434; } ];
        };
      };
    }
  ];
  cfg = built.services.portclaim;
  files = pc.systemFiles {
    portclaim = lib.getExe cfg.package;
    yield = cfg.effectiveYield;
    inherit (cfg) claimsDir;
    textfileDirectory = cfg.metrics.textfileDirectory;
  };
  etc = "${built.system.build.etc}/etc";
  compare = lib.concatStrings (
    lib.mapAttrsToList (
      path: v:
      let
        at = "${etc}${lib.removePrefix "/etc" path}";
      in
      if builtins.isString v then
        ''
          cmp ${pkgs.writeText "expected" v} ${lib.escapeShellArg at} || { echo "${path} differs from lib.systemFiles"; exit 1; }
        ''
      else
        ''
          [ "$(readlink -f ${lib.escapeShellArg at})" = "$(readlink -f ${lib.escapeShellArg "${etc}${lib.removePrefix "/etc" v.symlink}"})" ] \
            || { echo "${path} does not link to ${v.symlink}"; exit 1; }
        ''
    ) files
  );

  # Collisions with the real services.ollama module: only a real bind
  # overlap warns.
  warningsFor =
    hm:
    (evalNixOS [
      {
        services.ollama.enable = true;
        services.portclaim.enable = true;
        home-manager.users.alice = lib.mkMerge [
          { services.portclaim.enable = true; }
          hm
        ];
      }
    ]).warnings;
  collides = hm: builtins.any (w: lib.hasInfix "the system enables ollama.service" w) (warningsFor hm);
  collisionChecks = [
    {
      what = "home-manager's ollama on the system's port and address";
      hm.services.ollama.enable = true;
      want = true;
    }
    {
      what = "home-manager's ollama on another port";
      hm.services.ollama = {
        enable = true;
        port = 11435;
      };
      want = false;
    }
    {
      what = "home-manager's ollama on another loopback address";
      hm.services.ollama = {
        enable = true;
        host = "127.0.0.2";
      };
      want = false;
    }
  ];
  collisionFailures = builtins.filter (c: collides c.hm != c.want) collisionChecks;
in
assert lib.assertMsg (collisionFailures == [ ])
  "portclaim collision warnings wrong for: ${lib.concatMapStringsSep ", " (c: c.what) collisionFailures}";
pkgs.runCommand "portclaim-modules"
  {
    # Building alice's manifest runs `portclaim validate` on it.
    manifest = built.home-manager.users.alice.services.portclaim.manifest;
  }
  ''
    ${compare}
    cmp ${built.home-manager.users.alice.xdg.configFile."portclaim/manifest.json".source} "$manifest"
    touch $out
  ''
