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
  # An option as NixOS declares it: its type, default and description.
  opt =
    type: default: description:
    mkOption { inherit type default description; };

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
              enable = opt types.bool true "Whether the file is created.";
              target = opt types.str name "Path relative to /etc.";
              text = opt (types.nullOr types.lines) null "The file's text.";
              source = mkOption {
                type = types.path;
                description = "The file.";
              };
              mode = opt types.str "symlink" "symlink, direct-symlink, or a mode.";
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
    environment.pathsToLink = opt (types.listOf types.str) [ ] "Paths linked into the system profile.";
    environment.systemPackages = packages "System packages.";
    system.userActivationScripts = opt (types.attrsOf types.unspecified) { } "Per-user activation scripts.";
    system.stateVersion = opt types.str "26.05" "State version.";

    specialisation = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.inheritParentConfig = opt types.bool true "Whether the specialisation extends this configuration.";
          options.configuration = opt types.deferredModule { } "The specialisation's configuration.";
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
              uid = opt (types.nullOr types.int) null "The user's uid.";
              isNormalUser = opt types.bool false "A normal user: home in /home.";
              isSystemUser = opt types.bool false "A system user.";
              group = opt types.str "" "Primary group.";
              home = opt types.str "/var/empty" "Home directory.";
              linger = opt (types.nullOr types.bool) null "Start the user's manager at boot.";
              packages = packages "The user's packages.";
            };
            config.home = lib.mkIf config.isNormalUser (lib.mkDefault "/home/${name}");
          }
        )
      );
      default = { };
      description = "Users.";
    };
    users.groups = opt (types.attrsOf types.unspecified) { } "Groups.";

    nix.enable = opt types.bool true "Whether Nix is installed.";
    nix.package = opt types.package pkgs.nix "The Nix package.";

    networking.firewall.allowedTCPPorts = opt (types.listOf types.port) [ ] "Open TCP ports.";

    # qdrant's NixOS module, as far as portclaim reads it: its real option
    # names and defaults (ollama's and open-webui's are nixpkgs' own, see
    # eval.nix).
    services.qdrant = {
      enable = lib.mkEnableOption "qdrant";
      settings = opt (types.attrsOf types.anything) { } "qdrant's config.yaml.";
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
