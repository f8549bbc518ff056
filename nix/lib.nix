# portclaim's builtins-only functions: what both modules render, written so
# that Nix without nixpkgs (Debian's nix-instantiate 2.8 in CI) evaluates
# them, and the end-to-end machines install exactly what they return. One
# attribute set, split by concern into lib/ (as pkg/ is split):
#
#   names.nix      unit names, user names, the claims directory (pkg/unitname, pkg/policy)
#   endpoint.nix   IP addresses, the bind-overlap rule, ports shown (pkg/endpoint)
#   podman.nix     podman port specs, home-manager's containers (pkg/manifest podman.go)
#   manifest.nix   the known services, derived claims, the manifest (pkg/manifest)
#   policy.nix     the policy, start conditions, tmpfiles, systemFiles (pkg/policy)
#   units.nix      portclaim's own system units
#   collisions.nix evaluation-time warnings for claims that cannot be had
#
# Keep in sync with the Go side; the name rules and podman port specs are
# tested against shared corpora (pkg/unitname/testdata/names.json,
# pkg/policy/testdata/users.json, pkg/manifest/testdata/port-specs.json)
# by both sides. Each file takes the whole set (pc), so a function finds
# its neighbours by name wherever they live.
let
  util = import ./lib/util.nix;
  files = [
    ./lib/names.nix
    ./lib/endpoint.nix
    ./lib/podman.nix
    ./lib/manifest.nix
    ./lib/policy.nix
    ./lib/units.nix
    ./lib/collisions.nix
  ];
  pc = builtins.foldl' (acc: file: acc // import file { inherit pc util; }) { inherit (util) sortUnique; } files;
in
pc
