# portclaim's own system units: the broker's socket and service,
# reconcile, and the metrics service and timer, as whole texts.
{ pc, util }:
let
  inherit (util)
    concatLines
    ;
  inherit (pc)
    checked
    claimsDirProblem
    defaultClaimsDir
    ;
in
rec {
  brokerSocket = "/run/portclaim/broker.sock";

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
}
