# Stand-in for nixpkgs' nixos/modules/misc/assertions.nix, which
# home-manager's modules.nix imports from pkgs.path: the two options, with
# the same types (lists whose definitions concatenate).
{ lib, ... }:
{
  options = {
    assertions = lib.mkOption {
      type = lib.types.listOf lib.types.unspecified;
      internal = true;
      default = [ ];
      description = "Assertions: { assertion; message; }.";
    };
    warnings = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      internal = true;
      default = [ ];
      description = "Warnings printed when the configuration is built.";
    };
  };
}
