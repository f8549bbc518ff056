# The system side's files: the policy (pkg/policy reads it), the start
# conditions, tmpfiles, and systemFiles, every file the NixOS module
# installs (the end-to-end machines install exactly that).
{ pc, util }:
let
  inherit (util)
    sortedNames
    sortUnique
    concatLines
    ;
  inherit (pc)
    checked
    claimableUnitProblem
    claimsDirProblem
    knownServices
    userNameProblem
    systemUnits
    ;
in
rec {
  defaultClaimsDir = "/var/lib/portclaim/claims";
  policyPath = "/etc/portclaim/policy.json";

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

  # The policy's yield with each known service's family: every unit a
  # known service's NixOS module defines around the units that hold its
  # ports (ollama-model-loader.service BindsTo= ollama.service) stops with
  # them, so it yields to the same users, where the system defines it.
  #   yield: unit -> users; definedUnits: the units the system defines
  withFamilies =
    {
      yield,
      definedUnits,
    }:
    let
      family = builtins.concatMap (
        key:
        let
          k = knownServices.${key};
          users = sortUnique (builtins.concatMap (u: yield.${u} or [ ]) k.systemUnits);
        in
        map (unit: {
          name = unit;
          value = users;
        }) (builtins.filter (u: builtins.elem u definedUnits) (k.family or [ ]))
      ) (sortedNames knownServices);
    in
    builtins.foldl' (
      acc: f:
      if f.value == [ ] then acc else acc // { ${f.name} = sortUnique ((acc.${f.name} or [ ]) ++ f.value); }
    ) yield family;

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
      # It is often the node exporter's, shared with other writers: made
      # when missing (root's, 0755), never re-owned or re-moded ("-").
      ++ (if textfileDirectory == null then [ ] else [ "d ${textfileDirectory} - - - -" ])
    );

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
}
