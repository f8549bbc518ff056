# The NixOS module: root's policy. Which system units may yield to which
# users, the broker that acts for them, the start conditions that keep
# yielded units down, and the reconcile service that gives back what the
# policy no longer allows.
#
# Everything it installs is lib.systemFiles (nix/lib.nix), so the
# end-to-end machines, which install that map, run what NixOS runs; a
# test checks this module's configuration agrees with it.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  pc = import ./lib.nix;
  types = import ./types.nix { inherit lib pc; };
  cfg = config.services.portclaim;

  # unit -> users, keyed by the validated unit name, with the families of
  # the known services that yield: the policy.
  yield = pc.withFamilies {
    yield = lib.mapAttrs' (_: v: lib.nameValuePair v.unit v.users) cfg.yield;
    inherit definedUnits;
  };

  portclaim = lib.getExe cfg.package;
  textfileDirectory = cfg.metrics.textfileDirectory;

  files = pc.systemFiles {
    inherit
      portclaim
      yield
      textfileDirectory
      ;
    inherit (cfg) claimsDir;
  };

  units = pc.systemUnits {
    inherit portclaim textfileDirectory;
    inherit (cfg) claimsDir;
    policyJSON = files.${pc.policyPath};
  };

  # Store path names allow fewer characters than unit names.
  storeName = s: lib.replaceStrings [ "@" ":" "\\" ] [ "-" "-" "-" ] s;

  # The start conditions go in as drop-ins from a package in
  # systemd.packages: NixOS links the <unit>.d directories of such
  # packages into /etc/systemd/system, next to the unit whoever defines
  # it. Setting systemd.services.<unit>.unitConfig instead would define
  # the unit, and a misspelt or absent one would become a broken unit.
  dropIns = map (
    unit:
    pkgs.writeTextFile {
      name = "portclaim-${storeName unit}.d";
      destination = pc.dropInPath unit;
      text = files.${pc.dropInPath unit};
    }
  ) (builtins.attrNames yield);

  # /etc/tmpfiles.d/portclaim.conf, under that name (systemd.tmpfiles.rules
  # would land in 00-nixos.conf).
  tmpfiles = pkgs.writeTextFile {
    name = "portclaim-tmpfiles";
    destination = "/lib/tmpfiles.d/portclaim.conf";
    text = files."/etc/tmpfiles.d/portclaim.conf";
  };

  # Units the configuration defines, by full name.
  definedUnits =
    map (n: "${n}.service") (builtins.attrNames config.systemd.services)
    ++ map (n: "${n}.socket") (builtins.attrNames config.systemd.sockets)
    ++ builtins.attrNames config.systemd.units;

  # yieldKnownServices: each known service the system enables yields to
  # the users whose home-manager configuration claims a port it holds,
  # and to no one else (never root, who has no claims). A user whose name
  # portclaim refuses is left out, with a warning, rather than failing the
  # whole evaluation.
  portclaimUsers = lib.filterAttrs (name: hm: name != "root" && (hm.services.portclaim.enable or false)) (
    config.home-manager.users or { }
  );
  hmUsers = lib.filterAttrs (name: _: pc.userNameProblem name == null) portclaimUsers;
  refusedUsers = builtins.filter (name: pc.userNameProblem name != null) (builtins.attrNames portclaimUsers);
  bindings = pc.systemBindings config.services;
  # Whether a claim of the user's names the unit and one of its ports
  # overlaps what the unit holds.
  claims =
    hm: unit:
    builtins.any (
      s:
      builtins.elem unit s.systemUnits
      && builtins.any (p: !(bindings ? ${unit}) || builtins.any (pc.overlaps p) bindings.${unit}) s.ports
    ) (builtins.attrValues hm.services.portclaim.claims);
  knownEnabled =
    key:
    let
      known = pc.knownServices.${key};
    in
    if known.nixosModule != null then
      lib.attrByPath (lib.splitString "." known.nixosModule ++ [ "enable" ]) false config
    else
      builtins.any (u: builtins.elem u definedUnits) known.systemUnits;
  knownYield = lib.filterAttrs (_: v: v.users != [ ]) (
    lib.genAttrs
      (lib.concatMap (key: pc.knownServices.${key}.systemUnits) (
        builtins.filter knownEnabled (builtins.attrNames pc.knownServices)
      ))
      (unit: {
        users = builtins.attrNames (lib.filterAttrs (_: hm: claims hm unit) hmUsers);
      })
  );

  allUsers = pc.sortUnique (lib.concatLists (builtins.attrValues yield));
in
{
  options.services.portclaim = {
    enable = lib.mkEnableOption "portclaim's system policy and broker: which system units may yield to which users";

    package = lib.mkPackageOption pkgs "portclaim" { };

    claimsDir = lib.mkOption {
      # A string, not a path: a path literal would be copied to the store.
      type = types.cleanAbsolutePath;
      default = pc.defaultClaimsDir;
      example = "/var/lib/portclaim/claims";
      description = ''
        Where the broker keeps claims: {file}`<claimsDir>/<user>/<unit>`,
        root-owned. While a claim on a unit exists, the unit's start
        condition keeps it down, at boot too. Changing it moves the claims
        there (portclaim-move-claims.service) before the units they keep
        down start.
      '';
    };

    yield = lib.mkOption {
      type = lib.types.attrsOf (
        lib.types.submodule (
          { name, ... }:
          {
            options = {
              users = lib.mkOption {
                type = lib.types.listOf types.userName;
                example = [ "alice" ];
                description = ''
                  Users who may make this unit yield: the broker stops it
                  for them, keeps it down with their claim, and starts it
                  again when they give it back.
                '';
              };
              # The attribute name, checked: the type's error names the
              # option path and what is wrong with the unit name.
              unit = lib.mkOption {
                type = types.claimableUnit;
                default = name;
                readOnly = true;
                internal = true;
                description = "The unit's name (the attribute name), validated.";
              };
            };
          }
        )
      );
      default = { };
      example = lib.literalExpression ''{ "ollama.service".users = [ "alice" ]; }'';
      description = ''
        System units that may yield to users, by unit name (a `.service`
        or `.socket`). For a socket-activated service list its `.socket`
        too. The broker stops nothing else.
      '';
    };

    yieldKnownServices = lib.mkOption {
      type = lib.types.bool;
      default = false;
      example = true;
      description = ''
        Let each known service the system enables (ollama, qdrant,
        llama-cpp, open-webui, mindsdb) yield to the users whose
        home-manager configuration (home-manager as a NixOS module) enables
        portclaim and claims that service's unit, and to no one else.
      '';
    };

    effectiveYield = lib.mkOption {
      type = lib.types.attrsOf (lib.types.listOf lib.types.str);
      readOnly = true;
      default = yield;
      defaultText = lib.literalMD "`yield`, with each known service's family";
      description = ''
        What the policy lets yield to whom (read-only): `yield` (with what
        `yieldKnownServices` adds), and for each known service in it, the
        units its NixOS module defines around it that stop with it (such
        as {file}`ollama-model-loader.service`, which `services.ollama.loadModels`
        adds), for the same users, where the system defines them.
      '';
    };

    metrics.textfileDirectory = lib.mkOption {
      type = lib.types.nullOr types.cleanAbsolutePath;
      default = null;
      example = "/var/lib/prometheus-node-exporter/textfile";
      description = ''
        Where to write {file}`portclaim.prom` (`portclaim status --format
        prometheus`) for the node exporter's textfile collector: every
        five minutes, at boot and after every switch. `null` turns it off.
      '';
    };
  };

  config = lib.mkMerge [
    (lib.mkIf (cfg.enable && cfg.yieldKnownServices) {
      services.portclaim.yield = knownYield;
    })

    (lib.mkIf cfg.enable {
      environment.etc."portclaim/policy.json".text = files.${pc.policyPath};

      systemd.units = lib.mapAttrs (_: u: { inherit (u) text wantedBy; }) units;
      systemd.packages = dropIns;
      systemd.tmpfiles.packages = [ tmpfiles ];

      warnings =
        lib.optionals cfg.yieldKnownServices (
          map (
            name:
            "portclaim: yieldKnownServices lets nothing yield to the home-manager user ${builtins.toJSON name}: portclaim refuses the name, which ${pc.userNameProblem name}."
          ) refusedUsers
        )
        ++ map (
          user:
          "portclaim: services.portclaim.yield lets units yield to ${user}, who is not in users.users: nobody can claim them as ${user}."
        ) (builtins.filter (user: !(config.users.users ? ${user})) allUsers)
        ++ map (
          unit:
          "portclaim: services.portclaim.yield.\"${unit}\" names a unit this configuration does not define (neither systemd.services nor systemd.sockets nor systemd.units has it): check the spelling, or enable the service. Its start condition is installed all the same, in case a package in systemd.packages provides it."
        ) (builtins.filter (unit: !(builtins.elem unit definedUnits)) (builtins.attrNames yield));
    })
  ];
}
