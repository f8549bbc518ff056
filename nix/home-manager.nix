# The home-manager module: the user's claims, rendered to the manifest
# and acted on during `home-manager switch`.
{
  config,
  lib,
  pkgs,
  osConfig ? null,
  ...
}:
let
  pc = import ./lib.nix;
  types = import ./types.nix { inherit lib pc; };
  cfg = config.services.portclaim;

  containers = lib.optionalAttrs (cfg.derive.podman && (config.services.podman.enable or false)) (
    config.services.podman.containers or { }
  );

  derived = pc.deriveClaims {
    inherit containers;
    ollama =
      if cfg.derive.ollama && (config.services.ollama.enable or false) then
        { inherit (config.services.ollama) host port; }
      else
        null;
  };

  explicit = lib.mapAttrs (_: s: {
    inherit (s) systemUnits userUnits;
    ports = map (p: { inherit (p) port protocol address; }) s.ports;
  }) cfg.services;

  # Explicit entries win over derived ones of the same name; one without
  # ports drops the claim.
  services = lib.filterAttrs (_: s: s.ports != [ ]) (derived // explicit);

  manifestText = pc.manifest {
    version = pc.manifestVersion;
    inherit (cfg) strategy autoResolve strict;
    inherit services;
    notes = pc.deriveNotes { inherit containers; };
  };

  manifestFile = pkgs.writeTextFile {
    name = "portclaim-manifest.json";
    text = manifestText;
    # Bad input fails the build, not the switch: portclaim checks the
    # manifest while it builds, with a binary the build platform runs.
    checkPhase = lib.optionalString (cfg.validationPackage != null) ''
      ${lib.getExe cfg.validationPackage} validate "$out"
    '';
  };

  # The binary by store path: the activation PATH is nearly empty, and the
  # entry must still find it after home.packages lost it.
  portclaim = lib.getExe cfg.package;

  # home-manager's own test for these ([[ -v DRY_RUN ]], as its `run`
  # does): set, even to "", means a dry run.
  flags = ''
    portclaimFlags=()
    if [[ -v DRY_RUN ]]; then portclaimFlags+=(--dry-run); fi
    if [[ -v VERBOSE ]]; then portclaimFlags+=(--verbose); fi
  '';

  # portclaim exits 0 unless strict; a failure of its own (a crash, a bad
  # argument) must not abort the `set -eu` activation script either,
  # unless the user asked for that with strict = true.
  invoke =
    { what, command }:
    ''
      ${flags}
      portclaimStatus=0
      ${command} "''${portclaimFlags[@]}" || portclaimStatus=$?
      if (( portclaimStatus != 0 )); then
        ${
          if cfg.strict then
            ''
              errorEcho "portclaim ${what} failed (exit $portclaimStatus; strict = true stops the switch)"
              exit "$portclaimStatus"''
          else
            ''warnEcho "portclaim ${what} failed (exit $portclaimStatus); the switch goes on"''
        }
      fi
    '';

  # Collisions, where home-manager runs as a NixOS module: a claimed port
  # that a unit the system enables holds, and that the policy does not let
  # yield to this user.
  osPortclaim = if osConfig == null then { } else osConfig.services.portclaim or { };
  osYield =
    if osPortclaim.enable or false then lib.mapAttrs' (_: v: lib.nameValuePair v.unit v.users) osPortclaim.yield else { };
  enabledUnits =
    if osConfig == null then
      [ ]
    else
      map (n: "${n}.service") (
        builtins.attrNames (lib.filterAttrs (_: s: s.enable or true) (osConfig.systemd.services or { }))
      )
      ++ map (n: "${n}.socket") (
        builtins.attrNames (lib.filterAttrs (_: s: s.enable or true) (osConfig.systemd.sockets or { }))
      );
  collisions = pc.collisions {
    user = config.home.username;
    inherit services enabledUnits;
    inherit (cfg) strategy;
    yield = osYield;
    bindings = pc.systemBindings (if osConfig == null then { } else osConfig.services or { });
    enabledModules = lib.optionals (osConfig != null) (
      builtins.filter (m: lib.attrByPath (lib.splitString "." m ++ [ "enable" ]) false osConfig) (
        lib.concatMap (k: lib.optional (k.nixosModule != null) k.nixosModule) (builtins.attrValues pc.knownServices)
      )
    );
    portclaimModule =
      if !(osConfig.services or { }) ? portclaim then
        "absent"
      else if osPortclaim.enable or false then
        "on"
      else
        "off";
  };

  isRoot = config.home.username == "root";

  # Whether a package can be had at all: with the module imported but
  # disabled and no package anywhere (neither the flake's default nor
  # pkgs.portclaim), there is nothing to run and nothing was claimed.
  havePackage = (builtins.tryEval cfg.package).success;

  portOptions = {
    options = {
      port = lib.mkOption {
        # Not types.port: 0 (any free port) claims nothing.
        type = lib.types.ints.between 1 65535;
        example = 11434;
        description = "The host port your user unit binds.";
      };
      protocol = lib.mkOption {
        type = lib.types.enum [
          "tcp"
          "udp"
        ];
        default = "tcp";
        description = "The port's protocol.";
      };
      address = lib.mkOption {
        type = types.address;
        default = "";
        example = "127.0.0.1";
        description = ''Where your user unit binds: `""` for every address on both stacks, or an IP address.'';
      };
    };
  };

  # An entry named like a derived claim starts from it: what it does not
  # set is the derived claim's.
  serviceOptions =
    { name, ... }:
    let
      from = derived.${name} or null;
      unset = what: throw "portclaim: services.portclaim.services.${name}.${what} is not set, and no derived claim is named ${name}";
    in
    {
      options = {
        systemUnits = lib.mkOption {
          type = lib.types.listOf types.unitName;
          default = if from == null then [ ] else from.systemUnits;
          defaultText = lib.literalMD "the derived claim's of this name, else `[ ]`";
          example = [ "ollama.service" ];
          description = "System units that hold these ports and should yield to your user units.";
        };
        userUnits = lib.mkOption {
          type = lib.types.listOf types.unitName;
          default = if from == null then unset "userUnits" else from.userUnits;
          defaultText = lib.literalMD "the derived claim's of this name";
          example = [ "podman-local-ai-ollama.service" ];
          description = "Your user units that need the ports.";
        };
        ports = lib.mkOption {
          type = lib.types.listOf (lib.types.submodule portOptions);
          default = if from == null then unset "ports" else from.ports;
          defaultText = lib.literalMD "the derived claim's of this name";
          example = lib.literalExpression "[ { port = 11434; } ]";
          description = "The ports this service claims; `[ ]` drops the claim (a derived one too).";
        };
      };
    };
in
{
  options.services.portclaim = {
    enable = lib.mkEnableOption "portclaim: claim your user services' ports from system units during home-manager switch";

    package = lib.mkPackageOption pkgs "portclaim" { };

    validationPackage = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default =
        if pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform then
          cfg.package
        else
          pkgs.pkgsBuildHost.portclaim or null;
      defaultText = lib.literalMD ''
        `services.portclaim.package` where the build platform can run it,
        else `pkgs.pkgsBuildHost.portclaim`, else `null`
      '';
      example = lib.literalExpression "pkgs.pkgsBuildHost.portclaim";
      description = ''
        The portclaim that checks the manifest while it builds (`portclaim
        validate`), so bad input fails the build, not the switch. It runs
        on the build platform: for a cross build, a build-platform package.
        `null` skips the check.
      '';
    };

    strategy = lib.mkOption {
      type = lib.types.enum [
        "disable-system"
        "disable-user"
        "report"
      ];
      default = "disable-system";
      example = "report";
      description = ''
        Who wins a conflict: `"disable-system"` (your user service; the
        system unit yields where the NixOS policy allows it),
        `"disable-user"` (the system service; portclaim says which
        home.nix option to turn off), `"report"` (change nothing).
      '';
    };

    autoResolve = lib.mkOption {
      type = lib.types.bool;
      default = true;
      example = false;
      description = "Act without asking. When false, portclaim asks on a terminal and only reports without one. Root acting for you (`sudo portclaim resolve --user NAME`) always asks unless given `--yes`.";
    };

    strict = lib.mkOption {
      type = lib.types.bool;
      default = false;
      example = true;
      description = ''
        Fail the switch when conflicts are left or portclaim fails
        (otherwise portclaim never breaks activation). Where home-manager
        runs as a NixOS module, a claim that collides with a system unit
        the policy does not let yield to you fails the system build too.
      '';
    };

    derive = {
      podman = lib.mkOption {
        type = lib.types.bool;
        default = true;
        example = false;
        description = ''
          Claim every host port of
          `services.podman.containers.<name>.ports` for
          {file}`podman-<name>.service`.
        '';
      };
      ollama = lib.mkOption {
        type = lib.types.bool;
        default = true;
        example = false;
        description = "Claim home-manager's `services.ollama` host and port for its {file}`ollama.service`.";
      };
    };

    services = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule serviceOptions);
      default = { };
      example = lib.literalExpression ''
        {
          searx = {
            systemUnits = [ "searx.service" ];
            userUnits = [ "podman-searx.service" ];
            ports = [ { port = 8888; } ];
          };
        }
      '';
      description = ''
        Claims besides the derived ones. An entry named like a derived one
        replaces it, taking the derived claim's units and ports for what it
        does not set; `ports = [ ]` drops it.
      '';
    };

    claims = lib.mkOption {
      type = lib.types.attrsOf lib.types.unspecified;
      readOnly = true;
      default = services;
      defaultText = lib.literalMD "the derived claims, updated with `services.portclaim.services`";
      description = "Every claim the manifest holds (read-only): derived ones and explicit ones.";
    };

    manifest = lib.mkOption {
      type = lib.types.path;
      readOnly = true;
      default = manifestFile;
      defaultText = lib.literalMD "the rendered manifest";
      description = "The rendered manifest (read-only), also linked to {file}`$XDG_CONFIG_HOME/portclaim/manifest.json`.";
    };
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable {
      home.packages = [ cfg.package ];
    })

    # Root has no claims of its own (portclaim refuses root without
    # --user; root acts for a user with --user): root's home-manager, with
    # portclaim in sharedModules or turned on, runs no portclaim steps,
    # which would fail there (exit 2, and the switch with strict), and
    # says so once where portclaim is on.
    (lib.mkIf (cfg.enable && isRoot) {
      warnings = [
        "portclaim: root has no claims of its own, so root's home-manager runs no portclaim steps (resolve as root would refuse without --user). To act for a user: sudo portclaim resolve --user NAME; to claim ports, turn portclaim on in that user's home-manager configuration."
      ];
    })

    (lib.mkIf (cfg.enable && !isRoot) {
      # The CLI's default manifest.
      xdg.configFile."portclaim/manifest.json".source = manifestFile;

      # New claims before reloadSystemd: system units yield before
      # sd-switch starts the user units.
      home.activation.portclaim = lib.hm.dag.entryBetween [ "reloadSystemd" ] [ "linkGeneration" ] (invoke {
        what = "resolve";
        command = "${portclaim} resolve --switch --manifest ${manifestFile}";
      });

      # Ports go back after reloadSystemd: only then has sd-switch stopped
      # the user units home.nix no longer declares.
      home.activation.portclaimRelease = lib.hm.dag.entryAfter [ "reloadSystemd" ] (invoke {
        what = "release";
        command = "${portclaim} release --switch --manifest ${manifestFile}";
      });

      warnings = lib.mkIf (!cfg.strict) collisions;
      assertions =
        map (message: {
          assertion = false;
          message = "portclaim: ${message}";
        }) (pc.portProblems services)
        ++ map (message: {
          assertion = false;
          inherit message;
        }) (lib.optionals cfg.strict collisions);
    })

    # Turned off (the module still imported): whatever this user claimed
    # goes back on this switch. Never fails the switch; without a policy
    # nothing was ever claimed.
    (lib.mkIf (!cfg.enable && havePackage && !isRoot) {
      home.activation.portclaimRelease = lib.hm.dag.entryAfter [ "reloadSystemd" ] ''
        if [[ -e ${pc.policyPath} ]]; then
          ${flags}
          ${portclaim} release --all "''${portclaimFlags[@]}" \
            || warnEcho "portclaim release --all failed (exit $?); the switch goes on"
        fi
      '';
    })
  ];
}
