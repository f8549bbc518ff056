# portclaim's Nix side.
#
#   (import ./module.nix).lib     builtins-only rendering functions: the
#                                 policy JSON, the polkit rule, the start
#                                 conditions. Nix 2.8 without nixpkgs can
#                                 evaluate them; the end-to-end tests install
#                                 exactly what they render.
#   (import ./module.nix).nixos        the NixOS module (root's policy).
#   (import ./module.nix).homeManager  the home-manager module (the user's claims).
#
# Keep in sync with pkg/policy (policy.json) and pkg/claims (claim paths).
let
  # Sorted attribute names make every rendering deterministic.
  sortedNames = attrs: builtins.sort builtins.lessThan (builtins.attrNames attrs);

  hasSuffix =
    suffix: s:
    let
      ls = builtins.stringLength s;
      lx = builtins.stringLength suffix;
    in
    ls >= lx && builtins.substring (ls - lx) lx s == suffix;

  # "ollama.service" -> { name = "ollama"; type = "service"; }
  splitUnit =
    unit:
    let
      m = builtins.match "(.+)\\.(service|socket)" unit;
    in
    if m == null then
      throw "portclaim: ${unit} is not a .service or .socket unit name"
    else
      {
        name = builtins.elemAt m 0;
        type = builtins.elemAt m 1;
      };

  portclaimLib = import ./nix/lib.nix // {
    # Where NixOS configures a unit: systemd.services.<name> or
    # systemd.sockets.<name>.
    unitOption =
      unit:
      let
        u = splitUnit unit;
      in
      {
        kind = if u.type == "service" then "services" else "sockets";
        inherit (u) name;
      };
  };

  # Options shared by the home-manager module: one claimed service.
  serviceOptions =
    lib:
    { name, ... }:
    {
      options = {
        systemUnits = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = [ ];
          example = [ "ollama.service" ];
          description = "System units that hold these ports and should yield to your user units.";
        };
        userUnits = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          example = [ "podman-local-ai-ollama.service" ];
          description = "Your user units that need the ports.";
        };
        ports = lib.mkOption {
          type = lib.types.listOf (
            lib.types.submodule {
              options = {
                port = lib.mkOption {
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
                  type = lib.types.str;
                  default = "";
                  example = "127.0.0.1";
                  description = ''Where your user unit binds: "" for every address on both stacks, or an IP address.'';
                };
              };
            }
          );
          example = lib.literalExpression ''[ { port = 11434; } ]'';
          description = "The ports this service claims.";
        };
      };
    };

  # The home-manager module: the user's claims, rendered to the manifest
  # and acted on during `home-manager switch`.
  homeManager =
    {
      config,
      lib,
      pkgs,
      osConfig ? null,
      ...
    }:
    let
      cfg = config.services.portclaim;
      pc = portclaimLib;
      derived = pc.deriveClaims {
        containers = lib.optionalAttrs (cfg.derive.podman && (config.services.podman.enable or false)) (
          config.services.podman.containers or { }
        );
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
      # Explicit entries win over derived ones of the same name.
      services = derived // explicit;
      manifestFile = pkgs.writeTextFile {
        name = "portclaim-manifest.json";
        text = pc.manifest {
          inherit (cfg) strategy autoResolve strict;
          inherit services;
        };
        # Bad input fails the build, not the switch: the same binary that
        # reads the manifest at activation checks it here.
        checkPhase = ''
          ${lib.getExe cfg.package} validate "$out"
        '';
      };
      portclaim = lib.getExe cfg.package;
      # portclaim exits 0 unless strict; anything else must not abort the
      # `set -eu` activation script either.
      onFailure =
        what:
        if cfg.strict then
          ''errorEcho "portclaim ${what} failed (strict = true)"; exit 1''
        else
          ''warnEcho "portclaim ${what} failed (exit $?); the switch goes on"'';
      flags = ''--manifest ${manifestFile} ''${DRY_RUN:+--dry-run} ''${VERBOSE:+--verbose}'';
      osYield = lib.mapAttrs (_: v: v.users) (osConfig.services.portclaim.yield or { });
      enabledUnits =
        if osConfig == null then
          [ ]
        else
          lib.mapAttrsToList (name: _: "${name}.service") (
            lib.filterAttrs (_: s: s.enable or true) (osConfig.systemd.services or { })
          );
    in
    {
      options.services.portclaim = {
        enable = lib.mkEnableOption "portclaim: claim your user services' ports from system units during home-manager switch";
        package = lib.mkOption {
          type = lib.types.package;
          default = pkgs.portclaim;
          defaultText = lib.literalExpression "pkgs.portclaim";
          description = "The portclaim package (the flake's modules default to the flake's own build).";
        };
        strategy = lib.mkOption {
          type = lib.types.enum [
            "disable-system"
            "disable-user"
            "report"
          ];
          default = "disable-system";
          description = ''
            Who wins a conflict: "disable-system" (your user service; the
            system unit yields where the NixOS policy allows it),
            "disable-user" (the system service; portclaim says which
            home.nix option to turn off), "report" (change nothing).
          '';
        };
        autoResolve = lib.mkOption {
          type = lib.types.bool;
          default = true;
          description = "Act without asking. When false, portclaim asks on a terminal and only reports without one.";
        };
        strict = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = "Fail the switch when conflicts are left (otherwise portclaim never breaks activation).";
        };
        derive = {
          podman = lib.mkOption {
            type = lib.types.bool;
            default = true;
            description = "Claim every host port of services.podman.containers.<name>.ports for podman-<name>.service.";
          };
          ollama = lib.mkOption {
            type = lib.types.bool;
            default = true;
            description = "Claim home-manager's services.ollama host and port for its ollama.service.";
          };
        };
        services = lib.mkOption {
          type = lib.types.attrsOf (lib.types.submodule (serviceOptions lib));
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
          description = "Claims besides the derived ones; an entry named like a derived one replaces it.";
        };
        claims = lib.mkOption {
          type = lib.types.attrsOf lib.types.anything;
          readOnly = true;
          default = services;
          defaultText = lib.literalExpression "derived claims // services.portclaim.services";
          description = "Every claim the manifest holds (read-only): derived ones and explicit ones.";
        };
        manifest = lib.mkOption {
          type = lib.types.path;
          readOnly = true;
          default = manifestFile;
          defaultText = lib.literalExpression "the rendered manifest";
          description = "The rendered manifest (read-only), for `portclaim check --manifest`.";
        };
      };

      config = lib.mkIf cfg.enable {
        home.packages = [ cfg.package ];
        # New claims before reloadSystemd: system units yield before
        # sd-switch starts the user units (DESIGN.md "Order within a switch").
        home.activation.portclaim = lib.hm.dag.entryBetween [ "reloadSystemd" ] [ "linkGeneration" ] ''
          ${portclaim} resolve ${flags} || { ${onFailure "resolve"}; }
        '';
        # Giving ports back after reloadSystemd: only then has sd-switch
        # stopped the user units home.nix no longer declares.
        home.activation.portclaimRelease = lib.hm.dag.entryAfter [ "reloadSystemd" ] ''
          ${portclaim} release ${flags} || { ${onFailure "release"}; }
        '';
        warnings = pc.collisions {
          user = config.home.username;
          inherit services enabledUnits;
          yield = osYield;
        };
      };
    };

  # The NixOS module: root's policy. Which system units may yield to which
  # users, the start conditions that keep them down, the polkit rule that
  # lets those users stop and start exactly them.
  nixos =
    {
      config,
      lib,
      options,
      ...
    }:
    let
      cfg = config.services.portclaim;
      pc = portclaimLib;
      yield = lib.mapAttrs (_: v: v.users) cfg.yield;
      conditionsFor =
        kind:
        lib.listToAttrs (
          lib.concatMap (
            unit:
            let
              o = pc.unitOption unit;
            in
            lib.optional (o.kind == kind) {
              inherit (o) name;
              value.unitConfig.ConditionPathExists = pc.conditions {
                inherit (cfg) claimsDir;
                inherit unit;
                users = yield.${unit};
              };
            }
          ) (builtins.attrNames yield)
        );
      allUsers = lib.unique (lib.concatLists (builtins.attrValues yield));
      hmUsers = lib.filterAttrs (_: hm: hm.services.portclaim.enable or false) (config.home-manager.users or { });
      enabledUnits = lib.mapAttrsToList (name: _: "${name}.service") (
        lib.filterAttrs (_: s: s.enable) config.systemd.services
      );
      # Known services the admin enables, offered to every user whose
      # home-manager configuration claims them.
      knownYield = lib.genAttrs (lib.concatMap (k: pc.knownServices.${k}.systemUnits) (
        builtins.filter (k: config.services.${k}.enable or false) (builtins.attrNames pc.knownServices)
      )) (_: { users = builtins.attrNames hmUsers; });
    in
    {
      options.services.portclaim = {
        enable = lib.mkEnableOption "portclaim's system policy: which system units may yield to which users";
        claimsDir = lib.mkOption {
          # A string, not a path: a path literal would be copied to the
          # store. Clean and absolute, as pkg/policy requires.
          type = lib.types.strMatching "/([^/]+/)*[^/]+";
          default = pc.defaultClaimsDir;
          description = "Where users' claim files live: <claimsDir>/<user>/<unit>. Each user's directory is theirs; the parent is root's.";
        };
        yieldKnownServices = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = ''
            Let the known services (ollama, qdrant, llama-cpp, open-webui,
            mindsdb) yield to every user whose home-manager configuration
            enables portclaim (home-manager as a NixOS module).
          '';
        };
        yield = lib.mkOption {
          type = lib.types.attrsOf (
            lib.types.submodule {
              options.users = lib.mkOption {
                type = lib.types.listOf lib.types.str;
                description = "Users who may make this unit yield (stop it, keep it down with a claim, start it again).";
                example = [ "alice" ];
              };
            }
          );
          default = { };
          example = lib.literalExpression ''{ "ollama.service".users = [ "alice" ]; }'';
          description = ''
            System units that may yield to users. For a socket-activated
            service list its .socket too. portclaim stops nothing else.
          '';
        };
      };

      config = lib.mkMerge [
        (lib.mkIf (cfg.enable && cfg.yieldKnownServices && hmUsers != { }) { services.portclaim.yield = knownYield; })
        (lib.mkIf cfg.enable {
          environment.etc."portclaim/policy.json".text = pc.policy {
            inherit (cfg) claimsDir;
            inherit yield;
          };
          security.polkit.enable = true;
          security.polkit.extraConfig = pc.polkitRule { inherit yield; };
          systemd.services = conditionsFor "services";
          systemd.sockets = conditionsFor "sockets";
          systemd.tmpfiles.rules = pc.tmpfiles {
            inherit (cfg) claimsDir;
            users = allUsers;
          };
          # A strict user's collisions fail the build; the others are
          # warnings from their home-manager configuration (home-manager
          # forwards its users' warnings here).
          assertions = lib.concatLists (
            lib.mapAttrsToList (
              user: hm:
              map (message: {
                assertion = !hm.services.portclaim.strict;
                inherit message;
              }) (pc.collisions {
                inherit user enabledUnits yield;
                services = hm.services.portclaim.claims;
              })
            ) hmUsers
          );
        })
      ];
    };
in
{
  lib = portclaimLib;
  inherit nixos homeManager;
}
