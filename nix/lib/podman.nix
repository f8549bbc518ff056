# podman's port specs and what home-manager's podman module makes of a
# container: the Nix twin of pkg/manifest's podman.go, both held to
# pkg/manifest/testdata/port-specs.json.
{ pc, util }:
let
  inherit (pc)
    isIPAddress
    isIPv4
    ;
in
rec {
  # A port or a range, "8080" or "8000-8002": digits only, at most five
  # (podman reads "00080" as 80), from 1 to 65535, the first not after
  # the last. { first; last; }, or null.
  portRange =
    s:
    let
      m = builtins.match "([0-9]{1,5})(-([0-9]{1,5}))?" s;
      number = d: builtins.fromJSON (builtins.head (builtins.match "0*([0-9]+)" d));
      first = number (builtins.elemAt m 0);
      last = if builtins.elemAt m 2 == null then first else number (builtins.elemAt m 2);
    in
    if m == null || first < 1 || last > 65535 || last < first then null else { inherit first last; };

  # podman's protocol list: tcp, udp or sctp in any case, comma-separated,
  # an empty item meaning tcp; each once, in that order. null when
  # another protocol is named.
  protocolList =
    list:
    let
      lower = builtins.replaceStrings [ "T" "C" "P" "U" "D" "S" ] [ "t" "c" "p" "u" "d" "s" ] list;
      items = map (p: if p == "" then "tcp" else p) (builtins.filter builtins.isString (builtins.split "," lower));
    in
    if builtins.all (p: builtins.elem p [ "tcp" "udp" "sctp" ]) items then
      builtins.filter (p: builtins.elem p items) [ "tcp" "udp" "sctp" ]
    else
      null;

  # Parses one podman port mapping, `[[ip:][hostPort]:]containerPort[/protocol]`
  # (podman-run(1) --publish), into the host ports it binds, port by port,
  # tcp before udp:
  #   "8080:80"               -> [ { port = 8080; protocol = "tcp"; address = ""; } ]
  #   "127.0.0.1:8080:80/udp" -> [ { port = 8080; protocol = "udp"; address = "127.0.0.1"; } ]
  #   "[::1]:8080:80"         -> [ { port = 8080; ...; address = "::1"; } ]
  #   "8000-8002:8000-8002"   -> three ports
  #   "53:53/TCP,udp"         -> 53/tcp and 53/udp (podman reads the
  #                              protocol case-insensitively, as a list)
  #   "80", "127.0.0.1::80"   -> [ ] (podman picks a free host port: nothing to claim)
  # A "0.0.0.0" address stays as written: it binds IPv4 only. What podman
  # refuses throws, naming the spec; pkg/manifest.ParsePodmanPort, its Go
  # twin, takes and refuses the same (pkg/manifest/testdata/port-specs.json).
  parsePortSpec =
    spec:
    let
      bad = why: throw "portclaim: cannot read the port mapping ${builtins.toJSON spec} (podman's [[ip:][hostPort]:]containerPort[/protocol]): ${why}";
      withProto = builtins.match "(.*)/([^/]*)" spec;
      body = if withProto == null then spec else builtins.elemAt withProto 0;
      protocols = if withProto == null then [ "tcp" ] else protocolList (builtins.elemAt withProto 1);
      bracketed = builtins.match "\\[([^]]*)]:([^:]*):([^:]*)" body;
      parts = builtins.filter builtins.isString (builtins.split ":" body);
      n = builtins.length parts;
      at = builtins.elemAt parts;
      fields =
        if bracketed != null then
          {
            address = builtins.elemAt bracketed 0;
            host = builtins.elemAt bracketed 1;
            container = builtins.elemAt bracketed 2;
          }
        else if builtins.substring 0 1 body == "[" then
          bad "want [address]:hostPort:containerPort"
        else if n == 1 then
          {
            address = "";
            host = "";
            container = at 0;
          }
        else if n == 2 then
          {
            address = "";
            host = at 0;
            container = at 1;
          }
        else if n == 3 then
          {
            address = at 0;
            host = at 1;
            container = at 2;
          }
        else
          bad "too many ':'";
      host = portRange fields.host;
      checked =
        if builtins.stringLength spec > 128 then
          bad "too long"
        else if protocols == null then
          bad "protocol ${builtins.elemAt withProto 1}"
        else if bracketed != null && !(isIPAddress fields.address) then
          bad "address ${fields.address}"
        else if bracketed == null && fields.address != "" && !(isIPv4 fields.address) then
          bad "address ${fields.address}"
        else if portRange fields.container == null then
          bad "container port"
        else if fields.host != "" && host == null then
          bad "host port"
        else
          fields;
    in
    if checked.host == "" then
      [ ]
    else
      builtins.concatMap (
        port:
        map (protocol: {
          inherit port protocol;
          inherit (checked) address;
        }) (builtins.filter (p: p != "sctp") protocols)
      ) (builtins.genList (i: host.first + i) (host.last - host.first + 1));

  # A home-manager podman container as podman runs it: home-manager merges
  # extraConfig.Container over what the options say (its podman module's
  # deepMerge), so ContainerName names the unit, and PublishPort and
  # Network add to ports and network.
  toList = x: if builtins.isList x then x else [ x ];

  containerUnit = name: c: "podman-${c.extraConfig.Container.ContainerName or name}.service";

  containerSpecs = c: (c.ports or [ ]) ++ toList (c.extraConfig.Container.PublishPort or [ ]);

  # The network that publishes nothing: "host" (the container binds the
  # host's ports itself; podman ignores its ports there) or "none"; null
  # when it publishes its ports.
  unpublishedNetwork =
    c:
    let
      networks = toList (c.network or [ ]) ++ toList (c.extraConfig.Container.Network or [ ]);
    in
    if builtins.elem "host" networks then
      "host"
    else if builtins.elem "none" networks then
      "none"
    else
      null;
}
