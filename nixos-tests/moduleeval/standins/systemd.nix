# Stand-ins for the systemd options of NixOS that portclaim's NixOS
# module, home-manager's NixOS module and nixpkgs' service modules set or
# read, declared with the types NixOS gives them (nixos/lib/
# systemd-unit-options.nix, nixos/modules/system/boot/systemd.nix,
# systemd/tmpfiles.nix), so definitions merge as they would on a real
# system: unit option values merge as NixOS's unitOption does (lists
# concatenate, other values must be equal), unit names are checked, a
# unit's text may be defined once.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  # An option as NixOS declares it: its type, default and description.
  opt =
    type: default: description:
    mkOption { inherit type default description; };

  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";

  # NixOS's unitOption: definitions that are all lists concatenate; other
  # values must all be equal.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    check = _: true;
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if builtins.isList (builtins.head defs').value then
        lib.concatMap (
          def:
          if builtins.isList def.value then
            def.value
          else
            throw "The definitions for systemd unit options should be either all lists or all non-lists (${lib.showOption loc})"
        ) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  unitList =
    description:
    mkOption {
      type = types.listOf unitNameType;
      default = [ ];
      inherit description;
    };

  sharedOptions = {
    enable = opt types.bool true "false: the unit is a link to /dev/null.";
    wantedBy = unitList "Units that want this one (.wants links).";
    requiredBy = unitList "Units that require this one.";
    upheldBy = unitList "Units that uphold this one.";
    aliases = unitList "Aliases.";
  };

  commonUnitOptions = sharedOptions // {
    description = opt types.singleLineStr "" "Description=.";
    documentation = opt (types.listOf types.str) [ ] "Documentation=.";
    requires = unitList "Requires=.";
    wants = unitList "Wants=.";
    upholds = unitList "Upholds=.";
    after = unitList "After=.";
    before = unitList "Before=.";
    bindsTo = unitList "BindsTo=.";
    partOf = unitList "PartOf=.";
    conflicts = unitList "Conflicts=.";
    requisite = unitList "Requisite=.";
    onFailure = unitList "OnFailure=.";
    onSuccess = unitList "OnSuccess=.";
    unitConfig = opt (types.attrsOf unitOption) { } "[Unit] options.";
    restartTriggers = opt (types.listOf types.unspecified) [ ] "X-Restart-Triggers=.";
    reloadTriggers = opt (types.listOf unitOption) [ ] "X-Reload-Triggers=.";
  };

  serviceOptions = commonUnitOptions // {
    environment = mkOption {
      type = types.attrsOf (
        types.nullOr (
          types.oneOf [
            types.str
            types.path
            types.package
          ]
        )
      );
      default = { };
      description = "Environment=.";
    };
    path = mkOption {
      type = types.listOf (types.oneOf [
        types.package
        types.str
      ]);
      default = [ ];
      description = "PATH.";
    };
    serviceConfig = opt (types.attrsOf unitOption) { } "[Service] options.";
    script = opt types.lines "" "Main process script.";
    scriptArgs = opt types.str "" "Script arguments.";
    preStart = opt types.lines "" "ExecStartPre= script.";
    postStart = opt types.lines "" "ExecStartPost= script.";
    restartIfChanged = opt types.bool true "Restart on switch when changed.";
    reloadIfChanged = opt types.bool false "Reload on switch when changed.";
    stopIfChanged = opt types.bool true "Stop, then start, when changed.";
    startAt = opt (types.either types.str (types.listOf types.str)) [ ] "OnCalendar= of a timer.";
  };

  socketOptions = commonUnitOptions // {
    listenStreams = opt (types.listOf types.str) [ ] "ListenStream=.";
    listenDatagrams = opt (types.listOf types.str) [ ] "ListenDatagram=.";
    socketConfig = opt (types.attrsOf unitOption) { } "[Socket] options.";
  };

  timerOptions = commonUnitOptions // {
    timerConfig = opt (types.attrsOf unitOption) { } "[Timer] options.";
  };

  # systemd.units: the unit's whole text, defined once.
  concreteUnitOptions = sharedOptions // {
    text = opt (types.nullOr types.str) null "The unit file's text.";
    overrideStrategy = mkOption {
      type = types.enum [
        "asDropinIfExists"
        "asDropin"
      ];
      default = "asDropinIfExists";
      description = "How the unit joins one of the same name from a package.";
    };
  };

  # types.package as NixOS declares tmpfiles.packages (its `apply = map
  # getLib` is left out: the stub packages have no lib output to pick).
  packages =
    description:
    mkOption {
      type = types.listOf types.package;
      default = [ ];
      inherit description;
    };
in
{
  options = {
    systemd.services = mkOption {
      type = types.attrsOf (types.submodule { options = serviceOptions; });
      default = { };
      description = "systemd services.";
    };
    systemd.sockets = mkOption {
      type = types.attrsOf (types.submodule { options = socketOptions; });
      default = { };
      description = "systemd sockets.";
    };
    systemd.timers = mkOption {
      type = types.attrsOf (types.submodule { options = timerOptions; });
      default = { };
      description = "systemd timers.";
    };
    systemd.targets = mkOption {
      type = types.attrsOf (types.submodule { options = commonUnitOptions; });
      default = { };
      description = "systemd targets.";
    };
    systemd.units = mkOption {
      type = types.attrsOf (types.submodule { options = concreteUnitOptions; });
      default = { };
      description = "systemd units by their whole text.";
    };
    systemd.packages = packages "Packages whose etc/systemd/system and lib/systemd/system are linked into /etc/systemd/system.";
    systemd.user.services = mkOption {
      type = types.attrsOf (types.submodule { options = serviceOptions; });
      default = { };
      description = "systemd user services.";
    };
    systemd.tmpfiles.rules = opt (types.listOf types.str) [ ] "Lines of /etc/tmpfiles.d/00-nixos.conf.";
    systemd.tmpfiles.packages = packages "Packages whose lib/tmpfiles.d/*.conf are linked into /etc/tmpfiles.d.";
  };
}
