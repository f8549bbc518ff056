# home-manager's services-modular imports pkgs.path + "/lib/services/lib.nix":
# forward to that file of the nixpkgs lib in use (found by where lib.id
# is defined), since the stand-in package set has no nixpkgs tree.
args@{ lib, ... }: import (dirOf (builtins.unsafeGetAttrPos "id" lib).file + "/services/lib.nix") args
