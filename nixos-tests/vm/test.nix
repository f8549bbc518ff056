# What each VM test file (nixos-tests/*.nix) evaluates to: a function the
# flake's checks call with pkgs, which also carries the test's nodes and
# testScript, so that CI without Nix can render the script against the
# evaluated nodes and compile it (nixos-tests/moduleeval).
name: nodesFor: testScript: {
  inherit nodesFor testScript;
  __functor =
    _:
    {
      pkgs,
      home-manager,
      portclaimModules,
    }:
    pkgs.testers.runNixOSTest {
      name = "portclaim-${name}";
      nodes = nodesFor { inherit home-manager portclaimModules; };
      inherit testScript;
    };
}
