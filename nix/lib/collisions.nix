# Collisions: evaluation-time warnings for claims the system will not let
# yield, with what the system's NixOS modules say their units bind.
{ pc, util }:
let
  inherit (util)
    sortedNames
    sortUnique
    ;
  inherit (pc)
    hostAddress
    knownServices
    overlaps
    showPort
    userNameProblem
    ;
in
rec {
  # What a known service's system unit holds, read from its NixOS
  # module's options where it has them (services: config.services of the
  # NixOS configuration), else the known-services table's ports on every
  # address. unit -> [ { port; protocol; address; } ]
  systemBindings =
    services:
    let
      onAll = ports: map (port: {
        inherit port;
        protocol = "tcp";
        address = "";
      }) ports;
      hostPort = cfg: [
        {
          port = cfg.port;
          protocol = "tcp";
          address = hostAddress cfg.host;
        }
      ];
      fromModule = {
        ollama = cfg: hostPort cfg;
        llama-cpp = cfg: hostPort cfg;
        open-webui = cfg: hostPort cfg;
        qdrant =
          cfg:
          let
            s = cfg.settings.service or { };
            address = hostAddress (s.host or "127.0.0.1");
          in
          map (port: {
            inherit port address;
            protocol = "tcp";
          }) [
            (s.http_port or 6333)
            (s.grpc_port or 6334)
          ];
      };
      bindingsOf =
        key:
        let
          cfg = services.${key} or null;
          # The module's options say what the unit binds only when the
          # module runs it; a unit written by hand binds what it binds.
          readable = fromModule ? ${key} && cfg != null && (cfg.enable or false);
        in
        if readable then fromModule.${key} cfg else onAll knownServices.${key}.ports;
    in
    builtins.listToAttrs (
      builtins.concatMap (
        key:
        map (unit: {
          name = unit;
          value = bindingsOf key;
        }) knownServices.${key}.systemUnits
      ) (sortedNames knownServices)
    );

  # A name as a Nix attribute: bare where Nix allows it, else quoted.
  nixAttr = name: if builtins.match "[A-Za-z_][A-Za-z0-9_'-]*" name != null then name else builtins.toJSON name;

  # Evaluation-time warnings: a claimed port that a system unit the system
  # enables holds, where the policy does not let that unit yield to user.
  #   enabledUnits: system units the NixOS configuration enables
  #   yield: the NixOS policy, unit -> users
  #   bindings: unit -> what it holds (systemBindings); a unit without an
  #     entry is taken to hold every port its claim names (the user said so)
  #   enabledModules: the known services' NixOS modules the system enables
  #     ("services.ollama"); only these can be turned off
  #   portclaimModule: "on", "off" (imported, not enabled) or "absent"
  #   strategy: the user's; under "disable-user" the system's service wins
  collisions =
    {
      user,
      services,
      enabledUnits,
      yield ? { },
      bindings ? { },
      enabledModules ? [ ],
      portclaimModule ? "on",
      strategy ? "disable-system",
    }:
    builtins.concatMap (
      name:
      let
        svc = services.${name};
        held = unit: p: !(bindings ? ${unit}) || builtins.any (overlaps p) bindings.${unit};
        colliding = unit: builtins.filter (held unit) svc.ports;
        # Only an option known to exist and to change something: the
        # known-services table's NixOS module that runs the unit, where
        # the system enables it (a name guessed from the unit could name
        # an option that does not exist; a unit written by hand does not
        # go with its module's enable).
        modules =
          unit:
          builtins.filter (m: builtins.elem m enabledModules) (
            map (k: knownServices.${k}.nixosModule) (
              builtins.filter (
                k: (knownServices.${k}.nixosModule or null) != null && builtins.elem unit knownServices.${k}.systemUnits
              ) (sortedNames knownServices)
            )
          );
        off = unit: "${builtins.head (modules unit)}.enable = false;";
        yieldLine = unit: "services.portclaim.yield.\"${unit}\".users = [ \"${user}\" ];";
        # The system's side: let it yield, or turn it off.
        admin =
          unit:
          if userNameProblem user != null then
            " portclaim cannot let it yield to ${user}: the name ${userNameProblem user}."
            + (if modules unit == [ ] then "" else " Turn it off: ${off unit}")
          else if portclaimModule == "absent" then
            (if modules unit == [ ] then " Add" else " Turn it off: ${off unit} or add")
            + " portclaim's NixOS module (portclaim.nixosModules.default) to the system and let ${unit} yield to ${user}."
          else
            " Let it yield: "
            + (if portclaimModule == "off" then "services.portclaim.enable = true; " else "")
            + yieldLine unit
            + (if modules unit == [ ] then "" else " or turn it off: ${off unit}");
        # Under disable-user the user's side goes: what to change in home.nix.
        origin = svc.origin or { };
        home =
          if origin ? podman then
            "remove services.podman.containers.${nixAttr origin.podman.container} from home.nix."
          else if origin ? homeManager then
            "in home.nix: ${origin.homeManager.option}.enable = false;"
          else
            "turn ${builtins.concatStringsSep ", " svc.userUnits} off where your home.nix declares it.";
        advice =
          unit:
          if strategy == "disable-user" then
            " Under strategy = \"disable-user\" the system's service keeps it: ${home}"
          else
            admin unit;
      in
      map (
        unit:
        "portclaim: ${user}'s ${builtins.concatStringsSep ", " svc.userUnits} claims ${
          builtins.concatStringsSep ", " (map showPort (colliding unit))
        }, but the system enables ${unit}, which holds it."
        + advice unit
      ) (
        builtins.filter (
          unit: builtins.elem unit enabledUnits && !(builtins.elem user (yield.${unit} or [ ])) && colliding unit != [ ]
        ) svc.systemUnits
      )
    ) (sortedNames services);

  inherit sortUnique;
}
