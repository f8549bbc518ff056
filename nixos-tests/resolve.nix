# NixOS VM test (needs KVM): the whole flow through NixOS and home-manager
# as a NixOS module, with the root broker acting for alice. Every subtest
# names the Go end-to-end test that proves the same on systemd-nspawn
# machines (nixos-tests/*_test.go); TestNixScenariosMatch keeps the two
# lists in step.
# Its shape (a function that also carries nodes and testScript) is
# vm/test.nix's.
let
  aliceClaims = {
    ollama = {
      systemUnits = [ "ollama.service" ];
      userUnits = [ "podman-local-ai-ollama.service" ];
      ports = [ { port = 11434; } ];
    };
    qdrant = {
      systemUnits = [ "qdrant.service" ];
      userUnits = [ "podman-local-ai-qdrant.service" ];
      ports = [ { port = 6333; } ];
    };
  };

  textfiles = "/var/lib/prometheus-node-exporter/textfile";

  nodesFor =
    { home-manager, portclaimModules }:
    {
      machine =
        {
          config,
          pkgs,
          lib,
          ...
        }:
        let
          # A tiny stand-in for a real service: an HTTP server on one address.
          serve = address: port: "${pkgs.python3}/bin/python3 -m http.server --bind ${address} ${toString port}";
          userUnit = port: {
            Service.ExecStart = serve "::" port;
            Install.WantedBy = [ "default.target" ];
          };
        in
        {
          imports = [ (import ./common.nix { inherit home-manager portclaimModules; }) ];

          # A specialisation cannot take away a unit its parent defines
          # (mkForce { } leaves an empty unit file): alice's ollama
          # container is there only while this is true.
          options.portclaimTest.aliceRunsOllama = lib.mkOption {
            type = lib.types.bool;
            default = true;
            description = "Whether alice's home.nix runs her ollama container.";
          };

          config = {
            # System units as NixOS writes them, holding the ports alice wants.
            systemd.services.ollama = {
              wantedBy = [ "multi-user.target" ];
              serviceConfig.ExecStart = serve "127.0.0.1" 11434;
            };
            systemd.services.qdrant = {
              wantedBy = [ "multi-user.target" ];
              serviceConfig.ExecStart = serve "127.0.0.1" 6333;
            };
            # ollama may yield to alice; qdrant is not in the policy.
            services.portclaim = {
              enable = true;
              yield."ollama.service".users = [ "alice" ];
              metrics.textfileDirectory = textfiles;
            };
            home-manager.users.alice = {
              services.portclaim.enable = true;
              services.portclaim.services = aliceClaims;
              systemd.user.services.podman-local-ai-ollama = lib.mkIf config.portclaimTest.aliceRunsOllama (userUnit 11434);
              systemd.user.services.podman-local-ai-qdrant = userUnit 6333;
            };
            specialisation = {
              # alice drops her ollama container: her switch gives the port back.
              released.configuration = {
                portclaimTest.aliceRunsOllama = false;
                home-manager.users.alice.services.portclaim.services = lib.mkForce { inherit (aliceClaims) qdrant; };
              };
              # alice turns portclaim off (and drops the container): her
              # switch gives everything back.
              off.configuration = {
                portclaimTest.aliceRunsOllama = false;
                home-manager.users.alice.services.portclaim.enable = lib.mkForce false;
              };
              # The policy no longer lets ollama yield to alice: reconcile
              # removes her claim on nixos-rebuild switch. (The script stops
              # her unit first: the switch restarts multi-user.target, which
              # starts ollama.service, and reconcile starts it too.)
              dropped.configuration.services.portclaim.yield = lib.mkForce { };
            };
          };
        };
    };

  testScript =
    { nodes, ... }:
    let
      claim = "/var/lib/portclaim/claims/alice/ollama.service";
    in
    ''
      import json

      # Evaluation-time warnings, as data (a warning may hold any character).
      warnings = json.loads(${builtins.toJSON (builtins.toJSON nodes.machine.warnings)})

      def user(cmd):
          return machine.succeed(f"su - alice -c 'XDG_RUNTIME_DIR=/run/user/1000 {cmd}'")

      def owner(port):
          return user(f"portclaim who {port}/tcp")

      def alice_holds_ollama():
          machine.wait_until_succeeds("su - alice -c 'XDG_RUNTIME_DIR=/run/user/1000 systemctl --user is-active podman-local-ai-ollama.service'")
          machine.fail("systemctl is-active ollama.service")
          assert "podman-local-ai-ollama.service" in owner(11434)

      def system_holds_ollama():
          machine.wait_until_succeeds("systemctl is-active ollama.service")
          machine.wait_until_fails("test -e ${claim}")
          machine.wait_until_succeeds("su - alice -c 'XDG_RUNTIME_DIR=/run/user/1000 portclaim who 11434/tcp' | grep -q 'system ollama.service'")

      def switch(specialisation):
          machine.succeed(f"/run/booted-system/specialisation/{specialisation}/bin/switch-to-configuration test")
          machine.wait_for_unit("home-manager-alice.service")

      def back():
          machine.succeed("/run/booted-system/bin/switch-to-configuration test")
          machine.wait_for_unit("home-manager-alice.service")
          alice_holds_ollama()

      machine.wait_for_unit("multi-user.target")
      machine.wait_for_unit("home-manager-alice.service")

      with subtest("TestResolveKeepsTheUnitDownAcrossRebootUntilRelease: resolve through the broker"):
          machine.succeed("systemctl is-active portclaim.socket")
          alice_holds_ollama()
          # The broker wrote the claim: root's, in a root-owned directory.
          assert machine.succeed("stat -c %U ${claim}").strip() == "root"
          machine.fail("su - alice -c 'touch /var/lib/portclaim/claims/alice/forged.service'")
          machine.succeed("systemctl start ollama.service")
          machine.fail("systemctl is-active ollama.service")
          assert "ConditionPathExists=!${claim}" in machine.succeed("systemctl status ollama.service || true")

      with subtest("TestResolveKeepsTheUnitDownAcrossRebootUntilRelease: reboot"):
          machine.shutdown()
          machine.start()
          machine.wait_for_unit("multi-user.target")
          alice_holds_ollama()

      with subtest("TestUnitNotInThePolicyIsLeftAlone"):
          machine.succeed("systemctl is-active qdrant.service")
          machine.fail("test -e /var/lib/portclaim/claims/alice/qdrant.service")
          assert any('services.portclaim.yield."qdrant.service".users = [ "alice" ];' in w for w in warnings), warnings

      with subtest("TestFleetMetrics"):
          machine.wait_until_succeeds("test -s ${textfiles}/portclaim.prom")
          machine.succeed("grep -q '^portclaim_checked{user=\"alice\"} 1$' ${textfiles}/portclaim.prom")
          machine.succeed("systemctl is-active portclaim-metrics.timer")

      with subtest("TestResolveKeepsTheUnitDownAcrossRebootUntilRelease: release"):
          switch("released")
          system_holds_ollama()
          back()

      with subtest("TestResolveKeepsTheUnitDownAcrossRebootUntilRelease: portclaim turned off"):
          switch("off")
          system_holds_ollama()
          back()

      with subtest("TestResolveKeepsTheUnitDownAcrossRebootUntilRelease: the policy drops alice"):
          # The switch restarts multi-user.target, which starts
          # ollama.service once its condition is gone: her unit must not
          # hold the port then, or the switch fails.
          user("systemctl --user stop podman-local-ai-ollama.service")
          switch("dropped")
          machine.wait_until_fails("test -e ${claim}")
          assert "${claim}" not in machine.succeed("systemctl cat ollama.service")
          machine.wait_until_succeeds("systemctl is-active ollama.service")
    '';
in
import ./vm/test.nix "resolve" nodesFor testScript
