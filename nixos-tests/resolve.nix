# NixOS VM test (needs KVM): the whole flow through NixOS and home-manager
# as a NixOS module. Every subtest names the Go end-to-end test that proves
# the same on systemd-nspawn machines (nixos-tests/*_test.go);
# TestNixScenariosMatch keeps the two lists in step.
{
  pkgs,
  home-manager,
  portclaimModules,
}:
let
  # A tiny stand-in for a real service: an HTTP server on one address.
  serve = address: port: "${pkgs.python3}/bin/python3 -m http.server --bind ${address} ${toString port}";
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
  userUnit = port: {
    Service.ExecStart = serve "::" port;
    Install.WantedBy = [ "default.target" ];
  };
in
pkgs.testers.runNixOSTest (
  { lib, ... }:
  {
    name = "portclaim-resolve";
    nodes.machine =
      { lib, ... }:
      {
        imports = [ (import ./common.nix { inherit home-manager portclaimModules; }) ];
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
        };
        home-manager.users.alice = {
          services.portclaim.enable = true;
          services.portclaim.services = aliceClaims;
          systemd.user.services.podman-local-ai-ollama = userUnit 11434;
          systemd.user.services.podman-local-ai-qdrant = userUnit 6333;
        };
        # alice drops her ollama container: the switch gives the port back.
        specialisation.released.configuration = {
          home-manager.users.alice = {
            services.portclaim.services = lib.mkForce { inherit (aliceClaims) qdrant; };
            systemd.user.services.podman-local-ai-ollama = lib.mkForce { };
          };
        };
      };

    testScript =
      { nodes, ... }:
      ''
        import json

        def user(cmd):
            return machine.succeed(f"su - alice -c 'XDG_RUNTIME_DIR=/run/user/1000 {cmd}'")

        def owner(port):
            return user(f"portclaim who {port}/tcp")

        machine.wait_for_unit("multi-user.target")
        machine.wait_for_unit("home-manager-alice.service")

        with subtest("TestResolveKeepsTheUnitDownAcrossRebootUntilRelease: resolve"):
            machine.wait_until_succeeds("su - alice -c 'XDG_RUNTIME_DIR=/run/user/1000 systemctl --user is-active podman-local-ai-ollama.service'")
            machine.fail("systemctl is-active ollama.service")
            machine.succeed("test -e /var/lib/portclaim/claims/alice/ollama.service")
            assert "podman-local-ai-ollama.service" in owner(11434)
            machine.succeed("systemctl start ollama.service")
            machine.fail("systemctl is-active ollama.service")
            assert "ConditionPathExists=!/var/lib/portclaim/claims/alice/ollama.service" in machine.succeed("systemctl status ollama.service || true")

        with subtest("TestResolveKeepsTheUnitDownAcrossRebootUntilRelease: reboot"):
            machine.shutdown()
            machine.start()
            machine.wait_for_unit("multi-user.target")
            machine.wait_until_succeeds("su - alice -c 'XDG_RUNTIME_DIR=/run/user/1000 systemctl --user is-active podman-local-ai-ollama.service'")
            machine.fail("systemctl is-active ollama.service")
            assert "podman-local-ai-ollama.service" in owner(11434)

        with subtest("TestUnitNotInThePolicyIsLeftAlone"):
            machine.succeed("systemctl is-active qdrant.service")
            machine.fail("test -e /var/lib/portclaim/claims/alice/qdrant.service")
            warnings = json.loads('${builtins.toJSON nodes.machine.warnings}')
            assert any('services.portclaim.yield."qdrant.service".users = [ "alice" ];' in w for w in warnings), warnings

        with subtest("TestResolveKeepsTheUnitDownAcrossRebootUntilRelease: release"):
            machine.succeed("/run/current-system/specialisation/released/bin/switch-to-configuration test")
            machine.wait_for_unit("home-manager-alice.service")
            machine.wait_until_succeeds("systemctl is-active ollama.service")
            machine.fail("test -e /var/lib/portclaim/claims/alice/ollama.service")
            assert "system ollama.service" in owner(11434)
      '';
  }
)
