# Stand-in for nixpkgs' nixos/modules/misc/meta.nix, which home-manager's
# modules.nix imports from pkgs.path: modules set meta.maintainers and
# meta.doc; nothing here reads them.
{ lib, ... }:
{
  options.meta = lib.mkOption {
    type = lib.types.lazyAttrsOf lib.types.raw;
    internal = true;
    default = { };
    description = "Module metadata (ignored).";
  };
}
