# The user side: the known services, the claims derived from home-manager's
# configuration, and the manifest (pkg/manifest reads it).
{ pc, util }:
let
  inherit (util)
    sortedNames
    hasSuffix
    knownServicesFile
    ;
  inherit (pc)
    checked
    containerSpecs
    containerUnit
    hostAddress
    mergeOverlaps
    overlaps
    parsePortSpec
    showPort
    unitNameProblem
    unpublishedNetwork
    ;
in
rec {
  # The manifest version the home-manager module renders.
  manifestVersion = 2;

  # name -> { nixosModule; systemUnits; family; ports; }, from
  # pkg/manifest/known-services.json, which the Go built-in map reads too.
  knownServices = knownServicesFile.services;

  # The known service a container pairs with: its name is the key or ends
  # in "-<key>" (local-ai-ollama -> ollama); null when none.
  knownServiceOf =
    name:
    let
      hits = builtins.filter (key: name == key || hasSuffix "-${key}" name) (sortedNames knownServices);
    in
    if hits == [ ] then null else builtins.head hits;

  # Claims derived from home-manager's configuration:
  #   containers: services.podman.containers (name -> { ports = [ spec ]; network ? ...; extraConfig ? ...; })
  #   ollama:     home-manager's services.ollama ({ host; port; }), or null
  # Returns manifest services by name, each with its origin. A container
  # paired with a known service takes that service's name and system
  # units, unless another container pairs with it too: then each keeps
  # its own name, so no claim is lost to a name clash.
  deriveClaims =
    {
      containers ? { },
      ollama ? null,
    }:
    let
      pairs = builtins.filter (n: knownServiceOf n != null) (builtins.attrNames containers);
      pairedWith = key: builtins.length (builtins.filter (n: knownServiceOf n == key) pairs);
      fromContainer =
        name:
        let
          known = knownServiceOf name;
          c = containers.${name};
          # On the host's network, or on none, podman publishes nothing
          # (deriveNotes says so in the manifest).
          ports =
            if unpublishedNetwork c != null then
              [ ]
            else
              mergeOverlaps (builtins.concatLists (map parsePortSpec (containerSpecs c)));
        in
        {
          name = if known == null || pairedWith known > 1 then name else known;
          value = {
            systemUnits = if known == null then [ ] else knownServices.${known}.systemUnits;
            userUnits = [ (containerUnit name c) ];
            inherit ports;
            # The container's ports option, verbatim: what a home.nix line
            # that moves a port rewrites.
            origin.podman = {
              container = name;
              ports = c.ports or [ ];
            };
          };
        };
      fromContainers = builtins.filter (c: c.value.ports != [ ]) (map fromContainer (sortedNames containers));
      containerNames = map (c: c.name) fromContainers;
      fromOllama =
        if ollama == null then
          [ ]
        else
          [
            {
              name = if builtins.elem "ollama" containerNames then "home-manager-ollama" else "ollama";
              value = {
                systemUnits = [ "ollama.service" ];
                userUnits = [ "ollama.service" ];
                ports = [
                  {
                    port = ollama.port;
                    protocol = "tcp";
                    address = hostAddress ollama.host;
                  }
                ];
                origin.homeManager.option = "services.ollama";
              };
            }
          ];
    in
    builtins.listToAttrs (fromContainers ++ fromOllama);

  # What derived claims leave out, said in the manifest's notes: a
  # container that publishes nothing claims nothing.
  deriveNotes =
    {
      containers ? { },
    }:
    builtins.concatMap (
      name:
      let
        c = containers.${name};
        network = unpublishedNetwork c;
        unit = containerUnit name c;
      in
      if network == "host" then
        [
          "container ${name} uses the host's network (network = \"host\"): it publishes no ports, so portclaim claims nothing for ${unit}; declare its ports in services.portclaim.services to claim them"
        ]
      else if network == "none" then
        [
          "container ${name} has no network (network = \"none\"): it publishes no ports, so portclaim claims nothing for ${unit}"
        ]
      else
        [ ]
    ) (sortedNames containers);

  # The manifest as a value. version 1 is the original contract; version
  # 2 adds each service's optional origin and the top-level notes.
  # services: name -> { systemUnits; userUnits; ports = [ { port; protocol ? "tcp"; address ? ""; } ]; origin ? ...; }
  manifestValue =
    {
      version ? 1,
      strategy ? "disable-system",
      autoResolve ? true,
      strict ? false,
      services,
      notes ? [ ],
    }:
    {
      inherit version strategy autoResolve strict;
      services = map (
        name:
        let
          s = services.${name};
        in
        {
          inherit name;
          systemUnits = map (checked "unit" unitNameProblem) s.systemUnits;
          userUnits = map (checked "unit" unitNameProblem) s.userUnits;
          ports = map (p: {
            inherit (p) port;
            protocol = p.protocol or "tcp";
            address = p.address or "";
          }) s.ports;
        }
        // (if version >= 2 && s ? origin && s.origin != null then { inherit (s) origin; } else { })
      ) (sortedNames services);
    }
    // (if version >= 2 then { inherit notes; } else { });

  manifest = args: builtins.toJSON (manifestValue args);

  # What the manifest's check would refuse about the claims' ports, as
  # sentences: a port claimed twice, by one claim or by two (portclaim
  # could not tell which user unit gets it). The home-manager module makes
  # them assertions, so the evaluation fails, not the build.
  portProblems =
    services:
    let
      all = builtins.concatMap (name: map (p: { inherit name p; }) services.${name}.ports) (sortedNames services);
      n = builtins.length all;
      at = builtins.elemAt all;
      pairs = builtins.concatMap (
        i: builtins.concatMap (j: if overlaps (at i).p (at j).p then [ { a = at i; b = at j; } ] else [ ]) (
          builtins.genList (k: i + 1 + k) (n - i - 1)
        )
      ) (builtins.genList (i: i) n);
    in
    map (
      x:
      if x.a.name == x.b.name then
        "the claim ${builtins.toJSON x.a.name} lists ${showPort x.a.p} and ${showPort x.b.p}, which overlap: list the port once"
      else
        "the claims ${builtins.toJSON x.a.name} (${showPort x.a.p}) and ${builtins.toJSON x.b.name} (${showPort x.b.p}) claim one port: it can belong to one of them; move or drop one"
    ) pairs;
}
