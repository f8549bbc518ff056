# portclaim's builtins-only functions: what both modules render, written so
# that Nix without nixpkgs (Debian's nix-instantiate 2.8 in CI) evaluates
# them, and the end-to-end machines install exactly what they return.
#
# Keep in sync with the Go side: pkg/policy (policy.json, user names),
# pkg/unitname (unit names), pkg/claims (claim paths), pkg/manifest (the
# manifest), pkg/endpoint (bind overlap). The name rules are tested against
# the shared corpora pkg/unitname/testdata/names.json and
# pkg/policy/testdata/users.json by both sides.
let
  sortedNames = attrs: builtins.sort builtins.lessThan (builtins.attrNames attrs);

  sortUnique =
    list:
    builtins.sort builtins.lessThan (
      builtins.attrNames (builtins.listToAttrs (map (x: {
        name = x;
        value = null;
      }) list))
    );

  hasSuffix =
    suffix: s:
    let
      ls = builtins.stringLength s;
      lx = builtins.stringLength suffix;
    in
    ls >= lx && builtins.substring (ls - lx) lx s == suffix;

  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;

  # How often sep occurs in s (builtins.split puts each match between two
  # strings).
  count = sep: s: (builtins.length (builtins.split sep s) - 1) / 2;

  concatLines = lines: builtins.concatStringsSep "" (map (l: l + "\n") lines);

  # The services portclaim knows by name; the Go built-in map reads the
  # same file.
  knownServicesFile = builtins.fromJSON (builtins.readFile ../pkg/manifest/known-services.json);

  unitTypes = [
    "service"
    "socket"
    "device"
    "mount"
    "automount"
    "swap"
    "target"
    "path"
    "timer"
    "slice"
    "scope"
  ];
in
rec {
  defaultClaimsDir = "/var/lib/portclaim/claims";
  # The manifest version the home-manager module renders.
  manifestVersion = 2;
  policyPath = "/etc/portclaim/policy.json";
  brokerSocket = "/run/portclaim/broker.sock";

  # ---------------------------------------------------------------------
  # Names. Each check returns null when the name is fine, else why not
  # (a sentence the option types put after the option path).

  # pkg/unitname.Validate: 1-255 bytes of systemd's unit name characters,
  # a known type after the last dot, something before it, and at most one
  # '@' that is neither first nor last (a template is nothing that runs).
  unitNameProblem =
    name:
    let
      m = builtins.match "(.*)\\.([^.]*)" name;
      prefix = builtins.elemAt m 0;
      suffix = builtins.elemAt m 1;
      ats = count "@" prefix;
    in
    if name == "" then
      "is empty"
    else if builtins.stringLength name > 255 then
      "is longer than 255 bytes"
    else if builtins.match "[A-Za-z0-9:_.\\@-]+" name == null then
      "has a character systemd does not allow in unit names (only A-Z a-z 0-9 : _ . \\ @ -)"
    else if m == null || prefix == "" then
      "has no type suffix (such as .service)"
    else if !builtins.elem suffix unitTypes then
      "has the unknown type \"${suffix}\" (one of ${builtins.concatStringsSep ", " unitTypes})"
    else if ats > 1 then
      "has more than one '@'"
    else if ats == 1 && hasPrefix "@" prefix then
      "starts with '@'"
    else if ats == 1 && hasSuffix "@" prefix then
      "is a template; name an instance such as ${builtins.substring 0 (builtins.stringLength prefix) prefix}NAME.${suffix}"
    else
      null;

  # What may yield (services.portclaim.yield keys, policy units): a unit
  # name of type service or socket.
  claimableUnitProblem =
    name:
    let
      p = unitNameProblem name;
    in
    if p != null then
      p
    else if !(hasSuffix ".service" name || hasSuffix ".socket" name) then
      "is not a .service or .socket unit (only those hold ports and can yield)"
    else
      null;

  isClaimableUnit = name: builtins.isString name && claimableUnitProblem name == null;

  # pkg/policy's user names (what NixOS's users.users accepts, and safe as
  # a directory name under the claims directory): 1-32 characters, a
  # letter or '_' first, then letters, digits, '_', '.', '-', and a '$'
  # only last.
  userNameProblem =
    name:
    if name == "" then
      "is empty"
    else if builtins.stringLength name > 32 then
      "is longer than 32 characters"
    else if name == "." || name == ".." then
      "is not a user name"
    else if builtins.match "[A-Za-z_][A-Za-z0-9_.-]*[$]?" name == null then
      "is not a user name (a letter or _ first, then letters, digits, _ . -, and $ only last)"
    else
      null;

  # pkg/policy's claimsDir: absolute and clean (filepath.Clean leaves it
  # as it is). Stricter than Go in two ways that keep the unit files
  # sound: "/" is refused (claims would land in /<user>/), and so are
  # characters that systemd or tmpfiles would read specially in
  # ReadWritePaths=, ConditionPathExists= and tmpfiles.d lines (space,
  # '%' specifiers, quotes, backslash, control characters).
  claimsDirProblem =
    dir:
    if !hasPrefix "/" dir then
      "is not an absolute path"
    else if dir == "/" then
      "is the root directory"
    else if builtins.match "(/[^/]+)+" dir == null then
      "is not clean (\"//\" or a trailing \"/\")"
    else if builtins.any (s: s == "." || s == "..") (builtins.filter builtins.isString (builtins.split "/" dir))
    then
      "is not clean (a \".\" or \"..\" segment)"
    else if builtins.match "[A-Za-z0-9/._+,=@:-]+" dir == null then
      "has a character unit files and tmpfiles.d would read specially (use A-Z a-z 0-9 / . _ + , = @ : -)"
    else
      null;

  # Throws with the name and the problem, for the functions below that
  # take names from a caller that did not go through the option types.
  checked =
    what: problem: name:
    let
      p = problem name;
    in
    if p == null then name else throw "portclaim: ${what} ${builtins.toJSON name} ${p}";

  # ---------------------------------------------------------------------
  # The system side.

  # The claim file that keeps `unit` down for `user`; pkg/claims.Path.
  claimPath = claimsDir: user: unit: "${claimsDir}/${user}/${unit}";

  # The policy as a value: units sorted, users sorted and deduplicated.
  # yield: { "<unit>" = [ "<user>" ... ]; }
  policyValue =
    {
      claimsDir ? defaultClaimsDir,
      yield,
    }:
    {
      version = 1;
      claimsDir = checked "claimsDir" claimsDirProblem claimsDir;
      yield = map (unit: {
        unit = checked "unit" claimableUnitProblem unit;
        users = map (checked "user" userNameProblem) (sortUnique yield.${unit});
      }) (sortedNames yield);
    };

  # /etc/portclaim/policy.json (policy contract version 1).
  policy = args: builtins.toJSON (policyValue args);

  # The start conditions of one yielding unit, as a drop-in: it is skipped
  # while any of its users holds a claim on it. Conditions of one kind are
  # ANDed, so one "!path" per user means "no user claims it".
  conditions =
    {
      claimsDir ? defaultClaimsDir,
      unit,
      users,
    }:
    map (user: "!" + claimPath claimsDir user unit) (sortUnique users);

  conditionLines = args: map (c: "ConditionPathExists=${c}") (conditions args);

  # Where a yielding unit's drop-in goes: named after the unit as the
  # policy names it, so that a unit named by its name for one user and by
  # an alias for another gets both (systemd reads one file of a name
  # across the .d directories of all a unit's names).
  dropInPath = unit: "/etc/systemd/system/${unit}.d/portclaim-${unit}.conf";

  # Ordered after the move of the claims (a switch to a new claimsDir
  # starts multi-user.target, which would start the unit before its
  # record is where the new condition looks).
  dropIn =
    args:
    concatLines (
      [ "[Unit]" ] ++ conditionLines args ++ [ "After=portclaim-move-claims.service" ]
    );

  # The hardening the broker and reconcile units share: they talk to
  # systemd over D-Bus (AF_UNIX), read sockets through sock_diag
  # (AF_NETLINK), and write nothing but claims.
  hardening =
    { claimsDir }:
    [
      "NoNewPrivileges=yes"
      "ProtectSystem=strict"
      "ReadWritePaths=${claimsDir}"
      "ProtectHome=yes"
      "PrivateTmp=yes"
      "PrivateDevices=yes"
      "ProtectKernelTunables=yes"
      "ProtectKernelModules=yes"
      "ProtectKernelLogs=yes"
      "ProtectControlGroups=yes"
      "ProtectClock=yes"
      "ProtectHostname=yes"
      "RestrictAddressFamilies=AF_UNIX AF_NETLINK"
      "RestrictNamespaces=yes"
      "RestrictRealtime=yes"
      "RestrictSUIDSGID=yes"
      "LockPersonality=yes"
      "MemoryDenyWriteExecute=yes"
      "SystemCallArchitectures=native"
      "SystemCallFilter=@system-service"
      "SystemCallErrorNumber=EPERM"
      "CapabilityBoundingSet="
      "UMask=0022"
      # Bounded, so a flood of requests cannot take the machine's memory
      # or tasks with it.
      "MemoryMax=256M"
      "TasksMax=64"
    ];

  # One unit file: sections in order, each a name and its lines.
  unitText =
    sections:
    builtins.concatStringsSep "\n" (map (s: concatLines ([ "[${builtins.head s}]" ] ++ builtins.elemAt s 1)) sections);

  # Every file the NixOS module puts on a machine, by absolute path: a
  # string is the file's content, { symlink = target; } a link (the
  # .wants links NixOS makes from wantedBy). The end-to-end machines
  # install exactly this; a test checks the NixOS module agrees.
  systemFiles =
    {
      portclaim,
      yield,
      claimsDir ? defaultClaimsDir,
      textfileDirectory ? null,
    }:
    let
      policyJSON = policy { inherit claimsDir yield; };
      units = systemUnits {
        inherit
          portclaim
          claimsDir
          textfileDirectory
          policyJSON
          ;
      };
      unitDir = "/etc/systemd/system";
    in
    {
      ${policyPath} = policyJSON;
      "/etc/tmpfiles.d/portclaim.conf" = tmpfilesText { inherit claimsDir textfileDirectory; };
    }
    // builtins.listToAttrs (
      map (unit: {
        name = dropInPath unit;
        value = dropIn {
          inherit claimsDir unit;
          users = yield.${unit};
        };
      }) (sortedNames yield)
    )
    // builtins.mapAttrs (_: u: u.text) (builtins.listToAttrs (
      map (name: {
        name = "${unitDir}/${name}";
        value = units.${name};
      }) (builtins.attrNames units)
    ))
    // builtins.listToAttrs (
      builtins.concatMap (
        name:
        map (target: {
          name = "${unitDir}/${target}.wants/${name}";
          value.symlink = "${unitDir}/${name}";
        }) units.${name}.wantedBy
      ) (builtins.attrNames units)
    );

  # tmpfiles.d: the claims directory is root's; the broker makes each
  # user's directory inside it (root-owned too: users write nothing there).
  tmpfilesText =
    {
      claimsDir ? defaultClaimsDir,
      textfileDirectory ? null,
    }:
    concatLines (
      [ "d ${checked "claimsDir" claimsDirProblem claimsDir} 0755 root root -" ]
      # ReadWritePaths= needs the directory to exist when the unit starts.
      ++ (if textfileDirectory == null then [ ] else [ "d ${textfileDirectory} 0755 root root -" ])
    );

  # portclaim's own units: name -> { text; wantedBy; }. NixOS installs
  # them with systemd.units.<name>.{text,wantedBy}.
  systemUnits =
    {
      portclaim,
      claimsDir ? defaultClaimsDir,
      textfileDirectory ? null,
      policyJSON,
    }:
    let
      harden = hardening { inherit claimsDir; };
    in
    {
      "portclaim.socket" = {
        wantedBy = [ "sockets.target" ];
        text = unitText [
          [
            "Unit"
            [ "Description=portclaim broker socket: users ask root to make system units yield" ]
          ]
          [
            "Socket"
            [
              "ListenStream=${brokerSocket}"
              # Every user may connect; the broker checks who is asking
              # (SO_PEERCRED) against the policy.
              "SocketMode=0666"
              "DirectoryMode=0755"
              "Accept=no"
            ]
          ]
        ];
      };
      "portclaim.service" = {
        wantedBy = [ ];
        text = unitText [
          [
            "Unit"
            [
              "Description=portclaim broker: makes system units yield to the users the policy allows"
              "Requires=portclaim.socket"
              "After=portclaim.socket"
            ]
          ]
          [
            "Service"
            ([ "ExecStart=${portclaim} broker" ] ++ harden)
          ]
        ];
      };
      "portclaim-reconcile.service" = {
        wantedBy = [ "multi-user.target" ];
        text = unitText [
          [
            "Unit"
            [
              "Description=portclaim reconcile: release the claims the policy no longer allows"
              # After the user lookups (a user a network directory, sssd or
              # LDAP, serves is not found before it is up: not one removed)
              # and the move of the claims.
              "After=nss-user-lookup.target portclaim-move-claims.service"
              "Wants=portclaim-move-claims.service"
              # A switch that changes the policy changes this unit file, so
              # switch-to-configuration restarts it: the claims follow the
              # new policy on that switch, not at the next boot.
              "X-Restart-Triggers=${builtins.hashString "sha256" policyJSON}"
            ]
          ]
          [
            "Service"
            (
              [
                "Type=oneshot"
                "RemainAfterExit=yes"
                "ExecStart=${portclaim} reconcile"
              ]
              ++ harden
            )
          ]
        ];
      };
      # Moves the claims when claimsDir changes, before any unit they keep
      # down starts (every drop-in is ordered after it): early at boot,
      # and on a switch, where a restart of reconcile restarts it too.
      # It writes where the old directory was, which no sandbox set for
      # the new one would let it.
      "portclaim-move-claims.service" = {
        wantedBy = [
          "multi-user.target"
          "sockets.target"
        ];
        text = unitText [
          [
            "Unit"
            [
              "Description=portclaim: move the claims into services.portclaim.claimsDir before the units they keep down start"
              "DefaultDependencies=no"
              "After=local-fs.target"
              "Conflicts=shutdown.target"
              "Before=shutdown.target"
              "PartOf=portclaim-reconcile.service"
              "X-Restart-Triggers=${claimsDir}"
            ]
          ]
          [
            "Service"
            (
              [
                "Type=oneshot"
                "RemainAfterExit=yes"
                "ExecStart=${portclaim} reconcile --move-claims"
              ]
              ++ map (
                l:
                if l == "ProtectSystem=strict" then
                  "ProtectSystem=full"
                else if l == "RestrictAddressFamilies=AF_UNIX AF_NETLINK" then
                  "RestrictAddressFamilies=AF_UNIX"
                else
                  l
              ) (builtins.filter (l: l != "ReadWritePaths=${claimsDir}") harden)
            )
          ]
        ];
      };
    }
    // (
      if textfileDirectory == null then
        { }
      else
        metricsUnits {
          inherit portclaim claimsDir textfileDirectory;
        }
    );

  # The fleet view: portclaim status as a node exporter textfile, every
  # five minutes and after every switch.
  metricsUnits =
    {
      portclaim,
      claimsDir ? defaultClaimsDir,
      textfileDirectory,
    }:
    let
      dir = checked "textfileDirectory" claimsDirProblem textfileDirectory;
    in
    {
      "portclaim-metrics.service" = {
        # A oneshot that does not remain active, wanted by
        # multi-user.target: switch-to-configuration starts every active
        # target again, which starts it again, so the metrics follow each
        # switch (and boot).
        wantedBy = [ "multi-user.target" ];
        text = unitText [
          [
            "Unit"
            [
              "Description=portclaim metrics: claims and port holders for the node exporter"
              "After=portclaim-reconcile.service"
            ]
          ]
          [
            "Service"
            (
              [
                "Type=oneshot"
                "ExecStart=${portclaim} status --format prometheus --output ${dir}/portclaim.prom"
              ]
              # Reads users' state read-only and writes one file. Root
              # needs CAP_DAC_READ_SEARCH to read a user's 0700 home and
              # CAP_SYS_PTRACE to read other users' open files (which
              # confirm who holds a socket); nothing more.
              ++ map (
                l:
                if l == "ProtectHome=yes" then
                  "ProtectHome=read-only"
                else if l == "ReadWritePaths=${claimsDir}" then
                  "ReadWritePaths=${dir}"
                else if l == "CapabilityBoundingSet=" then
                  "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE"
                else
                  l
              ) (hardening { inherit claimsDir; })
            )
          ]
        ];
      };
      "portclaim-metrics.timer" = {
        wantedBy = [ "timers.target" ];
        text = unitText [
          [
            "Unit"
            [ "Description=portclaim metrics every five minutes" ]
          ]
          [
            "Timer"
            [
              "OnCalendar=*:0/5"
              "Unit=portclaim-metrics.service"
            ]
          ]
        ];
      };
    };

  # ---------------------------------------------------------------------
  # The user side.

  # name -> { nixosModule; systemUnits; ports; }
  knownServices = knownServicesFile.services;

  # Parses one podman port mapping, `[[ip:][hostPort]:]containerPort[/protocol]`
  # (podman-run(1) --publish), into the host ports it binds:
  #   "8080:80"              -> [ { port = 8080; protocol = "tcp"; address = ""; } ]
  #   "127.0.0.1:8080:80/udp" -> [ { port = 8080; protocol = "udp"; address = "127.0.0.1"; } ]
  #   "[::1]:8080:80"        -> [ { port = 8080; ...; address = "::1"; } ]
  #   "8000-8002:8000-8002"  -> three ports
  #   "80", "127.0.0.1::80"  -> [ ] (podman picks a free host port: nothing to claim)
  # A "0.0.0.0" address stays as written: it binds IPv4 only.
  parsePortSpec =
    spec:
    let
      withProto = builtins.match "(.*)/([a-z]+)" spec;
      body = if withProto == null then spec else builtins.elemAt withProto 0;
      protocol = if withProto == null then "tcp" else builtins.elemAt withProto 1;
      v6 = builtins.match "\\[([0-9A-Fa-f:.]*)]:([0-9-]*):([0-9-]+)" body;
      parts = builtins.filter builtins.isString (builtins.split ":" body);
      n = builtins.length parts;
      at = builtins.elemAt parts;
      fields =
        if v6 != null then
          {
            address = builtins.elemAt v6 0;
            host = builtins.elemAt v6 1;
          }
        else if n == 1 then
          {
            address = "";
            host = "";
          }
        else if n == 2 then
          {
            address = "";
            host = at 0;
          }
        else if n == 3 then
          {
            address = at 0;
            host = at 1;
          }
        else
          throw "portclaim: cannot read the port mapping \"${spec}\" (podman's [[ip:][hostPort]:]containerPort[/protocol])";
      range = builtins.match "([0-9]+)(-([0-9]+))?" fields.host;
      first = builtins.fromJSON (builtins.elemAt range 0);
      last = if builtins.elemAt range 2 == null then first else builtins.fromJSON (builtins.elemAt range 2);
      hostPorts =
        if fields.host == "" then
          [ ]
        else if range == null || last < first || first < 1 || last > 65535 then
          throw "portclaim: \"${fields.host}\" in the port mapping \"${spec}\" is not a host port or range"
        else
          builtins.genList (i: first + i) (last - first + 1);
    in
    if protocol != "tcp" && protocol != "udp" then
      [ ] # sctp: nothing portclaim checks
    else
      map (port: {
        inherit port protocol;
        inherit (fields) address;
      }) hostPorts;

  # The known service a container pairs with: its name is the key or ends
  # in "-<key>" (local-ai-ollama -> ollama); null when none.
  knownServiceOf =
    name:
    let
      hits = builtins.filter (key: name == key || hasSuffix "-${key}" name) (sortedNames knownServices);
    in
    if hits == [ ] then null else builtins.head hits;

  # The address a `host` option binds, as the manifest wants it: "[::]" ->
  # "::", "localhost" -> "127.0.0.1", another host name -> "" (all
  # addresses: claim too much rather than too little).
  hostAddress =
    host:
    let
      bracketed = builtins.match "\\[(.*)]" host;
    in
    if bracketed != null then
      builtins.head bracketed
    else if host == "localhost" then
      "127.0.0.1"
    else if builtins.match "[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*" host != null then
      host
    else
      "";

  # Claims derived from home-manager's configuration:
  #   containers: services.podman.containers (name -> { ports = [ spec ]; network ? ...; })
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
          specs = containers.${name}.ports or [ ];
          # On the host's network podman publishes nothing (deriveNotes
          # says so in the manifest).
          ports = if hostNetwork containers.${name} then [ ] else builtins.concatLists (map parsePortSpec specs);
        in
        {
          name = if known == null || pairedWith known > 1 then name else known;
          value = {
            systemUnits = if known == null then [ ] else knownServices.${known}.systemUnits;
            userUnits = [ "podman-${name}.service" ];
            inherit ports;
            origin.podman = {
              container = name;
              ports = specs;
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
  # container on the host's network publishes no ports, so nothing is
  # claimed for it (podman ignores its ports there).
  hostNetwork =
    container:
    let
      network = container.network or [ ];
    in
    builtins.elem "host" (if builtins.isList network then network else [ network ]);

  deriveNotes =
    {
      containers ? { },
    }:
    builtins.concatMap (
      name:
      if hostNetwork containers.${name} then
        [
          "container ${name} uses the host's network (network = \"host\"): it publishes no ports, so portclaim claims nothing for podman-${name}.service; declare its ports in services.portclaim.services to claim them"
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

  # ---------------------------------------------------------------------
  # Collisions: evaluation-time warnings for claims the system will not
  # let yield.

  # An address in one canonical form, so that equal addresses compare
  # equal: IPv6 expanded to eight lower-case groups without leading
  # zeros, an IPv4-mapped IPv6 address as IPv4. "" stays "" (all).
  canonicalAddress =
    address:
    let
      a = builtins.replaceStrings [ "A" "B" "C" "D" "E" "F" ] [ "a" "b" "c" "d" "e" "f" ] address;
      groups = s: if s == "" then [ ] else builtins.filter builtins.isString (builtins.split ":" s);
      halves = builtins.filter builtins.isString (builtins.split "::" a);
      head = groups (builtins.head halves);
      tail = if builtins.length halves > 1 then groups (builtins.elemAt halves 1) else [ ];
      # an embedded IPv4 tail counts as two groups
      width = gs: builtins.foldl' (n: g: n + (if builtins.match ".*\\..*" g != null then 2 else 1)) 0 gs;
      zeros = builtins.genList (_: "0") (8 - width head - width tail);
      all = head ++ zeros ++ tail;
      strip = g: let m = builtins.match "0*([0-9a-f]+)" g; in if m == null then g else builtins.head m;
      last = builtins.elemAt all (builtins.length all - 1);
      mapped =
        builtins.length all == 7
        && builtins.all (g: strip g == "0") (builtins.genList (i: builtins.elemAt all i) 5)
        && strip (builtins.elemAt all 5) == "ffff"
        && builtins.match "[0-9.]+" last != null;
    in
    if a == "" || builtins.match ".*:.*" a == null then
      a
    else if mapped then
      last
    else
      builtins.concatStringsSep ":" (map strip all);

  # pkg/endpoint.Overlap for two { port; protocol; address; }: same
  # protocol and port, and equal addresses or either a wildcard ("" is
  # every address on both stacks; "0.0.0.0" every IPv4 address; "::"
  # every address, as a dual-stack socket binds).
  overlaps =
    a: b:
    let
      x = canonicalAddress (a.address or "");
      y = canonicalAddress (b.address or "");
      v6 = s: builtins.match ".*:.*" s != null;
      any6 = "0:0:0:0:0:0:0:0";
      wild = s: s == "0.0.0.0" || s == any6;
    in
    (a.protocol or "tcp") == (b.protocol or "tcp")
    && a.port == b.port
    && (
      x == ""
      || y == ""
      || (if v6 x == v6 y then x == y || wild x || wild y else (v6 x && x == any6) || (v6 y && y == any6))
    );

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

  # Evaluation-time warnings: a claimed port that a system unit the system
  # enables holds, where the policy does not let that unit yield to user.
  #   enabledUnits: system units the NixOS configuration enables
  #   yield: the NixOS policy, unit -> users
  #   bindings: unit -> what it holds (systemBindings); a unit without an
  #     entry is taken to hold every port its claim names (the user said so)
  collisions =
    {
      user,
      services,
      enabledUnits,
      yield ? { },
      bindings ? { },
    }:
    builtins.concatMap (
      name:
      let
        svc = services.${name};
        held = unit: p: !(bindings ? ${unit}) || builtins.any (overlaps p) bindings.${unit};
        colliding = unit: builtins.filter (held unit) svc.ports;
        show = p: "${toString p.port}/${p.protocol or "tcp"}" + (if (p.address or "") == "" then "" else " on ${p.address}");
        # Only an option known to exist: the known-services table's
        # NixOS module that runs the unit (a name guessed from the unit
        # could name an option that does not exist).
        modules =
          unit:
          map (k: knownServices.${k}.nixosModule) (
            builtins.filter (
              k: knownServices.${k} ? nixosModule && builtins.elem unit knownServices.${k}.systemUnits
            ) (sortedNames knownServices)
          );
        turnOff =
          unit:
          if modules unit == [ ] then "" else " or turn it off: ${builtins.head (modules unit)}.enable = false;";
      in
      map (
        unit:
        "portclaim: ${user}'s ${builtins.concatStringsSep ", " svc.userUnits} claims ${
          builtins.concatStringsSep ", " (map show (colliding unit))
        }, but the system enables ${unit}, which holds it. Let it yield: services.portclaim.yield.\"${unit}\".users = [ \"${user}\" ];"
        + turnOff unit
      ) (
        builtins.filter (
          unit: builtins.elem unit enabledUnits && !(builtins.elem user (yield.${unit} or [ ])) && colliding unit != [ ]
        ) svc.systemUnits
      )
    ) (sortedNames services);

  inherit sortUnique;
}
