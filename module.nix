# portclaim's Nix side.
#
#   (import ./module.nix).lib     builtins-only rendering functions: the
#                                 policy JSON, the polkit rule, the start
#                                 conditions. Nix 2.8 without nixpkgs can
#                                 evaluate them; the end-to-end tests install
#                                 exactly what they render.
#   (import ./module.nix).nixos   the NixOS module (root's policy).
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

  portclaimLib = rec {
    defaultClaimsDir = "/var/lib/portclaim/claims";

    # The claim file that keeps `unit` down for `user`; pkg/claims.Path.
    claimPath = claimsDir: user: unit: "${claimsDir}/${user}/${unit}";

    # ConditionPathExists values for one unit: it is skipped while any of
    # its users holds a claim on it. Conditions of one kind are ANDed, so
    # one "!path" per user means "no user claims it".
    conditions =
      {
        claimsDir ? defaultClaimsDir,
        unit,
        users,
      }:
      map (user: "!" + claimPath claimsDir user unit) (builtins.sort builtins.lessThan users);

    # The same as unit file lines, as NixOS writes unitConfig into [Unit].
    conditionLines = args: map (c: "ConditionPathExists=${c}") (conditions args);

    # /etc/portclaim/policy.json. yield: { "<unit>" = [ "<user>" ... ]; }
    policy =
      {
        claimsDir ? defaultClaimsDir,
        yield,
      }:
      builtins.toJSON {
        version = 1;
        inherit claimsDir;
        yield = map (unit: {
          inherit unit;
          users = builtins.sort builtins.lessThan yield.${unit};
        }) (sortedNames yield);
      };

    # The polkit rule: each user may start and stop exactly the units that
    # may yield to them. systemd asks manage-units with the details "unit"
    # and "verb"; manage-unit-files (mask, enable) cannot be scoped to a
    # unit and is never granted.
    polkitRule =
      { yield }:
      ''
        // portclaim: users may stop and start exactly the system units that
        // services.portclaim.yield lets yield to them.
        polkit.addRule(function (action, subject) {
          if (action.id !== "org.freedesktop.systemd1.manage-units") {
            return polkit.Result.NOT_HANDLED;
          }
          var verb = action.lookup("verb");
          if (verb !== "start" && verb !== "stop") {
            return polkit.Result.NOT_HANDLED;
          }
          var yieldTo = ${
            builtins.toJSON (
              builtins.listToAttrs (
                map (unit: {
                  name = unit;
                  value = builtins.sort builtins.lessThan yield.${unit};
                }) (sortedNames yield)
              )
            )
          };
          var unit = action.lookup("unit");
          if (Object.prototype.hasOwnProperty.call(yieldTo, unit) &&
              yieldTo[unit].indexOf(subject.user) >= 0) {
            return polkit.Result.YES;
          }
          return polkit.Result.NOT_HANDLED;
        });
      '';

    # systemd-tmpfiles lines for the claims directory: the parent is root's,
    # each user's directory is theirs (they write their claims there).
    tmpfiles =
      {
        claimsDir ? defaultClaimsDir,
        users,
      }:
      [ "d ${claimsDir} 0755 root root -" ]
      ++ map (user: "d ${claimsDir}/${user} 0755 ${user} - -") (builtins.sort builtins.lessThan users);

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

    inherit hasSuffix;
  };

  nixos =
    {
      config,
      lib,
      pkgs,
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
    in
    {
      options.services.portclaim = {
        enable = lib.mkEnableOption "portclaim: let users' home-manager services claim ports from system units";
        claimsDir = lib.mkOption {
          type = lib.types.path;
          default = pc.defaultClaimsDir;
          description = "Where users' claim files live: <claimsDir>/<user>/<unit>. Each user's directory is theirs; the parent is root's.";
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

      config = lib.mkIf cfg.enable {
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
      };
    };
in
{
  lib = portclaimLib;
  inherit nixos;
}
