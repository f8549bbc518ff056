# NixOS VM test (needs KVM): detection on a NixOS machine. Every subtest
# names the Go end-to-end test that proves the same on systemd-nspawn
# machines; TestNixScenariosMatch keeps the two lists in step.
# Its shape (a function that also carries nodes and testScript) is
# vm/test.nix's.
let
  nodesFor =
    { home-manager, portclaimModules }:
    {
      machine =
        { pkgs, ... }:
        {
          imports = [ (import ./common.nix { inherit home-manager portclaimModules; }) ];
          systemd.services.ollama = {
            wantedBy = [ "multi-user.target" ];
            serviceConfig.ExecStart = "${pkgs.python3}/bin/python3 -m http.server --bind 127.0.0.1 11434";
          };
          # Enabled (wanted by multi-user.target) but stopped below: latent.
          systemd.services.qdrant = {
            wantedBy = [ "multi-user.target" ];
            serviceConfig.ExecStart = "${pkgs.python3}/bin/python3 -m http.server --bind 127.0.0.1 6333";
          };
          home-manager.users.alice = {
            services.portclaim = {
              enable = true;
              strategy = "report";
              services.ollama = {
                systemUnits = [ "ollama.service" ];
                userUnits = [ "podman-local-ai-ollama.service" ];
                ports = [ { port = 11434; } ];
              };
              services.qdrant = {
                systemUnits = [ "qdrant.service" ];
                userUnits = [ "podman-local-ai-qdrant.service" ];
                ports = [ { port = 6333; } ];
              };
              services.free = {
                userUnits = [ "podman-free.service" ];
                ports = [ { port = 7100; } ];
              };
            };
          };
        };
    };

  testScript =
    { nodes, ... }:
    let
      manifest = nodes.machine.home-manager.users.alice.services.portclaim.manifest;
    in
    ''
      import json

      machine.wait_for_unit("multi-user.target")
      machine.wait_for_unit("home-manager-alice.service")
      machine.succeed("systemctl stop qdrant.service")

      def check():
          out = machine.succeed("su - alice -c 'portclaim check --json --manifest ${manifest}; true'")
          return {(c["service"], c["kind"]): c for c in json.loads(out)["conflicts"]}

      with subtest("TestSystemUnitOnLoopbackBlocksUserUnit"):
          c = check()[("ollama", "resolvable")]
          assert c["holder"]["unit"] == "ollama.service" and c["heldAt"] == "127.0.0.1", c

      with subtest("TestEnabledButStoppedIsLatent"):
          assert ("qdrant", "latent") in check()

      with subtest("TestNothingHeld"):
          assert not any(s == "free" for (s, _) in check())
    '';
in
import ./vm/test.nix "detect" nodesFor testScript
