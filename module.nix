# portclaim's Nix side, one entry point:
#
#   (import ./module.nix).lib          builtins-only functions (nix/lib.nix):
#                                      the policy, every file the NixOS
#                                      module installs (systemFiles), the
#                                      manifest, podman port specs, derived
#                                      claims, collisions, name checks.
#                                      Nix without nixpkgs evaluates them;
#                                      the end-to-end machines install what
#                                      systemFiles returns.
#   (import ./module.nix).nixos        the NixOS module (nix/nixos.nix):
#                                      root's policy and the broker.
#   (import ./module.nix).homeManager  the home-manager module
#                                      (nix/home-manager.nix): the user's
#                                      claims.
#
# The modules are imported by path, and carry a key: importing one twice
# (say, through two flakes' module lists) is harmless.
{
  lib = import ./nix/lib.nix;

  nixos = {
    _file = ./module.nix;
    key = "portclaim/nixos";
    imports = [ ./nix/nixos.nix ];
  };

  homeManager = {
    _file = ./module.nix;
    key = "portclaim/home-manager";
    imports = [ ./nix/home-manager.nix ];
  };
}
