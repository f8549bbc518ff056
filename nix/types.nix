# Option types for portclaim's names, by the rules of nix/lib.nix (which
# mirror the Go side's). A bad name fails evaluation with the option's
# path and the reason, as the Go policy reader would refuse it at run time.
{ lib, pc }:
let
  # A string whose value problem (one of pc's *Problem functions) accepts.
  # The check runs in merge, where the option's path is known, so the
  # error names the option and says what is wrong.
  checkedStr =
    {
      name,
      description,
      problem,
    }:
    lib.mkOptionType {
      inherit name description;
      descriptionClass = "noun";
      check = builtins.isString;
      merge =
        loc: defs:
        let
          value = lib.mergeEqualOption loc defs;
          p = problem value;
        in
        if p == null then
          value
        else
          throw "The option `${lib.showOption loc}' is ${builtins.toJSON value}, which ${p}. (Defined in ${
            lib.concatMapStringsSep ", " (d: d.file) defs
          }.)";
    };
in
{
  unitName = checkedStr {
    name = "portclaimUnitName";
    description = "systemd unit name (such as ollama.service)";
    problem = pc.unitNameProblem;
  };

  claimableUnit = checkedStr {
    name = "portclaimClaimableUnit";
    description = "systemd .service or .socket unit name";
    problem = pc.claimableUnitProblem;
  };

  userName = checkedStr {
    name = "portclaimUserName";
    description = "user name";
    problem = pc.userNameProblem;
  };

  # "" (every address) or an IP address, as the manifest's ports take it.
  address = checkedStr {
    name = "portclaimAddress";
    description = "IP address, or \"\" for every address";
    problem = a: if a == "" || pc.isIPAddress a then null else "is not an IP address (\"\" for every address, or one such as 127.0.0.1 or ::1)";
  };

  # Absolute and clean, as pkg/policy requires of claimsDir.
  cleanAbsolutePath = checkedStr {
    name = "portclaimCleanAbsolutePath";
    description = "clean absolute path";
    problem = pc.claimsDirProblem;
  };
}
