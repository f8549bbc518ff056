# Stand-ins for the NixOS options that portclaim's NixOS module,
# home-manager's NixOS module and nixpkgs' ollama and open-webui modules
# set or read, declared with the types NixOS gives them (nixos/modules/
# system/etc/etc.nix, config/users-groups.nix, services/networking/
# firewall.nix, ...), so definitions merge as they would on a real system;
# the systemd ones are in systemd.nix.
#
# Also a stand-in for the NixOS module of qdrant, a known service whose
# module portclaim reads, with its real option names and defaults,
# defining its systemd.services as that module does.
{
  lib,
  pkgs,
  config,
  ...
}:
let
  inherit (lib) mkOption types;

  packages =
    description:
    mkOption {
      type = types.listOf types.package;
      default = [ ];
      inherit description;
    };
in
{
  imports = [
    ./systemd.nix
    ../stub-nixpkgs/nixos/modules/misc/assertions.nix
    ../stub-nixpkgs/nixos/modules/misc/meta.nix
  ];

  options = {
    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              enable = mkOption {
                type = types.bool;
                default = true;
                description = "Whether the file is created.";
              };
              target = mkOption {
                type = types.str;
                default = name;
                description = "Path relative to /etc.";
              };
              text = mkOption {
                type = types.nullOr types.lines;
                default = null;
                description = "The file's text.";
              };
              source = mkOption {
                type = types.path;
                description = "The file.";
              };
              mode = mkOption {
                type = types.str;
                default = "symlink";
                description = "symlink, direct-symlink, or a mode.";
              };
            };
            config.source = lib.mkIf (config.text != null) (
              lib.mkDerivedConfig { } (_: pkgs.writeText "etc-${baseNameOf name}" config.text)
            );
          }
        )
      );
      default = { };
      description = "Files in /etc.";
    };
    environment.pathsToLink = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Paths linked into the system profile.";
    };
    environment.systemPackages = packages "System packages.";
    system.userActivationScripts = mkOption {
      type = types.attrsOf types.unspecified;
      default = { };
      description = "Per-user activation scripts.";
    };
    system.stateVersion = mkOption {
      type = types.str;
      default = "26.05";
      description = "State version.";
    };

    specialisation = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.inheritParentConfig = mkOption {
            type = types.bool;
            default = true;
            description = "Whether the specialisation extends this configuration.";
          };
          options.configuration = mkOption {
            type = types.deferredModule;
            default = { };
            description = "The specialisation's configuration.";
          };
        }
      );
      default = { };
      description = "Alternative configurations (boot entries, switch targets).";
    };

    users.users = mkOption {
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              name = mkOption {
                type = types.str;
                default = name;
                # As NixOS checks it (config/users-groups.nix).
                apply =
                  x:
                  assert (builtins.stringLength x < 32 || abort "Username '${x}' is longer than 31 characters which is not allowed!");
                  x;
                description = "The user's name.";
              };
              uid = mkOption {
                type = types.nullOr types.int;
                default = null;
                description = "The user's uid.";
              };
              isNormalUser = mkOption {
                type = types.bool;
                default = false;
                description = "A normal user: home in /home.";
              };
              isSystemUser = mkOption {
                type = types.bool;
                default = false;
                description = "A system user.";
              };
              group = mkOption {
                type = types.str;
                default = "";
                description = "Primary group.";
              };
              home = mkOption {
                type = types.str;
                default = "/var/empty";
                description = "Home directory.";
              };
              linger = mkOption {
                type = types.nullOr types.bool;
                default = null;
                description = "Start the user's manager at boot.";
              };
              packages = packages "The user's packages.";
            };
            config.home = lib.mkIf config.isNormalUser (lib.mkDefault "/home/${name}");
          }
        )
      );
      default = { };
      description = "Users.";
    };
    users.groups = mkOption {
      type = types.attrsOf types.unspecified;
      default = { };
      description = "Groups.";
    };

    nix.enable = mkOption {
      type = types.bool;
      default = true;
      description = "Whether Nix is installed.";
    };
    nix.package = mkOption {
      type = types.package;
      default = pkgs.nix;
      description = "The Nix package.";
    };

    networking.firewall.allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      description = "Open TCP ports.";
    };

    # qdrant's NixOS module, as far as portclaim reads it: its real option
    # names and defaults (ollama's and open-webui's are nixpkgs' own, see
    # eval.nix).
    services.qdrant = {
      enable = lib.mkEnableOption "qdrant";
      settings = mkOption {
        type = types.attrsOf types.anything;
        default = { };
        description = "qdrant's config.yaml.";
      };
    };
  };

  config = lib.mkMerge [
    {
      _module.args.utils.escapeSystemdPath =
        s: lib.replaceStrings [ "/" "-" " " ] [ "-" "\\x2d" "\\x20" ] (lib.removePrefix "/" s);
    }
    (lib.mkIf config.services.qdrant.enable {
      services.qdrant.settings.service = {
        http_port = lib.mkDefault 6333;
        grpc_port = lib.mkDefault 6334;
        host = lib.mkDefault "127.0.0.1";
      };
      systemd.services.qdrant = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "qdrant";
      };
    })
  ];
}
